//! What every wpsmesh server shares: a gRPC server with health and reflection, tuned gRPC
//! channels, what a failed call ran into, backoff between attempts, and shutdown signals.
//! (Discovery and Consul registration live in `wpsmesh-discovery`.)

pub mod backoff;
pub mod failure;
pub mod grpc;
pub mod shutdown;
