//! Callback settings (the node's `[node.callbacks]` section): time per attempt, retries and
//! their backoff, how often a running job reports, and the bounds on what is outstanding.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How job callbacks are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Time for one POST: connecting, sending and the whole answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts after the first, when the receiver cannot be reached, times out or answers
    /// 408, 429 or 5xx.
    pub retries: u32,
    /// Pause before the first retry; it doubles for each further one up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Shortest time between two in-progress callbacks of a job.
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// In-progress callbacks of one attempt of a job, at most.
    pub max_progress: u32,
    /// POSTs in flight on this node, at most.
    pub concurrency: usize,
    /// Jobs whose callbacks are outstanding (running, or ended with callbacks not yet sent), at
    /// most; the callbacks of a job beyond it are dropped and counted.
    pub max_jobs: usize,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            progress_interval: Duration::from_secs(1),
            max_progress: 20,
            concurrency: 16,
            max_jobs: 1024,
        }
    }
}

impl CallbacksConfig {
    /// Checks the numbers that must not be zero.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = [
            ("timeout", !self.timeout.is_zero()),
            ("concurrency", self.concurrency > 0),
            ("max_jobs", self.max_jobs > 0),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(format!("callbacks.{name} must be greater than zero")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields_and_zero_bounds_are_refused() {
        let config: CallbacksConfig =
            serde_json::from_str(r#"{"timeout": "2s", "retries": 1}"#).expect("partial config");
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert_eq!(config.retries, 1);
        assert_eq!(config.progress_interval, Duration::from_secs(1));
        assert!(config.validate().is_ok());
        let err = serde_json::from_str::<CallbacksConfig>(r#"{"retry": 1}"#).expect_err("typo");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let zero = CallbacksConfig {
            concurrency: 0,
            ..CallbacksConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err("callbacks.concurrency must be greater than zero".into())
        );
    }
}
