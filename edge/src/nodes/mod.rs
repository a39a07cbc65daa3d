//! The edge's view of the processing nodes: discovery (static, Consul, DNS, through
//! `wpsmesh-discovery`), per-node health checks, power-of-two-choices balancing over in-flight
//! calls, and retries of idempotent calls.
//!
//! Balancing is done here rather than by tonic's `Channel::balance_channel` (tower's p2c
//! `Balance`): that one waits forever when no endpoint is ready (the edge must answer ServerBusy
//! at once), cannot send a retry to a node other than the one that failed, and does not say
//! which node served a call. The choice itself is tower's: two distinct healthy nodes drawn at
//! random, the one with fewer calls in flight (sent, not yet answered) wins.
//!
//! Every call has a deadline: `call_timeout` for the short ones, the job's timeout plus
//! `execute_margin` for Execute. A node that misses one, or whose connection fails, is
//! health-checked at once; its answers, and failures of one call only (an answer over the
//! edge's limits), leave its health alone.

mod attempt;
mod channel;
mod config;
mod discovery;
mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, ExecuteResponse, ExecuteStreamedRequest, ExecuteStreamedResponse,
    StreamedOutput, execute_streamed_response,
};

use attempt::attempt;

use crate::ows::OwsError;

/// A streamed output: its description, and the rest of the node's answer (its bytes).
pub type Streamed = (StreamedOutput, tonic::Streaming<ExecuteStreamedResponse>);

pub use channel::{NodeChannel, NodeStats};
pub use config::DiscoveryConfig;
pub(crate) use pool::check as check_health;
pub use wpsmesh_discovery::{ConsulConfig, DiscoveryError, DiscoveryKind, DnsConfig, DnsRecord};

/// Largest message to or from a node (inline complex inputs and outputs), as the node allows.
pub const MAX_NODE_MESSAGE: usize = 64 * 1024 * 1024;

/// Largest header block accepted from a node: the tuned channels' limit, far above any error
/// message a node means to send (see [`wpsmesh_runtime::grpc::MAX_HEADER_LIST`]).
pub const MAX_NODE_HEADERS: u32 = wpsmesh_runtime::grpc::MAX_HEADER_LIST;

/// A ProcessService client bound to one node chosen by the balancer.
pub type NodeClient = ProcessServiceClient<NodeChannel>;

/// How long calls wait for a node.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    call: Duration,
    execute: Duration,
    margin: Duration,
}

