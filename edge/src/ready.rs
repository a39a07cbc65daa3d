//! Readiness: whether an Execute sent now would be served — at least one healthy node in the
//! pool and storage answering its gRPC health check. `GET /ready` answers it over HTTP (200 or
//! 503 naming what is missing), and `wpsmesh up` waits on the same [`Readiness`] before it
//! says it is ready. `/health` stays plain liveness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::nodes::{Nodes, check_health};

/// The gRPC service storage must report SERVING for.
pub const STORAGE_SERVICE: &str = "wpsmesh.storage.v1.StorageService";

/// How long one storage health check may take: readiness stays cheap even when storage hangs.
pub const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// How often [`Readiness::wait`] checks storage again while nothing else changes.
const RECHECK: Duration = Duration::from_millis(250);

/// The longest storage failure text kept in a reason.
const MAX_REASON: usize = 160;

/// Checks the edge's dependencies; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    nodes: Nodes,
    storage: HealthClient<Channel>,
    retry_after: u32,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Healthy nodes in the pool.
    pub nodes: usize,
    /// What is missing (`no healthy node`, `storage unreachable: ...`); empty when ready.
    pub missing: Vec<String>,
}

impl Report {
    /// Whether an Execute would be served.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }
}

impl Readiness {
    /// Readiness over the node pool and the storage channel; a 503 tells clients to come back
    /// after `retry_after` seconds.
    pub fn new(nodes: Nodes, storage: Channel, retry_after: u32) -> Self {
        Self {
            nodes,
            storage: HealthClient::new(storage),
            retry_after,
        }
    }

    /// One check: the healthy node count, and one storage health check bounded by
    /// [`STORAGE_CHECK_TIMEOUT`].
    pub async fn check(&self) -> Report {
        let nodes = self.nodes.len();
        let mut missing = Vec::new();
        if nodes == 0 {
            missing.push("no healthy node".to_owned());
        }
        let mut storage = self.storage.clone();
        if let Err(e) = check_health(&mut storage, STORAGE_SERVICE, STORAGE_CHECK_TIMEOUT).await {
            missing.push(format!("storage unreachable: {}", shorten(&e)));
        }
        Report { nodes, missing }
    }

    /// Checks until ready or `timeout` has passed: again whenever the node pool changes, and
    /// every 250 ms for storage. The last report.
    pub async fn wait(&self, timeout: Duration) -> Report {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut generation = self.nodes.generation();
        loop {
            generation.borrow_and_update();
            let report = self.check().await;
            if report.is_ready() || tokio::time::Instant::now() >= deadline {
                return report;
            }
            let next = (tokio::time::Instant::now() + RECHECK).min(deadline);
            tokio::select! {
                _ = generation.changed() => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// Keeps a reason to one short line.
fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

/// `GET /ready`: 200 `{"status":"ready","nodes":n,"storage":"ok"}`, or 503 with Retry-After and
/// `{"status":"not ready","reasons":[...]}`.
pub async fn handler(State(readiness): State<Readiness>) -> Response {
    let report = readiness.check().await;
    if report.is_ready() {
        return Json(json!({"status": "ready", "nodes": report.nodes, "storage": "ok"}))
            .into_response();
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "not ready", "reasons": report.missing})),
    )
        .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(readiness.retry_after),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_stay_one_short_line() {
        assert_eq!(shorten("refused\nmore"), "refused");
        let long = "x".repeat(500);
        let short = shorten(&long);
        assert_eq!(short.len(), MAX_REASON + 3);
        assert!(short.ends_with("..."));
    }
}
