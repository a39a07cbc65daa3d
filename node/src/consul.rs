//! Consul self-registration (placeholder until written).
