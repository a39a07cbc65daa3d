//! A distributed mesh of real processes for job tests: one redis-server, one `wpsmesh storage`
//! (local directory), N `wpsmesh node` sharing the Redis job store (one worker each) and M
//! `wpsmesh edge` over chosen nodes, plus the HTTP and gRPC calls the tests make on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tonic::transport::Channel;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, GetStatusRequest, Input, JobStatus, LiteralValue, Reference, input, reference,
};

use crate::{Launch, RedisServer, Service, free_port, object_ids};

/// What to start.
#[derive(Debug, Clone)]
pub struct MeshSpec {
    pub nodes: usize,
    /// For each edge, the indexes of the nodes it knows (static discovery).
    pub edges: Vec<Vec<usize>>,
    /// Extra node settings, e.g. `("WPSMESH_NODE__JOBS__TTL", "3s")`.
    pub node_env: Vec<(String, String)>,
    /// Settings for every process (storage, nodes, edges), e.g. `OTEL_*`.
    pub env: Vec<(String, String)>,
}

impl MeshSpec {
    /// `nodes` nodes and one edge over all of them.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            edges: vec![(0..nodes).collect()],
            node_env: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn edges(mut self, edges: Vec<Vec<usize>>) -> Self {
        self.edges = edges;
        self
    }

    pub fn node_env(mut self, key: &str, value: &str) -> Self {
        self.node_env.push((key.into(), value.into()));
        self
    }