/// A cheaply clonable handle on the node pool. Background discovery and health checking stop
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Nodes {
    pool: Arc<pool::Pool>,
    retries: u32,
    retry_after: u32,
    deadlines: Deadlines,
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
            deadlines: Deadlines {
                call: config.call_timeout,
                execute: config.execute_timeout,
                margin: config.execute_margin,
            },
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// A client on a node chosen by p2c over in-flight calls; ServerBusy (with Retry-After)
    /// when no node is healthy. Calls made with it have no deadline and are never retried.
    pub fn client(&self) -> Result<NodeClient, OwsError> {
        Ok(client_for(self.pick(&[])?))
    }

    /// A healthy node not in `tried`, chosen by p2c: the `node choice` span names it (or says
    /// none was available).
    fn pick(&self, tried: &[Arc<str>]) -> Result<Arc<channel::Node>, OwsError> {
        let span = tracing::info_span!(
            "node choice",
            node = tracing::field::Empty,
            healthy = self.len(),
            excluded = tried.len()
        );
        let _entered = span.enter();
        match self.pool.pick(tried) {
            Some(node) => {
                span.record("node", &*node.uri);
                Ok(node)
            }
            None => {
                wpsmesh_telemetry::propagate::fail(&span, "no healthy node");
                Err(self.busy())
            }
        }
    }

    fn busy(&self) -> OwsError {
        OwsError::busy(
            "no processing node is available, try again later",
            self.retry_after,
        )
    }

    /// A synchronous Execute on one balanced node, never retried, waited for as long as its
    /// timeout (the request's, at most `execute_timeout`) plus `execute_margin`.
    pub async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, OwsError> {
        let deadline = self.execute_deadline(&request);
        self.once(deadline, |mut c| async move { c.execute(request).await })
            .await
    }

    /// [`Nodes::execute`] with the file output `output` streamed: the result, and (unless the
    /// output is no file) its description and the rest of the answer, its bytes as the node
    /// reads them. The deadline covers the run and the result, not the bytes.
    pub async fn execute_streamed(
        &self,
        request: ExecuteRequest,
        output: String,
    ) -> Result<(ExecuteResponse, Option<Streamed>), OwsError> {
        let deadline = self.execute_deadline(&request);
        let request = ExecuteStreamedRequest {
            execute: Some(request),
            output,
        };
        self.once(deadline, |mut c| async move {
            let mut answer = c.execute_streamed(request).await?.into_inner();
            let Some(execute_streamed_response::Part::Result(result)) =
                answer.message().await?.and_then(|m| m.part)
            else {
                return Err(tonic::Status::internal(
                    "invalid ExecuteStreamed answer from a node: no result first",
                ));
            };
            let response = result.response.unwrap_or_default();
            let streamed = result.streamed.map(|s| (s, answer));
            Ok(tonic::Response::new((response, streamed)))
        })
        .await
    }

    /// How long an Execute may take: its timeout (the request's, at most `execute_timeout`)
    /// plus `execute_margin`.
    fn execute_deadline(&self, request: &ExecuteRequest) -> Duration {
        let timeout = request
            .timeout
            .and_then(|t| Duration::try_from(t).ok())
            .map_or(self.deadlines.execute, |t| t.min(self.deadlines.execute));
        timeout + self.deadlines.margin
    }

    /// One short call on a balanced node, never retried: for Submit and Dismiss. A gRPC
    /// status becomes the matching OWS exception.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, OwsError>
    where
        F: FnOnce(NodeClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.once(self.deadlines.call, f).await
    }

    async fn once<T, F, Fut>(&self, deadline: Duration, f: F) -> Result<T, OwsError>
    where
        F: FnOnce(NodeClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let node = self.pick(&[])?;
        attempt(&node, deadline, f(client_for(node.clone())))
            .await
            .map_err(|miss| miss.into_error(self.retry_after))
    }

    /// A call that may run more than once, within the short deadline each time: on
    /// UNAVAILABLE (but not a shared dependency of the nodes down), a connection error or a
    /// missed deadline it is retried on another node, at most [`DiscoveryConfig::retries`]
    /// times. Only for Describe/List/GetStatus/GetResult; Execute, Submit and Dismiss never.
    pub async fn call_idempotent<T, F, Fut>(&self, mut f: F) -> Result<T, OwsError>
    where
        F: FnMut(NodeClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut tried: Vec<Arc<str>> = Vec::new();
        let mut node = self.pick(&tried)?;
        loop {
            let miss = match attempt(&node, self.deadlines.call, f(client_for(node.clone()))).await
            {
                Ok(answer) => return Ok(answer),
                Err(miss) if miss.retryable() => miss,
                Err(miss) => return Err(miss.into_error(self.retry_after)),
            };
            tried.push(node.uri.clone());
            let attempts = tried.len();
            // Another node, while retries are left and an untried node is healthy; otherwise
            // the last failure is the answer.
            let next = (attempts <= self.retries as usize)
                .then(|| self.pick(&tried).ok())
                .flatten();
            let Some(next) = next else {
                debug!(node = %node.uri, attempts, error = %miss.text(), "idempotent call failed, no node left to retry on");
                return Err(miss.into_error(self.retry_after));
            };
            debug!(node = %node.uri, next = %next.uri, attempts, error = %miss.text(), "idempotent call failed, retrying on another node");
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
