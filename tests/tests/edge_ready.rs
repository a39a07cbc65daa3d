//! Readiness over real gRPC on loopback: `GET /ready` is 503 naming what is missing (no healthy
//! node, storage unreachable or not answering) until a node reports SERVING and a real storage
//! service answers, then 200; `/health` stays plain liveness; both show in `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../edge/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::send;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic_health::ServingStatus;
use wpsmesh_edge::nodes::{DiscoveryConfig, Nodes};
use wpsmesh_edge::ready::STORAGE_SERVICE;
use wpsmesh_tests::{free_port, until_serving};

const PROCESS_SERVICE: &str = "wpsmesh.process.v1.ProcessService";

/// A gRPC server on `port` with only the health service, saying the process service is
/// SERVING: all the pool asks of a node. Stops when the sender is dropped.
async fn health_only_node(port: u16) -> oneshot::Sender<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (router, health) =
        wpsmesh_runtime::grpc::with_health_and_reflection(wpsmesh_runtime::grpc::server());
    health
        .set_service_status(PROCESS_SERVICE, ServingStatus::Serving)
        .await;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(wpsmesh_runtime::grpc::serve(router, listener, async {
        let _ = stopped.await;
    }));
    stop
}

/// A real storage service (local directory) on `port`, once it reports SERVING.
async fn storage(port: u16, dir: &tempfile::TempDir) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let uri = wpsmesh_storage::spawn_local_on(listener, dir.path().join("storage")).unwrap();
    until_serving(&uri, STORAGE_SERVICE, Duration::from_secs(10))
        .await
        .unwrap();
}

/// The edge over one node at `node_port` and storage at `storage_uri`, with its pool.
fn edge(node_port: u16, storage_uri: &str) -> (axum::Router, Nodes) {
    let discovery = DiscoveryConfig {
        nodes: vec![format!("http://127.0.0.1:{node_port}")],
        health_interval: Duration::from_millis(100),
        retry_after: 7,
        ..DiscoveryConfig::default()
    };
    let nodes = Nodes::start(&discovery).unwrap();
    let config = wpsmesh_edge::Config {
        storage: storage_uri.to_owned(),
        discovery,
        ..wpsmesh_edge::Config::default()
    };
    let channel = wpsmesh_runtime::grpc::channel(storage_uri).unwrap();
    (wpsmesh_edge::app(&config, nodes.clone(), channel), nodes)
}

/// `GET path`: status, Retry-After and body.
async fn get(app: &axum::Router, path: &str) -> (StatusCode, Option<String>, String) {
    send(app, "GET", path, "").await
}

async fn ready(app: &axum::Router) -> (StatusCode, Option<String>, Value) {
    let (status, retry_after, body) = get(app, "/ready").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not json: {body}"));
    (status, retry_after, json)
}

#[tokio::test]
async fn not_ready_without_a_healthy_node_then_ready_once_one_joins() {
    let dir = tempfile::tempdir().unwrap();
    let (node_port, storage_port) = (free_port(), free_port());
    storage(storage_port, &dir).await;
    let (app, nodes) = edge(node_port, &format!("http://127.0.0.1:{storage_port}"));

    // Nothing listens on the node's port: alive, not ready, and it says why.
    let (status, _, body) = get(&app, "/health").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, retry_after, body) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("7"));
    assert_eq!(
        body,
        json!({"status": "not ready", "reasons": ["no healthy node"]})
    );

    // The node comes up and passes its health check: ready, counting it.
    let _node = health_only_node(node_port).await;
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await);
    let (status, retry_after, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(retry_after, None);
    assert_eq!(
        body,
        json!({"status": "ready", "nodes": 1, "storage": "ok"})
    );

    let (_, _, metrics) = get(&app, "/metrics").await;
    for line in [
        r#"wpsmesh_http_request_duration_seconds_count{route="/ready",method="GET",status="503"} 1"#,
        r#"wpsmesh_http_request_duration_seconds_count{route="/ready",method="GET",status="200"} 1"#,
        r#"wpsmesh_http_request_duration_seconds_count{route="/health",method="GET",status="200"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn not_ready_while_storage_is_unreachable_then_ready_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (node_port, storage_port) = (free_port(), free_port());
    let _node = health_only_node(node_port).await;
    let (app, nodes) = edge(node_port, &format!("http://127.0.0.1:{storage_port}"));
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await);

    let (status, retry_after, body) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("7"));
    assert_eq!(body["status"], "not ready");
    let reasons = body["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{body}");
    let reason = reasons[0].as_str().unwrap();
    assert!(reason.starts_with("storage unreachable: "), "{reason}");
    assert!(!reason.contains('\n') && reason.len() < 300, "{reason}");

    storage(storage_port, &dir).await;
    let (status, _, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "ready", "nodes": 1, "storage": "ok"})
    );
}

#[tokio::test]
async fn a_storage_that_never_answers_costs_about_a_second() {
    let (node_port, storage_port) = (free_port(), free_port());
    let _node = health_only_node(node_port).await;
    // Accepts connections (the kernel does, into the backlog) and never speaks HTTP/2.
    let silent = std::net::TcpListener::bind(("127.0.0.1", storage_port)).unwrap();
    let (app, nodes) = edge(node_port, &format!("http://127.0.0.1:{storage_port}"));
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await);

    let started = Instant::now();
    let (status, _, body) = ready(&app).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["reasons"],
        json!(["storage unreachable: no answer within 1s"])
    );
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    drop(silent);

    // The same edge with a storage that answers: ready at once.
    let dir = tempfile::tempdir().unwrap();
    let good_port = free_port();
    storage(good_port, &dir).await;
    let (app, nodes) = edge(node_port, &format!("http://127.0.0.1:{good_port}"));
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await);
    let (status, _, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wait_returns_as_soon_as_the_mesh_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (node_port, storage_port) = (free_port(), free_port());
    storage(storage_port, &dir).await;
    let storage_uri = format!("http://127.0.0.1:{storage_port}");
    let discovery = DiscoveryConfig {
        nodes: vec![format!("http://127.0.0.1:{node_port}")],
        health_interval: Duration::from_millis(100),
        ..DiscoveryConfig::default()
    };
    let nodes = Nodes::start(&discovery).unwrap();
    let channel = wpsmesh_runtime::grpc::channel(&storage_uri).unwrap();
    let readiness = wpsmesh_edge::Readiness::new(nodes, channel, 5);

    let report = readiness.wait(Duration::from_millis(300)).await;
    assert!(!report.is_ready());
    assert_eq!(report.missing, ["no healthy node"]);

    let _node = health_only_node(node_port).await;
    let started = Instant::now();
    let report = readiness.wait(Duration::from_secs(10)).await;
    assert!(report.is_ready(), "{report:?}");
    assert_eq!(report.nodes, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}