    /// A setting for every process of the mesh.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Lease of the nodes' running jobs in a [`Mesh`].
pub const LEASE: Duration = Duration::from_secs(2);
/// How long a dismissed job may take to stop before its worker is killed, in a [`Mesh`].
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// The running mesh; every process is killed on drop.
pub struct Mesh {
    pub redis: RedisServer,
    pub storage: Service,
    pub nodes: Vec<Service>,
    pub edges: Vec<Service>,
    pub http: reqwest::Client,
    storage_root: PathBuf,
    dir: tempfile::TempDir,
}

impl Mesh {
    /// Starts everything and waits until each edge has all its nodes healthy. Nodes use the
    /// Redis store with a [`LEASE`] lease, a 500 ms sweep and a [`CANCEL_GRACE`], then
    /// `spec.node_env`.
    pub async fn start(spec: MeshSpec) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let redis = RedisServer::start()?;
        let everywhere = |mut launch: Launch| {
            for (k, v) in &spec.env {
                launch = launch.env(k.clone(), v);
            }
            launch
        };
        let storage = everywhere(Launch::storage(dir.path(), "storage"))
            .start()
            .await?;
        let storage_root = dir.path().join("storage");
        let edge_ports: Vec<u16> = spec.edges.iter().map(|_| free_port()).collect();
        let edge_urls: Vec<String> = edge_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let lease = format!("{}s", LEASE.as_secs());
        let grace = format!("{}s", CANCEL_GRACE.as_secs());
        let nodes = futures::future::try_join_all((0..spec.nodes).map(|i| {
            let mut launch = Launch::node(dir.path(), &format!("node-{i}"), &storage.uri())
                .env("WPSMESH_NODE__JOBS__STORE", "redis")
                .env("WPSMESH_NODE__JOBS__REDIS_URL", redis.url())
                .env("WPSMESH_NODE__JOBS__LEASE", &lease)
                .env("WPSMESH_NODE__JOBS__SWEEP_INTERVAL", "500ms")
                .env("WPSMESH_NODE__POOL__CANCEL_GRACE", &grace);
            for (k, v) in spec.env.iter().chain(&spec.node_env) {
                launch = launch.env(k.clone(), v);
            }
            launch.start()
        }))
        .await?;
        // Every edge serves the same storage: a file href through any of them is a stored object.
        let hosts: Vec<String> = edge_urls.iter().map(|u| format!("{u:?}")).collect();
        let hosts = format!("[{}]", hosts.join(", "));
        let edges = futures::future::try_join_all(spec.edges.iter().enumerate().map(|(i, of)| {
            let uris: Vec<String> = of.iter().map(|&n| nodes[n].uri()).collect();
            everywhere(Launch::edge(
                dir.path(),
                &format!("edge-{i}"),
                &storage.uri(),
                &uris,
            ))
            .port(edge_ports[i])
            .env("WPSMESH_EDGE__PUBLIC_URL", &edge_urls[i])
            .env("WPSMESH_EDGE__FILE_HOSTS", &hosts)
            .start()
        }))
        .await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            redis,
            storage,
            nodes,
            edges,
            http,
            storage_root,
            dir,
        })
    }

    /// A scratch directory that lives as long as the mesh (logs are in it too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process ids of the storage, the nodes and the edges, in that order.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.storage)
            .chain(&self.nodes)
            .chain(&self.edges)
            .map(Service::pid)
            .collect()
    }

    /// Names of the services (storage, nodes, edges) that have exited.
    pub fn exited(&mut self) -> Vec<String> {
        std::iter::once(&mut self.storage)
            .chain(self.nodes.iter_mut())
            .chain(self.edges.iter_mut())
            .filter_map(|s| (!s.is_running()).then(|| s.name().to_owned()))
            .collect()
    }

    /// Ids of the objects in storage now.
    pub fn objects(&self) -> BTreeSet<String> {
        object_ids(&self.storage_root)
    }

    /// The node a job record names (`127.0.0.1:PORT`), by index.
    pub fn node_index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.addr() == name)
            .unwrap_or_else(|| {
                let names: Vec<String> = self.nodes.iter().map(Service::addr).collect();
                panic!("job record names node {name:?}, which is none of {names:?}")
            })
    }

    /// A gRPC client of node `i`.
    pub fn node_client(&self, i: usize) -> ProcessServiceClient<Channel> {
        let channel = wpsmesh_runtime::grpc::channel(&self.nodes[i].uri()).expect("node channel");
        ProcessServiceClient::new(channel)
    }

    /// GetStatus of job `id`, asked of node `i` directly.
    pub async fn grpc_status(&self, i: usize, id: &str) -> Result<JobStatus, tonic::Status> {
        let mut client = self.node_client(i);
        let call = client.get_status(GetStatusRequest { job_id: id.into() });
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(answer) => answer.map(|r| r.into_inner().job.unwrap_or_default()),
            Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 10 s")),
        }
    }

    /// Polls job `id` at node `i` until `done` accepts its status; fails after `timeout` with
    /// `what` and the last answer.
    pub async fn wait_status(
        &self,
        i: usize,
        id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&JobStatus) -> bool,
    ) -> JobStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.grpc_status(i, id).await;
            if let Ok(status) = &answer
                && done(status)
            {
                return status.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for job {id} to be {what}; last answer of {}: {answer:?}",
                self.nodes[i].name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uploads `path` through edge 0's file API; the href nodes read straight from storage.
    pub async fn upload(&self, path: &Path) -> String {
        upload(&self.http, &self.edges[0].uri(), path).await
    }

    /// `POST /api/wps/jobs` with `"mode": "async"` through edge `e`: expects 201 with a
    /// Location naming the job, returns the job id and the body.
    pub async fn submit(&self, e: usize, body: &Value) -> (String, Value) {
        let (status, location, answer) = self.try_submit(e, body).await;
        assert_eq!(status, 201, "async submit through edge {e}: {answer}");
        let id = answer["jobID"].as_str().expect("jobID").to_owned();
        let location = location.expect("Location header");
        assert!(
            location.ends_with(&format!("/api/wps/jobs/{id}")),
            "Location {location} names job {id}"
        );
        (id, answer)
    }

    /// [`Mesh::submit`] without expectations: status, Location and body.
    pub async fn try_submit(&self, e: usize, body: &Value) -> (u16, Option<String>, Value) {
        let mut body = body.clone();
        body["mode"] = json!("async");
        let request = self
            .http
            .post(format!("{}/api/wps/jobs", self.edges[e].uri()))
            .json(&body);
        json_answer(request, "location").await
    }

    /// `GET /api/wps/jobs/{id}` through edge `e`: HTTP status, Retry-After and body.
    pub async fn job(&self, e: usize, id: &str) -> (u16, Option<String>, Value) {
        let request = self
            .http
            .get(format!("{}/api/wps/jobs/{id}", self.edges[e].uri()));
        json_answer(request, "retry-after").await
    }

    /// Polls `GET /api/wps/jobs/{id}` through edge `e` until its status is `want` (fails at once
    /// on another final status), within `timeout`; returns the body.
    pub async fn wait_job(&self, e: usize, id: &str, want: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, _, body) = self.job(e, id).await;
            let status = body["status"]["status"].as_str().unwrap_or_default();
            if code == 200 && status == want {
                return body;
            }
            assert!(
                code == 200 && matches!(status, "accepted" | "running"),
                "job {id} through edge {e}: wanted {want}, got {code} {body}"
            );
            assert!(
                Instant::now() < deadline,
                "job {id} not {want} within {timeout:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `DELETE /api/wps/jobs/{id}` through edge `e`: HTTP status and body.
    pub async fn dismiss(&self, e: usize, id: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}/api/wps/jobs/{id}", self.edges[e].uri()))
            .send()
            .await
            .expect("dismiss");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `GET {href}` with its base replaced by edge `e`'s: status and bytes.
    pub async fn fetch(&self, e: usize, href: &str) -> (u16, Vec<u8>) {
        let path = &href[href.find("/api/").expect("an /api/ href")..];
        let r = self
            .http
            .get(format!("{}{path}", self.edges[e].uri()))
            .send()
            .await
            .expect("fetch");
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    }

    /// A WPS 2.0 KVP job request (`GetStatus`, `GetResult`, `Dismiss`) through edge `e`.
    pub async fn wps_job(&self, e: usize, request: &str, job: &str) -> (u16, String) {
        let query = format!("service=WPS&version=2.0.0&request={request}&jobId={job}");
        self.wps(e, &query, None).await
    }

    /// A WPS request through edge `e`: KVP when `body` is None, else an XML POST.
    pub async fn wps(&self, e: usize, query: &str, body: Option<String>) -> (u16, String) {
        let url = format!("{}/api/wps", self.edges[e].uri());
        let request = match body {
            None => self.http.get(format!("{url}?{query}")),
            Some(xml) => self
                .http
                .post(url)
                .header("content-type", "application/xml")
                .body(xml),
        };
        let r = request.send().await.expect("wps request");
        (r.status().as_u16(), r.text().await.expect("wps answer"))
    }
}

/// The JSON job API's native:buffer (0.5) of the GeoJSON at `href`.
pub fn buffer_job(href: &str) -> Value {
    json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href, "mimeType": "application/geo+json"},
            "DISTANCE": {"type": "literal", "value": 0.5},
        },
    })
}

