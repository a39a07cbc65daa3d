//! A tonic channel balanced over a discovered member set (`Channel::balance_channel`): members
//! that join are inserted as lazily connecting endpoints with wpsmesh's transport settings,
//! members that leave are removed.

use std::collections::BTreeSet;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::DiscoveryError;
use crate::config::Discovery;
use crate::members::watch_members;

/// Room for membership changes not yet taken in by the balancer.
const CHANGES: usize = 64;

/// A channel balanced over the members of a discovery source.
#[derive(Debug, Clone)]
pub struct Balanced {
    /// Calls go to one of the current members (tower's power of two choices). With no member
    /// a call waits for one: callers bound their calls with deadlines.
    pub channel: Channel,
    /// The members handed to the balancer so far: a call made after this changes goes to one
    /// of them.
    pub members: watch::Receiver<BTreeSet<String>>,
}

/// Discovers the members of `source` and balances a channel over them, until `stop` fires or
/// every clone of the channel is dropped. Refused as [`watch_members`] refuses.
pub fn balanced_channel(
    source: &Discovery,
    stop: CancellationToken,
) -> Result<Balanced, DiscoveryError> {
    let mut discovered = watch_members(source, stop.clone())?;
    // Static members are in the balancer before the first call: room for all of them at once.
    let initial = discovered.borrow_and_update().clone();
    let (channel, changes) = Channel::balance_channel::<String>(CHANGES.max(initial.len()));
    let mut current = BTreeSet::new();
    for change in diff(&mut current, initial) {
        // Cannot fail: the receiver is alive and there is room for every member.
        let _ = changes.try_send(change);
    }
    let (applied_tx, applied) = watch::channel(current.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                // Every clone of the channel is gone: stop discovering too.
                () = changes.closed() => {
                    stop.cancel();
                    return;
                }
                changed = discovered.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            let next = discovered.borrow_and_update().clone();
            for change in diff(&mut current, next) {
                if changes.send(change).await.is_err() {
                    stop.cancel();
                    return;
                }
            }
            applied_tx.send_replace(current.clone());
        }
    });
    Ok(Balanced {
        channel,
        members: applied,
    })
}

/// The balancer changes from `current` to `next` (removals first); `current` becomes `next`
/// less the URIs that are not valid endpoints.
fn diff(current: &mut BTreeSet<String>, next: BTreeSet<String>) -> Vec<Change<String, Endpoint>> {
    let mut out = Vec::new();
    for gone in current.difference(&next) {
        info!(member = %gone, "member left, removed from the balancer");
        out.push(Change::Remove(gone.clone()));
    }
    let mut kept: BTreeSet<String> = current.intersection(&next).cloned().collect();
    for new in next.difference(current) {
        match wpsmesh_runtime::grpc::endpoint(new) {
            Ok(endpoint) => {
                info!(member = %new, "member joined the balancer");
                out.push(Change::Insert(new.clone(), endpoint));
                kept.insert(new.clone());
            }
            Err(e) => warn!(member = %new, error = %e, "invalid member uri, skipped"),
        }
    }
    *current = kept;
    out
}
