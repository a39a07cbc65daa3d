//! Discovery and balancing settings of the edge (the `[edge.discovery]` section): where the node
//! set comes from (a static list, Consul or DNS) and how nodes are health-checked and retried.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wpsmesh_runtime::consul::ConsulConfig;

/// Where the set of nodes comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    /// [`DiscoveryConfig::nodes`]: the embedded default.
    #[default]
    Static,
    /// Passing instances of [`ConsulConfig::service`] (`wps-node`), watched with blocking queries.
    Consul,
    /// A DNS name re-resolved every [`DnsConfig::interval`] (A/AAAA or SRV), e.g. a Kubernetes
    /// headless service.
    Dns,
}

/// Node discovery, health checking and retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub kind: DiscoveryKind,
    /// Node gRPC URIs for `kind = "static"`, e.g. `http://127.0.0.1:8001`.
    pub nodes: Vec<String>,
    /// Consul agent and watched service name for `kind = "consul"`.
    pub consul: ConsulConfig,
    /// Name and port for `kind = "dns"`.
    pub dns: DnsConfig,
    /// How often every node is checked with `grpc.health.v1.Health/Check` (a failed call on a node
    /// checks it at once).
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
    /// A health check not answered within this is a failure.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// Deadline of the short calls: Describe, List, GetStatus, GetResult, Submit and Dismiss. A
    /// node that misses it is checked at once; the read-only ones move to another node.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// The longest a synchronous Execute is waited for: the request's own timeout when it has a
    /// shorter one. [`DiscoveryConfig::execute_margin`] is added to either.
    #[serde(with = "humantime_serde")]
    pub execute_timeout: Duration,
    /// Time added to an Execute's timeout for queueing, fetching inputs and storing outputs.
    #[serde(with = "humantime_serde")]
    pub execute_margin: Duration,
    /// Further attempts of an idempotent call (Describe, List, GetStatus, GetResult) on another
    /// node after UNAVAILABLE, a connection error or a missed deadline. Execute, Submit and
    /// Dismiss are never retried.
    pub retries: u32,
    /// Seconds a client is told to wait (Retry-After) when no node is available.
    pub retry_after: u32,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            kind: DiscoveryKind::Static,
            nodes: vec![
                "http://127.0.0.1:8001".into(),
                "http://127.0.0.1:8002".into(),
            ],
            consul: ConsulConfig::default(),
            dns: DnsConfig::default(),
            health_interval: Duration::from_secs(3),
            health_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            execute_timeout: Duration::from_secs(3600),
            execute_margin: Duration::from_secs(120),
            retries: 2,
            retry_after: 5,
        }
    }
}

/// Which records name the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecord {
    /// SRV when the name starts with `_` (`_grpc._tcp.wps-node.ns.svc.cluster.local`), else A/AAAA.
    #[default]
    Auto,
    /// A and AAAA records (through the system resolver), each address a node on [`DnsConfig::port`].
    A,
    /// SRV records: each target and port a node.
    Srv,
}

/// DNS discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve, e.g. `wps-node.wpsmesh.svc.cluster.local`.
    pub name: String,
    /// The nodes' gRPC port for A/AAAA records (SRV records carry their own).
    pub port: u16,
    pub record: DnsRecord,
    /// How often the name is resolved again.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Name servers for SRV queries (`ip:port`); empty uses the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            port: 8001,
            record: DnsRecord::Auto,
            interval: Duration::from_secs(10),
            nameservers: Vec::new(),
        }
    }
}

impl DnsConfig {
    /// Whether SRV records are queried.
    pub fn uses_srv(&self) -> bool {
        match self.record {
            DnsRecord::Auto => self.name.starts_with('_'),
            DnsRecord::A => false,
            DnsRecord::Srv => true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_two_local_nodes() {
        let c = DiscoveryConfig::default();
        assert_eq!(c.kind, DiscoveryKind::Static);
        assert_eq!(c.nodes, ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]);
        assert_eq!(c.consul.service, "wps-node");
    }

    #[test]
    fn parses_kinds_and_rejects_unknown_fields() {
        let c: DiscoveryConfig = serde_json::from_value(serde_json::json!({
            "kind": "dns",
            "dns": {"name": "_grpc._tcp.wps-node", "interval": "30s"},
            "health_interval": "1s",
            "call_timeout": "2s",
        }))
        .unwrap();
        assert_eq!(c.kind, DiscoveryKind::Dns);
        assert!(c.dns.uses_srv());
        assert_eq!(c.dns.interval, Duration::from_secs(30));
        assert_eq!(c.health_interval, Duration::from_secs(1));
        assert_eq!(c.call_timeout, Duration::from_secs(2));
        assert_eq!(c.execute_timeout, Duration::from_secs(3600));
        let plain = DnsConfig {
            name: "wps-node".into(),
            ..DnsConfig::default()
        };
        assert!(!plain.uses_srv());
        assert!(
            serde_json::from_value::<DiscoveryConfig>(serde_json::json!({"nodez": []})).is_err()
        );
        assert!(
            serde_json::from_value::<DiscoveryConfig>(serde_json::json!({"kind": "zk"})).is_err()
        );
    }
}
