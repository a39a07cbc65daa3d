//! What every wpsmesh server shares: a gRPC server with health and reflection, tuned gRPC
//! channels, what a failed call ran into, Consul registration and discovery, and shutdown signals.

pub mod backoff;
pub mod consul;
pub mod failure;
pub mod grpc;
pub mod shutdown;
