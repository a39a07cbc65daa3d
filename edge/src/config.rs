//! Edge settings (the `[edge]` section of the wpsmesh config).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wpsmesh_discovery::Discovery;

use crate::nodes::DiscoveryConfig;

/// Everything the edge needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The URL clients reach the edge at; capabilities and output hrefs are built from it.
    pub public_url: String,
    /// The storage service (`http://host:port`): the static member of
    /// [`Config::storage_discovery`] unless that lists its own.
    pub storage: String,
    /// Where storage instances are (`kind` static, dns or consul; Consul service
    /// `wps-file-storage`); calls are balanced over them.
    #[serde(deserialize_with = "wpsmesh_discovery::storage_serde::discovery")]
    pub storage_discovery: Discovery,
    /// Deadline of the short storage calls (find, delete, opening a download).
    #[serde(with = "humantime_serde")]
    pub storage_timeout: Duration,
    /// Longest pause of an upload or download stream between two chunks; the transfer as a
    /// whole has no deadline.
    #[serde(with = "humantime_serde")]
    pub storage_idle_timeout: Duration,
    /// Largest WPS or JSON request body, in bytes (inline inputs count); more gets 413.
    pub max_body_bytes: usize,
    /// Largest file accepted by the file API, in bytes; more gets 413 and nothing is stored.
    pub max_upload_bytes: u64,
    /// Title shown in capabilities documents.
    pub title: String,
    /// Where the nodes are.
    pub discovery: DiscoveryConfig,
    /// Other base URLs clients reach the edge's file API at (e.g. a load balancer's name):
    /// input hrefs under them, like those under `public_url` or loopback on the listening port,
    /// go to nodes as storage references.
    pub file_hosts: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            public_url: "http://localhost:9000".into(),
            storage: "http://127.0.0.1:8800".into(),
            storage_discovery: Discovery::storage(),
            storage_timeout: crate::files::DEFAULT_TIMEOUT,
            storage_idle_timeout: crate::files::DEFAULT_IDLE_TIMEOUT,
            max_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 16 * 1024 * 1024 * 1024,
            title: "wpsmesh".into(),
            discovery: DiscoveryConfig::default(),
            file_hosts: Vec::new(),
        }
    }
}
