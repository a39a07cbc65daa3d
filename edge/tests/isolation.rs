//! Failure isolation at the edge (issue 10), over fake nodes on loopback: one call's failure
//! stays that call's — a node's 2 MB error message, an answer over the edge's limits — and a
//! node that goes silent (frozen behind a proxy, as if SIGSTOPped) costs a call at most its
//! deadline: read-only calls move to another node, the node is checked at once, leaves the
//! pool and rejoins once it answers again. Every refusal beside its positive control.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::send;
use fake::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wpsmesh_edge::nodes::{DiscoveryConfig, Nodes};

/// Two megabytes of a value that is no number.
const HUGE: usize = 2 * 1024 * 1024;
/// Longest JSON answer quoting a node's error message: the edge cuts the message to one line of
/// 1 KiB (`wpsmesh_proto::text::MAX_MESSAGE`), and the job API shows it twice, as the status
/// message and the error message.
const MAX_ERROR_BODY: usize = 2 * 1024 + 512;

/// A synchronous JSON Execute of native:buffer with DISTANCE set to `distance`.
fn job(distance: Value) -> String {
    json!({
        "identifier": "native:buffer",
        "inputs": {"DISTANCE": {"type": "literal", "value": distance}},
    })
    .to_string()
}

async fn post_job(app: &axum::Router, distance: Value) -> (StatusCode, Option<String>, Value) {
    let (status, retry_after, body) = send(app, "POST", "/api/wps/jobs", &job(distance)).await;
    assert!(body.len() < MAX_ERROR_BODY, "a {} byte answer", body.len());
    let value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not json: {body}"));
    (status, retry_after, value)
}

/// The node set never changed and no call failed on its transport.
fn assert_pool_untouched(nodes: &Nodes, generation: u64) {
    assert_eq!(*nodes.generation().borrow(), generation, "{nodes:?}");
    let stats = nodes.stats();
    assert!(
        stats.iter().all(|s| s.healthy && s.failures == 0),
        "{stats:?}"
    );
}

/// One fake node, the pool over it, its generation now and the edge.
async fn one_node() -> (FakeNode, Nodes, u64, axum::Router) {
    init_logs();
    let a = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&a]), 1).await;
    let generation = *nodes.generation().borrow();
    let app = edge(&nodes);
    (a, nodes, generation, app)
}

async fn assert_succeeds(app: &axum::Router) {
    let (status, _, answer) = post_job(app, json!(0.5)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"]["status"], "succeeded");
}

#[tokio::test]
async fn a_2mb_error_message_fails_only_its_call() {
    let (_a, nodes, generation, app) = one_node().await;
    // The fake quotes the whole value in its INVALID_ARGUMENT, as nodes once did.
    let (status, retry_after, answer) = post_job(&app, json!("x".repeat(HUGE))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(retry_after, None);
    assert_eq!(answer["error"]["code"], "InvalidParameterValue");
    assert_eq!(answer["error"]["locator"], "DISTANCE");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid parameter DISTANCE: \"xxx") && message.ends_with(" bytes)"),
        "{message}"
    );
    assert_pool_untouched(&nodes, generation);
    assert_succeeds(&app).await;
}

#[tokio::test]
async fn bad_answers_among_16_concurrent_calls_spill_onto_no_other() {
    let (a, nodes, generation, app) = one_node().await;
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            let bad = i % 4 == 0;
            tokio::spawn(async move {
                let distance = if bad {
                    json!("x".repeat(HUGE))
                } else {
                    json!(0.5)
                };
                (bad, post_job(&app, distance).await)
            })
        })
        .collect();
    for call in calls {
        let (bad, (status, _, answer)) = call.await.unwrap();
        if bad {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(answer["error"]["locator"], "DISTANCE");
        } else {
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["status"]["status"], "succeeded");
        }
    }
    assert_eq!(a.b().executes.load(std::sync::atomic::Ordering::SeqCst), 16);
    assert_pool_untouched(&nodes, generation);
}

