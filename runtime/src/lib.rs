//! What every wpsmesh server shares: a gRPC server with health and reflection, tuned gRPC
//! channels, and shutdown signals.

pub mod grpc;
pub mod shutdown;
