//! Node settings (the `[node]` section of the wpsmesh config).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::callbacks::CallbacksConfig;
use crate::fetch::FetchConfig;
use crate::pool::PoolConfig;
use wpsmesh_discovery::{ConsulConfig, Discovery};
use wpsmesh_jobstore::JobsConfig;

/// Everything a node needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` server; none when unset (the `wpsmesh` binary
    /// defaults to `0.0.0.0:9101`).
    pub metrics_listen: Option<SocketAddr>,
    /// The storage service (`http://host:port`), where inputs are read and outputs written: the
    /// static member of [`Config::storage_discovery`] unless that lists its own.
    pub storage: String,
    /// Where storage instances are (`kind` static, dns or consul; Consul service
    /// `wps-file-storage`); calls are balanced over them.
    #[serde(deserialize_with = "wpsmesh_discovery::storage_serde::discovery")]
    pub storage_discovery: Discovery,
    /// Where job working directories live; each job's is removed when it ends.
    pub work_dir: PathBuf,
    /// Largest complex output returned inline (as value); larger ones become references.
    pub max_inline_bytes: u64,
    /// Asynchronous jobs: store, leases, retries, queue bound, expiry.
    pub jobs: JobsConfig,
    pub pool: PoolConfig,
    pub fetch: FetchConfig,
    /// Job callbacks (OGC API - Processes subscriber): timeouts, retries, bounds.
    pub callbacks: CallbacksConfig,
    pub consul: ConsulConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8001)),
            metrics_listen: None,
            storage: "http://127.0.0.1:8800".into(),
            storage_discovery: Discovery::storage(),
            work_dir: std::env::temp_dir().join("wpsmesh-node"),
            max_inline_bytes: 8 * 1024 * 1024,
            jobs: JobsConfig::default(),
            pool: PoolConfig::default(),
            fetch: FetchConfig::default(),
            callbacks: CallbacksConfig::default(),
            consul: ConsulConfig::default(),
        }
    }
}
