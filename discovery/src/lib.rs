//! wpsmesh discovery: where the members of a service are (a static list, a DNS name or Consul),
//! for the edge's node pool and for the storage connection of edge and node; the Consul
//! registration of nodes (`wps-node`) and storage (`wps-file-storage`); and a tonic channel
//! balanced over a discovered member set.
//!
//! [`watch_members`] turns a [`Discovery`] section into a `watch` receiver of member URIs;
//! [`balanced_channel`] feeds such a set to `Channel::balance_channel`.

mod balance;
mod config;
pub mod consul;
mod dns;
mod members;

use std::net::IpAddr;

pub use balance::{Balanced, balanced_channel};
pub use config::{
    Discovery, DiscoveryKind, DnsConfig, DnsRecord, STORAGE_PORT, STORAGE_SERVICE, storage_serde,
};
pub use consul::{ConsulConfig, ConsulError, Registration};
pub use members::watch_members;

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("static discovery: invalid uri {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("consul discovery: {0}")]
    Consul(#[from] ConsulError),
    #[error("dns discovery: {0}")]
    Dns(String),
    #[error("discovery needs a tokio runtime")]
    NoRuntime,
}

/// The gRPC URI of a member at `host:port` (IPv6 literals bracketed, a DNS name's final dot
/// dropped).
pub fn member_uri(host: &str, port: u16) -> String {
    let host = host.trim_end_matches('.');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("http://[{ip}]:{port}"),
        _ => format!("http://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_uris_bracket_ipv6_and_drop_the_root_dot() {
        assert_eq!(member_uri("10.0.0.1", 8001), "http://10.0.0.1:8001");
        assert_eq!(member_uri("::1", 8800), "http://[::1]:8800");
        assert_eq!(member_uri("localhost.", 8002), "http://localhost:8002");
    }
}
