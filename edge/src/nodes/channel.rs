//! One node of the pool: its gRPC channels (one for calls, one for health checks, so a call
//! that breaks its connection never fails the node's health check with it), wrapped so every
//! call counts as in flight until its response arrives (the p2c load, as tower's
//! `PendingRequests` with `CompleteOnResponse`), and a transport error surfaces as a status
//! naming the node that keeps the error as its source (see [`crate::failure`]).

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
use tracing::{Instrument, debug};

use wpsmesh_runtime::failure::Failure;

/// A node: its URI, channels, health and counters.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) uri: Arc<str>,
    pub(crate) channel: Channel,
    /// The health checker's own connection.
    pub(crate) health: Channel,
    in_flight: AtomicUsize,
    calls: AtomicU64,
    failures: AtomicU64,
    pub(crate) healthy: AtomicBool,
    /// Wakes the node's health checker before its next tick.
    pub(crate) check_now: Notify,
}

impl Node {
    pub(crate) fn new(uri: Arc<str>, channel: Channel, health: Channel) -> Self {
        Self {
            uri,
            channel,
            health,
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

    /// A call got no answer: when its connection failed or the node kept silent past the
    /// deadline the node is checked at once; a failure of that call alone (an answer too
    /// large) says nothing about the node.
    pub(crate) fn failed(&self, failure: Failure) {
        if !failure.is_connection() {
            return;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        debug!(node = %self.uri, error = failure.reason(), "call failed on the transport, checking the node");
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
    /// Calls that failed on the transport (connection refused, reset, deadline missed, ...).
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
/// counts in-flight calls and turns transport errors into statuses naming the node.
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

/// A transport error as a one-line status naming the node: UNAVAILABLE when the connection
/// failed, INTERNAL when only this call did. The error stays its source, for
/// [`Failure::of_status`].
fn transport_status(node: &Node, error: tonic::transport::Error) -> tonic::Status {
    let failure = Failure::of_error(&error).unwrap_or(Failure::Transport);
    let mut status = if failure.is_connection() {
        tonic::Status::unavailable(format!(
            "node {} unreachable: {}",
            node.uri,
            failure.reason()
        ))
    } else {
        tonic::Status::internal(format!("node {}: {}", node.uri, failure.reason()))
    };
    status.set_source(Arc::new(error));
    status
}

impl Service<http::Request<Body>> for NodeChannel {
    type Response = http::Response<Body>;
    type Error = tonic::Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let node = &self.node;
        self.channel
            .poll_ready(cx)
            .map_err(|e| transport_status(node, e))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let guard = InFlight::start(&self.node);
        let node = self.node.clone();
        // The client span, its context in the request's headers for the node's server span.
        let span = wpsmesh_telemetry::grpc::client_span(&mut request, &node.uri);
        let call = self.channel.call(request);
        let recorded = span.clone();
        Box::pin(
            async move {
                let mut result = call.await;
                drop(guard);
                wpsmesh_telemetry::grpc::client_answer(&recorded, &mut result);
                result.map_err(|e| transport_status(&node, e))
            }
            .instrument(span),
        )
    }
}
