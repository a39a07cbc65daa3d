//! One node of the pool: its gRPC channel wrapped so every call counts as in flight until its
//! response arrives (the p2c load, as tower's `PendingRequests` with `CompleteOnResponse`), and
//! a transport failure both asks for an immediate health check and surfaces as UNAVAILABLE.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::http;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::Service;
use tracing::debug;

/// A node: its URI, channel, health and counters.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) uri: Arc<str>,
    pub(crate) channel: Channel,
    in_flight: AtomicUsize,
    calls: AtomicU64,
    failures: AtomicU64,
    pub(crate) healthy: AtomicBool,
    /// Wakes the node's health checker before its next tick.
    pub(crate) check_now: Notify,
}

impl Node {
    pub(crate) fn new(uri: Arc<str>, channel: Channel) -> Self {
        Self {
            uri,
            channel,
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            check_now: Notify::new(),
        }
    }

    /// Requests sent and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> NodeStats {
        NodeStats {
            uri: self.uri.to_string(),
            healthy: self.healthy.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    fn failed(&self, error: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        debug!(node = %self.uri, error = %error, "call failed on the transport, checking the node");
        self.check_now.notify_one();
    }
}

/// What the pool knows about one node, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    pub uri: String,
    pub healthy: bool,
    /// Calls sent and not yet answered.
    pub in_flight: usize,
    /// Calls sent to the node since it joined.
    pub calls: u64,
    /// Calls that failed on the transport (connection refused, reset, ...).
    pub failures: u64,
}

/// Decrements the in-flight count when the call is answered or abandoned.
struct InFlight(Arc<Node>);

impl InFlight {
    fn start(node: &Arc<Node>) -> Self {
        node.in_flight.fetch_add(1, Ordering::Relaxed);
        node.calls.fetch_add(1, Ordering::Relaxed);
        Self(node.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The gRPC transport of one node, as the balancer handed it out: a tonic [`Channel`] that
/// counts in-flight calls and turns transport errors into UNAVAILABLE statuses naming the node.
#[derive(Debug, Clone)]
pub struct NodeChannel {
    node: Arc<Node>,
    channel: Channel,
}

impl NodeChannel {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        let channel = node.channel.clone();
        Self { node, channel }
    }

    /// The node's URI.
    pub fn uri(&self) -> &str {
        &self.node.uri
    }
}

/// Records a transport failure on `node` and describes it as UNAVAILABLE.
fn unavailable(node: &Node, error: &tonic::transport::Error) -> tonic::Status {
    node.failed(error);
    tonic::Status::unavailable(format!("node {} unreachable: {}", node.uri, chain(error)))
}

/// An error and its sources as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl Service<http::Request<Body>> for NodeChannel {
    type Response = http::Response<Body>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let node = &self.node;
        self.channel
            .poll_ready(cx)
            .map_err(|e| unavailable(node, &e))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let guard = InFlight::start(&self.node);
        let node = self.node.clone();
        let call = self.channel.call(request);
        Box::pin(async move {
            let result = call.await;
            drop(guard);
            result.map_err(|e| unavailable(&node, &e))
        })
    }
}
