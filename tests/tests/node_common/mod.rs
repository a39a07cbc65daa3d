//! A storage service and a node, in-process on loopback with real QGIS workers, for the node's
//! service tests; each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::transport::Channel;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    self as wire, ComplexValue, ExecuteRequest, Format, Input, JobState, LiteralValue, Reference,
    StoredObject, input, output, reference,
};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{DownloadRequest, download_response};
use wpsmesh_runtime::grpc;
use wpsmesh_tests::data;
use wpsmesh_tests::formats::stats;

/// Input files, made once per test binary.
pub struct Data {
    pub dir: PathBuf,
    pub points: PathBuf,
    pub points_shp: PathBuf,
    pub countries: PathBuf,
    pub slow: PathBuf,
}

pub static DATA: LazyLock<Data> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-service");
    std::fs::create_dir_all(&dir).expect("data dir");
    Data {
        points: data::derive(&dir, "points.geojson", data::POINTS_SQL),
        // A folder of its own per run: ogr2ogr will not write over a shapefile's old parts.
        points_shp: {
            let shp_dir = dir.join(format!("shp-{}", std::process::id()));
            std::fs::create_dir_all(&shp_dir).expect("shapefile dir");
            data::derive(&shp_dir, "points.shp", data::POINTS_SQL)
        },
        countries: data::derive(&dir, "countries.geojson", data::COUNTRIES_SQL),
        slow: data::derive(&dir, "slow.geojson", &data::slow_sql(2000)),
        dir,
    }
});

/// A storage service and a node, in-process on loopback, with real workers.
pub struct Mesh {
    pub node: ProcessServiceClient<Channel>,
    pub storage: StorageServiceClient<Channel>,
    /// The node's work dir: job folders live there while jobs run.
    pub work: PathBuf,
    pub _dir: tempfile::TempDir,
}

pub async fn mesh(workers: usize, tweak: impl FnOnce(&mut wpsmesh_node::Config)) -> Mesh {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wpsmesh=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage_uri = wpsmesh_storage::spawn_local(dir.path().join("storage"))
        .await
        .expect("storage starts");

    let mut config = wpsmesh_node::Config {
        storage: storage_uri.clone(),
        work_dir: dir.path().join("work"),
        ..Default::default()
    };
    config.pool.workers = workers;
    config.pool.cancel_grace = Duration::from_secs(3);
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let node_uri = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        wpsmesh_node::run(config, listener, std::future::pending())
            .await
            .expect("node runs");
    });
    let node = ProcessServiceClient::new(grpc::channel(&node_uri).expect("channel"))
        .max_decoding_message_size(64 * 1024 * 1024);
    // Ready once the catalog is loaded and the server answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut probe = node.clone();
    while probe
        .list_processes(wire::ListProcessesRequest {})
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storage = StorageServiceClient::new(grpc::channel(&storage_uri).expect("channel"))
        .max_decoding_message_size(grpc::MAX_MESSAGE);
    Mesh {
        node,
        storage,
        work: dir.path().join("work"),
        _dir: dir,
    }
}

pub fn literal(id: &str, value: &str) -> Input {
    Input {
        id: id.into(),
        value: Some(input::Value::Literal(LiteralValue {
            value: value.into(),
            ..Default::default()
        })),
    }
}

/// A reference input: `target` is an href (anything that parses as a URL), else a stored object
/// `{id}` or `{id}.{ext}` as [`Mesh::upload`] names it.
pub fn reference(id: &str, target: &str) -> Input {
    let source = if url::Url::parse(target).is_ok() {
        reference::Source::Href(target.into())
    } else {
        let (object, extension) = target.split_once('.').unwrap_or((target, ""));
        reference::Source::Object(StoredObject {
            id: object.into(),
            extension: extension.into(),
        })
    };
    Input {
        id: id.into(),
        value: Some(input::Value::Reference(Reference {
            source: Some(source),
            format: None,
        })),
    }
}

pub fn execute(process: &str, inputs: Vec<Input>) -> ExecuteRequest {
    ExecuteRequest {
        process_id: process.into(),
        inputs,
        ..Default::default()
    }
}

impl Mesh {
    /// Uploads a file through the node's own output path; the stored object as `{id}.{ext}`
    /// (`{id}` when the name has no extension), for [`reference`].
    pub async fn upload(&mut self, path: &Path) -> String {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let storage = wpsmesh_node::outputs::Storage::from(self.storage.clone());
        let info = wpsmesh_node::outputs::store_file(&storage, path, &name)
            .await
            .expect("upload");
        if info.format.is_empty() {
            return info.id.to_string();
        }
        format!("{}.{}", info.id, info.format)
    }

    pub async fn upload_bytes(&mut self, name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        self.upload(&path).await
    }

    pub async fn download(&mut self, id: &str) -> Vec<u8> {
        let mut stream = self
            .storage
            .download(DownloadRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .expect("download")
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await.expect("chunk") {
            if let Some(download_response::Part::Chunk(c)) = m.part {
                out.extend_from_slice(&c);
            }
        }
        out
    }

    /// Runs a job and downloads its OUTPUT file into `dir`.
    pub async fn run_to_file(&mut self, req: ExecuteRequest, dir: &Path, ext: &str) -> PathBuf {
        let process = req.process_id.clone();
        let resp = self
            .node
            .execute(req)
            .await
            .unwrap_or_else(|e| panic!("{process}: {e:?}"))
            .into_inner();
        assert_eq!(
            resp.job.as_ref().map(|j| j.state),
            Some(JobState::Successful as i32)
        );
        let out = resp
            .outputs
            .iter()
            .find(|o| o.id == "OUTPUT")
            .expect("OUTPUT");
        let Some(output::Value::Reference(r)) = &out.value else {
            panic!("OUTPUT is a reference: {out:?}");
        };
        assert!(
            r.object_id
                .parse::<wpsmesh_proto::storage::ObjectId>()
                .is_ok()
        );
        let bytes = self.download(&r.object_id).await;
        assert_eq!(bytes.len() as u64, r.size);
        let path = dir.join(format!("{}-ours.{ext}", process.replace(':', "_")));
        std::fs::write(&path, bytes).expect("write output");
        path
    }
}

pub fn complex(id: &str, mime_type: &str, data: &[u8]) -> Input {
    Input {
        id: id.into(),
        value: Some(input::Value::Complex(ComplexValue {
            format: Some(Format {
                mime_type: mime_type.into(),
                ..Default::default()
            }),
            data: data.to_vec().into(),
        })),
    }
}

/// Job folders left in a node's work dir.
pub fn leftovers(work: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work)
        .expect("the node's work dir exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect()
}

impl Mesh {
    /// Runs a job that must succeed; the feature count of its GeoJSON OUTPUT.
    pub async fn features(&mut self, req: ExecuteRequest, what: &str) -> usize {
        let dir = tempfile::tempdir().expect("tempdir");
        let resp = self.node.execute(req).await;
        let resp = resp.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let out = resp.into_inner();
        let Some(output::Value::Reference(r)) = out
            .outputs
            .iter()
            .find(|o| o.id == "OUTPUT")
            .and_then(|o| o.value.clone())
        else {
            panic!("{what}: no OUTPUT reference: {out:?}");
        };
        let path = dir.path().join("out.geojson");
        std::fs::write(&path, self.download(&r.object_id).await).expect("write");
        stats(&path).0
    }
}
