//! End to end, as an operator's fault campaign (issue 10): one bad request or one failing
//! dependency never spills onto other requests. Real processes: redis-server, storage, two
//! nodes with one QGIS worker each, one edge.
//! - 16 clients mix valid Executes with hostile ones (multi-MB literals and identifiers, deeply
//!   nested XML, invalid UTF-8, huge KVP): every valid one succeeds, every hostile one is a
//!   short 4xx, no node leaves the pool, RSS and log lines stay bounded;
//! - storage SIGKILLed under 8 clients: every failure is a one-line 503 with Retry-After, and
//!   once it is back every request succeeds with nothing of ours restarted;
//! - a node SIGSTOPped: job status, results and descriptions come from the other node within
//!   the edge's deadline; after SIGCONT it rejoins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use wpsmesh_tests::mesh::{Mesh, MeshSpec, feature_count};
use wpsmesh_tests::{Launch, data, rss_of};

/// Longest hostile campaign; `WPSMESH_CHAOS_SECS` shortens or lengthens it.
const CAMPAIGN: Duration = Duration::from_secs(20);
/// Growth of a node's or the edge's resident memory over the campaign that is tolerated.
const RSS_GROWTH: u64 = 96 * 1024 * 1024;
/// Longest log line any service may write.
const MAX_LOG_LINE: usize = 8 * 1024;
/// Longest error answer (headers aside) to a hostile request.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// Two megabytes of a value that is no number.
const HUGE: usize = 2 * 1024 * 1024;

static POINTS: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("failure-isolation");
    std::fs::create_dir_all(&dir).expect("data dir");
    data::derive(&dir, "points.geojson", data::POINTS_SQL)
});

/// One mesh at a time: these tests measure one mesh, not two fighting over two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn buffer(href: &str, distance: Value) -> Value {
    json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href},
            "DISTANCE": {"type": "literal", "value": distance},
        },
    })
}

/// A synchronous Execute through the JSON job API: status, Retry-After, body.
async fn execute(
    http: &reqwest::Client,
    edge: &str,
    body: &Value,
) -> (u16, Option<String>, String) {
    let r = http
        .post(format!("{edge}/api/wps/jobs"))
        .json(body)
        .send()
        .await
        .expect("the edge answers");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.text().await.unwrap_or_default())
}

/// A hostile request: over HTTP with reqwest, or raw (a URI no client library will build).
enum Hostile {
    Http(Box<reqwest::RequestBuilder>),
    RawGet(String),
}

/// Sends a hostile request: its status and body size, or why there was no answer.
async fn send(edge: &str, request: Hostile) -> Result<(u16, usize), String> {
    match request {
        Hostile::Http(r) => {
            let r = *r;
            let r = r.send().await.map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            Ok((status, r.bytes().await.map(|b| b.len()).unwrap_or(0)))
        }
        Hostile::RawGet(path) => wpsmesh_tests::raw_get(edge, &path)
            .await
            .map(|(status, body)| (status, body.len()))
            .map_err(|e| format!("{e:#}")),
    }
}

/// The hostile requests: what each is, and the request.
fn hostile(http: &reqwest::Client, edge: &str, href: &str, i: usize) -> (&'static str, Hostile) {
    let wps = format!("{edge}/api/wps");
    let big = "x".repeat(HUGE);
    match i % 7 {
        0 => (
            "json 2 MB literal",
            Hostile::Http(Box::new(
                http.post(format!("{edge}/api/wps/jobs"))
                    .json(&buffer(href, json!(big))),
            )),
        ),
        1 => {
            let mut body = buffer(href, json!(0.5));
            body["identifier"] = json!(big);
            (
                "json 2 MB identifier",
                Hostile::Http(Box::new(
                    http.post(format!("{edge}/api/wps/jobs")).json(&body),
                )),
            )
        }
        2 => {
            let xml = format!(
                r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>native:buffer</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>INPUT</ows:Identifier><wps:Reference xlink:href="{href}"/></wps:Input><wps:Input><ows:Identifier>DISTANCE</ows:Identifier><wps:Data><wps:LiteralData>{big}</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"#
            );
            (
                "wps xml 2 MB literal",
                Hostile::Http(Box::new(
                    http.post(&wps)
                        .header("content-type", "application/xml")
                        .body(xml),
                )),
            )
        }
        3 => {
            let depth = 200_000;
            let xml = format!(
                r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0">{}{}</wps:Execute>"#,
                "<a>".repeat(depth),
                "</a>".repeat(depth)
            );
            (
                "deeply nested xml",
                Hostile::Http(Box::new(
                    http.post(&wps)
                        .header("content-type", "application/xml")
                        .body(xml),
                )),
            )
        }
        4 => {
            let mut bytes = br#"<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"><x>"#.to_vec();
            bytes.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
            bytes.extend_from_slice(b"</x></wps:GetCapabilities>");
            (
                "invalid utf-8 xml",
                Hostile::Http(Box::new(
                    http.post(&wps)
                        .header("content-type", "application/xml")
                        .body(bytes),
                )),
            )
        }
        5 => {
            let query = format!(
                "service=WPS&version=1.0.0&request=Execute&identifier=native:buffer&DataInputs=DISTANCE={}",
                "9".repeat(200 * 1024)
            );
            ("huge kvp", Hostile::RawGet(format!("/api/wps?{query}")))
        }
        _ => {
            let mut body = buffer(href, json!(0.5));
            body["inputs"][big.as_str()] = json!({"type": "literal", "value": 1});
            (
                "json 2 MB input id",
                Hostile::Http(Box::new(
                    http.post(format!("{edge}/api/wps/jobs")).json(&body),
                )),
            )
        }
    }
}

