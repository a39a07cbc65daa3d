//! Discovery sources feeding the pool's member list: a static list, a Consul watch, or a DNS
//! name re-resolved periodically (A/AAAA through the system resolver, SRV through hickory).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use tracing::{debug, info, warn};

use super::config::{DiscoveryConfig, DiscoveryKind, DnsConfig};
use super::pool::Pool;

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("static discovery: invalid node uri {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error("consul discovery: {0}")]
    Consul(#[from] wpsmesh_runtime::consul::ConsulError),
    #[error("dns discovery: {0}")]
    Dns(String),
    #[error("node discovery needs a tokio runtime")]
    NoRuntime,
}

/// The URI of a node at `host:port` (IPv6 literals bracketed).
pub(crate) fn node_uri(host: &str, port: u16) -> String {
    let host = host.trim_end_matches('.');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("http://[{ip}]:{port}"),
        _ => format!("http://{host}:{port}"),
    }
}

/// Starts feeding `pool` from the configured source, until the pool's stop token fires.
pub(crate) fn start(config: &DiscoveryConfig, pool: &Arc<Pool>) -> Result<(), DiscoveryError> {
    match config.kind {
        DiscoveryKind::Static => {
            for uri in &config.nodes {
                wpsmesh_runtime::grpc::endpoint(uri).map_err(|e| DiscoveryError::InvalidUri {
                    uri: uri.clone(),
                    reason: e.to_string(),
                })?;
            }
            info!(nodes = ?config.nodes, "static node discovery");
            pool.set_members(config.nodes.clone());
        }
        DiscoveryKind::Consul => {
            let service = config.consul.service.clone();
            let mut watch = wpsmesh_runtime::consul::watch_service(&config.consul, &service)?;
            info!(service = %service, consul = %config.consul.address, "consul node discovery");
            let pool = pool.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        () = pool.stop.cancelled() => return,
                        next = watch.next() => next,
                    };
                    let Some(instances) = next else { return };
                    debug!(service = %service, count = instances.len(), "consul instances");
                    pool.set_members(
                        instances
                            .iter()
                            .map(|(host, port)| node_uri(host, *port))
                            .collect(),
                    );
                }
            });
        }
        DiscoveryKind::Dns => {
            let dns = config.dns.clone();
            if dns.name.trim().is_empty() {
                return Err(DiscoveryError::Dns("no name configured".into()));
            }
            let resolver = if dns.uses_srv() {
                Some(resolver(&dns)?)
            } else {
                None
            };
            info!(name = %dns.name, srv = dns.uses_srv(), interval = ?dns.interval, "dns node discovery");
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut last: Option<Vec<String>> = None;
                loop {
                    match resolve(&dns, resolver.as_ref()).await {
                        Ok(uris) => {
                            if last.as_ref() != Some(&uris) {
                                debug!(name = %dns.name, nodes = ?uris, "dns answer changed");
                                pool.set_members(uris.clone());
                                last = Some(uris);
                            }
                        }
                        // Keep the last set: a resolver hiccup must not empty the pool.
                        Err(e) => warn!(name = %dns.name, error = %e, "dns node lookup failed"),
                    }
                    tokio::select! {
                        () = pool.stop.cancelled() => return,
                        () = tokio::time::sleep(dns.interval) => {}
                    }
                }
            });
        }
    }
    Ok(())
}

/// A hickory resolver for SRV queries: the configured name servers, else the system's. Answers
/// are not cached, so each round sees the current records.
fn resolver(dns: &DnsConfig) -> Result<TokioResolver, DiscoveryError> {
    let mut builder = if dns.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| DiscoveryError::Dns(e.to_string()))?
    } else {
        let servers = dns
            .nameservers
            .iter()
            .map(|addr| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                NameServerConfig::new(addr.ip(), true, connections)
            })
            .collect();
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    builder.options_mut().cache_size = 0;
    builder
        .build()
        .map_err(|e| DiscoveryError::Dns(e.to_string()))
}

/// The node URIs the name resolves to now, sorted. A name without records resolves to none.
async fn resolve(dns: &DnsConfig, resolver: Option<&TokioResolver>) -> Result<Vec<String>, String> {
    let mut uris = BTreeSet::new();
    match resolver {
        Some(resolver) => match resolver.srv_lookup(dns.name.as_str()).await {
            Ok(lookup) => {
                for record in lookup.answers() {
                    if let RData::SRV(srv) = &record.data {
                        uris.insert(node_uri(&srv.target.to_ascii(), srv.port));
                    }
                }
            }
            Err(e) if e.is_no_records_found() => {}
            Err(e) => return Err(e.to_string()),
        },
        None => {
            let found = tokio::net::lookup_host((dns.name.as_str(), dns.port))
                .await
                .map_err(|e| e.to_string())?;
            for addr in found {
                uris.insert(node_uri(&addr.ip().to_string(), addr.port()));
            }
        }
    }
    Ok(uris.into_iter().collect())
}
