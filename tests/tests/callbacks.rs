//! End to end: job callbacks (OGC API - Processes `subscriber`) over real processes (redis-server,
//! storage, a node with one QGIS worker, an edge) and a receiver on loopback written here. The
//! node admits 127.0.0.1 by `[node.fetch] allow` and nothing else on loopback; nothing here sends
//! traffic to a non-loopback address: those URIs must be refused before any connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::Code;
use wpsmesh_proto::metadata::LOCATOR_KEY;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, Input, JobState, LiteralValue, Reference, StoredObject, SubmitRequest,
    Subscriber, input, reference,
};
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec, feature_count, object_of};
use wpsmesh_tests::{Launch, Service, raw_get};

static POINTS: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("callbacks");
    std::fs::create_dir_all(&dir).expect("data dir");
    data::derive(&dir, "points.geojson", data::POINTS_SQL)
});

/// One mesh at a time: two QGIS nodes on two cores would stretch every deadline.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Per-attempt timeout of the mesh's callbacks.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for a job or a callback.
const WAIT: Duration = Duration::from_secs(90);

async fn mesh() -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    let turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&POINTS);
    let spec = MeshSpec::new(1)
        .node_env("WPSMESH_NODE__FETCH__ALLOW", r#"["127.0.0.1"]"#)
        .node_env("WPSMESH_NODE__CALLBACKS__TIMEOUT", "5s")
        .node_env("WPSMESH_NODE__CALLBACKS__RETRIES", "2")
        .node_env("WPSMESH_NODE__CALLBACKS__BACKOFF", "200ms");
    (turn, Mesh::start(spec).await.expect("mesh starts"))
}

// ---------------------------------------------------------------------------------------------
// The receiver: records every POST; `/hang/...` never answers, `/flaky/...` answers 500 the
// first time, everything else 200.

#[derive(Debug, Clone)]
struct Post {
    path: String,
    body: Value,
    at: Instant,
}

struct Receiver {
    addr: SocketAddr,
    posts: mpsc::UnboundedReceiver<Post>,
    /// Received but not yet waited for.
    seen: Vec<Post>,
}

