//! Response compression: `Accept-Encoding` negotiated in one place ([`negotiate`]), cached
//! documents kept with their gzip and br forms computed once ([`Document`]), other XML and
//! JSON answers compressed per response at a fast level ([`layer::compress`]); file downloads
//! and raw outputs are marked [`Identity`] and never compressed.

mod codec;
mod document;
pub mod layer;
mod negotiate;

pub use codec::{Level, encode};
pub use document::{Document, Slot, once};
pub use layer::{Identity, compress};
pub use negotiate::{AcceptEncoding, Encoding};
