//! Job store settings (the `[node.jobs]` section).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Limits;

/// Which engine holds job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process: the embedded default (one process, `wpsmesh up`).
    Memory,
    /// Redis: any node of the cluster answers for any job.
    Redis,
}

/// How asynchronous jobs are stored, leased, retried and expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub store: StoreKind,
    /// `redis://[user:password@]host:port[/db]`.
    pub redis_url: String,
    /// Prefix of every Redis key and channel, so meshes can share a Redis.
    pub prefix: String,
    /// How long a finished job's record and output files are kept.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Lease a node holds on a running job; renewed every third of it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Attempts a job gets when the nodes running it are lost (2 = one retry).
    pub max_attempts: u32,
    /// Jobs waiting for a worker past which Submit answers "busy".
    pub max_queued: u64,
    /// Longest a single store command may take before the store counts as unavailable.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// How often expired leases are reaped and expired jobs swept.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            prefix: "wpsmesh".into(),
            ttl: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(15),
            max_attempts: 2,
            max_queued: 1000,
            command_timeout: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

impl JobsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            ttl: self.ttl,
            max_queued: self.max_queued,
            max_attempts: self.max_attempts.max(1),
        }
    }

    /// The Redis URL without its password, for messages.
    pub fn redis_display(&self) -> String {
        match url::Url::parse(&self.redis_url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.redis_url.clone(),
        }
    }
}
