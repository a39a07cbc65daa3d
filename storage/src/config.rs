//! Storage service configuration (the `[storage]` section of the wpsmesh config).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wpsmesh_discovery::{ConsulConfig, STORAGE_SERVICE};

/// Which backend holds the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A local directory: the embedded default.
    #[default]
    Local,
    /// Any S3 API: MinIO, AWS, s3s-fs.
    S3,
}

/// Storage service settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` server; none when unset (the `wpsmesh` binary
    /// defaults to `0.0.0.0:9102`).
    pub metrics_listen: Option<SocketAddr>,
    pub backend: BackendKind,
    /// Largest object accepted, in bytes.
    pub max_object_size: u64,
    pub local: LocalConfig,
    pub s3: S3Config,
    /// Registration in Consul as `wps-file-storage` (the service name unless set), with a gRPC
    /// health check; off while `address` is empty (the embedded default).
    #[serde(deserialize_with = "wpsmesh_discovery::storage_serde::consul")]
    pub consul: ConsulConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8800)),
            metrics_listen: None,
            backend: BackendKind::Local,
            max_object_size: 16 * 1024 * 1024 * 1024,
            local: LocalConfig::default(),
            s3: S3Config::default(),
            consul: ConsulConfig::for_service(STORAGE_SERVICE),
        }
    }
}

/// The local directory backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Directory holding the objects; created if missing.
    pub root: PathBuf,
    /// How soon objects uploaded as `DURABILITY_BUFFERED` (job outputs) reach the disk: they
    /// are acknowledged once committed and flushed in the background at this interval. Client
    /// uploads are always flushed before their answer.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from(".data/storage"),
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// The S3 backend. Credentials left empty are read from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://minio:9000`; AWS's own when empty.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prefix of every object key, e.g. `wpsmesh/`.
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), as MinIO expects.
    pub path_style: bool,
    /// Multipart part size in bytes (5 MiB to 5 GiB, S3's limits for a part).
    pub part_size: usize,
    /// Parts uploaded at once per upload.
    pub upload_concurrency: usize,
    /// Uploads with a declared length up to this many bytes stream through one PutObject
    /// (at most 5 GiB, S3's limit); others go multipart. 0 sends everything multipart.
    pub single_put_max: u64,
    /// Attempts per S3 request, the first included.
    pub max_attempts: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: "wpsmesh".into(),
            prefix: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            path_style: true,
            part_size: 8 * 1024 * 1024,
            upload_concurrency: 2,
            single_put_max: 5 * 1024 * 1024 * 1024,
            max_attempts: 3,
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("single_put_max", &self.single_put_max)
            .finish()
    }
}