#[tokio::test]
async fn a_node_answer_that_fails_its_checks_is_an_internal_error() {
    let (_a, nodes, generation, app) = one_node().await;
    // The positive control: a valid answer.
    let (status, _, answer) = post_job(&app, json!(0.5)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // An output naming no valid storage object is refused on receipt, naming what was wrong.
    let (status, retry_after, answer) = post_job(&app, json!("bad-answer")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(retry_after, None);
    assert_eq!(answer["error"]["code"], "NoApplicableCode");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid Execute answer from a node: OUTPUT: invalid object id"),
        "{message}"
    );
    // The same through WPS: an exception report, never an href built from it.
    let query = "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
        &DataInputs=DISTANCE=bad-answer";
    let (status, _, doc) = send(&app, "GET", query, "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{doc}");
    assert!(doc.contains(r#"exceptionCode="NoApplicableCode""#), "{doc}");
    assert!(
        doc.contains("invalid Execute answer from a node: OUTPUT"),
        "{doc}"
    );
    assert!(!doc.contains("wps:Reference"), "{doc}");
    assert_pool_untouched(&nodes, generation);
}

#[tokio::test]
async fn an_answer_over_the_edges_limits_is_a_502_for_that_call_only() {
    let (_a, nodes, generation, app) = one_node().await;
    // An error message over the 16 MiB header limit, beside good calls on the same connection;
    // then an output over the 64 MiB message limit.
    for cue in ["status-bytes:20000000", "output-bytes:70000000"] {
        let good: Vec<_> = (0..4)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { post_job(&app, json!(0.5)).await })
            })
            .collect();
        let (status, retry_after, answer) = post_job(&app, json!(cue)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{cue}: {answer}");
        assert_eq!(retry_after, None, "{cue}");
        assert_eq!(answer["error"]["code"], "NoApplicableCode", "{cue}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("answer too large"), "{cue}: {message}");
        for call in good {
            let (status, _, answer) = call.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{cue}, a good call: {answer}");
        }
        assert_pool_untouched(&nodes, generation);
        assert_succeeds(&app).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of a node that can freeze like a SIGSTOPped process: connections are
/// accepted and stay open, and nothing moves in either direction until it thaws.
struct Freezer {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
}

impl Freezer {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, thawed) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let thawed = thawed.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_in, client_out) = client.into_split();
                    let (server_in, server_out) = server.into_split();
                    tokio::join!(
                        pipe(client_in, server_out, thawed.clone()),
                        pipe(server_in, client_out, thawed),
                    );
                });
            }
        });
        Self { addr, frozen }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

/// Copies `from` to `to`, holding every byte while frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 || frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Deadlines short enough for a test: a call waits 1 s, a health check 300 ms.
fn quick(uris: Vec<String>) -> DiscoveryConfig {
    DiscoveryConfig {
        nodes: uris,
        health_interval: Duration::from_millis(500),
        health_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_secs(1),
        ..DiscoveryConfig::default()
    }
}

const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// What a call may take beyond its deadline (a retry on a healthy node, scheduling).
const MARGIN: Duration = Duration::from_millis(700);

const DESCRIBE: &str =
    "/api/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=native:buffer";

#[tokio::test]
async fn read_only_calls_move_off_a_frozen_node_within_the_deadline() {
    init_logs();
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    for node in [&a, &b] {
        node.b()
            .submitted
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let proxy = Freezer::start(a.addr).await;
    let nodes = started(&quick(vec![proxy.uri(), b.uri()]), 2).await;
    let app = edge(&nodes);
    let status = format!("/api/wps/jobs/{JOB}");
    // Positive control: both answer while a is not frozen.
    for uri in [status.as_str(), DESCRIBE] {
        let (code, _, answer) = send(&app, "GET", uri, "").await;
        assert_eq!(code, StatusCode::OK, "{uri}: {answer}");
    }

    proxy.freeze(true);
    // Concurrent calls: p2c hands the frozen node its share of them.
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            let uri = if i % 2 == 0 {
                status.clone()
            } else {
                DESCRIBE.to_owned()
            };
            tokio::spawn(async move {
                let started = Instant::now();
                let (code, _, answer) = send(&app, "GET", &uri, "").await;
                (uri, code, answer, started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (uri, code, answer, took) = call.await.unwrap();
        assert_eq!(code, StatusCode::OK, "{uri}: {answer}");
        assert!(took < CALL_TIMEOUT + MARGIN, "{uri} took {took:?}");
    }
    let frozen = nodes.stats().into_iter().find(|s| s.uri == proxy.uri());
    assert!(
        frozen.is_some_and(|s| s.failures > 0),
        "no call met the frozen node: {:?}",
        nodes.stats()
    );
    // Checked at once, it fails its health check and leaves the pool; thawed, it rejoins.
    wait("the frozen node to leave the pool", || nodes.len() == 1).await;
    proxy.freeze(false);
    assert!(nodes.wait_for(2, Duration::from_secs(5)).await, "{nodes:?}");
}

#[tokio::test]
async fn a_lone_frozen_node_is_server_busy_at_the_deadline_then_rejoins() {
    init_logs();
    let a = FakeNode::start("a").await;
    a.b()
        .submitted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let proxy = Freezer::start(a.addr).await;
    let nodes = started(&quick(vec![proxy.uri()]), 1).await;
    let app = edge(&nodes);
    let status = format!("/api/wps/jobs/{JOB}");
    let (code, _, answer) = send(&app, "GET", &status, "").await;
    assert_eq!(code, StatusCode::OK, "before the freeze: {answer}");

    proxy.freeze(true);
    let started = Instant::now();
    let (code, retry_after, answer) = send(&app, "GET", &status, "").await;
    let took = started.elapsed();
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        (CALL_TIMEOUT..CALL_TIMEOUT + MARGIN).contains(&took),
        "answered after {took:?}"
    );
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], "ServerBusy");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.ends_with("did not answer within 1s"), "{message}");

    // It leaves the pool: from then on the answer is at once.
    wait("the frozen node to leave the pool", || nodes.is_empty()).await;
    let started = Instant::now();
    let (code, _, answer) = send(&app, "GET", &status, "").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(
        answer.contains("no processing node is available"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_millis(200));

    proxy.freeze(false);
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await, "{nodes:?}");
    let (code, _, answer) = send(&app, "GET", &status, "").await;
    assert_eq!(code, StatusCode::OK, "after the thaw: {answer}");
}
