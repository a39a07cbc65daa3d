//! Discovery, health checking, p2c balancing and retries over real gRPC on loopback, against
//! fake nodes (`fake`) that can be slowed, failed, killed and restarted at will. Also the JSON
//! job API over them, how node errors on asynchronous jobs reach WPS and JSON clients (job store
//! down, queue full, unknown and malformed job ids), Consul discovery against a fake agent, and
//! DNS discovery (A/AAAA through the system resolver, SRV against a fake name server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::send;
use fake::*;
use serde_json::{Value, json};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tonic::Status;
use wpsmesh_edge::nodes::{
    ConsulConfig, DiscoveryConfig, DiscoveryKind, DnsConfig, DnsRecord, Nodes,
};
use wpsmesh_edge::ows::OwsCode;
use wpsmesh_proto::wire::process::v1::reference as wire_ref;
use wpsmesh_proto::wire::process::v1::*;

// ---------------------------------------------------------------------------------------------
// Balancing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn calls_are_spread_over_every_node() {
    init_logs();
    let (a, b, c) = (
        FakeNode::start("a").await,
        FakeNode::start("b").await,
        FakeNode::start("c").await,
    );
    let nodes = started(&static_config(&[&a, &b, &c]), 3).await;
    assert_eq!(nodes.len(), 3);
    let calls: Vec<_> = (0..90)
        .map(|_| {
            let nodes = nodes.clone();
            tokio::spawn(async move { list_title(&nodes).await.unwrap() })
        })
        .collect();
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls {
        *served.entry(call.await.unwrap()).or_default() += 1;
    }
    assert_eq!(served.len(), 3, "every node served some: {served:?}");
    for n in [&a, &b, &c] {
        assert!(n.b().lists.load(Ordering::SeqCst) >= 10, "{served:?}");
    }
    let stats = nodes.stats();
    assert_eq!(stats.iter().map(|s| s.calls).sum::<u64>(), 90, "{stats:?}");
    assert!(
        stats.iter().all(|s| s.healthy && s.in_flight == 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn p2c_sends_calls_to_the_node_with_fewer_in_flight() {
    init_logs();
    let (release, hold) = watch::channel(false);
    let behaviour = || Behaviour {
        hold: Some(hold.clone()),
        ..Behaviour::default()
    };
    let a = FakeNode::with("a", behaviour()).await;
    let b = FakeNode::with("b", behaviour()).await;
    let nodes = started(&static_config(&[&a, &b]), 2).await;
    let mut calls = Vec::new();
    for i in 0..10 {
        let mut client = nodes.client().unwrap();
        calls.push(tokio::spawn(async move {
            client
                .execute(ExecuteRequest {
                    process_id: "native:buffer".into(),
                    ..Default::default()
                })
                .await
        }));
        let in_flight = || nodes.stats().iter().map(|s| s.in_flight).sum::<usize>();
        wait("the call to be in flight", || in_flight() == i + 1).await;
        // With two nodes p2c always compares both: the loads never differ by more than one.
        let loads: Vec<usize> = nodes.stats().iter().map(|s| s.in_flight).collect();
        assert!(loads[0].abs_diff(loads[1]) <= 1, "{loads:?}");
    }
    let loads: Vec<usize> = nodes.stats().iter().map(|s| s.in_flight).collect();
    assert_eq!(loads, [5, 5]);
    release.send(true).unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(a.b().executes.load(Ordering::SeqCst), 5);
    assert_eq!(b.b().executes.load(Ordering::SeqCst), 5);
    assert!(nodes.stats().iter().all(|s| s.in_flight == 0));
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_killed_node_leaves_the_pool_and_comes_back() {
    init_logs();
    let a = FakeNode::start("a").await;
    let mut b = FakeNode::start("b").await;
    let nodes = started(&static_config(&[&a, &b]), 2).await;
    let mut generation = nodes.generation();
    let before = *generation.borrow_and_update();

    b.kill().await;
    wait("b to leave", || nodes.len() == 1).await;
    assert!(generation.has_changed().unwrap());
    let after_leave = *generation.borrow_and_update();
    assert!(after_leave > before);
    let stats = nodes.stats();
    assert!(
        stats.iter().any(|s| s.uri == b.uri() && !s.healthy),
        "{stats:?}"
    );
    for _ in 0..20 {
        assert_eq!(list_title(&nodes).await.unwrap(), "a");
    }

    b.restart().await;
    wait("b to come back", || nodes.len() == 2).await;
    assert!(*generation.borrow_and_update() > after_leave);
    let mut titles = std::collections::BTreeSet::new();
    for _ in 0..40 {
        titles.insert(list_title(&nodes).await.unwrap());
    }
    assert_eq!(titles.len(), 2, "both nodes serve again: {titles:?}");
}

#[tokio::test]
async fn an_empty_pool_is_server_busy() {
    init_logs();
    // A node that is down: it joins unhealthy and stays out of the pool.
    let mut a = FakeNode::start("a").await;
    a.kill().await;
    let config = DiscoveryConfig {
        retry_after: 7,
        ..static_config(&[&a])
    };
    let nodes = Nodes::start(&config).unwrap();
    assert_eq!(nodes.len(), 0);
    assert!(nodes.is_empty());
    let busy = "no processing node is available, try again later";
    let err = nodes.client().unwrap_err();
    assert_eq!((err.code, err.text.as_str()), (OwsCode::ServerBusy, busy));
    assert_eq!(err.retry_after, Some(7));
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    let err = list_title(&nodes).await.unwrap_err();
    assert_eq!((err.code, err.text.as_str()), (OwsCode::ServerBusy, busy));
    let stats = nodes.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].uri, a.uri());
    assert!(!stats[0].healthy);

    // The same node up: it joins and the same calls are served.
    a.restart().await;
    assert!(nodes.wait_for(1, Duration::from_secs(5)).await);
    assert!(nodes.client().is_ok());
    assert_eq!(list_title(&nodes).await.unwrap(), "a");

    let none = Nodes::start(&DiscoveryConfig {
        nodes: vec![],
        ..DiscoveryConfig::default()
    })
    .unwrap();
    let err = none.client().unwrap_err();
    assert_eq!((err.code, err.text.as_str()), (OwsCode::ServerBusy, busy));
    assert!(!none.wait_for(1, Duration::from_millis(100)).await);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idempotent_calls_are_retried_on_another_node() {
    init_logs();
    let mut a = FakeNode::start("a").await;
    let b = FakeNode::start("b").await;
    // Slow health checks: the pool learns of a's death from the failed calls.
    let config = DiscoveryConfig {
        health_interval: Duration::from_secs(60),
        ..static_config(&[&a, &b])
    };
    let nodes = started(&config, 2).await;

    // A node answering UNAVAILABLE: the call goes on to the other one.
    a.b().unavailable.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(list_title(&nodes).await.unwrap(), "b");
        if a.b().lists.load(Ordering::SeqCst) >= 3 {
            break;
        }
    }
    assert!(a.b().lists.load(Ordering::SeqCst) >= 3, "a was tried");
    let describe = |nodes: Nodes| async move {
        nodes
            .call_idempotent(|mut c| async move {
                c.describe_process(DescribeProcessRequest {
                    id: "native:buffer".into(),
                })
                .await
            })
            .await
    };
    let described = describe(nodes.clone()).await.unwrap();
    assert_eq!(described.process.unwrap().summary.unwrap().title, "b");
    a.b().unavailable.store(false, Ordering::SeqCst);

    // Other errors are answers, not retried.
    let before = a.b().describes.load(Ordering::SeqCst) + b.b().describes.load(Ordering::SeqCst);
    let err = nodes
        .call_idempotent(|mut c| async move {
            c.describe_process(DescribeProcessRequest { id: "x:y".into() })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.text.as_str()),
        (OwsCode::NoSuchProcess, "no such process")
    );
    let after = a.b().describes.load(Ordering::SeqCst) + b.b().describes.load(Ordering::SeqCst);
    assert_eq!(after, before + 1);

    // A dead node still in the pool: the connection error is retried on b and a leaves.
    a.kill().await;
    for _ in 0..100 {
        assert_eq!(list_title(&nodes).await.unwrap(), "b");
        if nodes
            .stats()
            .iter()
            .any(|s| s.uri == a.uri() && s.failures > 0)
        {
            break;
        }
    }
    let stats = nodes.stats();
    assert!(
        stats.iter().any(|s| s.uri == a.uri() && s.failures > 0),
        "{stats:?}"
    );
    wait("a to leave after its failed call", || nodes.len() == 1).await;
}

#[tokio::test]
async fn execute_is_never_retried() {
    init_logs();
    let a = FakeNode::start("a").await;
    let b = FakeNode::start("b").await;
    let nodes = started(&static_config(&[&a, &b]), 2).await;
    a.b().unavailable.store(true, Ordering::SeqCst);
    b.b().unavailable.store(true, Ordering::SeqCst);
    for round in 1..=10 {
        let err = nodes
            .call(|mut c| async move {
                c.execute(ExecuteRequest {
                    process_id: "native:buffer".into(),
                    ..Default::default()
                })
                .await
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, OwsCode::ServerBusy);
        assert!(err.text.ends_with(" is draining"), "{}", err.text);
        let total = a.b().executes.load(Ordering::SeqCst) + b.b().executes.load(Ordering::SeqCst);
        assert_eq!(total, round, "one node saw each execute, once");
    }
    // The same failure on an idempotent call is tried on both nodes.
    let err = list_title(&nodes).await.unwrap_err();
    assert_eq!(err.code, OwsCode::ServerBusy);
    assert!(err.text.ends_with(" is draining"), "{}", err.text);
    assert_eq!(
        a.b().lists.load(Ordering::SeqCst) + b.b().lists.load(Ordering::SeqCst),
        2
    );
    // Nodes serving again: the same Execute succeeds, on one node, once.
    a.b().unavailable.store(false, Ordering::SeqCst);
    b.b().unavailable.store(false, Ordering::SeqCst);
    let done = nodes
        .call(|mut c| async move {
            c.execute(ExecuteRequest {
                process_id: "native:buffer".into(),
                ..Default::default()
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(done.job.unwrap().state, JobState::Successful as i32);
    let total = a.b().executes.load(Ordering::SeqCst) + b.b().executes.load(Ordering::SeqCst);
    assert_eq!(total, 11);
}

// ---------------------------------------------------------------------------------------------
// The JSON job API over fake nodes
// ---------------------------------------------------------------------------------------------

async fn post_job(nodes: &Nodes, body: &str) -> (StatusCode, Option<String>, Value) {
    let router = wpsmesh_edge::jobs::api::router(wpsmesh_edge::jobs::api::JobsState {
        nodes: nodes.clone(),
        files: wpsmesh_edge::jobs::OwnFiles::new("http://edge", ([0, 0, 0, 0], 9000).into(), &[]),
        max_body: 64 * 1024,
    });
    let (status, retry_after, text) = send(&router, "POST", "/api/wps/jobs", body).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not json: {text}"));
    (status, retry_after, value)
}

#[tokio::test]
async fn json_jobs_run_on_a_node() {
    init_logs();
    let a = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&a]), 1).await;
    let (status, _, body) = post_job(
        &nodes,
        r#"{"identifier": "native:buffer",
            "inputs": {
              "INPUT": {"type": "reference", "href": "http://edge/api/file/retrieve/0123456789abcdef0123456789abcdef.zip", "mimeType": "application/zip"},
              "DISTANCE": {"type": "literal", "value": 0.5},
              "DISSOLVE": {"type": "literal", "value": true},
              "SEGMENTS": {"type": "literal", "value": "8"},
              "OVERLAY": {"type": "complex", "value": {"type": "FeatureCollection", "features": []}, "mimeType": "application/geo+json"},
              "EXTENT": {"type": "bbox", "bbox": [0, 1, 2, 3], "crs": "EPSG:4326"}
            },
            "outputs": {"OUTPUT": {"mimeType": "application/geo+json"}}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"]["status"], "succeeded");
    assert_eq!(body["status"]["percent_done"], "100");
    assert_eq!(body["status"]["message"], "process finished");
    assert!(body["status"]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body["outputs"]["OUTPUT"],
        json!({"href": "http://edge/api/file/retrieve/0123456789abcdef0123456789abcdef.geojson",
               "mimeType": "application/geo+json"})
    );

    let sent = a.b().last_execute.lock().unwrap().clone().unwrap();
    assert_eq!(sent.process_id, "native:buffer");
    let by_id: BTreeMap<&str, &input::Value> = sent
        .inputs
        .iter()
        .map(|i| (i.id.as_str(), i.value.as_ref().unwrap()))
        .collect();
    let literal = |id: &str| match by_id[id] {
        input::Value::Literal(l) => l.value.clone(),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(literal("DISTANCE"), "0.5");
    assert_eq!(literal("DISSOLVE"), "true");
    assert_eq!(literal("SEGMENTS"), "8");
    match by_id["INPUT"] {
        input::Value::Reference(r) => {
            let Some(wire_ref::Source::Object(o)) = &r.source else {
                panic!("{r:?}")
            };
            assert_eq!(
                (o.id.as_str(), o.extension.as_str()),
                ("0123456789abcdef0123456789abcdef", "zip")
            );
            assert_eq!(r.format.as_ref().unwrap().mime_type, "application/zip");
        }
        other => panic!("{other:?}"),
    }
    match by_id["OVERLAY"] {
        input::Value::Complex(c) => {
            let v: Value = serde_json::from_slice(&c.data).unwrap();
            assert_eq!(v["type"], "FeatureCollection");
        }
        other => panic!("{other:?}"),
    }
    match by_id["EXTENT"] {
        input::Value::BoundingBox(b) => {
            assert_eq!(b.lower_corner, [0.0, 1.0]);
            assert_eq!(b.upper_corner, [2.0, 3.0]);
            assert_eq!(b.crs, "EPSG:4326");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sent.outputs.len(), 1);
    assert!(sent.outputs[0].as_reference);
}

#[tokio::test]
async fn json_job_errors_have_the_right_status() {
    init_logs();
    let a = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&a]), 1).await;
    // The valid form of every refused request below: answered by the node.
    let (status, _, answer) = post_job(
        &nodes,
        r#"{"identifier": "native:buffer", "mode": "sync", "inputs": {"INPUT": {"type": "reference", "href": "http://data.example/a.zip"}, "DISTANCE": {"type": "literal", "value": "0.5"}}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"]["status"], "succeeded");
    // (body, status, code, locator, reason)
    let cases = [
        (
            r#"{"identifier": "native:buffer", "inputs": {"DISTANCE": {"type": "literal", "value": "far"}}}"#,
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            Some("DISTANCE"),
            r#"invalid parameter DISTANCE: "far" is not a number"#,
        ),
        (
            r#"{"identifier": "native:nothing", "inputs": {}}"#,
            StatusCode::NOT_FOUND,
            "NoSuchProcess",
            Some("Identifier"),
            r#"process "native:nothing" not found"#,
        ),
        (
            r#"{"inputs": {}}"#,
            StatusCode::BAD_REQUEST,
            "MissingParameterValue",
            Some("identifier"),
            "missing parameter identifier",
        ),
        (
            r#"{"identifier": "native:buffer", "inputs": {"INPUT": {"type": "reference"}}}"#,
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            Some("INPUT"),
            "invalid input INPUT: a reference needs an href",
        ),
        (
            r#"{"identifier": "native:buffer", "inputs": {"X": {"type": "raster"}}}"#,
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            Some("X"),
            r#"invalid input X: unknown type "raster": expected reference, literal, complex or bbox"#,
        ),
        (
            r#"{"identifier": "native:buffer", "mode": "later"}"#,
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            Some("mode"),
            r#"expected "sync" or "async", got "later""#,
        ),
        (
            r#"{"identifier": "native:buffer""#,
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            Some("body"),
            "invalid json: EOF while parsing an object at line 1 column 30",
        ),
    ];
    let executes_before = a.b().executes.load(Ordering::SeqCst);
    for (body, status, code, locator, reason) in cases {
        let (got, _, answer) = post_job(&nodes, body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}");
        assert_eq!(answer["error"]["locator"].as_str(), locator, "{body}");
        assert_eq!(answer["error"]["message"], reason, "{body}");
        assert_eq!(answer["status"]["status"], "failed");
        assert_eq!(answer["status"]["message"], reason, "{body}");
    }
    // Only the two requests that were valid JSON jobs reached the node.
    assert_eq!(a.b().executes.load(Ordering::SeqCst), executes_before + 2);

    // A body over max_body (64 KiB) is refused; one just under it is accepted.
    let sized = |len: usize| {
        let head =
            r#"{"identifier": "native:buffer", "inputs": {"G": {"type": "complex", "value": ""#;
        let tail = r#""}}}"#;
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    let (status, _, answer) = post_job(&nodes, &sized(64 * 1024 + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "FileSizeExceeded");
    assert_eq!(
        answer["error"]["message"],
        "request body exceeds 65536 bytes"
    );
    let (status, _, answer) = post_job(&nodes, &sized(64 * 1024)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"]["status"], "succeeded");

    let empty = Nodes::start(&DiscoveryConfig {
        nodes: vec![],
        ..DiscoveryConfig::default()
    })
    .unwrap();
    let (status, retry_after, answer) =
        post_job(&empty, r#"{"identifier": "native:buffer"}"#).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert_eq!(answer["error"]["code"], "ServerBusy");
    assert_eq!(
        answer["error"]["message"],
        "no processing node is available, try again later"
    );
}

// ---------------------------------------------------------------------------------------------
// Asynchronous jobs: node errors as WPS and JSON clients see them
// ---------------------------------------------------------------------------------------------

const V1_ASYNC: &str = r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>native:buffer</ows:Identifier><wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true"/></wps:ResponseForm></wps:Execute>"#;
const V2_ASYNC: &str = r#"<wps:Execute service="WPS" version="2.0.0" mode="async" response="document" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"><ows:Identifier>native:buffer</ows:Identifier></wps:Execute>"#;
const JSON_ASYNC: &str = r#"{"identifier": "native:buffer", "mode": "async"}"#;

fn job_calls(nodes: &[&FakeNode]) -> usize {
    nodes
        .iter()
        .map(|n| n.b().job_calls.load(Ordering::SeqCst))
        .sum()
}

/// Every job request of every API, with the exception code (WPS) or error code (JSON) wanted.
fn job_requests() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("POST", "/api/wps".into(), V1_ASYNC),
        ("POST", "/api/wps".into(), V2_ASYNC),
        (
            "GET",
            format!("/api/wps?service=WPS&request=GetStatus&version=2.0.0&jobId={JOB}"),
            "",
        ),
        (
            "GET",
            format!("/api/wps?service=WPS&request=GetResult&version=2.0.0&jobId={JOB}"),
            "",
        ),
        ("GET", format!("/api/wps/status/{JOB}"), ""),
        ("POST", "/api/wps/jobs".into(), JSON_ASYNC),
        ("GET", format!("/api/wps/jobs/{JOB}"), ""),
        ("DELETE", format!("/api/wps/jobs/{JOB}"), ""),
    ]
}

#[tokio::test]
async fn a_job_store_outage_is_503_naming_the_job_store_and_not_retried() {
    init_logs();
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let nodes = started(&static_config(&[&a, &b]), 2).await;
    let mut down = Status::unavailable(
        "job store unavailable: redis at redis://127.0.0.1:6379: connection refused",
    );
    down.metadata_mut()
        .insert("wpsmesh-dependency", "job-store".parse().unwrap());
    for node in [&a, &b] {
        *node.b().job_error.lock().unwrap() = Some(down.clone());
    }
    let app = edge(&nodes);
    let requests = job_requests();
    for (method, uri, body) in &requests {
        let (status, retry_after, answer) = send(&app, method, uri, body).await;
        let what = format!("{method} {uri} {body}");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {answer}");
        assert_eq!(retry_after.as_deref(), Some("5"), "{what}");
        assert!(
            answer.contains("job store unavailable: redis"),
            "{what}: {answer}"
        );
        if uri.starts_with("/api/wps/jobs") {
            let json: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(json["error"]["code"], "NoApplicableCode", "{what}");
        } else {
            assert!(
                answer.contains(r#"exceptionCode="NoApplicableCode""#),
                "{what}: {answer}"
            );
        }
    }
    // One node call per request: another node shares the same job store.
    assert_eq!(job_calls(&[&a, &b]), requests.len());
    let metrics = send(&app, "GET", "/metrics", "").await.2;
    for line in [
        r#"wpsmesh_edge_job_requests_total{operation="submit"} 3"#,
        r#"wpsmesh_edge_job_requests_total{operation="status"} 3"#,
        r#"wpsmesh_edge_job_requests_total{operation="result"} 1"#,
        r#"wpsmesh_edge_job_requests_total{operation="dismiss"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // The job store back: the same submissions are accepted.
    for node in [&a, &b] {
        *node.b().job_error.lock().unwrap() = None;
    }
    assert_submits_accepted(&app).await;
}

/// The asynchronous Execute of every API is accepted (fake nodes accept every Submit).
async fn assert_submits_accepted(app: &axum::Router) {
    for body in [V1_ASYNC, V2_ASYNC] {
        let (status, _, answer) = send(app, "POST", "/api/wps", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(
            answer.contains("<wps:ProcessAccepted>")
                || answer.contains("<wps:Status>Accepted</wps:Status>"),
            "{answer}"
        );
        assert!(answer.contains(JOB), "{answer}");
    }
    let (status, _, answer) = send(app, "POST", "/api/wps/jobs", JSON_ASYNC).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let json: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(json["jobID"], JOB);
}

#[tokio::test]
async fn a_full_job_queue_is_server_busy() {
    init_logs();
    let a = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&a]), 1).await;
    *a.b().job_error.lock().unwrap() = Some(Status::resource_exhausted(
        "job queue is full (1000 jobs waiting)",
    ));
    let app = edge(&nodes);
    for body in [V1_ASYNC, V2_ASYNC] {
        let (status, retry_after, answer) = send(&app, "POST", "/api/wps", body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert!(
            answer.contains(r#"exceptionCode="ServerBusy""#)
                && answer.contains("job queue is full"),
            "{answer}"
        );
    }
    let (status, retry_after, answer) = send(&app, "POST", "/api/wps/jobs", JSON_ASYNC).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let json: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(json["error"]["code"], "ServerBusy");
    assert_eq!(
        json["error"]["message"],
        "job queue is full (1000 jobs waiting)"
    );
    assert_eq!(json["status"]["status"], "failed");
    assert_eq!(a.b().job_calls.load(Ordering::SeqCst), 3);
    // Room in the queue again: the same submissions are accepted.
    *a.b().job_error.lock().unwrap() = None;
    assert_submits_accepted(&app).await;
}

#[tokio::test]
async fn malformed_job_ids_never_reach_a_node_and_unknown_jobs_are_not_found() {
    init_logs();
    let a = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&a]), 1).await;
    let app = edge(&nodes);
    let upper = JOB.to_uppercase();
    for (method, uri) in [
        ("GET", "/api/wps/status/nope".to_owned()),
        ("GET", format!("/api/wps/status/{upper}")),
        (
            "GET",
            "/api/wps?service=WPS&request=GetStatus&version=1.0.0&jobId=nope".into(),
        ),
        (
            "GET",
            "/api/wps?service=WPS&request=GetStatus&version=2.0.0&jobId=nope".into(),
        ),
        (
            "GET",
            "/api/wps?service=WPS&request=GetResult&version=2.0.0&jobId=..%2F..".into(),
        ),
        (
            "GET",
            format!("/api/wps?service=WPS&request=Dismiss&version=2.0.0&jobId={JOB}0"),
        ),
    ] {
        let (status, _, answer) = send(&app, method, &uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert!(
            answer.contains(r#"exceptionCode="InvalidParameterValue" locator="JobID""#),
            "{uri}: {answer}"
        );
        assert!(
            answer.contains("job ids are 32 lowercase hexadecimal digits"),
            "{uri}: {answer}"
        );
    }
    for method in ["GET", "DELETE"] {
        let (status, _, answer) = send(&app, method, "/api/wps/jobs/nope", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method}: {answer}");
        let json: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            (&json["error"]["code"], &json["error"]["locator"]),
            (&json!("InvalidParameterValue"), &json!("JobID"))
        );
        assert_eq!(
            json["error"]["message"],
            r#"invalid job id "nope": job ids are 32 lowercase hexadecimal digits"#
        );
    }
    assert_eq!(a.b().job_calls.load(Ordering::SeqCst), 0);

    // The valid form: the id of a submitted job, through every API.
    let (status, _, answer) = send(&app, "POST", "/api/wps/jobs", JSON_ASYNC).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _, answer) = send(&app, "GET", &format!("/api/wps/status/{JOB}"), "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("<wps:ProcessAccepted>"), "{answer}");
    let (status, _, answer) = send(
        &app,
        "GET",
        &format!("/api/wps?service=WPS&request=GetStatus&version=2.0.0&jobId={JOB}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer.contains("<wps:Status>Accepted</wps:Status>"),
        "{answer}"
    );
    let (status, _, answer) = send(&app, "GET", &format!("/api/wps/jobs/{JOB}"), "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(a.b().job_calls.load(Ordering::SeqCst), 4);

    // Well-formed ids pass the check and reach a node, which does not know them.
    let unknown = "fedcba9876543210fedcba9876543210";
    let (status, _, answer) = send(&app, "GET", &format!("/api/wps/status/{unknown}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer.contains(r#"exceptionCode="InvalidParameterValue" locator="JobID""#));
    assert!(answer.contains("no such job"), "{answer}");
    let get_status =
        format!("/api/wps?service=WPS&request=GetStatus&version=2.0.0&jobId={unknown}");
    let (status, _, answer) = send(&app, "GET", &get_status, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer.contains(r#"exceptionCode="NoSuchJob" locator="JobID""#));
    assert!(answer.contains("no such job"), "{answer}");
    for method in ["GET", "DELETE"] {
        let (status, _, answer) = send(&app, method, &format!("/api/wps/jobs/{unknown}"), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {answer}");
        let json: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(json["error"]["code"], "NoSuchJob");
        assert_eq!(json["error"]["message"], "no such job");
    }
    assert_eq!(a.b().job_calls.load(Ordering::SeqCst), 8);
}

// ---------------------------------------------------------------------------------------------
// Consul discovery against a fake agent
// ---------------------------------------------------------------------------------------------

/// `GET /v1/health/service/:name` with blocking queries, over a list of passing instances.
#[derive(Clone)]
struct FakeConsul {
    instances: Arc<watch::Sender<Catalog>>,
}

/// The agent's index and the passing `(address, port)` instances of `wps-node`.
type Catalog = (u64, Vec<(String, u16)>);

async fn health(
    State(consul): State<FakeConsul>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> impl IntoResponse {
    let sent: u64 = query.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let mut rx = consul.instances.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|(i, _)| *i > sent)).await;
    let (index, instances) = rx.borrow().clone();
    let entries: Vec<Value> = instances
        .iter()
        .filter(|_| name == "wps-node")
        .map(|(host, port)| {
            json!({
                "Node": {"Node": "n", "Address": "10.9.9.9"},
                "Service": {"ID": format!("wps-node-{host}-{port}"), "Service": "wps-node",
                            "Address": host, "Port": port},
                "Checks": [],
            })
        })
        .collect();
    ([("X-Consul-Index", index.to_string())], axum::Json(entries))
}

#[tokio::test]
async fn consul_discovery_follows_the_passing_instances() {
    init_logs();
    let a = FakeNode::start("a").await;
    let b = FakeNode::start("b").await;
    let consul = FakeConsul {
        instances: Arc::new(watch::channel((1, vec![])).0),
    };
    let set = |list: &[&FakeNode]| {
        let list: Vec<(String, u16)> = list
            .iter()
            .map(|n| ("127.0.0.1".to_owned(), n.addr.port()))
            .collect();
        consul.instances.send_modify(|(i, l)| {
            *i += 1;
            *l = list;
        });
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/health/service/{name}", axum::routing::get(health))
        .with_state(consul.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    set(&[&a]);
    let config = DiscoveryConfig {
        kind: DiscoveryKind::Consul,
        consul: ConsulConfig {
            address,
            ..ConsulConfig::default()
        },
        ..static_config(&[])
    };
    let nodes = started(&config, 1).await;
    assert_eq!(list_title(&nodes).await.unwrap(), "a");
    set(&[&a, &b]);
    wait("b to join from consul", || nodes.len() == 2).await;
    set(&[&b]);
    wait("a to leave with consul", || {
        nodes.len() == 1 && nodes.stats().len() == 1
    })
    .await;
    assert_eq!(list_title(&nodes).await.unwrap(), "b");
}

// ---------------------------------------------------------------------------------------------
// DNS discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dns_discovery_of_a_and_aaaa_records() {
    init_logs();
    let a = FakeNode::start("a").await;
    let config = DiscoveryConfig {
        kind: DiscoveryKind::Dns,
        dns: DnsConfig {
            name: "localhost".into(),
            port: a.addr.port(),
            interval: Duration::from_millis(200),
            ..DnsConfig::default()
        },
        ..static_config(&[])
    };
    let nodes = started(&config, 1).await;
    // localhost may also resolve to ::1, where nothing listens: that member stays unhealthy.
    let stats = nodes.stats();
    assert!(
        stats.iter().any(|s| s.uri == a.uri() && s.healthy),
        "{stats:?}"
    );
    assert_eq!(nodes.len(), 1);
    assert_eq!(list_title(&nodes).await.unwrap(), "a");
}

/// A name server answering SRV queries for one name with `targets` (`localhost.`, port), read
/// at each query, over UDP.
async fn fake_dns(name: &'static str, targets: Arc<Mutex<Vec<u16>>>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let answer = srv_answer(&buf[..n], name, &targets.lock().unwrap());
            if let Some(answer) = answer {
                let _ = socket.send_to(&answer, peer).await;
            }
        }
    });
    addr
}

/// Encodes the answer to one query: SRV records for `name`, NXDOMAIN for anything else.
fn srv_answer(query: &[u8], name: &str, ports: &[u16]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    while query[pos] != 0 {
        let len = query[pos] as usize;
        labels.push(String::from_utf8_lossy(&query[pos + 1..pos + 1 + len]).to_lowercase());
        pos += 1 + len;
    }
    let question = &query[12..pos + 5];
    let qtype = u16::from_be_bytes([query[pos + 1], query[pos + 2]]);
    let matches = labels.join(".") == name.trim_end_matches('.') && qtype == 33;
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]);
    let rcode: u8 = if labels.join(".") == name.trim_end_matches('.') {
        0
    } else {
        3
    };
    out.extend_from_slice(&[0x81, 0x80 | rcode]);
    let count = if matches { ports.len() as u16 } else { 0 };
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    if matches {
        let target: &[u8] = b"\x09localhost\x00";
        for port in ports {
            out.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0, 0]);
            out.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 10, 0, 10]);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(target);
        }
    }
    Some(out)
}

#[tokio::test]
async fn dns_discovery_of_srv_records() {
    init_logs();
    let a = FakeNode::start("a").await;
    let b = FakeNode::start("b").await;
    let targets = Arc::new(Mutex::new(vec![a.addr.port()]));
    let name = "_grpc._tcp.wps-node.wpsmesh.test";
    let server = fake_dns(name, targets.clone()).await;
    let config = DiscoveryConfig {
        kind: DiscoveryKind::Dns,
        dns: DnsConfig {
            name: format!("{name}."),
            record: DnsRecord::Auto,
            interval: Duration::from_millis(200),
            nameservers: vec![server],
            ..DnsConfig::default()
        },
        ..static_config(&[])
    };
    let nodes = started(&config, 1).await;
    let uri = |n: &FakeNode| format!("http://localhost:{}", n.addr.port());
    assert_eq!(nodes.stats()[0].uri, uri(&a));
    assert_eq!(list_title(&nodes).await.unwrap(), "a");
    targets.lock().unwrap().push(b.addr.port());
    wait("b to join from dns", || nodes.len() == 2).await;
    targets.lock().unwrap().remove(0);
    wait("a to leave with dns", || nodes.stats().len() == 1).await;
    assert_eq!(nodes.stats()[0].uri, uri(&b));
    assert_eq!(list_title(&nodes).await.unwrap(), "b");
    // A name without records empties the pool.
    targets.lock().unwrap().clear();
    wait("the pool to empty", || nodes.stats().is_empty()).await;
    let err = nodes.client().unwrap_err();
    assert_eq!(
        (err.code, err.text.as_str()),
        (
            OwsCode::ServerBusy,
            "no processing node is available, try again later"
        )
    );
}
