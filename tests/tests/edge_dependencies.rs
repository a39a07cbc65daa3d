//! A dependency failing mid-call (issue 10): 503 with Retry-After and one line naming it and
//! what happened, never a 500 or a dump of the error chain. The edge's own storage calls (file
//! API, WPS raw outputs) against a storage that refuses connections, resets them or never
//! answers; a node blaming storage in `wpsmesh-dependency`. Each beside its positive control
//! against a working storage or node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../edge/tests/common/mod.rs"]
mod common;
#[path = "../../edge/tests/fake/mod.rs"]
mod fake;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::send;
use fake::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use wpsmesh_edge::files::{FilesState, Storage, router};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;

/// The storage deadline of these tests (short calls and pauses within a stream).
const STORAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// A storage address where nothing listens.
fn refusing() -> String {
    format!("http://127.0.0.1:{}", wpsmesh_tests::free_port())
}

/// A storage that accepts each connection and resets it once the client has sent something.
async fn resetting() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Bytes left unread and no linger: closing sends RST, not FIN.
                let _ = stream.readable().await;
                let _ = stream.try_read(&mut [0u8; 1]);
                let _ = stream.set_zero_linger();
            });
        }
    });
    uri
}

/// A storage that accepts connections and never answers (holding them open).
async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    uri
}

/// Each failing storage and the reason the edge gives for it.
async fn failing() -> [(String, &'static str); 3] {
    [
        (refusing(), "connection refused"),
        (resetting().await, "connection reset"),
        (silent().await, "timed out"),
    ]
}

/// A real storage (local directory) on a free port; the directory lives as long as the guard.
async fn working() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = wpsmesh_storage::spawn_local_on(listener, dir.path().join("storage")).unwrap();
    let service = "wpsmesh.storage.v1.StorageService";
    wpsmesh_tests::until_serving(&uri, service, Duration::from_secs(10))
        .await
        .unwrap();
    (uri, dir)
}

fn storage_client(uri: &str) -> StorageServiceClient<tonic::transport::Channel> {
    StorageServiceClient::new(wpsmesh_runtime::grpc::channel(uri).unwrap())
}

/// The file API over storage at `uri`, on a free port; its base URL.
async fn file_api(uri: &str) -> String {
    let storage = Storage::new(storage_client(uri), STORAGE_TIMEOUT, STORAGE_TIMEOUT);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = FilesState::new(storage, 1024 * 1024, &base);
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    base
}

const ID: &str = "0123456789abcdef0123456789abcdef";

/// Find, upload and retrieve through the file API: status, Retry-After and the message each.
async fn file_calls(base: &str) -> Vec<(&'static str, StatusCode, Option<String>, String)> {
    let http = reqwest::Client::new();
    let find = http.get(format!("{base}/api/file/find/{ID}"));
    let form = Form::new().part("file", Part::bytes(vec![7u8; 10]).file_name("a.txt"));
    let upload = http.put(format!("{base}/api/file/upload")).multipart(form);
    let retrieve = http.get(format!("{base}/api/file/retrieve/{ID}.txt"));
    let mut answers = Vec::new();
    for (what, request) in [("find", find), ("upload", upload), ("retrieve", retrieve)] {
        let response = request.send().await.unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap_or_default().to_owned();
        answers.push((what, status, retry_after, message));
    }
    answers
}

/// One short line, no error chain.
fn assert_one_line(message: &str) {
    assert!(
        message.len() < 200 && !message.contains('\n'),
        "{message:?}"
    );
    for dump in ["tonic::", "hyper::", "source:", "Kind("] {
        assert!(!message.contains(dump), "{message}");
    }
}

