//! Unknown-length uploads to S3: the same bytes through the storage backend (multipart, since
//! no length is declared), through the storage gRPC service, and as a plain aws-sdk-s3
//! multipart upload, each against one direct PutObject of those bytes to the same server.
//! Modes take turns within each round (their order rotates), so load drift falls on all alike.
//!
//! Run: `cargo bench -p wpsmesh-tests --bench s3_upload`. Environment:
//! `WPSMESH_BENCH_SERVER=s3s-fs|moto` (moto: `moto_server` from `.tools/venv`, see
//! scripts/setup.sh), `WPSMESH_BENCH_SIZES_MIB=16,128`, `WPSMESH_BENCH_ROUNDS=5`,
//! `WPSMESH_BENCH_PART_MIB` and `WPSMESH_BENCH_CONCURRENCY` (the storage defaults otherwise),
//! `WPSMESH_BENCH_MODES=ours,declared,sdk,grpc` (PutObject always runs), `WPSMESH_BENCH_LOG` for
//! tracing.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use wpsmesh_proto::storage::client::StorageClient;
use wpsmesh_proto::storage::{NewObject, ObjectId};
use wpsmesh_proto::wire::storage::v1::UploadMetadata;
use wpsmesh_storage::{Backend, BackendKind, Config, S3Config};
use wpsmesh_tests::bench::setting;
use wpsmesh_tests::{ChildGuard, S3sFs, content, find_binary, free_port, wait_for_tcp};

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "bench";

/// The S3 server under test, kept running while the bench runs.
enum Server {
    S3sFs(S3sFs),
    Moto {
        endpoint: String,
        _child: ChildGuard,
    },
}

impl Server {
    fn start(kind: &str) -> anyhow::Result<Self> {
        match kind {
            "s3s-fs" => Ok(Self::S3sFs(S3sFs::start()?)),
            "moto" => {
                let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../.tools/venv/bin/moto_server");
                let bin = Some(venv)
                    .filter(|p| p.is_file())
                    .or_else(|| find_binary("moto_server"))
                    .ok_or_else(|| anyhow::anyhow!("moto_server missing: run scripts/setup.sh"))?;
                let port = free_port();
                let child = Command::new(bin)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?;
                let child = ChildGuard(child);
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                wait_for_tcp(addr, Duration::from_secs(30))?;
                Ok(Self::Moto {
                    endpoint: format!("http://{addr}"),
                    _child: child,
                })
            }
            other => anyhow::bail!("unknown WPSMESH_BENCH_SERVER {other:?} (s3s-fs or moto)"),
        }
    }

    fn s3_config(&self) -> S3Config {
        let (endpoint, access, secret) = match self {
            Self::S3sFs(s) => (
                s.endpoint.clone(),
                s.access_key.clone(),
                s.secret_key.clone(),
            ),
            Self::Moto { endpoint, .. } => {
                (endpoint.clone(), "bench".into(), "bench-secret".into())
            }
        };
        let mut c = S3Config {
            endpoint,
            access_key: access,
            secret_key: secret,
            bucket: BUCKET.into(),
            ..S3Config::default()
        };
        c.part_size = setting("WPSMESH_BENCH_PART_MIB", c.part_size / MIB) * MIB;
        c.upload_concurrency = setting("WPSMESH_BENCH_CONCURRENCY", c.upload_concurrency);
        c
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One PutObject with aws-sdk-s3 (its length known): the reference.
    Put,
    /// `Backend::put` with no declared length.
    Ours,
    /// `Backend::put` with the length declared (one streaming PutObject): the control.
    OursDeclared,
    /// The storage gRPC service (in process, S3 backend), no declared length.
    Grpc,
    /// Plain aws-sdk-s3 multipart: the same part size and parts in flight as ours.
    SdkMultipart,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Put => "direct PutObject (aws-sdk-s3, length known)",
            Self::Ours => "storage backend, length unknown",
            Self::OursDeclared => "storage backend, length declared",
            Self::Grpc => "storage gRPC service, length unknown",
            Self::SdkMultipart => "plain aws-sdk-s3 multipart, same parts",
        }
    }
}

struct Bench {
    client: Client,
    backend: Backend,
    grpc: Option<StorageClient>,
    part_size: usize,
    concurrency: usize,
}

impl Bench {
    /// Uploads `chunks` once in `mode`; returns the key and, for plain multipart, the time
    /// CompleteMultipartUpload took.
    async fn upload(
        &self,
        mode: Mode,
        chunks: &[Bytes],
        whole: &Bytes,
    ) -> anyhow::Result<(String, Option<Duration>)> {
        match mode {
            Mode::Put => {
                let key = ObjectId::random().to_string();
                self.client
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .content_length(whole.len() as i64)
                    .body(ByteStream::from(whole.clone()))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await?;
                Ok((key, None))
            }
            Mode::Ours | Mode::OursDeclared => {
                let id = ObjectId::random();
                let meta = NewObject::try_from(UploadMetadata {
                    name: "bench.bin".into(),
                    length: (mode == Mode::OursDeclared).then_some(whole.len() as u64),
                    ..Default::default()
                })?;
                let body = futures::stream::iter(chunks.to_vec()).map(Ok).boxed();
                let info = self.backend.put(id, &meta, body).await?;
                anyhow::ensure!(info.length == whole.len() as u64, "stored {}", info.length);
                Ok((id.to_string(), None))
            }
            Mode::Grpc => {
                let grpc = self.grpc.as_ref().expect("grpc mode without a service");
                let body =
                    futures::stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
                let info = grpc.upload("bench.bin", None, body).await?;
                anyhow::ensure!(info.length == whole.len() as u64, "stored {}", info.length);
                Ok((info.id.to_string(), None))
            }
            Mode::SdkMultipart => self.sdk_multipart(whole).await.map(|(k, d)| (k, Some(d))),
        }
    }

