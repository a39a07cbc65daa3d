//! Prometheus metrics of the edge: requests by route and status, their latency, and the
//! healthy nodes; `GET /metrics` in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::nodes::Nodes;

/// Counters shared by the middleware and the `/metrics` handler.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl Metrics {
    fn record(&self, route: String, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry((route, status)).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// The exposition text.
    pub fn render(&self, nodes: &Nodes) -> String {
        let mut out = String::new();
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP wpsmesh_edge_http_requests_total HTTP requests answered by the edge.\n",
        );
        out.push_str("# TYPE wpsmesh_edge_http_requests_total counter\n");
        for ((route, status), (count, _)) in map.iter() {
            let _ = writeln!(
                out,
                "wpsmesh_edge_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP wpsmesh_edge_http_request_seconds_sum Time spent answering, by route and status.\n");
        out.push_str("# TYPE wpsmesh_edge_http_request_seconds_sum counter\n");
        for ((route, status), (_, seconds)) in map.iter() {
            let _ = writeln!(
                out,
                "wpsmesh_edge_http_request_seconds_sum{{route=\"{route}\",status=\"{status}\"}} {seconds}"
            );
        }
        out.push_str("# HELP wpsmesh_edge_nodes Healthy processing nodes in the pool.\n");
        out.push_str("# TYPE wpsmesh_edge_nodes gauge\n");
        let _ = writeln!(out, "wpsmesh_edge_nodes {}", nodes.len());
        let stats = nodes.stats();
        out.push_str("# HELP wpsmesh_edge_node_calls_total gRPC calls sent to each node.\n");
        out.push_str("# TYPE wpsmesh_edge_node_calls_total counter\n");
        for n in &stats {
            let _ = writeln!(
                out,
                "wpsmesh_edge_node_calls_total{{node=\"{}\"}} {}",
                n.uri, n.calls
            );
        }
        out.push_str("# HELP wpsmesh_edge_node_in_flight gRPC calls waiting on each node.\n");
        out.push_str("# TYPE wpsmesh_edge_node_in_flight gauge\n");
        for n in &stats {
            let _ = writeln!(
                out,
                "wpsmesh_edge_node_in_flight{{node=\"{}\"}} {}",
                n.uri, n.in_flight
            );
        }
        out.push_str(
            "# HELP wpsmesh_edge_node_up Whether each known node passes its health checks.\n",
        );
        out.push_str("# TYPE wpsmesh_edge_node_up gauge\n");
        for n in &stats {
            let _ = writeln!(
                out,
                "wpsmesh_edge_node_up{{node=\"{}\"}} {}",
                n.uri,
                u8::from(n.healthy)
            );
        }
        out
    }
}

/// Middleware: counts every request by its route pattern and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn handler(State((metrics, nodes)): State<(Arc<Metrics>, Nodes)>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(&nodes),
    )
        .into_response()
}
