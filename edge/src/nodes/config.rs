//! Discovery and balancing settings of the edge (the `[edge.discovery]` section): where the node
//! set comes from (a static list, Consul or DNS, read by `wpsmesh-discovery`) and how nodes are
//! health-checked and retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wpsmesh_discovery::{ConsulConfig, Discovery, DiscoveryKind, DnsConfig};

/// Node discovery, health checking and retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Where the node set comes from: `static` ([`DiscoveryConfig::nodes`]), `consul` (passing
    /// instances of `wps-node`) or `dns`.
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

impl DiscoveryConfig {
    /// The node source as the discovery crate reads it (`nodes` are the static members).
    pub fn source(&self) -> Discovery {
        Discovery {
            kind: self.kind,
            members: self.nodes.clone(),
            dns: self.dns.clone(),
            consul: self.consul.clone(),
        }
    }
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
        assert_eq!(c.source().members, c.nodes);
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
        assert_eq!(c.source().kind, DiscoveryKind::Dns);
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
