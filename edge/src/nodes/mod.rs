//! The edge's view of the processing nodes: discovery (static, Consul, DNS), per-node health
//! checks, power-of-two-choices balancing over in-flight calls, and retries of idempotent calls.
//!
//! Balancing is done here rather than by tonic's `Channel::balance_channel` (tower's p2c
//! `Balance`): that one waits forever when no endpoint is ready (the edge must answer ServerBusy
//! at once), cannot send a retry to a node other than the one that failed, and does not say
//! which node served a call. The choice itself is tower's: two distinct healthy nodes drawn at
//! random, the one with fewer calls in flight (sent, not yet answered) wins.

mod channel;
mod config;
mod discovery;
mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Code;
use tracing::debug;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;

use crate::ows::OwsError;

pub use channel::{NodeChannel, NodeStats};
pub use config::{DiscoveryConfig, DiscoveryKind, DnsConfig, DnsRecord};
pub use discovery::DiscoveryError;
pub(crate) use pool::check as check_health;

/// Largest message to or from a node (inline complex inputs and outputs), as the node allows.
pub const MAX_NODE_MESSAGE: usize = 64 * 1024 * 1024;

/// A ProcessService client bound to one node chosen by the balancer.
pub type NodeClient = ProcessServiceClient<NodeChannel>;

/// A cheaply clonable handle on the node pool. Background discovery and health checking stop
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Nodes {
    pool: Arc<pool::Pool>,
    retries: u32,
    retry_after: u32,
    _stop: Arc<DropGuard>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("healthy", &self.len())
            .field("nodes", &self.stats())
            .finish()
    }
}

impl Nodes {
    /// Starts discovery and health checking (needs a tokio runtime). Nodes join the pool once
    /// their first health check passes, which takes a round trip; see [`Nodes::wait_for`].
    pub fn start(config: &DiscoveryConfig) -> Result<Self, DiscoveryError> {
        tokio::runtime::Handle::try_current().map_err(|_| DiscoveryError::NoRuntime)?;
        let stop = CancellationToken::new();
        let pool = Arc::new(pool::Pool::new(
            pool::HealthSettings {
                interval: config.health_interval,
                timeout: config.health_timeout,
            },
            stop.clone(),
        ));
        discovery::start(config, &pool)?;
        Ok(Self {
            pool,
            retries: config.retries,
            retry_after: config.retry_after,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// A client on a node chosen by p2c over in-flight calls; ServerBusy (with Retry-After)
    /// when no node is healthy. Calls made with it are never retried.
    pub fn client(&self) -> Result<NodeClient, OwsError> {
        let node = self.pool.pick(&[]).ok_or_else(|| self.busy())?;
        Ok(client_for(node))
    }

    fn busy(&self) -> OwsError {
        OwsError::busy(
            "no processing node is available, try again later",
            self.retry_after,
        )
    }

    /// One call on a balanced node, never retried: for Execute, Submit and Dismiss. A gRPC
    /// status becomes the matching OWS exception.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, OwsError>
    where
        F: FnOnce(NodeClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client()?;
        f(client)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| OwsError::from_status(&s))
    }

    /// A call that may run more than once: on UNAVAILABLE (including connection errors, but
    /// not a shared dependency of the nodes down) it is retried on another node, at most [`DiscoveryConfig::retries`] times. Only for
    /// Describe/List/GetStatus/GetResult; Execute and Submit go through [`Nodes::call`].
    pub async fn call_idempotent<T, F, Fut>(&self, mut f: F) -> Result<T, OwsError>
    where
        F: FnMut(NodeClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut tried: Vec<Arc<str>> = Vec::new();
        let mut node = self.pool.pick(&tried).ok_or_else(|| self.busy())?;
        loop {
            let uri = node.uri.clone();
            let status = match f(client_for(node)).await {
                Ok(response) => return Ok(response.into_inner()),
                // A shared dependency (the job store) down is down for every node.
                Err(status)
                    if status.code() == Code::Unavailable
                        && crate::ows::dependency(&status).is_none() =>
                {
                    status
                }
                Err(status) => return Err(OwsError::from_status(&status)),
            };
            tried.push(uri.clone());
            let attempts = tried.len();
            // Another node, while retries are left and an untried node is healthy; otherwise
            // the last failure is the answer.
            let next = (attempts <= self.retries as usize)
                .then(|| self.pool.pick(&tried))
                .flatten();
            let Some(next) = next else {
                debug!(node = %uri, attempts, error = %status.message(), "idempotent call unavailable, no node left to retry on");
                return Err(OwsError::from_status(&status));
            };
            debug!(node = %uri, next = %next.uri, attempts, error = %status.message(), "idempotent call unavailable, retrying on another node");
            node = next;
        }
    }

    /// Bumped whenever the set of healthy nodes changes (cached capabilities and descriptions
    /// are stale then).
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.pool.generation()
    }

    /// Healthy nodes: the ones calls go to.
    pub fn len(&self) -> usize {
        self.pool.healthy().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every discovered node (healthy or not) with its in-flight and total call counts.
    pub fn stats(&self) -> Vec<NodeStats> {
        self.pool.stats()
    }

    /// Waits until at least `count` nodes are healthy; false after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        let mut generation = self.generation();
        tokio::time::timeout(timeout, async {
            while self.len() < count {
                if generation.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }
}

/// A ProcessService client on `node`, with the node's message size limits.
fn client_for(node: Arc<channel::Node>) -> NodeClient {
    ProcessServiceClient::new(NodeChannel::new(node))
        .max_decoding_message_size(MAX_NODE_MESSAGE)
        .max_encoding_message_size(MAX_NODE_MESSAGE)
}
