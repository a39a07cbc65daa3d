//! Input fetching (placeholder until written).
