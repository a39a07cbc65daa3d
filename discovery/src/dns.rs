//! DNS lookups of members: A/AAAA through the system resolver, SRV through hickory (with the
//! configured name servers, uncached so each round sees the current records).

use std::collections::BTreeSet;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::DnsConfig;
use crate::{DiscoveryError, member_uri};

/// A hickory resolver for SRV queries: the configured name servers, else the system's. Answers
/// are not cached, so each round sees the current records.
pub(crate) fn resolver(dns: &DnsConfig) -> Result<TokioResolver, DiscoveryError> {
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

/// The member URIs the name resolves to now. A name without records resolves to none.
pub(crate) async fn resolve(
    dns: &DnsConfig,
    resolver: Option<&TokioResolver>,
) -> Result<BTreeSet<String>, String> {
    let mut uris = BTreeSet::new();
    match resolver {
        Some(resolver) => match resolver.srv_lookup(dns.name.as_str()).await {
            Ok(lookup) => {
                for record in lookup.answers() {
                    if let RData::SRV(srv) = &record.data {
                        uris.insert(member_uri(&srv.target.to_ascii(), srv.port));
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
                uris.insert(member_uri(&addr.ip().to_string(), addr.port()));
            }
        }
    }
    Ok(uris)
}
