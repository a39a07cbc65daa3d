//! Worker pool (placeholder until written).