fn healthy_nodes(metrics: &str) -> Option<u32> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("wpsmesh_edge_nodes "))
        .and_then(|v| v.trim().parse().ok())
}

async fn metrics(http: &reqwest::Client, edge: &str) -> String {
    http.get(format!("{edge}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

fn longest_line(log: &str) -> usize {
    log.lines().map(str::len).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_under_load_spill_onto_no_one() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let m = Mesh::start(MeshSpec::new(2)).await.expect("mesh starts");
    let edge = m.edges[0].uri();
    let href = m.upload(&POINTS).await;
    let campaign = std::env::var("WPSMESH_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(CAMPAIGN, Duration::from_secs);

    // Warm up: both nodes serve a valid request, then memory is measured.
    for _ in 0..4 {
        let (status, _, body) = execute(&m.http, &edge, &buffer(&href, json!(0.5))).await;
        assert_eq!(status, 200, "{body}");
    }
    let watched: Vec<(String, u32)> = m
        .nodes
        .iter()
        .chain(&m.edges)
        .map(|s| (s.name().to_owned(), s.pid()))
        .collect();
    let before: Vec<u64> = watched
        .iter()
        .map(|(_, pid)| rss_of(*pid).expect("rss").0)
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + campaign;
    let clients = (0..16).map(|c| {
        let (http, edge, href) = (m.http.clone(), edge.clone(), href.clone());
        tokio::spawn(async move {
            let (mut good, mut bad, mut failures) = (0usize, 0usize, Vec::new());
            let mut i = c;
            while Instant::now() < deadline {
                i += 1;
                if i % 2 == 0 {
                    let (status, _, body) = execute(&http, &edge, &buffer(&href, json!(0.5))).await;
                    good += 1;
                    if status != 200 || !body.contains("\"succeeded\"") {
                        failures.push(format!(
                            "valid execute: {status} {}",
                            &body[..body.len().min(300)]
                        ));
                    }
                } else {
                    let (what, request) = hostile(&http, &edge, &href, i / 2 + c);
                    bad += 1;
                    match send(&edge, request).await {
                        Ok((status, len)) => {
                            if !(400..500).contains(&status) {
                                failures.push(format!("{what}: status {status}"));
                            } else if len > MAX_ERROR_BODY {
                                failures.push(format!("{what}: {status} with a {len} byte answer"));
                            }
                        }
                        Err(e) => failures.push(format!("{what}: no answer: {e}")),
                    }
                }
            }
            (good, bad, failures)
        })
    });
    // Meanwhile the edge must keep both nodes.
    let watcher = {
        let (http, edge, stop) = (m.http.clone(), edge.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lows = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = healthy_nodes(&metrics(&http, &edge).await);
                if n != Some(2) {
                    lows.push(n);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            lows
        })
    };
    let (mut good, mut bad, mut failures) = (0, 0, Vec::new());
    for client in clients {
        let (g, b, f) = client.await.expect("client");
        good += g;
        bad += b;
        failures.extend(f);
    }
    stop.store(true, Ordering::Relaxed);
    let lows = watcher.await.expect("watcher");
    println!("campaign: {good} valid and {bad} hostile requests in {campaign:?}");
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        good >= 16 && bad >= 16,
        "too few requests: {good} valid, {bad} hostile"
    );
    assert!(
        lows.is_empty(),
        "the edge lost nodes during the campaign: {lows:?}"
    );
    for ((name, pid), before) in watched.iter().zip(before) {
        let after = rss_of(*pid).expect("rss").0;
        println!("{name}: rss {} -> {} MiB", before >> 20, after >> 20);
        assert!(
            after <= before + RSS_GROWTH,
            "{name} grew from {} to {} MiB",
            before >> 20,
            after >> 20
        );
    }
    for service in std::iter::once(&m.storage).chain(&m.nodes).chain(&m.edges) {
        let log = service.log();
        assert!(
            longest_line(&log) <= MAX_LOG_LINE,
            "{} wrote a {} byte log line",
            service.name(),
            longest_line(&log)
        );
        assert!(
            !log.contains("unreachable"),
            "{}: {}",
            service.name(),
            service.log_tail(20)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_killed_under_load_is_503_then_recovers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut m = Mesh::start(MeshSpec::new(2)).await.expect("mesh starts");
    let edge = m.edges[0].uri();
    let href = m.upload(&POINTS).await;
    let ours: Vec<u32> = m.nodes.iter().chain(&m.edges).map(|s| s.pid()).collect();
    let (status, _, body) = execute(&m.http, &edge, &buffer(&href, json!(0.5))).await;
    assert_eq!(status, 200, "before the fault: {body}");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (http, edge, href, stop) =
                (m.http.clone(), edge.clone(), href.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push(execute(&http, &edge, &buffer(&href, json!(0.5))).await);
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let port = m.storage.port();
    m.storage.kill();
    // Storage stays away long enough for every client to run into it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.storage = Launch::storage(m.dir(), "storage")
        .port(port)
        .start()
        .await
        .expect("storage starts again on its port");
    // The edge is ready again once it reaches storage.
    let ready_by = Instant::now() + Duration::from_secs(30);
    while m
        .http
        .get(format!("{edge}/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < ready_by,
            "edge not ready 30 s after storage came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for client in clients {
        for (status, retry, body) in client.await.expect("client") {
            if status == 200 {
                continue;
            }
            failed += 1;
            assert_eq!(status, 503, "a failure while storage was away: {body}");
            assert!(retry.is_some(), "503 without Retry-After: {body}");
            let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("storage"), "names storage: {body}");
            assert!(
                !message.contains('\n') && message.len() < 512,
                "one short line: {message:?}"
            );
            assert!(
                !message.contains("tonic::")
                    && !message.contains("hyper::")
                    && !message.contains("source:"),
                "no error-chain dump: {message}"
            );
        }
    }
    assert!(failed > 0, "no request met the storage outage");
    // Back to normal, with nothing of ours restarted.
    for _ in 0..8 {
        let (status, _, body) = execute(&m.http, &edge, &buffer(&href, json!(0.5))).await;
        assert_eq!(status, 200, "after storage came back: {body}");
    }
    let now: Vec<u32> = m.nodes.iter().chain(&m.edges).map(|s| s.pid()).collect();
    assert_eq!(now, ours);
    assert_eq!(m.exited(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_node_is_routed_around_and_rejoins() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let m = Mesh::start(MeshSpec::new(2)).await.expect("mesh starts");
    let edge = m.edges[0].uri();
    let href = m.upload(&POINTS).await;
    let (id, _) = m.submit(0, &buffer(&href, json!(0.5))).await;
    let done = m
        .wait_job(0, &id, "succeeded", Duration::from_secs(60))
        .await;
    let output = done["outputs"]["OUTPUT"]["href"]
        .as_str()
        .expect("output")
        .to_owned();

    m.nodes[0].signal(Signal::SIGSTOP).expect("SIGSTOP");
    struct Thaw(u32);
    impl Drop for Thaw {
        fn drop(&mut self) {
            let _ = wpsmesh_tests::signal(self.0, Signal::SIGCONT);
        }
    }
    let _thaw = Thaw(m.nodes[0].pid());
    let describe = format!(
        "{edge}/api/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=native:centroids"
    );
    // Enough calls that the balancer meets the frozen node more than once.
    for round in 0..6 {
        let started = Instant::now();
        let (status, _, body) = m.job(0, &id).await;
        assert_eq!(status, 200, "round {round}: job status: {body}");
        assert_eq!(body["status"]["status"], "succeeded");
        let (status, report) = m.wps_job(0, "GetResult", &id).await;
        assert_eq!(status, 200, "round {round}: GetResult: {report}");
        let r = m.http.get(&describe).send().await.expect("describe");
        assert_eq!(r.status().as_u16(), 200, "round {round}: describe");
        assert!(
            started.elapsed() < Duration::from_secs(3 * 6),
            "round {round} took {:?}: past the edge's deadlines",
            started.elapsed()
        );
    }
    let (status, bytes) = m.fetch(0, &output).await;
    assert_eq!((status, feature_count(&bytes)), (200, 240));
    // The frozen node left the pool on its failed health check.
    let left_by = Instant::now() + Duration::from_secs(30);
    while healthy_nodes(&metrics(&m.http, &edge).await) != Some(1) {
        assert!(
            Instant::now() < left_by,
            "the frozen node never left the pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.nodes[0].signal(Signal::SIGCONT).expect("SIGCONT");
    let back_by = Instant::now() + Duration::from_secs(30);
    while healthy_nodes(&metrics(&m.http, &edge).await) != Some(2) {
        assert!(
            Instant::now() < back_by,
            "the node never rejoined after SIGCONT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, body) = execute(&m.http, &edge, &buffer(&href, json!(0.5))).await;
    assert_eq!(status, 200, "{body}");
}
