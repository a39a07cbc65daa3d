//! The member set of a [`Discovery`] source as it changes: a `watch` receiver fed by a
//! background task (Consul blocking queries, DNS re-resolution) until a cancellation token fires
//! or every receiver is gone.

use std::collections::BTreeSet;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Discovery, DiscoveryKind};
use crate::{DiscoveryError, consul, dns, member_uri};

/// Starts watching the members of `source`: gRPC URIs (`http://host:port`), sorted.
///
/// A static source holds its (checked) list from the start; Consul and DNS sources start empty
/// and change when an answer arrives. While Consul or DNS fail, the last set stays (a resolver
/// hiccup must not empty a pool) and the failure is logged. Watching stops when `stop` fires or
/// the last receiver is dropped; the receiver then sees its sender closed.
///
/// Refused at once: a static URI that is not one (naming it), a DNS source without a name, a
/// Consul source without a usable agent address, or no tokio runtime.
pub fn watch_members(
    source: &Discovery,
    stop: CancellationToken,
) -> Result<watch::Receiver<BTreeSet<String>>, DiscoveryError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| DiscoveryError::NoRuntime)?;
    match source.kind {
        DiscoveryKind::Static => {
            let mut members = BTreeSet::new();
            for uri in &source.members {
                wpsmesh_runtime::grpc::endpoint(uri).map_err(|e| DiscoveryError::InvalidUri {
                    uri: uri.clone(),
                    reason: e.to_string(),
                })?;
                members.insert(uri.trim_end_matches('/').to_owned());
            }
            info!(members = ?members, "static discovery");
            let (tx, rx) = watch::channel(members);
            runtime.spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tx.closed() => {}
                }
            });
            Ok(rx)
        }
        DiscoveryKind::Consul => {
            let service = source.consul.service.clone();
            let mut instances = consul::watch_service(&source.consul, &service)?;
            info!(service = %service, consul = %source.consul.address, "consul discovery");
            let (tx, rx) = watch::channel(BTreeSet::new());
            runtime.spawn(async move {
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        () = tx.closed() => return,
                        next = instances.next() => next,
                    };
                    let Some(instances) = next else { return };
                    debug!(service = %service, count = instances.len(), "consul instances");
                    tx.send_replace(
                        instances
                            .iter()
                            .map(|(host, port)| member_uri(host, *port))
                            .collect(),
                    );
                }
            });
            Ok(rx)
        }
        DiscoveryKind::Dns => {
            let dns = source.dns.clone();
            if dns.name.trim().is_empty() {
                return Err(DiscoveryError::Dns("no name configured".into()));
            }
            let resolver = if dns.uses_srv() {
                Some(dns::resolver(&dns)?)
            } else {
                None
            };
            info!(name = %dns.name, srv = dns.uses_srv(), interval = ?dns.interval, "dns discovery");
            let (tx, rx) = watch::channel(BTreeSet::new());
            runtime.spawn(async move {
                loop {
                    match dns::resolve(&dns, resolver.as_ref()).await {
                        Ok(uris) => {
                            tx.send_if_modified(|current| {
                                let changed = *current != uris;
                                if changed {
                                    debug!(name = %dns.name, members = ?uris, "dns answer changed");
                                    *current = uris;
                                }
                                changed
                            });
                        }
                        // Keep the last set: a resolver hiccup must not empty a pool.
                        Err(e) => warn!(name = %dns.name, error = %e, "dns lookup failed"),
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tx.closed() => return,
                        () = tokio::time::sleep(dns.interval) => {}
                    }
                }
            });
            Ok(rx)
        }
    }
}
