//! End to end: OpenTelemetry traces from real `wpsmesh` processes (storage, node with a QGIS
//! worker, edge, Redis job store) exported over OTLP gRPC to a real receiver in this process.
//! One synchronous Execute is one trace across every service with the worker's run in it; an
//! asynchronous job's run is linked to its submit's trace; a collector that is down or hangs
//! never fails or slows a request; `OTEL_SDK_DISABLED=true` exports nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wpsmesh_tests::mesh::{Mesh, MeshSpec};
use wpsmesh_tests::otlp::{Collector, Span, down_endpoint, hanging_endpoint};
use wpsmesh_tests::{Launch, data};

static POINTS: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("traces");
    std::fs::create_dir_all(&dir).expect("data dir");
    data::derive(&dir, "points.geojson", data::POINTS_SQL)
});

/// One mesh at a time: each starts a QGIS worker.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Long enough for a mesh's spans to be exported (batches go out every 100 ms).
const EXPORTED: Duration = Duration::from_secs(20);

/// A mesh of one node whose processes export to `endpoint` every 100 ms, plus `env`.
async fn mesh(endpoint: &str, env: &[(&str, &str)]) -> Mesh {
    LazyLock::force(&POINTS);
    let mut spec = MeshSpec::new(1)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    Mesh::start(spec).await.expect("mesh starts")
}

/// native:buffer of `href`, its output by reference.
fn buffer(href: &str) -> Value {
    let mut job = wpsmesh_tests::mesh::buffer_job(href);
    job["outputs"] = json!({"OUTPUT": {"transmission": "reference"}});
    job
}

/// `POST /api/wps/jobs` on edge 0: status, `x-trace-id` and body.
async fn post_job(mesh: &Mesh, body: &Value) -> (u16, Option<String>, Value) {
    let r = mesh
        .http
        .post(format!("{}/api/wps/jobs", mesh.edges[0].uri()))
        .json(body)
        .send()
        .await
        .expect("post job");
    let trace = header(&r, "x-trace-id");
    (
        r.status().as_u16(),
        trace,
        r.json().await.unwrap_or(Value::Null),
    )
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn in_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace).collect()
}

