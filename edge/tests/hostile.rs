//! Hostile requests through a real edge listener (issue 10): multi-MB literals and identifiers,
//! deeply nested XML, invalid UTF-8, huge query strings, headers and bodies. Each gets a 4xx
//! whose short answer names what was wrong — a read answer, never a reset connection — beside
//! its valid form, which succeeds; and the node never leaves the pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake;

use std::time::{Duration, Instant};

use fake::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MB2: usize = 2 * 1024 * 1024;
/// Longest answer to a hostile request the edge refuses itself.
const MAX_ANSWER: usize = 2048;
/// Longest JSON answer quoting a node's error message (cut to 1 KiB, shown twice).
const MAX_NODE_ANSWER: usize = 2 * 1024 + 512;

const WPS1: &str =
    r#"xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1""#;

/// A WPS 1.0.0 Execute of `id` with DISTANCE `distance`.
fn execute_xml(id: &str, distance: &str) -> String {
    format!(
        r#"<wps:Execute service="WPS" version="1.0.0" {WPS1}><ows:Identifier>{id}</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>DISTANCE</ows:Identifier><wps:Data><wps:LiteralData>{distance}</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"#
    )
}

/// A JSON job of `id` with input `input` set to `distance`.
fn job(id: &str, input: &str, distance: Value) -> String {
    json!({"identifier": id, "inputs": {input: {"type": "literal", "value": distance}}}).to_string()
}

/// A WPS 1.0.0 KVP Execute with DISTANCE `distance`.
fn execute_kvp(distance: &str) -> String {
    format!(
        "/api/wps?service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
         &DataInputs=DISTANCE={distance}"
    )
}

/// One request, hostile or its valid form.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    header: Option<(&'static str, String)>,
    body: Vec<u8>,
}

impl Case {
    /// Sent as raw HTTP/1.1: `http` (hence reqwest) refuses URIs over 64 KiB.
    fn raw(&self) -> bool {
        self.path.len() > 60 * 1024
    }
}

fn case(what: &'static str, method: &'static str, path: &str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        header: None,
        body: body.into(),
    }
}

