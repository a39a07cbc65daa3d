//! The `wpsmesh-worker` binary (placeholder until written).

fn main() {}