/// WPS 1.0.0 KVP GET Execute of native:buffer (DISTANCE `distance`) on the GeoJSON at `href`,
/// through the edge at `edge`; `form` is the response form, e.g. `RawDataOutput=OUTPUT` or
/// `ResponseDocument=OUTPUT@asReference=true`.
pub fn buffer_kvp(edge: &str, href: &str, distance: f64, form: &str) -> String {
    format!(
        "{edge}/api/wps?service=WPS&request=Execute&version=1.0.0&identifier=native:buffer\
         &DataInputs=INPUT=@xlink:href={href}@mimeType=application/geo%2Bjson;DISTANCE={distance}\
         &{form}"
    )
}

/// The gRPC Execute of native:buffer on `source` by `distance`, every output in its default
/// form: what tests and benches send a node straight.
pub fn buffer_execute(source: reference::Source, distance: &str) -> ExecuteRequest {
    ExecuteRequest {
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
                    value: distance.into(),
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    }
}

/// Uploads `path` through the file API of the edge at `edge`; the object's retrieve href.
pub async fn upload(http: &reqwest::Client, edge: &str, path: &Path) -> String {
    let name = path
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let bytes = std::fs::read(path).expect("read upload");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name),
    );
    let r = http
        .put(format!("{edge}/api/file/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let answer: Value = r.json().await.expect("upload answer");
    let data = &answer["data"];
    format!(
        "{edge}/api/file/retrieve/{}.{}",
        data["name"].as_str().expect("object id"),
        data["format"].as_str().expect("format")
    )
}

/// Sends `request`: the HTTP status, the value of `header` and the JSON body (Null if none).
async fn json_answer(
    request: reqwest::RequestBuilder,
    header: &str,
) -> (u16, Option<String>, Value) {
    let r = request.send().await.expect("request to the edge");
    let value = r
        .headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        r.status().as_u16(),
        value,
        r.json().await.unwrap_or(Value::Null),
    )
}

/// Features in a GeoJSON document.
pub fn feature_count(geojson: &[u8]) -> usize {
    let doc: Value = serde_json::from_slice(geojson).unwrap_or_else(|e| {
        panic!(
            "not GeoJSON ({e}): {}",
            String::from_utf8_lossy(&geojson[..geojson.len().min(200)])
        )
    });
    doc["features"].as_array().map_or(0, Vec::len)
}

/// The object id in a `/api/file/retrieve/{id}.{ext}` href.
pub fn object_of(href: &str) -> String {
    let file = href.rsplit('/').next().unwrap_or_default();
    file.split('.').next().unwrap_or_default().to_owned()
}
