//! wpsmesh edge: OGC WPS 1.0.0/2.0.0, the JSON job API and the file API over HTTP, translated
//! into gRPC calls on nodes (balanced) and storage.

pub mod files;
pub mod jobs_api;
pub mod nodes;
pub mod ows;
pub mod wps;
