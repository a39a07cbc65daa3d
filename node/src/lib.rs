//! wpsmesh node: serves `wpsmesh.process.v1.ProcessService` from a pool of PyQGIS workers.

pub mod consul;
pub mod fetch;
pub mod pool;
