//! What every wpsmesh server shares: a gRPC server with health and reflection, tuned gRPC
//! channels, Consul registration and discovery, and shutdown signals.

pub mod consul;
pub mod grpc;
pub mod shutdown;