fn names(spans: &[&Span]) -> BTreeSet<String> {
    spans
        .iter()
        .map(|s| format!("{}: {}", s.service, s.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synchronous_execute_is_one_trace_across_edge_node_worker_and_storage() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let collector = Collector::start().await.expect("receiver");
    // The node relays its worker's log lines at debug.
    let mesh = mesh(
        &collector.endpoint(),
        &[("RUST_LOG", "info,wpsmesh_node::pool::process=debug")],
    )
    .await;

    // The input goes up through the edge's file API (a trace of its own).
    let upload = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&*POINTS).expect("points"))
            .file_name("points.geojson"),
    );
    let r = mesh
        .http
        .post(format!("{}/api/file/upload", mesh.edges[0].uri()))
        .multipart(upload)
        .send()
        .await
        .expect("upload");
    let upload_trace = header(&r, "x-trace-id").expect("the upload answer names its trace");
    let body: Value = r.json().await.expect("upload answer");
    let href = body["data"]["url"].as_str().expect("data.url").to_owned();

    let (status, trace, answer) = post_job(&mesh, &buffer(&href)).await;
    assert_eq!(status, 200, "{answer}");
    let trace = trace.expect("the answer names its trace in x-trace-id");
    assert_eq!(trace.len(), 32, "{trace}");

    let want = [
        "wpsmesh-edge: POST /api/wps/jobs",
        "wpsmesh-edge: json execute",
        "wpsmesh-edge: node choice",
        "wpsmesh-edge: wpsmesh.process.v1.ProcessService/Execute",
        "wpsmesh-node: wpsmesh.process.v1.ProcessService/Execute",
        "wpsmesh-node: input fetch",
        "wpsmesh-node: storage download",
        "wpsmesh-node: queue wait",
        "wpsmesh-node: algorithm run",
        "wpsmesh-node: output publish",
        "wpsmesh-node: storage upload",
        "wpsmesh-storage: wpsmesh.storage.v1.StorageService/Download",
        "wpsmesh-storage: wpsmesh.storage.v1.StorageService/Upload",
    ];
    let spans = collector
        .wait_for(EXPORTED, |spans| {
            let got = names(&in_trace(spans, &trace));
            want.iter().all(|w| got.contains(*w))
        })
        .await;
    let ours = in_trace(&spans, &trace);
    let got = names(&ours);
    for w in want {
        assert!(
            got.contains(w),
            "missing span {w:?}; the trace has {got:#?}"
        );
    }

    // One root, the edge's request span; every parent is a span of this trace.
    let ids: BTreeSet<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&&Span> = ours
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(
        (roots[0].service.as_str(), roots[0].name.as_str()),
        ("wpsmesh-edge", "POST /api/wps/jobs")
    );
    assert_eq!(roots[0].attributes["http.response.status_code"], "200");
    for s in &ours {
        assert!(
            s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_str()),
            "parent of {} ({}) is not in the trace",
            s.name,
            s.service
        );
    }
    // Everything the node did, and everything storage did outside the upload, is this trace.
    for s in &spans {
        match s.service.as_str() {
            "wpsmesh-node" => assert_eq!(s.trace_id, trace, "node span {} elsewhere", s.name),
            "wpsmesh-storage" => assert!(
                s.trace_id == trace || s.trace_id == upload_trace,
                "storage span {} in a third trace",
                s.name
            ),
            _ => {}
        }
    }

    // Log lines inside the node's spans name the trace.
    let node_log = mesh.nodes[0].log();
    assert!(
        node_log
            .lines()
            .any(|l| l.contains("job ran") && l.contains(&format!("trace_id={trace} span_id="))),
        "no node log line names trace {trace}:\n{node_log}"
    );

    let by_name: BTreeMap<&str, &&Span> = ours.iter().map(|s| (s.name.as_str(), s)).collect();
    let run = by_name["algorithm run"];
    assert_eq!(run.attributes["wps.process_id"], "native:buffer");
    let pid: u32 = run.attributes["process.pid"].parse().expect("worker pid");
    assert!(pid > 0);
    assert!(run.end_unix_nanos > run.start_unix_nanos, "{run:?}");
    // The worker's times sit inside the node's server span.
    let server = ours
        .iter()
        .find(|s| s.service == "wpsmesh-node" && s.kind == 2)
        .expect("node server span");
    assert!(
        server.start_unix_nanos <= run.start_unix_nanos
            && run.end_unix_nanos <= server.end_unix_nanos
    );
    assert_eq!(
        by_name["node choice"].attributes["node"],
        mesh.nodes[0].uri()
    );
    let fetch = by_name["input fetch"];
    assert_eq!(fetch.attributes["input"], "INPUT");
    assert_eq!(
        fetch.attributes["bytes"],
        std::fs::metadata(&*POINTS)
            .expect("points")
            .len()
            .to_string()
    );
    assert!(
        by_name["storage upload"].attributes["storage.bytes"]
            .parse::<u64>()
            .expect("bytes")
            > 0
    );

    // Storage's server spans last to the end of their streams and count the bytes moved.
    let served = |method: &str| {
        let name = format!("wpsmesh.storage.v1.StorageService/{method}");
        ours.iter()
            .find(|s| s.service == "wpsmesh-storage" && s.name == name)
            .unwrap_or_else(|| panic!("no {name} server span"))
    };
    let bytes = |span: &Span, key: &str| -> u64 {
        span.attributes
            .get(key)
            .unwrap_or_else(|| panic!("no {key} on {span:?}"))
            .parse()
            .expect("a byte count")
    };
    let download = served("Download");
    let points = std::fs::metadata(&*POINTS).expect("points").len();
    assert!(
        bytes(download, "rpc.response.bytes") > points,
        "the download span counts the whole stream: {download:?}"
    );
    assert_eq!(download.attributes["rpc.grpc.status_code"], "0");
    assert_ne!(download.status_code, 2, "{download:?}");
    assert!(bytes(served("Upload"), "rpc.request.bytes") > 0);
    // The edge's client span to the node counts the bytes both ways.
    let client = ours
        .iter()
        .find(|s| s.service == "wpsmesh-edge" && s.kind == 3 && s.name.ends_with("/Execute"))
        .expect("edge client span");
    assert!(bytes(client, "rpc.request.bytes") > 0, "{client:?}");
    assert!(bytes(client, "rpc.response.bytes") > 0, "{client:?}");

    // The worker's log lines of the run name its trace and the node span it ran under.
    let worker_line = format!(
        "run{{trace_id={trace} span_id={}}}: wpsmesh_worker: job done",
        run.parent_span_id
    );
    assert!(
        node_log.lines().any(|l| l.contains(&worker_line)),
        "no worker line {worker_line:?} relayed:\n{node_log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incoming_trace_context_is_continued_and_a_malformed_one_starts_a_new_trace() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let collector = Collector::start().await.expect("receiver");
    let mesh = mesh(&collector.endpoint(), &[]).await;
    let url = format!(
        "{}/api/wps?service=WPS&request=GetCapabilities",
        mesh.edges[0].uri()
    );
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = mesh
        .http
        .get(&url)
        .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("capabilities");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-trace-id").as_deref(), Some(caller));
    let r = mesh
        .http
        .get(&url)
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .await
        .expect("capabilities");
    assert_eq!(r.status(), 200, "a malformed traceparent is no error");
    let fresh = header(&r, "x-trace-id").expect("a new trace");
    assert_ne!(fresh, caller);
    let spans = collector
        .wait_for(EXPORTED, |spans| {
            !in_trace(spans, caller).is_empty() && !in_trace(spans, &fresh).is_empty()
        })
        .await;
    let continued = in_trace(&spans, caller);
    let root = continued
        .iter()
        .find(|s| s.name == "GET /api/wps")
        .expect("edge span in the caller's trace");
    assert_eq!(root.parent_span_id, "00f067aa0ba902b7");
    let new_root = in_trace(&spans, &fresh);
    assert!(
        new_root
            .iter()
            .any(|s| s.name == "GET /api/wps" && s.parent_span_id.is_empty()),
        "{new_root:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_async_job_run_is_linked_to_the_trace_of_its_submit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let collector = Collector::start().await.expect("receiver");
    let mesh = mesh(&collector.endpoint(), &[]).await;
    let href = mesh.upload(&POINTS).await;
    let mut body = buffer(&href);
    body["mode"] = json!("async");
    let (status, submit_trace, answer) = post_job(&mesh, &body).await;
    assert_eq!(status, 201, "{answer}");
    let submit_trace = submit_trace.expect("x-trace-id");
    let id = answer["jobID"].as_str().expect("jobID").to_owned();
    mesh.wait_job(0, &id, "succeeded", Duration::from_secs(60))
        .await;

    let spans = collector
        .wait_for(EXPORTED, |spans| {
            spans.iter().any(|s| s.name == "job run")
                && spans.iter().any(|s| s.name == "job queued")
                && spans.iter().any(|s| s.name == "algorithm run")
        })
        .await;
    let run = spans
        .iter()
        .find(|s| s.name == "job run" && s.attributes.get("job") == Some(&id))
        .unwrap_or_else(|| panic!("no job run span for {id}: {spans:#?}"));
    assert!(
        run.links.iter().any(|(trace, _)| *trace == submit_trace),
        "the claimed run links to the submit's trace {submit_trace}: {:?}",
        run.links
    );
    assert_ne!(run.trace_id, submit_trace, "the run is a trace of its own");
    let queued = spans
        .iter()
        .find(|s| s.name == "job queued")
        .expect("job queued span");
    assert_eq!(
        queued.trace_id, submit_trace,
        "the wait in the queue is in the submit's trace"
    );
    assert!(queued.end_unix_nanos >= queued.start_unix_nanos);
    let submit_ids: BTreeSet<&str> = in_trace(&spans, &submit_trace)
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    assert!(
        submit_ids.contains(queued.parent_span_id.as_str()),
        "{queued:?}"
    );
    let ran = spans
        .iter()
        .find(|s| s.name == "algorithm run")
        .expect("algorithm run");
    assert_eq!(
        ran.trace_id, run.trace_id,
        "the worker's run is in the job's run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_that_is_down_or_hangs_never_fails_or_slows_a_request() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_hung, hanging) = hanging_endpoint().expect("hanging endpoint");
    let down = down_endpoint();
    // The edge exports to a collector that never answers, with a tiny queue and an export
    // timeout far above any request's time; node and storage to one that is not there.
    let spec = MeshSpec::new(1)
        .env("OTEL_BSP_SCHEDULE_DELAY", "10")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "8")
        .env("OTEL_BSP_EXPORT_TIMEOUT", "30000")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &down);
    LazyLock::force(&POINTS);
    let mut mesh = Mesh::start(spec).await.expect("mesh starts");
    let edge = Launch::edge(
        mesh.dir(),
        "edge-hung",
        &mesh.storage.uri(),
        &[mesh.nodes[0].uri()],
    )
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &hanging)
    .env("OTEL_BSP_SCHEDULE_DELAY", "10")
    .env("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    .env("OTEL_BSP_EXPORT_TIMEOUT", "30000")
    .start()
    .await
    .expect("edge starts");
    let url = format!("{}/api/wps?service=WPS&request=GetCapabilities", edge.uri());
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let started = Instant::now();
        let r = mesh.http.get(&url).send().await.expect("capabilities");
        assert_eq!(r.status(), 200);
        assert!(header(&r, "x-trace-id").is_some());
        slowest = slowest.max(started.elapsed());
    }
    // An export blocking a request would hold it for the 30 s export timeout.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest request took {slowest:?}"
    );
    let href = mesh.upload(&POINTS).await;
    let started = Instant::now();
    let (status, _, answer) = post_job(&mesh, &buffer(&href)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(mesh.exited().is_empty(), "{:?}", mesh.exited());
    drop(edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_disabled_exports_nothing_while_the_same_calls_enabled_do() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("dir");
    let enabled = Collector::start().await.expect("receiver");
    let disabled = Collector::start().await.expect("receiver");
    let start = |name: &str, endpoint: String, off: bool| {
        let mut launch = Launch::storage(dir.path(), name)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
        if off {
            launch = launch.env("OTEL_SDK_DISABLED", "true");
        }
        launch.start()
    };
    let off = start("off", disabled.endpoint(), true)
        .await
        .expect("storage");
    let on = start("on", enabled.endpoint(), false)
        .await
        .expect("storage");
    let stat = |uri: String| async move {
        let channel = wpsmesh_runtime::grpc::channel(&uri).expect("channel");
        let client = wpsmesh_proto::storage::client::StorageClient::new(channel);
        let id = "0123456789abcdef0123456789abcdef".parse().expect("id");
        let e = client.stat(id).await.expect_err("no such object");
        assert!(e.is_not_found(), "{e}");
    };
    for _ in 0..3 {
        stat(off.uri()).await;
    }
    for _ in 0..3 {
        stat(on.uri()).await;
    }
    let got = enabled.wait_for(EXPORTED, |spans| spans.len() >= 3).await;
    assert!(
        got.iter()
            .filter(|s| s.name == "wpsmesh.storage.v1.StorageService/Stat")
            .count()
            >= 3,
        "positive control: {got:#?}"
    );
    assert!(
        got.iter()
            .all(|s| s.service == "wpsmesh-storage" && s.status_code == 2)
    );
    // The disabled one had its calls first and as many export rounds; give it 20 more.
    let nothing = disabled
        .wait_for(Duration::from_secs(1), |spans| !spans.is_empty())
        .await;
    assert!(
        nothing.is_empty(),
        "exported with OTEL_SDK_DISABLED=true: {nothing:#?}"
    );
    assert_eq!(disabled.exports(), 0);
}
