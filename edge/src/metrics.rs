//! Prometheus metrics of the edge: requests by route and status, their latency, job operations
//! (async submits, status polls, results, dismissals) and the healthy nodes; `GET /metrics` in
//! the text exposition format.

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
    jobs: Mutex<BTreeMap<&'static str, u64>>,
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
    fn record(&self, route: String, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry((route, status)).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    fn record_job(&self, operation: &'static str) {
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(operation).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, nodes: &Nodes) -> String {
        let mut out = String::new();
        let requests: Vec<_> = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((route, status), (count, seconds))| {
                (
                    format!("route=\"{route}\",status=\"{status}\""),
                    *count,
                    *seconds,
                )
            })
            .collect();
        family(
            &mut out,
            "wpsmesh_edge_http_requests_total",
            "counter",
            "HTTP requests answered by the edge.",
            requests
                .iter()
                .map(|(l, count, _)| (l.clone(), count.to_string())),
        );
        family(
            &mut out,
            "wpsmesh_edge_http_request_seconds_sum",
            "counter",
            "Time spent answering, by route and status.",
            requests
                .iter()
                .map(|(l, _, seconds)| (l.clone(), seconds.to_string())),
        );
        let jobs: Vec<(String, String)> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(operation, count)| (format!("operation=\"{operation}\""), count.to_string()))
            .collect();
        family(
            &mut out,
            "wpsmesh_edge_job_requests_total",
            "counter",
            "Asynchronous job requests answered, by operation (submit, status, result, dismiss).",
            jobs,
        );
        family(
            &mut out,
            "wpsmesh_edge_nodes",
            "gauge",
            "Healthy processing nodes in the pool.",
            [(String::new(), nodes.len().to_string())],
        );
        let stats = nodes.stats();
        let per_node = |value: fn(&crate::nodes::NodeStats) -> String| {
            stats
                .iter()
                .map(move |n| (format!("node=\"{}\"", n.uri), value(n)))
        };
        family(
            &mut out,
            "wpsmesh_edge_node_calls_total",
            "counter",
            "gRPC calls sent to each node.",
            per_node(|n| n.calls.to_string()),
        );
        family(
            &mut out,
            "wpsmesh_edge_node_in_flight",
            "gauge",
            "gRPC calls waiting on each node.",
            per_node(|n| n.in_flight.to_string()),
        );
        family(
            &mut out,
            "wpsmesh_edge_node_up",
            "gauge",
            "Whether each known node passes its health checks.",
            per_node(|n| u8::from(n.healthy).to_string()),
        );
        out
    }
}

/// Writes one metric family: HELP, TYPE, then a sample per (labels, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
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
    if let Some(JobCall(operation)) = response.extensions().get::<JobCall>() {
        metrics.record_job(operation);
    }
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
