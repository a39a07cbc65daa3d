//! What the benches share to read their settings and print their times: a number from the
//! environment with its default, and milliseconds.

use std::str::FromStr;
use std::time::Duration;

/// `$name` parsed, or `default` when it is unset or not a `T`.
pub fn setting<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A duration in milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