/// The edge on a free port over one fake node (storage unused), once it has the node; the node
/// and the base URL. Bodies over 4 MiB are refused.
async fn edge_on_a_port() -> (FakeNode, String) {
    init_logs();
    let node = FakeNode::start("a").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = wpsmesh_edge::Config {
        public_url: base.clone(),
        storage: format!("http://127.0.0.1:{}", wpsmesh_tests::free_port()),
        max_body_bytes: 4 * 1024 * 1024,
        discovery: static_config(&[&node]),
        ..Default::default()
    };
    tokio::spawn(wpsmesh_edge::run(config, listener, std::future::pending()));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wpsmesh_tests::edge_ready(&http, &base, 1).await {
        assert!(Instant::now() < deadline, "the edge never had its node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (node, base)
}

/// Sends `case`: the status and the answer's text (lossy).
async fn send(http: &reqwest::Client, base: &str, case: &Case) -> (StatusCode, String) {
    if case.raw() {
        return send_raw(base, case).await;
    }
    let url = format!("{base}{}", case.path);
    let mut request = match case.method {
        "GET" => http.get(url),
        _ => http
            .post(url)
            .header("content-type", "application/xml")
            .body(case.body.clone()),
    };
    if let Some((name, value)) = &case.header {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.what));
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Sends a GET `case` as raw HTTP/1.1 on a new connection, all of it, then reads the answer:
/// a connection reset on the way fails the test.
async fn send_raw(base: &str, case: &Case) -> (StatusCode, String) {
    let (code, body) = wpsmesh_tests::raw_get(base, &case.path)
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", case.what));
    (StatusCode::from_u16(code).unwrap(), body)
}

#[tokio::test]
async fn hostile_requests_get_a_short_4xx_naming_the_fault() {
    let (node, base) = edge_on_a_port().await;
    node.b()
        .submitted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let http = reqwest::Client::new();
    let big = "x".repeat(MB2);
    let nested = format!(
        r#"<wps:Execute service="WPS" version="1.0.0" {WPS1}>{}{}</wps:Execute>"#,
        "<a>".repeat(200_000),
        "</a>".repeat(200_000)
    );
    let mut bad_utf8 = format!(r#"<wps:GetCapabilities service="WPS" {WPS1}><x>"#).into_bytes();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    bad_utf8.extend_from_slice(b"</x></wps:GetCapabilities>");
    let capabilities =
        format!(r#"<wps:GetCapabilities service="WPS" {WPS1}><x>é</x></wps:GetCapabilities>"#);
    let good_job = job("native:buffer", "DISTANCE", json!(0.5));
    let json = |what, body: String| case(what, "POST", "/api/wps/jobs", body);
    let mut huge_header = case("a 2 MB header", "GET", &execute_kvp("0.5"), "");
    huge_header.header = Some(("x-hostile", big.clone()));

    // (hostile request, the status and reason it gets, its valid form)
    let cases: Vec<(Case, StatusCode, &str, Case)> = vec![
        (
            case(
                "xml 2 MB literal",
                "POST",
                "/api/wps",
                execute_xml("native:buffer", &big),
            ),
            StatusCode::BAD_REQUEST,
            r#"exceptionCode="InvalidParameterValue" locator="DISTANCE""#,
            case(
                "xml literal",
                "POST",
                "/api/wps",
                execute_xml("native:buffer", "0.5"),
            ),
        ),
        (
            case(
                "xml 2 MB identifier",
                "POST",
                "/api/wps",
                execute_xml(&big, "0.5"),
            ),
            StatusCode::BAD_REQUEST,
            "is longer than 256 characters",
            case(
                "xml identifier",
                "POST",
                "/api/wps",
                execute_xml("native:buffer", "0.5"),
            ),
        ),
        (
            case("deeply nested xml", "POST", "/api/wps", nested),
            StatusCode::BAD_REQUEST,
            "elements nested deeper than 100 levels",
            case("flat xml", "POST", "/api/wps", capabilities.clone()),
        ),
        (
            case("invalid utf-8 xml", "POST", "/api/wps", bad_utf8),
            StatusCode::BAD_REQUEST,
            "UTF-8",
            case("utf-8 xml", "POST", "/api/wps", capabilities),
        ),
        (
            case(
                "a body over max_body_bytes",
                "POST",
                "/api/wps",
                vec![b' '; 8 * 1024 * 1024],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds 4194304 bytes",
            case(
                "a body under it",
                "POST",
                "/api/wps",
                execute_xml("native:buffer", "0.5"),
            ),
        ),
        (
            json(
                "json 2 MB literal",
                job("native:buffer", "DISTANCE", json!(big)),
            ),
            StatusCode::BAD_REQUEST,
            r#""locator":"DISTANCE""#,
            json("json literal", good_job.clone()),
        ),
        (
            json("json 2 MB identifier", job(&big, "DISTANCE", json!(0.5))),
            StatusCode::BAD_REQUEST,
            "identifier is longer than 256 characters",
            json("json identifier", good_job.clone()),
        ),
        (
            json("json 2 MB input id", job("native:buffer", &big, json!(0.5))),
            StatusCode::BAD_REQUEST,
            "input identifier is longer than 256 characters",
            json("json input id", good_job.clone()),
        ),
        (
            case(
                "json invalid utf-8",
                "POST",
                "/api/wps/jobs",
                b"{\"identifier\": \"\xff\"}".to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid json",
            json("json utf-8", good_job.clone()),
        ),
        (
            case("job id invalid utf-8", "GET", "/api/wps/jobs/%FF%FE", ""),
            StatusCode::BAD_REQUEST,
            r#""locator":"JobID""#,
            case("job id", "GET", &format!("/api/wps/jobs/{JOB}"), ""),
        ),
        (
            case("kvp invalid utf-8", "GET", &execute_kvp("%FF%FE"), ""),
            StatusCode::BAD_REQUEST,
            "is not UTF-8 once decoded",
            case("kvp utf-8", "GET", &execute_kvp("0.5"), ""),
        ),
        (
            case(
                "kvp 60 KB literal",
                "GET",
                &execute_kvp(&"9x".repeat(30_000)),
                "",
            ),
            StatusCode::BAD_REQUEST,
            r#"exceptionCode="InvalidParameterValue" locator="DISTANCE""#,
            case("kvp literal", "GET", &execute_kvp("0.5"), ""),
        ),
        // Past hyper's limits the answer has no body: its status says it all.
        (
            case(
                "kvp 200 KB (a URI over 64 KiB)",
                "GET",
                &execute_kvp(&"9".repeat(200 * 1024)),
                "",
            ),
            StatusCode::URI_TOO_LONG,
            "",
            case("kvp", "GET", &execute_kvp("0.5"), ""),
        ),
        (
            case(
                "kvp 16 MB (a head over 400 KiB)",
                "GET",
                &execute_kvp(&"9".repeat(16 * 1024 * 1024)),
                "",
            ),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "",
            case("kvp", "GET", &execute_kvp("0.5"), ""),
        ),
        (
            huge_header,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "",
            case("small headers", "GET", &execute_kvp("0.5"), ""),
        ),
    ];
    let node_message = ["xml 2 MB literal", "json 2 MB literal", "kvp 60 KB literal"];
    for (hostile, status, reason, valid) in &cases {
        let (got, answer) = send(&http, &base, hostile).await;
        let what = hostile.what;
        assert_eq!(got, *status, "{what}: {}", &answer[..answer.len().min(500)]);
        assert!(answer.contains(reason), "{what}: {answer}");
        let max = if node_message.contains(&what) {
            MAX_NODE_ANSWER
        } else {
            MAX_ANSWER
        };
        assert!(answer.len() < max, "{what}: a {} byte answer", answer.len());

        let (got, answer) = send(&http, &base, valid).await;
        assert_eq!(got, StatusCode::OK, "{}: {answer}", valid.what);
    }
    // The node never left the pool.
    assert!(wpsmesh_tests::edge_ready(&http, &base, 1).await);
}