#[tokio::test]
async fn file_api_calls_to_a_failing_storage_are_one_line_503s() {
    init_logs();
    for (storage, reason) in failing().await {
        let base = file_api(&storage).await;
        let started = Instant::now();
        for (what, status, retry_after, message) in file_calls(&base).await {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {message}");
            assert_eq!(retry_after.as_deref(), Some("5"), "{what}");
            assert_eq!(
                message,
                format!("file storage is unavailable: {reason}"),
                "{what}"
            );
            assert_one_line(&message);
        }
        // Three calls, each within its deadline.
        assert!(started.elapsed() < 3 * (STORAGE_TIMEOUT + Duration::from_millis(500)));
    }
    // Positive control: a working storage answers the same calls itself.
    let (storage, _dir) = working().await;
    let answers = file_calls(&file_api(&storage).await).await;
    let statuses: Vec<_> = answers.iter().map(|(w, s, ..)| (*w, *s)).collect();
    assert_eq!(
        statuses,
        [
            ("find", StatusCode::NOT_FOUND),
            ("upload", StatusCode::OK),
            ("retrieve", StatusCode::NOT_FOUND)
        ],
        "{answers:?}"
    );
}

const RAW_OUTPUT: &str = "/api/wps?service=WPS&version=1.0.0&request=Execute\
    &identifier=native:buffer&DataInputs=DISTANCE=0.5&RawDataOutput=OUTPUT";
const DOCUMENT: &str = "/api/wps?service=WPS&version=1.0.0&request=Execute\
    &identifier=native:buffer&DataInputs=DISTANCE=0.5";

/// The whole edge over one fake node and storage at `storage`.
async fn edge_over(storage: &str) -> (FakeNode, axum::Router) {
    let node = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&node]), 1).await;
    let config = wpsmesh_edge::Config {
        storage_timeout: STORAGE_TIMEOUT,
        storage_idle_timeout: STORAGE_TIMEOUT,
        ..Default::default()
    };
    let channel = wpsmesh_runtime::grpc::channel(storage).unwrap();
    (node, wpsmesh_edge::app(&config, nodes, channel))
}

#[tokio::test]
async fn a_raw_output_from_a_failing_storage_is_a_one_line_503() {
    init_logs();
    for (storage, reason) in failing().await {
        let (_node, app) = edge_over(&storage).await;
        let (status, retry_after, answer) = send(&app, "GET", RAW_OUTPUT, "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert!(
            answer.contains(r#"exceptionCode="NoApplicableCode""#),
            "{answer}"
        );
        let text = format!("file storage is unavailable: {reason}");
        assert!(
            answer.contains(&format!("<ows:ExceptionText>{text}</ows:ExceptionText>")),
            "{answer}"
        );
        assert_one_line(&text);
        // Positive control: the document answer needs no storage.
        let (status, _, answer) = send(&app, "GET", DOCUMENT, "").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // A working storage answers itself: the fake's object is not there (a 4xx, not a 503).
    let (storage, _dir) = working().await;
    let (_node, app) = edge_over(&storage).await;
    let (status, _, answer) = send(&app, "GET", RAW_OUTPUT, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn a_node_blaming_storage_is_a_503_naming_it() {
    init_logs();
    let node = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&node]), 1).await;
    let app = edge(&nodes);
    let body = |distance: Value| {
        json!({
            "identifier": "native:buffer",
            "inputs": {"DISTANCE": {"type": "literal", "value": distance}},
        })
        .to_string()
    };
    let (status, retry_after, answer) =
        send(&app, "POST", "/api/wps/jobs", &body(json!("storage-down"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], "NoApplicableCode");
    assert_eq!(
        answer["error"]["message"],
        "storage unavailable: connection reset"
    );
    let kvp = "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
               &DataInputs=DISTANCE=storage-down";
    let (status, retry_after, answer) = send(&app, "GET", kvp, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        answer.contains("<ows:ExceptionText>storage unavailable: connection reset<"),
        "{answer}"
    );
    // Positive control, and the node stayed in the pool.
    let (status, _, answer) = send(&app, "POST", "/api/wps/jobs", &body(json!(0.5))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(nodes.stats().iter().all(|s| s.healthy && s.failures == 0));
}
