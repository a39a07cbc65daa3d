//! End to end: sampling decided when a request starts (real storage, node with a QGIS worker,
//! edge and Redis as `wpsmesh` processes, exporting to an OTLP receiver in this process). A
//! request not sampled exports nothing from any service, yet answers with its trace id and its
//! log lines name it; the caller's `traceparent` flag is followed across every hop; a mixed
//! load exports exactly the sampled requests' traces, each whole, and no stray root.
//!
//! Nothing here waits for an absence: every check that something was not exported comes after
//! a sampled request made later has arrived from every service (each service exports its spans
//! in the order they end, and a request's spans end before its answer).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::json;
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec};
use wpsmesh_tests::otlp::{Collector, Span};

static POINTS: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace_sampling");
    std::fs::create_dir_all(&dir).expect("data dir");
    data::derive(&dir, "points.geojson", data::POINTS_SQL)
});

/// One mesh at a time: each starts a QGIS worker.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Long enough for a mesh's spans to be exported (batches go out every 100 ms).
const EXPORTED: Duration = Duration::from_secs(20);

/// The spans a synchronous Execute makes in every service.
const EXECUTE: [&str; 6] = [
    "wpsmesh-edge: POST /api/wps/jobs",
    "wpsmesh-edge: wpsmesh.process.v1.ProcessService/Execute",
    "wpsmesh-node: wpsmesh.process.v1.ProcessService/Execute",
    "wpsmesh-node: algorithm run",
    "wpsmesh-storage: wpsmesh.storage.v1.StorageService/Download",
    "wpsmesh-storage: wpsmesh.storage.v1.StorageService/Upload",
];

/// A mesh of one node exporting to `collector` every 100 ms, sampling new traces at `ratio`
/// (parent-based); the node logs its worker's lines.
async fn mesh(collector: &Collector, ratio: &str) -> Mesh {
    LazyLock::force(&POINTS);
    let spec = MeshSpec::new(1)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", ratio)
        .env("RUST_LOG", "info,wpsmesh_node::pool::process=debug");
    Mesh::start(spec).await.expect("mesh starts")
}

/// A W3C `traceparent` for trace `n` (a caller's), sampled or not.
fn traceparent(n: u32, sampled: bool) -> (String, String) {
    let trace = format!("{n:08x}aaaabbbbccccddddeeeeffff");
    let header = format!(
        "00-{trace}-00f067aa0ba902b7-{}",
        if sampled { "01" } else { "00" }
    );
    (trace, header)
}

/// An answer's status, `x-trace-id` and `traceparent`.
struct Answer {
    status: u16,
    trace: String,
    traceparent: String,
}

async fn send(request: reqwest::RequestBuilder, traceparent: Option<&str>) -> Answer {
    let request = match traceparent {
        Some(value) => request.header("traceparent", value),
        None => request,
    };
    let r = request.send().await.expect("request");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = Answer {
        status: r.status().as_u16(),
        trace: header("x-trace-id"),
        traceparent: header("traceparent"),
    };
    r.bytes().await.expect("body");
    answer
}

/// A synchronous native:buffer Execute of `href` through edge 0.
async fn execute(mesh: &Mesh, href: &str, traceparent: Option<&str>) -> Answer {
    let mut job = wpsmesh_tests::mesh::buffer_job(href);
    job["outputs"] = json!({"OUTPUT": {"transmission": "reference"}});
    let url = format!("{}/api/wps/jobs", mesh.edges[0].uri());
    send(mesh.http.post(url).json(&job), traceparent).await
}

async fn capabilities(mesh: &Mesh, traceparent: Option<&str>) -> Answer {
    let url = format!(
        "{}/api/wps?service=WPS&request=GetCapabilities",
        mesh.edges[0].uri()
    );
    send(mesh.http.get(url), traceparent).await
}

fn names(spans: &[Span], trace: &str) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| format!("{}: {}", s.service, s.name))
        .collect()
}

/// Waits until the Execute of `trace` has arrived from every service.
async fn execute_exported(collector: &Collector, trace: &str) -> Vec<Span> {
    let spans = collector
        .wait_for(EXPORTED, |spans| {
            let got = names(spans, trace);
            EXECUTE.iter().all(|w| got.contains(*w))
        })
        .await;
    let got = names(&spans, trace);
    for w in EXECUTE {
        assert!(got.contains(w), "missing {w:?} in {got:#?}");
    }
    spans
}

/// Every trace in `spans` has one root (a span whose parent is not in the trace), the edge's
/// request span, whose parent is the caller's span when the caller named one.
fn whole_traces(spans: &[Span], callers: &BTreeSet<String>) {
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    for trace in traces {
        let ours: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
        let ids: BTreeSet<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();
        let roots: Vec<&&Span> = ours
            .iter()
            .filter(|s| !ids.contains(s.parent_span_id.as_str()))
            .collect();
        assert_eq!(roots.len(), 1, "one root in {trace}: {roots:#?}");
        assert_eq!(roots[0].service, "wpsmesh-edge", "{roots:#?}");
        let parent = if callers.contains(trace) {
            "00f067aa0ba902b7"
        } else {
            ""
        };
        assert_eq!(roots[0].parent_span_id, parent, "{roots:#?}");
    }
}

