//! What the callback tests share: the points, a mesh (Redis, storage, one node with a QGIS
//! worker, an edge) one at a time, with or without the node's `[node.fetch] allow` rule for
//! 127.0.0.1, a callback receiver on loopback, the node's metrics and store, and OGC API
//! executions through the edge (over `crate::ogcapi`, the OGC API tests' common module).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec, feature_count};

pub use crate::ogcapi::listed;
use crate::ogcapi::{Answer, execute};
use wpsmesh_tests::{Service, raw_get};

pub static POINTS: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("callbacks");
    std::fs::create_dir_all(&dir).expect("data dir");
    data::derive(&dir, "points.geojson", data::POINTS_SQL)
});

/// One mesh at a time: two QGIS nodes on two cores would stretch every deadline.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Per-attempt timeout of the mesh's callbacks.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for a job or a callback.
pub const WAIT: Duration = Duration::from_secs(90);
/// A callback URI at the cloud metadata address, and why it is refused.
pub const METADATA: (&str, &str) = (
    "http://169.254.169.254/latest/meta-data/",
    "address 169.254.169.254 is not allowed (cloud metadata)",
);

/// A mesh of one node and one edge; the node admits 127.0.0.1 when `allow_loopback`.
pub async fn mesh(allow_loopback: bool) -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    let turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&POINTS);
    let mut spec = MeshSpec::new(1)
        .node_env("WPSMESH_NODE__CALLBACKS__TIMEOUT", "5s")
        .node_env("WPSMESH_NODE__CALLBACKS__RETRIES", "2")
        .node_env("WPSMESH_NODE__CALLBACKS__BACKOFF", "200ms");
    if allow_loopback {
        spec = spec.node_env("WPSMESH_NODE__FETCH__ALLOW", r#"["127.0.0.1"]"#);
    }
    (turn, Mesh::start(spec).await.expect("mesh starts"))
}

// ---------------------------------------------------------------------------------------------
// The receiver: records every POST; `/hang/...` never answers, `/flaky/...` answers 500 the
// first time, everything else 200.

#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub body: Value,
    pub at: Instant,
}

pub struct Receiver {
    pub addr: SocketAddr,
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
    pub async fn start() -> Self {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The first POST to `path` not waited for yet, waiting up to [`WAIT`] for it.
    pub async fn wait(&mut self, path: &str) -> Post {
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
    pub fn pending(&mut self, path: &str) -> usize {
        while let Ok(post) = self.posts.try_recv() {
            self.seen.push(post);
        }
        self.seen.iter().filter(|p| p.path == path).count()
    }
}

// ---------------------------------------------------------------------------------------------
// The node's metrics and store.

/// The node's metrics text.
pub async fn metrics(node: &Service) -> String {
    let base = format!("http://{}", node.metrics_addr());
    let (status, text) = raw_get(&base, "/metrics").await.expect("metrics");
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of the sample `line` (labels included) in metrics `text`; 0 when absent.
pub fn sample(text: &str, line: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// How many success callbacks node 0 has refused.
pub async fn refusals(m: &Mesh) -> f64 {
    sample(
        &metrics(&m.nodes[0]).await,
        r#"wpsmesh_node_callbacks_total{kind="success",outcome="refused"}"#,
    )
}

/// The number of job records and the queue's length in the mesh's Redis.
pub fn store_size(m: &Mesh) -> (String, String) {
    let jobs = m.redis.command(&[
        "EVAL",
        "return #redis.call('keys', ARGV[1])",
        "0",
        "{wpsmesh}:job:*",
    ]);
    let queue = m.redis.command(&["XLEN", "{wpsmesh}:queue"]);
    (jobs, queue)
}

// ---------------------------------------------------------------------------------------------
// Through the edge: `POST /processes/native:buffer/execution` with a `subscriber`.

pub const ASYNC: &[(&str, &str)] = &[("Prefer", "respond-async")];

/// The OGC API execute body of native:buffer (0.5) of the stored GeoJSON at `href`, the output
/// by reference, with `subscriber` (Null for none).
pub fn ogc_buffer(href: &str, subscriber: Value) -> Value {
    json!({
        "inputs": {"INPUT": {"href": href, "type": "application/geo+json"}, "DISTANCE": 0.5},
        "outputs": {"OUTPUT": {"format": {"mediaType": "application/geo+json"}, "transmissionMode": "reference"}},
        "subscriber": subscriber,
    })
}

/// Fails unless `a` is a 201 whose Location under the edge names the job of its statusInfo;
/// that job's id.
pub fn created(m: &Mesh, a: &Answer) -> String {
    let info = a.json();
    assert_eq!(a.status, 201, "{info}");
    let id = info["jobID"].as_str().unwrap_or_else(|| panic!("{info}"));
    let location = a.header("location").expect("Location");
    assert_eq!(location, format!("{}/jobs/{id}", m.edges[0].uri()));
    id.to_owned()
}

/// Fails unless `a` is a 400 problem about `subscriber.successUri` giving `reason`.
pub fn refused_by_edge(a: &Answer, reason: &str) {
    let body = a.problem(400, reason);
    assert_eq!(body["parameter"], "subscriber.successUri", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("subscriber.successUri"), "{body}");
}

/// Fails unless the results document `doc` links OUTPUT under the edge to the 240 buffers.
pub async fn buffered(m: &Mesh, doc: &Value) {
    let href = doc["OUTPUT"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no OUTPUT href in {doc}"));
    let files = format!("{}/api/file/retrieve/", m.edges[0].uri());
    assert!(href.starts_with(&files), "{href}");
    let (status, bytes) = m.fetch(0, href).await;
    assert_eq!(status, 200, "{href}");
    assert_eq!(feature_count(&bytes), 240, "{href}");
}

/// Each of `cases` (a successUri and why it is refused), executed through the edge
/// asynchronously and synchronously, is a 400 problem naming it; no job is listed, recorded
/// or queued.
pub async fn refused_through_edge(m: &Mesh, href: &str, cases: &[(String, &str)]) {
    let (jobs, store) = (listed(m).await, store_size(m));
    for (uri, reason) in cases {
        let body = ogc_buffer(href, json!({ "successUri": uri }));
        refused_by_edge(&execute(m, "native:buffer", &body, ASYNC).await, reason);
        refused_by_edge(&execute(m, "native:buffer", &body, &[]).await, reason);
    }
    assert_eq!(listed(m).await, jobs, "no job listed");
    assert_eq!(store_size(m), store, "nothing recorded or queued");
}

/// Fails unless job `id` told `{prefix}/progress` it is running (under the edge), then told
/// `{prefix}/success` its results (see [`buffered`]); the job's URL under the edge.
pub async fn running_then_results(m: &Mesh, rx: &mut Receiver, prefix: &str, id: &str) -> String {
    let running = rx.wait(&format!("{prefix}/progress")).await;
    assert_eq!(running.body["status"], "running", "{}", running.body);
    assert_eq!(running.body["jobID"], id, "{}", running.body);
    assert_eq!(running.body["processID"], "native:buffer");
    let job_url = format!("{}/jobs/{id}", m.edges[0].uri());
    assert_eq!(running.body["links"][0]["href"], job_url.as_str());
    let results = rx.wait(&format!("{prefix}/success")).await;
    assert!(running.at <= results.at, "running came first");
    buffered(m, &results.body).await;
    job_url
}