#[derive(Clone)]
struct Recorder {
    posts: mpsc::UnboundedSender<Post>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

async fn record(
    State(r): State<Recorder>,
    UrlPath(path): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let path = format!("/{path}");
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = r.posts.send(Post {
        path: path.clone(),
        body,
        at: Instant::now(),
    });
    let hits = {
        let mut hits = r.hits.lock().expect("hits");
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    if path.starts_with("/hang/") {
        std::future::pending::<()>().await;
    }
    if path.starts_with("/flaky/") && hits == 1 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let (tx, posts) = mpsc::unbounded_channel();
        let recorder = Recorder {
            posts: tx,
            hits: Arc::default(),
        };
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(recorder);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            posts,
            seen: Vec::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The first POST to `path` not waited for yet, waiting up to [`WAIT`] for it.
    async fn wait(&mut self, path: &str) -> Post {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.seen.iter().position(|p| p.path == path) {
                return self.seen.remove(i);
            }
            match tokio::time::timeout_at(deadline, self.posts.recv()).await {
                Ok(Some(post)) => self.seen.push(post),
                _ => panic!(
                    "no POST to {path} within {WAIT:?}; received {:?}",
                    self.seen.iter().map(|p| &p.path).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Every POST received so far, waited for or not, is taken in; those to `path` not waited.
    fn pending(&mut self, path: &str) -> usize {
        while let Ok(post) = self.posts.try_recv() {
            self.seen.push(post);
        }
        self.seen.iter().filter(|p| p.path == path).count()
    }
}

// ---------------------------------------------------------------------------------------------
// Requests over gRPC, straight to the node.

fn subscriber(
    m: &Mesh,
    success: Option<String>,
    progress: Option<String>,
    failed: Option<String>,
) -> Subscriber {
    Subscriber {
        success_uri: success.unwrap_or_default(),
        in_progress_uri: progress.unwrap_or_default(),
        failed_uri: failed.unwrap_or_default(),
        base_url: m.edges[0].uri(),
    }
}

/// native:buffer (0.5) of `source`, with `subscriber`.
fn buffer(source: reference::Source, subscriber: Option<Subscriber>) -> SubmitRequest {
    let execute = ExecuteRequest {
        process_id: "native:buffer".into(),
        inputs: vec![
            Input {
                id: "INPUT".into(),
                value: Some(input::Value::Reference(Reference {
                    source: Some(source),
                    format: None,
                })),
            },
            Input {
                id: "DISTANCE".into(),
                value: Some(input::Value::Literal(LiteralValue {
                    value: "0.5".into(),
                    ..Default::default()
                })),
            },
        ],
        subscriber,
        ..Default::default()
    };
    SubmitRequest {
        execute: Some(execute),
    }
}

/// The stored points, uploaded through the edge.
async fn points(m: &Mesh) -> reference::Source {
    let href = m.upload(&POINTS).await;
    reference::Source::Object(StoredObject {
        id: object_of(&href),
        extension: "geojson".into(),
    })
}

async fn submit(m: &Mesh, request: SubmitRequest) -> Result<String, tonic::Status> {
    let answer = m.node_client(0).submit(request).await?;
    Ok(answer.into_inner().job.expect("job").job_id)
}

async fn succeeded(m: &Mesh, id: &str) {
    m.wait_status(0, id, WAIT, "successful", |s| {
        s.state() == JobState::Successful
    })
    .await;
}

/// The node's metrics text.
async fn metrics(node: &Service) -> String {
    let base = format!("http://{}", node.metrics_addr());
    let (status, text) = raw_get(&base, "/metrics").await.expect("metrics");
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of the sample `line` (labels included) in metrics `text`; 0 when absent.
fn sample(text: &str, line: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_succeeded_and_failed_jobs_call_back_with_retries_and_no_delay() {
    let (_turn, m) = mesh().await;
    let mut rx = Receiver::start().await;
    let source = points(&m).await;

    // In progress, then success: a running statusInfo, then the results under base_url.
    let sub = subscriber(
        &m,
        Some(rx.url("/a/success")),
        Some(rx.url("/a/progress")),
        Some(rx.url("/a/failed")),
    );
    let id = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    let running = rx.wait("/a/progress").await;
    assert_eq!(running.body["jobID"], id.as_str(), "{}", running.body);
    assert_eq!(running.body["status"], "running", "{}", running.body);
    assert_eq!(running.body["processID"], "native:buffer");
    let job_url = format!("{}/jobs/{id}", m.edges[0].uri());
    assert_eq!(running.body["links"][0]["href"], job_url.as_str());
    let results = rx.wait("/a/success").await;
    assert!(running.at <= results.at, "running came first");
    let href = results.body["OUTPUT"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no OUTPUT href in {}", results.body));
    assert!(
        href.starts_with(&format!("{}/api/file/retrieve/", m.edges[0].uri())),
        "{href}"
    );
    let (status, bytes) = m.fetch(0, href).await;
    assert_eq!(status, 200, "{href}");
    assert_eq!(feature_count(&bytes), 240);
    succeeded(&m, &id).await;

    // A failing job (its input answers 405: the receiver takes only POSTs): the failed statusInfo with the failure message.
    let missing = reference::Source::Href(rx.url("/nothing/here.geojson"));
    let sub = subscriber(
        &m,
        Some(rx.url("/b/success")),
        None,
        Some(rx.url("/b/failed")),
    );
    let failing = submit(&m, buffer(missing, Some(sub)))
        .await
        .expect("submit");
    let failed = rx.wait("/b/failed").await;
    assert_eq!(failed.body["jobID"], failing.as_str(), "{}", failed.body);
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    let message = failed.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("INPUT"), "{}", failed.body);
    m.wait_status(0, &failing, WAIT, "failed", |s| {
        s.state() == JobState::Failed
    })
    .await;

    // A receiver answering 500 then 200 gets the retry.
    let sub = subscriber(&m, Some(rx.url("/flaky/c")), None, None);
    let flaky = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    let first = rx.wait("/flaky/c").await;
    let second = rx.wait("/flaky/c").await;
    assert_eq!(first.body, second.body, "the same document again");
    assert!(second.body["OUTPUT"]["href"].is_string(), "{}", second.body);
    succeeded(&m, &flaky).await;

    // A receiver that hangs on the in-progress POST: the job completes meanwhile (long before
    // that POST times out), and its success callback is not held up behind the hung POST's
    // retries (which would take 3 timeouts): at most one timeout, when the job was so quick
    // that its running status is told only as it ends.
    let sub = subscriber(
        &m,
        Some(rx.url("/d/success")),
        Some(rx.url("/hang/d")),
        None,
    );
    let hung = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    let hanging = rx.wait("/hang/d").await;
    succeeded(&m, &hung).await;
    let completed = hanging.at.elapsed();
    assert!(
        completed < CALLBACK_TIMEOUT,
        "job completed {completed:?} after the hung POST began"
    );
    let done = rx.wait("/d/success").await;
    let held = done.at.duration_since(hanging.at);
    assert!(
        held < CALLBACK_TIMEOUT + Duration::from_secs(3),
        "success came {held:?} after the hung POST began"
    );

    // Nothing was sent where it should not have been; every outcome is counted.
    assert_eq!(rx.pending("/a/failed"), 0);
    assert_eq!(rx.pending("/b/success"), 0);
    let text = metrics(&m.nodes[0]).await;
    let count = |kind: &str, outcome: &str| {
        sample(
            &text,
            &format!(r#"wpsmesh_node_callbacks_total{{kind="{kind}",outcome="{outcome}"}}"#),
        )
    };
    assert!(count("success", "delivered") >= 3.0, "{text}");
    assert!(count("failed", "delivered") >= 1.0, "{text}");
    assert!(count("in_progress", "delivered") >= 1.0, "{text}");
    assert!(
        count("in_progress", "dropped") + count("in_progress", "failed") >= 1.0,
        "the hung in-progress POST is given up or failed: {text}"
    );
}

/// The number of job records and the queue's length in the mesh's Redis.
fn store_size(m: &Mesh) -> (String, String) {
    let jobs = m.redis.command(&[
        "EVAL",
        "return #redis.call('keys', ARGV[1])",
        "0",
        "{wpsmesh}:job:*",
    ]);
    let queue = m.redis.command(&["XLEN", "{wpsmesh}:queue"]);
    (jobs, queue)
}

/// `status` is INVALID_ARGUMENT about `subscriber.successUri`, with `reason` in its message.
fn refused(status: &tonic::Status, reason: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let locator = status
        .metadata()
        .get(LOCATOR_KEY)
        .and_then(|v| v.to_str().ok());
    assert_eq!(locator, Some("subscriber.successUri"), "{status:?}");
    assert!(
        status.message().contains(reason),
        "{reason:?} in {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callback_uris_fail_the_request_at_once_and_queue_nothing() {
    let (_turn, m) = mesh().await;
    let mut rx = Receiver::start().await;
    let source = points(&m).await;
    let port = rx.addr.port();
    let with = |uri: String| buffer(source.clone(), Some(subscriber(&m, Some(uri), None, None)));

    let before = store_size(&m);
    for (uri, reason) in [
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "address 169.254.169.254 is not allowed (cloud metadata)",
        ),
        (
            format!("http://127.0.0.2:{port}/cb"),
            "address 127.0.0.2 is not allowed (loopback)",
        ),
        (
            format!("http://[::1]:{port}/cb"),
            "address ::1 is not allowed (loopback)",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
            "cloud metadata service",
        ),
    ] {
        let err = submit(&m, with(uri.clone())).await.expect_err(&uri);
        refused(&err, reason);
        // A synchronous Execute is refused the same way, before it runs.
        let execute = with(uri.clone()).execute.expect("execute");
        let err = m.node_client(0).execute(execute).await.expect_err(&uri);
        refused(&err, reason);
    }
    assert_eq!(store_size(&m), before, "nothing recorded or queued");

    // The positive control: the same request with an admitted URI is queued and called back.
    let id = submit(&m, with(rx.url("/ok"))).await.expect("admitted");
    assert_ne!(store_size(&m).0, before.0, "the admitted job is recorded");
    let results = rx.wait("/ok").await;
    assert!(
        results.body["OUTPUT"]["href"].is_string(),
        "{}",
        results.body
    );
    succeeded(&m, &id).await;

    // 20 refused and 20 admitted submits at once: each refused one refused, each admitted one
    // run and called back.
    let before = store_size(&m);
    let calls = (0..40).map(|i| {
        let uri = if i % 4 == 0 {
            format!("http://169.254.169.254/{i}")
        } else if i % 4 == 2 {
            format!("http://127.0.0.2:{port}/many/{i}")
        } else {
            rx.url(&format!("/many/{i}"))
        };
        let request = with(uri);
        let m = &m;
        async move { (i, submit(m, request).await) }
    });
    let answers = futures::future::join_all(calls).await;
    let mut admitted = Vec::new();
    for (i, answer) in answers {
        match answer {
            Err(e) if i % 2 == 0 => refused(&e, "is not allowed"),
            Ok(id) if i % 2 == 1 => admitted.push((i, id)),
            other => panic!("submit {i}: {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 20);
    for (i, id) in &admitted {
        let post = rx.wait(&format!("/many/{i}")).await;
        assert!(post.body["OUTPUT"]["href"].is_string(), "{}", post.body);
        succeeded(&m, id).await;
    }
    let jobs: usize = store_size(&m).0.trim().parse().expect("job count");
    let was: usize = before.0.trim().parse().expect("job count");
    assert_eq!(jobs, was + 20, "only the admitted jobs are recorded");
    let text = metrics(&m.nodes[0]).await;
    let refusals = sample(
        &text,
        r#"wpsmesh_node_callbacks_total{kind="success",outcome="refused"}"#,
    );
    assert_eq!(refusals, 28.0, "{text}");

    // A node without the allow rule refuses loopback itself, the request being otherwise the
    // same; without a subscriber that node takes it.
    let strict = Launch::node(m.dir(), "strict", &m.storage.uri())
        .start()
        .await
        .expect("strict node");
    let channel = wpsmesh_runtime::grpc::channel(&strict.uri()).expect("channel");
    let mut client =
        wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient::new(
            channel,
        );
    let err = client
        .submit(with(rx.url("/strict")))
        .await
        .expect_err("loopback refused without the allow rule");
    refused(&err, "address 127.0.0.1 is not allowed (loopback)");
    let err = client
        .submit(with(format!("http://localhost:{port}/strict")))
        .await
        .expect_err("loopback by name refused without the allow rule");
    refused(
        &err,
        "host localhost resolves only to addresses that are not allowed",
    );
    client
        .submit(buffer(source.clone(), None))
        .await
        .expect("the same job without callbacks");
    assert_eq!(rx.pending("/strict"), 0);
}
