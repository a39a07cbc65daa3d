//! Where a member set comes from: the [`Discovery`] section (`kind`, `members`, `dns`, `consul`)
//! shared by the edge's node discovery and by the storage discovery of edge and node.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::consul::ConsulConfig;

/// The service name storage registers as in Consul, and that storage discovery watches.
pub const STORAGE_SERVICE: &str = "wps-file-storage";
/// The storage service's gRPC port, for DNS A/AAAA records.
pub const STORAGE_PORT: u16 = 8800;

/// Where the set of members comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    /// A fixed list of URIs: the embedded default.
    #[default]
    Static,
    /// Passing instances of [`ConsulConfig::service`], watched with blocking queries.
    Consul,
    /// A DNS name re-resolved every [`DnsConfig::interval`] (A/AAAA or SRV), e.g. a Kubernetes
    /// headless service.
    Dns,
}

/// One discovery source: a static list, a DNS name or a Consul service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Discovery {
    pub kind: DiscoveryKind,
    /// gRPC URIs for `kind = "static"`, e.g. `http://127.0.0.1:8800`.
    pub members: Vec<String>,
    /// Name and port for `kind = "dns"`.
    pub dns: DnsConfig,
    /// Consul agent and watched service name for `kind = "consul"`.
    pub consul: ConsulConfig,
}

impl Default for Discovery {
    fn default() -> Self {
        Self {
            kind: DiscoveryKind::Static,
            members: Vec::new(),
            dns: DnsConfig::default(),
            consul: ConsulConfig::default(),
        }
    }
}

impl Discovery {
    /// Static discovery of `members`.
    pub fn fixed(members: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            members: members.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The defaults for finding storage: static (no members: the configured `storage` URI),
    /// DNS on port [`STORAGE_PORT`], Consul service [`STORAGE_SERVICE`].
    pub fn storage() -> Self {
        Self {
            dns: DnsConfig {
                port: STORAGE_PORT,
                ..DnsConfig::default()
            },
            consul: ConsulConfig::for_service(STORAGE_SERVICE),
            ..Self::default()
        }
    }

    /// This source, with `uri` as the static member when none is listed: how the edge and the
    /// node keep their `storage = "http://..."` key as the default static member.
    pub fn or_member(&self, uri: &str) -> Self {
        let mut d = self.clone();
        if d.members.is_empty() {
            d.members = vec![uri.to_owned()];
        }
        d
    }
}

/// Which records name the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecord {
    /// SRV when the name starts with `_` (`_grpc._tcp.wps-node.ns.svc.cluster.local`), else A/AAAA.
    #[default]
    Auto,
    /// A and AAAA records (through the system resolver), each address a member on
    /// [`DnsConfig::port`].
    A,
    /// SRV records: each target and port a member.
    Srv,
}

/// DNS discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve, e.g. `wps-node.wpsmesh.svc.cluster.local`.
    pub name: String,
    /// The members' gRPC port for A/AAAA records (SRV records carry their own).
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

/// Serde helpers for storage's sections, whose defaults differ from a node's: a Consul service
/// name of [`STORAGE_SERVICE`] and a DNS port of [`STORAGE_PORT`] where the section leaves them
/// out. Use as `#[serde(deserialize_with = "wpsmesh_discovery::storage_serde::consul")]`.
pub mod storage_serde {
    use super::*;

    /// A [`ConsulConfig`] whose `service` defaults to [`STORAGE_SERVICE`].
    pub fn consul<'de, D: Deserializer<'de>>(d: D) -> Result<ConsulConfig, D::Error> {
        let mut value = serde_json::Value::deserialize(d)?;
        default_key(&mut value, "service", STORAGE_SERVICE.into());
        serde_json::from_value(value).map_err(D::Error::custom)
    }

    /// A [`Discovery`] with [`Discovery::storage`]'s defaults.
    pub fn discovery<'de, D: Deserializer<'de>>(d: D) -> Result<Discovery, D::Error> {
        let mut value = serde_json::Value::deserialize(d)?;
        if let Some(map) = value.as_object_mut() {
            let consul = map.entry("consul").or_insert_with(|| serde_json::json!({}));
            default_key(consul, "service", STORAGE_SERVICE.into());
            let dns = map.entry("dns").or_insert_with(|| serde_json::json!({}));
            default_key(dns, "port", STORAGE_PORT.into());
        }
        serde_json::from_value(value).map_err(D::Error::custom)
    }

    fn default_key(value: &mut serde_json::Value, key: &str, default: serde_json::Value) {
        if let Some(map) = value.as_object_mut() {
            map.entry(key).or_insert(default);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Storage {
        #[serde(deserialize_with = "storage_serde::discovery")]
        find: Discovery,
        #[serde(deserialize_with = "storage_serde::consul")]
        consul: ConsulConfig,
    }

    #[test]
    fn storage_sections_default_to_the_storage_service() {
        let s: Storage = serde_json::from_value(serde_json::json!({
            "find": {"kind": "consul", "consul": {"address": "http://consul:8500"}},
            "consul": {"address": "http://consul:8500"},
        }))
        .unwrap();
        assert_eq!(s.find.kind, DiscoveryKind::Consul);
        assert_eq!(s.find.consul.service, STORAGE_SERVICE);
        assert_eq!(s.find.dns.port, STORAGE_PORT);
        assert_eq!(s.consul.service, STORAGE_SERVICE);
        assert_eq!(Discovery::storage().consul.service, STORAGE_SERVICE);
        // What is written wins, and unknown keys are still refused, naming the key.
        let s: Storage = serde_json::from_value(serde_json::json!({
            "find": {"kind": "dns", "dns": {"name": "s", "port": 9}},
            "consul": {"service": "mine"},
        }))
        .unwrap();
        assert_eq!((s.find.dns.port, s.consul.service.as_str()), (9, "mine"));
        let err = serde_json::from_value::<Storage>(serde_json::json!({
            "find": {"memberz": []}, "consul": {},
        }))
        .unwrap_err();
        assert!(err.to_string().contains("memberz"), "{err}");
    }

    #[test]
    fn the_configured_uri_is_the_default_static_member() {
        let d = Discovery::storage().or_member("http://s:8800");
        assert_eq!(d.members, ["http://s:8800"]);
        let listed = Discovery::fixed(["http://a:1"]).or_member("http://s:8800");
        assert_eq!(listed.members, ["http://a:1"]);
    }
}