fn assert_unsampled(answer: &Answer, trace: &str) {
    assert_eq!(answer.status, 200);
    assert_eq!(answer.trace, trace);
    assert!(
        answer.traceparent.starts_with(&format!("00-{trace}-"))
            && answer.traceparent.ends_with("-00"),
        "{}",
        answer.traceparent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_ratio_zero_no_service_exports_yet_answers_and_logs_name_the_trace() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let collector = Collector::start().await.expect("receiver");
    let mesh = mesh(&collector, "0").await;
    // Not sampled: the upload (edge and storage), an Execute without a traceparent (a new trace
    // at ratio 0) and one whose caller did not sample.
    let href = mesh.upload(&POINTS).await;
    let fresh = execute(&mesh, &href, None).await;
    assert_eq!(fresh.trace.len(), 32, "the answer names its trace");
    assert_unsampled(&fresh, &fresh.trace.clone());
    let (declined, header) = traceparent(1, false);
    assert_unsampled(&execute(&mesh, &href, Some(&header)).await, &declined);

    // The node's log lines, and its worker's, name both traces.
    let node_log = mesh.nodes[0].log();
    for trace in [&fresh.trace, &declined] {
        assert!(
            node_log
                .lines()
                .any(|l| l.contains("job ran") && l.contains(&format!("trace_id={trace} "))),
            "no node log line names trace {trace}:\n{node_log}"
        );
        assert!(
            node_log
                .lines()
                .any(|l| l.contains(&format!("run{{trace_id={trace} span_id="))),
            "no worker line names trace {trace}:\n{node_log}"
        );
    }

    // Positive control, after them: a caller that sampled is followed, through every service.
    let (sampled, header) = traceparent(2, true);
    let control = execute(&mesh, &href, Some(&header)).await;
    assert_eq!(control.trace, sampled);
    assert!(
        control.traceparent.ends_with("-01"),
        "{}",
        control.traceparent
    );
    let spans = execute_exported(&collector, &sampled).await;
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traces,
        BTreeSet::from([sampled.as_str()]),
        "only the sampled request is exported, from any service: {spans:#?}"
    );
    whole_traces(&spans, &BTreeSet::from([sampled.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_load_exports_exactly_the_sampled_requests_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let collector = Collector::start().await.expect("receiver");
    // Ratio 1: every new trace is sampled (as before); callers that did not sample are not.
    let mesh = mesh(&collector, "1").await;
    let href = mesh.upload(&POINTS).await;

    let mut calls = tokio::task::JoinSet::new();
    let mesh = std::sync::Arc::new(mesh);
    for n in 0..48u32 {
        let mesh = mesh.clone();
        let href = href.clone();
        calls.spawn(async move {
            // A third without a traceparent, a third each sampled and declined by the caller.
            let caller = (n % 3 != 0).then(|| traceparent(100 + n, n % 3 == 1));
            let header = caller.as_ref().map(|(_, h)| h.as_str());
            let answer = if n % 8 == 0 {
                execute(&mesh, &href, header).await
            } else {
                capabilities(&mesh, header).await
            };
            assert_eq!(answer.status, 200);
            if let Some((trace, _)) = &caller {
                assert_eq!(&answer.trace, trace);
            }
            let sampled = answer.traceparent.ends_with("-01");
            assert_eq!(sampled, n % 3 != 2, "{n}: {}", answer.traceparent);
            (answer.trace, sampled, caller.is_some())
        });
    }
    let (mut sampled, mut declined, mut callers) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    while let Some(done) = calls.join_next().await {
        let (trace, was_sampled, from_caller) = done.expect("call");
        if from_caller {
            callers.insert(trace.clone());
        }
        if was_sampled {
            sampled.insert(trace);
        } else {
            declined.insert(trace);
        }
    }
    assert_eq!((sampled.len(), declined.len()), (32, 16));

    // The last request, sampled by its caller, arrives from every service after the others.
    let (last, header) = traceparent(999, true);
    assert_eq!(execute(&mesh, &href, Some(&header)).await.trace, last);
    sampled.insert(last.clone());
    callers.insert(last.clone());
    let spans = execute_exported(&collector, &last).await;
    // The harness's own requests (readiness, metrics) and the upload, sampled at ratio 1, are
    // traces of their own.
    let harness: BTreeSet<String> = spans
        .iter()
        .filter(|s| {
            ["GET /health", "GET /metrics"].contains(&s.name.as_str())
                || s.name.ends_with(" /api/file/upload")
        })
        .map(|s| s.trace_id.clone())
        .collect();
    assert!(!harness.is_empty(), "the upload is sampled at ratio 1");
    let requests: Vec<Span> = spans
        .into_iter()
        .filter(|s| !harness.contains(&s.trace_id))
        .collect();
    let exported: BTreeSet<String> = requests.iter().map(|s| s.trace_id.clone()).collect();
    let extra: Vec<&Span> = requests
        .iter()
        .filter(|s| !sampled.contains(&s.trace_id))
        .collect();
    let missing: Vec<&String> = sampled.difference(&exported).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "exactly the sampled requests' traces: not sampled {extra:#?}, missing {missing:?}"
    );
    whole_traces(&requests, &callers);
    // The Executes whose callers sampled (n = 16, 40) are whole across services.
    for n in [16u32, 40] {
        let (trace, _) = traceparent(100 + n, true);
        let got = names(&requests, &trace);
        assert!(
            EXECUTE.iter().all(|w| got.contains(*w)),
            "{trace}: {got:#?}"
        );
    }
}
