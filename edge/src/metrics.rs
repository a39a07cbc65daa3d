//! Prometheus metrics of the edge, in its own registry: HTTP latency by route template, method
//! and status; job operations (async submits, status polls, results, dismissals); the healthy
//! nodes and, per node of the pool, calls, transport failures, calls in flight and health;
//! `GET /metrics` on the edge port.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use wpsmesh_telemetry::metrics::prometheus_client::collector::Collector;
use wpsmesh_telemetry::metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use wpsmesh_telemetry::metrics::prometheus_client::metrics::MetricType;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::{ConstCounter, Counter};
use wpsmesh_telemetry::metrics::prometheus_client::metrics::family::Family;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::gauge::ConstGauge;
use wpsmesh_telemetry::metrics::{HttpMetrics, Registry};

use crate::nodes::{NodeStats, Nodes};

/// The edge's registry and the metrics the middleware records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    jobs: Family<[(&'static str, &'static str); 1], Counter>,
}

/// A response extension naming the job operation its request made (`submit`, `status`,
/// `result`, `dismiss`), whichever API it came through; [`track`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCall(pub &'static str);

/// Marks `response` as answering job operation `operation`.
pub fn job_call(mut response: Response, operation: &'static str) -> Response {
    response.extensions_mut().insert(JobCall(operation));
    response
}

impl Metrics {
    /// A registry with the edge's metrics over `nodes`.
    pub fn new(nodes: Nodes) -> Self {
        let mut registry = wpsmesh_telemetry::metrics::registry();
        let http = HttpMetrics::new(&mut registry);
        let jobs = Family::default();
        registry.register(
            "wpsmesh_edge_job_requests",
            "Asynchronous job requests answered, by operation (submit, status, result, dismiss)",
            jobs.clone(),
        );
        registry.register_collector(Box::new(NodeCollector(nodes)));
        Self {
            registry,
            http,
            jobs,
        }
    }
}

/// Middleware: times every request by its route template, method and status
/// ([`HttpMetrics::track`]), and counts the job operation it made.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let response = HttpMetrics::track(State(metrics.http.clone()), request, next).await;
    if let Some(JobCall(operation)) = response.extensions().get::<JobCall>() {
        metrics
            .jobs
            .get_or_create(&[("operation", *operation)])
            .inc();
    }
    response
}

/// `GET /metrics`: OpenMetrics for a scraper that asks for it, the classic text otherwise.
pub async fn handler(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    wpsmesh_telemetry::metrics::response(&metrics.registry, &headers)
}

/// A metric of each node: name, help, and how its value is read from the node's stats.
type PerNode<T> = (&'static str, &'static str, fn(&NodeStats) -> T);

/// Reads the node pool at each scrape: node URIs are bounded by the pool.
#[derive(Debug)]
struct NodeCollector(Nodes);

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let healthy = ConstGauge::new(i64::try_from(self.0.len()).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "wpsmesh_edge_nodes",
            "Healthy processing nodes in the pool.",
            None,
            healthy.metric_type(),
        )?;
        healthy.encode(metric)?;
        let stats = self.0.stats();
        let counters: [PerNode<u64>; 2] = [
            (
                "wpsmesh_edge_node_calls",
                "gRPC calls sent to each node.",
                |n| n.calls,
            ),
            (
                "wpsmesh_edge_node_failures",
                "gRPC calls to each node that failed on the transport.",
                |n| n.failures,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for n in &stats {
                let labels = [("node", n.uri.as_str())];
                ConstCounter::new(value(n)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let gauges: [PerNode<i64>; 2] = [
            (
                "wpsmesh_edge_node_in_flight",
                "gRPC calls waiting on each node.",
                |n| i64::try_from(n.in_flight).unwrap_or(i64::MAX),
            ),
            (
                "wpsmesh_edge_node_up",
                "Whether each known node passes its health checks.",
                |n| i64::from(n.healthy),
            ),
        ];
        for (name, help, value) in gauges {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for n in &stats {
                let labels = [("node", n.uri.as_str())];
                ConstGauge::new(value(n)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
