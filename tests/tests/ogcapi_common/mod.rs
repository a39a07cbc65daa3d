//! What the OGC API - Processes end-to-end tests share: test data derived from the world map,
//! a mesh (storage, a node with a real QGIS worker, an edge) one at a time, and OGC API calls
//! (execute, follow a job through its Location until a state, problems).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec};

/// The largest execute body the meshes here accept (`edge.max_body_bytes`).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a job may take in these tests.
pub const JOB_DEADLINE: Duration = Duration::from_secs(120);

pub struct Data {
    /// 240 points, one inside each country.
    pub points: PathBuf,
    /// The 240 country polygons.
    pub countries: PathBuf,
    /// France many times over: buffering it takes tens of seconds.
    pub long: PathBuf,
}

pub static DATA: LazyLock<Data> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ogcapi");
    std::fs::create_dir_all(&dir).expect("data dir");
    Data {
        points: data::derive(&dir, "points.geojson", data::POINTS_SQL),
        countries: data::derive(&dir, "countries.geojson", data::COUNTRIES_SQL),
        long: data::derive(&dir, "long.geojson", &data::slow_sql(600)),
    }
});

/// One mesh at a time: QGIS workers of two meshes would fight over the same two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A mesh of one node and one edge accepting bodies up to [`MAX_BODY`].
pub async fn mesh() -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    mesh_with(&[]).await
}

/// [`mesh`] with extra node settings (`("WPSMESH_NODE__MAX_INLINE_BYTES", "1024")`).
pub async fn mesh_with(node_env: &[(&str, &str)]) -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    let turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&DATA);
    let spec = node_env.iter().fold(
        MeshSpec::new(1).env("WPSMESH_EDGE__MAX_BODY_BYTES", &MAX_BODY.to_string()),
        |spec, (k, v)| spec.node_env(k, v),
    );
    (turn, Mesh::start(spec).await.expect("mesh starts"))
}

/// An answer: status, headers and body bytes.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub async fn of(r: reqwest::Response) -> Self {
        Self {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await.expect("answer body").to_vec(),
        }
    }

    /// The body as JSON (Null when it is none).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails unless this is a problem with `status` whose detail contains `reason`; its body.
    pub fn problem(&self, status: u16, reason: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{body}"
        );
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{reason:?} not in {body}");
        body
    }
}

/// `POST /processes/{process}/execution` with a JSON body and extra headers.
pub async fn execute(m: &Mesh, process: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut request = m
        .http
        .post(format!(
            "{}/processes/{process}/execution",
            m.edges[0].uri()
        ))
        .json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    Answer::of(request.send().await.expect("execute")).await
}

/// `GET {url}` (a full URL under the edge).
pub async fn get(m: &Mesh, url: &str) -> Answer {
    Answer::of(m.http.get(url).send().await.expect("get")).await
}

/// Polls the statusInfo at `url` until its status is `want` (fails at once on another final
/// status) within [`JOB_DEADLINE`]; returns it.
pub async fn follow(m: &Mesh, url: &str, want: &str) -> Value {
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let a = get(m, url).await;
        let info = a.json();
        let status = info["status"].as_str().unwrap_or_default();
        if a.status == 200 && status == want {
            return info;
        }
        assert!(
            a.status == 200 && matches!(status, "accepted" | "running"),
            "{url}: wanted {want}, got {} {info}",
            a.status
        );
        assert!(
            Instant::now() < deadline,
            "{url} not {want} in time: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job ids of a job list page, in its order.
pub fn job_ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("jobs: {page}"))
        .iter()
        .map(|j| j["jobID"].as_str().expect("jobID").to_owned())
        .collect()
}

/// The ids of the jobs `GET /jobs?limit=1000` lists.
pub async fn listed(m: &Mesh) -> BTreeSet<String> {
    let a = get(m, &format!("{}/jobs?limit=1000", m.edges[0].uri())).await;
    let page = a.json();
    assert_eq!(a.status, 200, "{page}");
    job_ids(&page).into_iter().collect()
}

/// The href of the link of `rel` in a document's `links`.
pub fn link<'a>(doc: &'a Value, rel: &str) -> Option<&'a str> {
    doc["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .and_then(|l| l["href"].as_str())
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write output");
    path
}

/// A WPS 2.0 asynchronous Execute of native:buffer (0.5) of `href`, the output by reference.
pub fn wps2_execute_async(href: &str) -> String {
    let input = format!(
        r#"<wps:Input id="INPUT"><wps:Reference xlink:href="{href}" mimeType="application/geo+json"/></wps:Input><wps:Input id="DISTANCE"><wps:Data><wps:LiteralValue>0.5</wps:LiteralValue></wps:Data></wps:Input>"#
    );
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><wps:Execute service="WPS" version="2.0.0" mode="async" response="document" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>native:buffer</ows:Identifier>{input}<wps:Output id="OUTPUT" transmission="reference"/></wps:Execute>"#
    )
}
