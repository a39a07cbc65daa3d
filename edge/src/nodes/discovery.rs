//! The adapter from `wpsmesh-discovery` to the pool: the member set of the configured source
//! (static, Consul or DNS) becomes the pool's members, until the pool's stop token fires.

use std::sync::Arc;

use tracing::debug;
use wpsmesh_discovery::{DiscoveryError, watch_members};

use super::config::DiscoveryConfig;
use super::pool::Pool;

/// Starts feeding `pool` from the configured source. Static members are in the pool when this
/// returns; Consul and DNS ones join as answers arrive.
pub(crate) fn start(config: &DiscoveryConfig, pool: &Arc<Pool>) -> Result<(), DiscoveryError> {
    let mut members = watch_members(&config.source(), pool.stop.clone())?;
    let initial = members.borrow_and_update().clone();
    if !initial.is_empty() {
        pool.set_members(initial.into_iter().collect());
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = pool.stop.cancelled() => return,
                changed = members.changed() => if changed.is_err() { return },
            }
            let next = members.borrow_and_update().clone();
            debug!(count = next.len(), "node members changed");
            pool.set_members(next.into_iter().collect());
        }
    });
    Ok(())
}
