//! The edge's own files inside the mesh, through the whole edge over a fake node: an input href
//! to the edge's file API under another name of the edge (`127.0.0.1` when the public URL says
//! `localhost`, a configured file host) reaches the node as a stored object; a foreign href
//! passes as an href; another path of the edge is refused before any node is called; output
//! objects come back as hrefs the edge builds from its public URL.
#![allow(clippy::unwrap_used)]

mod common;
mod fake;

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use common::send;
use fake::*;
use serde_json::{Value, json};
use wpsmesh_proto::wire::process::v1::{ExecuteRequest, input, reference};

const ID: &str = "0123456789abcdef0123456789abcdef";
const OWN: &str = "http://127.0.0.1:9000/api/file/retrieve/0123456789abcdef0123456789abcdef.ZIP";

/// The whole edge at `http://localhost:9000` (listening on port 9000, the default), also
/// reachable as `https://maps.example.org/wps`.
async fn edge_at_localhost() -> (FakeNode, axum::Router) {
    init_logs();
    let node = FakeNode::start("a").await;
    let nodes = started(&static_config(&[&node]), 1).await;
    let storage = tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy();
    let config = wpsmesh_edge::Config {
        public_url: "http://localhost:9000".into(),
        file_hosts: vec!["https://maps.example.org/wps".into()],
        ..Default::default()
    };
    (node, wpsmesh_edge::app(&config, nodes, storage))
}

async fn post_job(app: &axum::Router, href: &str) -> (StatusCode, Value) {
    let body = json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href, "mimeType": "application/zip"},
            "DISTANCE": 0.5,
        },
    });
    let (status, _, text) = send(app, "POST", "/api/wps/jobs", &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap())
}

/// The source of INPUT in the last request the node received.
fn sent_source(node: &FakeNode) -> reference::Source {
    let sent: ExecuteRequest = node.b().last_execute.lock().unwrap().clone().unwrap();
    let input = sent.inputs.iter().find(|i| i.id == "INPUT").unwrap();
    match &input.value {
        Some(input::Value::Reference(r)) => r.source.clone().unwrap(),
        other => panic!("{other:?}"),
    }
}

fn stored(ext: &str) -> reference::Source {
    reference::Source::Object(wpsmesh_proto::wire::process::v1::StoredObject {
        id: ID.into(),
        extension: ext.into(),
    })
}