    async fn sdk_multipart(&self, whole: &Bytes) -> anyhow::Result<(String, Duration)> {
        let key = ObjectId::random().to_string();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let parts = whole.chunks(self.part_size).enumerate().map(|(i, slice)| {
            // Each part its own allocation, as a streaming uploader has them.
            let data = BytesMut::from(slice).freeze();
            let req = self
                .client
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(i as i32 + 1)
                .content_length(data.len() as i64)
                .body(ByteStream::from(data));
            async move {
                let out = req.customize().disable_payload_signing().send().await?;
                anyhow::Ok(
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                )
            }
        });
        let mut done: Vec<CompletedPart> = futures::stream::iter(parts)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        done.sort_by_key(|p| p.part_number());
        let t = Instant::now();
        self.client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await?;
        Ok((key, t.elapsed()))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("WPSMESH_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let kind = std::env::var("WPSMESH_BENCH_SERVER").unwrap_or_else(|_| "s3s-fs".into());
    let sizes: Vec<usize> = std::env::var("WPSMESH_BENCH_SIZES_MIB")
        .unwrap_or_else(|_| "16,128".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds = setting("WPSMESH_BENCH_ROUNDS", 5usize).max(1);
    let server = Server::start(&kind)?;
    let s3 = server.s3_config();
    let client = wpsmesh_storage::s3_client(&s3)?;
    let config = Config {
        backend: BackendKind::S3,
        s3: s3.clone(),
        ..Config::default()
    };
    let backend = Backend::from_config(&config).await?;
    backend.ready().await?;

    let wanted =
        std::env::var("WPSMESH_BENCH_MODES").unwrap_or_else(|_| "ours,declared,sdk,grpc".into());
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    // PutObject is always there: the others are measured against it.
    let mut modes = vec![Mode::Put];
    modes.extend(wanted.contains(&"ours").then_some(Mode::Ours));
    modes.extend(wanted.contains(&"declared").then_some(Mode::OursDeclared));
    modes.extend(wanted.contains(&"sdk").then_some(Mode::SdkMultipart));
    let grpc = if wanted.contains(&"grpc") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let uri = format!("http://{}", listener.local_addr()?);
        tokio::spawn(wpsmesh_storage::run(
            config.clone(),
            listener,
            std::future::pending(),
        ));
        let client = StorageClient::new(wpsmesh_runtime::grpc::channel(&uri)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = client.stat(ObjectId::random()).await {
            if e.is_not_found() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "storage not ready: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        modes.push(Mode::Grpc);
        Some(client)
    } else {
        None
    };
    let bench = Bench {
        client,
        backend,
        grpc,
        part_size: s3.part_size,
        concurrency: s3.upload_concurrency.max(1),
    };

    println!(
        "unknown-length uploads on {kind} (loopback), {} MiB parts, {} in flight, median of {rounds} interleaved rounds",
        s3.part_size / MIB,
        bench.concurrency
    );
    for &mib in &sizes {
        let chunks: Vec<Bytes> = content(mib * MIB, mib as u64).collect();
        let whole = Bytes::from(chunks.concat());
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut completes = Vec::new();
        // One unmeasured pass of every mode warms connections and the page cache.
        for round in 0..=rounds {
            for i in 0..modes.len() {
                let m = (i + round) % modes.len();
                let t = Instant::now();
                let (key, complete) = bench.upload(modes[m], &chunks, &whole).await?;
                let elapsed = t.elapsed();
                bench
                    .client
                    .delete_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await?;
                if round > 0 {
                    rates[m].push(mib as f64 / elapsed.as_secs_f64());
                    completes.extend(complete.map(|d| d.as_secs_f64() * 1000.0));
                }
            }
        }
        let put = median(&mut rates[0].clone());
        println!("\n{mib} MiB");
        println!("| upload | median MiB/s | range | ratio to PutObject |");
        println!("|---|---|---|---|");
        for (m, r) in modes.iter().zip(&mut rates) {
            let med = median(r);
            println!(
                "| {} | {med:.0} | {:.0}-{:.0} | {:.2} |",
                m.label(),
                r[0],
                r[r.len() - 1],
                med / put
            );
        }
        if !completes.is_empty() {
            println!(
                "plain multipart: CompleteMultipartUpload took {:.0} ms (median)",
                median(&mut completes)
            );
        }
    }
    Ok(())
}
