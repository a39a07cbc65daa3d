//! OGC WPS 1.0.0 and 2.0.0: requests parsed from KVP and XML into [`model`] types, documents
//! written per version.

pub mod handler;
pub mod model;
pub mod request;
pub mod v1;
pub mod v2;
pub(crate) mod xml;

pub use xml::{Service, endpoint};