#[tokio::test]
async fn own_file_hrefs_reach_the_node_as_stored_objects() {
    let (node, app) = edge_at_localhost().await;
    // The JSON job API, through 127.0.0.1 while the public URL says localhost.
    let (status, body) = post_job(&app, OWN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sent_source(&node), stored("zip"));
    assert_eq!(
        body["outputs"]["OUTPUT"],
        json!({"href": format!("http://localhost:9000/api/file/retrieve/{OUTPUT_ID}.geojson"),
               "mimeType": "application/geo+json"})
    );

    // WPS 1.0.0 KVP, through the configured file host.
    let href = format!("https://maps.example.org/wps/api/file/retrieve/{ID}.geojson");
    let query = format!(
        "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
         &DataInputs=INPUT=@xlink:href={};DISTANCE=0.5&ResponseDocument=OUTPUT@asReference=true",
        href.replace(':', "%3A").replace('/', "%2F")
    );
    let (status, _, doc) = send(&app, "GET", &query, "").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(sent_source(&node), stored("geojson"));
    let built = format!("http://localhost:9000/api/file/retrieve/{OUTPUT_ID}.geojson");
    assert!(
        doc.contains(&format!(r#"<wps:Reference href="{built}""#)),
        "{doc}"
    );

    // WPS 2.0 XML, through localhost itself.
    let xml = format!(
        r#"<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink" service="WPS" version="2.0.0" mode="sync" response="document"><ows:Identifier>native:buffer</ows:Identifier><wps:Input id="INPUT"><wps:Reference xlink:href="http://localhost:9000/api/file/retrieve/{ID}"/></wps:Input><wps:Input id="DISTANCE"><wps:Data>0.5</wps:Data></wps:Input><wps:Output id="OUTPUT" transmission="reference"/></wps:Execute>"#
    );
    let (status, _, doc) = send(&app, "POST", "/api/wps", &xml).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(sent_source(&node), stored(""));
    assert!(doc.contains(&format!(r#"xlink:href="{built}""#)), "{doc}");
}

#[tokio::test]
async fn foreign_hrefs_pass_as_hrefs() {
    let (node, app) = edge_at_localhost().await;
    for href in [
        format!("http://data.example.org/api/file/retrieve/{ID}.zip"),
        // Another port of this host is another service.
        format!("http://127.0.0.1:9001/api/file/retrieve/{ID}.zip"),
    ] {
        let (status, body) = post_job(&app, &href).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(sent_source(&node), reference::Source::Href(href));
    }
}

#[tokio::test]
async fn other_paths_of_the_edge_are_refused_at_the_edge() {
    let (node, app) = edge_at_localhost().await;
    // The valid control: answered by the node.
    let (status, body) = post_job(&app, OWN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let executes = node.b().executes.load(Ordering::SeqCst);
    for (href, reason) in [
        (
            "http://127.0.0.1:9000/api/wps?service=WPS&request=GetCapabilities".to_owned(),
            "it points at this service but not at /api/file/retrieve/{id}.{ext}",
        ),
        (
            "http://localhost:9000/api/file/retrieve/../../etc/passwd".to_owned(),
            "it points at this service but not at /api/file/retrieve/{id}.{ext}",
        ),
        (
            format!("http://localhost:9000/api/file/retrieve/{}.zip", &ID[1..]),
            "invalid object id: expected 32 lowercase hexadecimal characters",
        ),
    ] {
        let (status, body) = post_job(&app, &href).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "InvalidParameterValue");
        assert_eq!(body["error"]["locator"], "INPUT");
        assert_eq!(
            body["error"]["message"],
            format!("input INPUT: invalid reference {href:?}: {reason}")
        );
    }
    // The same refusal in WPS, as an exception report.
    let query = "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
        &DataInputs=INPUT=@xlink:href=http%3A%2F%2Flocalhost%3A9000%2Fapi%2Fwps;DISTANCE=0.5";
    let (status, _, doc) = send(&app, "GET", query, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{doc}");
    assert!(
        doc.contains(r#"exceptionCode="InvalidParameterValue" locator="INPUT""#),
        "{doc}"
    );
    assert!(doc.contains("it points at this service but not at /api/file/retrieve/{id}.{ext}"));
    assert_eq!(node.b().executes.load(Ordering::SeqCst), executes);
}

/// `run` on a listener whose port the config does not know (port 0 chosen by the OS): hrefs to
/// `127.0.0.1` on that port are still the edge's own files, while another port is foreign.
#[tokio::test]
async fn hrefs_to_the_port_the_edge_really_listens_on_are_its_own() {
    init_logs();
    let node = FakeNode::start("a").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = wpsmesh_edge::Config {
        storage: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    config.discovery.nodes = vec![node.uri()];
    tokio::spawn(wpsmesh_edge::run(config, listener, std::future::pending()));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    // Wait for the edge's readiness check to stop saying "no healthy node" (storage, which this
    // test does not need, stays unreachable).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = match http.get(format!("{url}/ready")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !body.is_empty() && !body.contains("no healthy node") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no healthy node: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let post = |href: String| {
        let body = json!({
            "identifier": "native:buffer",
            "inputs": {"INPUT": {"type": "reference", "href": href}, "DISTANCE": 0.5},
        });
        http.post(format!("{url}/api/wps/jobs")).json(&body).send()
    };
    let answer = post(format!("{url}/api/file/retrieve/{ID}.zip"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
    assert_eq!(sent_source(&node), stored("zip"));
    let foreign = format!("http://127.0.0.1:{}/api/file/retrieve/{ID}.zip", port ^ 1);
    let answer = post(foreign.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(sent_source(&node), reference::Source::Href(foreign));
}
