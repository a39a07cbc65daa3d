//! The node pool: members from discovery, each with a health checker that moves it in and out
//! of the healthy set, and the power-of-two-choices pick over in-flight calls.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::{info, warn};
use wpsmesh_proto::text;

use super::channel::{Node, NodeStats};
use wpsmesh_runtime::failure::Failure;

/// The gRPC service a node must report SERVING for.
pub(crate) const PROCESS_SERVICE: &str = "wpsmesh.process.v1.ProcessService";

/// Health checking settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthSettings {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

struct Member {
    node: Arc<Node>,
    checker: AbortHandle,
}

/// Members, the healthy snapshot calls are balanced over, and the generation counter.
pub(crate) struct Pool {
    health: HealthSettings,
    members: Mutex<BTreeMap<Arc<str>, Member>>,
    healthy: RwLock<Arc<[Arc<Node>]>>,
    generation: watch::Sender<u64>,
    pub(crate) stop: CancellationToken,
}

impl Pool {
    pub(crate) fn new(health: HealthSettings, stop: CancellationToken) -> Self {
        Self {
            health,
            members: Mutex::default(),
            healthy: RwLock::new(Arc::from(Vec::new())),
            generation: watch::channel(0).0,
            stop,
        }
    }

    pub(crate) fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Healthy nodes, the ones calls go to.
    pub(crate) fn healthy(&self) -> Arc<[Arc<Node>]> {
        self.healthy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn stats(&self) -> Vec<NodeStats> {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|m| m.node.stats())
            .collect()
    }

    /// Power of two choices: two distinct healthy nodes drawn at random (`exclude`d ones left
    /// out), the one with fewer calls in flight wins.
    pub(crate) fn pick(&self, exclude: &[Arc<str>]) -> Option<Arc<Node>> {
        let healthy = self.healthy();
        let candidates: Vec<&Arc<Node>> = healthy
            .iter()
            .filter(|n| !exclude.contains(&n.uri))
            .collect();
        let mut rng = rand::rng();
        let chosen = match candidates.len() {
            0 => return None,
            1 => candidates[0],
            n => {
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                if b.in_flight() < a.in_flight() { b } else { a }
            }
        };
        Some(chosen.clone())
    }

    /// Makes `uris` the members: new ones join unhealthy and are checked at once, missing ones
    /// leave. Invalid URIs are logged and skipped.
    pub(crate) fn set_members(self: &Arc<Self>, uris: Vec<String>) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: BTreeMap<Arc<str>, ()> = uris
            .into_iter()
            .map(|u| (Arc::from(u.trim_end_matches('/')), ()))
            .collect();
        members.retain(|uri, member| {
            let keep = wanted.contains_key(uri);
            if !keep {
                member.checker.abort();
                member.node.healthy.store(false, Ordering::Relaxed);
                info!(node = %uri, "node left discovery");
            }
            keep
        });
        for uri in wanted.into_keys() {
            if members.contains_key(&uri) {
                continue;
            }
            let endpoint = match wpsmesh_runtime::grpc::endpoint(&uri) {
                Ok(endpoint) => endpoint,
                Err(e) => {
                    warn!(node = %uri, error = %e, "invalid node uri, skipped");
                    continue;
                }
            };
            let (channel, health) = (endpoint.connect_lazy(), endpoint.connect_lazy());
            let node = Arc::new(Node::new(uri.clone(), channel, health));
            info!(node = %uri, "node discovered");
            let checker = tokio::spawn(self.clone().check_loop(node.clone())).abort_handle();
            members.insert(uri, Member { node, checker });
        }
        drop(members);
        self.refresh();
    }

    /// Recomputes the healthy snapshot; bumps the generation when its membership changed.
    fn refresh(&self) {
        let members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let now: Vec<Arc<Node>> = members
            .values()
            .filter(|m| m.node.healthy.load(Ordering::Relaxed))
            .map(|m| m.node.clone())
            .collect();
        let mut healthy = self.healthy.write().unwrap_or_else(PoisonError::into_inner);
        let same =
            healthy.len() == now.len() && healthy.iter().zip(&now).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            *healthy = Arc::from(now);
            let count = healthy.len();
            drop(healthy);
            drop(members);
            self.generation.send_modify(|g| *g += 1);
            info!(
                healthy = count,
                generation = *self.generation.borrow(),
                "node pool changed"
            );
        }
    }

    /// Checks `node` every interval, or at once when a call failed on it, until it leaves.
    async fn check_loop(self: Arc<Self>, node: Arc<Node>) {
        let mut client = HealthClient::new(node.health.clone());
        let mut failures: u32 = 0;
        loop {
            let result = check(&mut client, PROCESS_SERVICE, self.health.timeout).await;
            let was = node.healthy.swap(result.is_ok(), Ordering::Relaxed);
            match result {
                Ok(()) => {
                    if !was {
                        info!(node = %node.uri, "node healthy, joined the pool");
                        self.refresh();
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if was {
                        warn!(node = %node.uri, error = %e, "node failed its health check, left the pool");
                        self.refresh();
                    } else if failures == 1 || failures.is_power_of_two() {
                        warn!(node = %node.uri, error = %e, attempts = failures, "node not healthy");
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(self.health.interval) => {}
                () = node.check_now.notified() => {}
            }
        }
    }
}

/// One `grpc.health.v1.Health/Check` of `service`, bounded by `timeout`: Ok when it answers
/// SERVING, else a short reason. Node health checks and the edge's readiness both use it.
pub(crate) async fn check(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(status)) => Err(match Failure::of_status(&status) {
            Some(failure) => failure.reason().to_owned(),
            None => format!("{:?}: {}", status.code(), text::shown(status.message())),
        }),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("status {}", other.as_str_name())),
        },
    }
}
