//! Storage throughput: 1 GiB up and down through the `wpsmesh storage` process (S3 backend on
//! s3s-fs), against aws-sdk-s3 PutObject/GetObject straight to the same s3s-fs, in one run.
//! Also samples the storage process's RSS while it streams.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-storage --bench throughput`
//! (`WPSMESH_BENCH_MIB=256` for a shorter run).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncReadExt;
use tonic_health_probe::wait_serving;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{
    DownloadRequest, UploadMetadata, UploadRequest, download_response, upload_request,
};
use wpsmesh_storage::S3Config;
use wpsmesh_tests::{ChildGuard, S3sFs, content, free_port, rss_of, workspace_binary};

const MIB: u64 = 1024 * 1024;
const BUCKET: &str = "bench";

mod tonic_health_probe {
    use std::time::{Duration, Instant};

    use wpsmesh_proto::wire::storage::v1::StatRequest;
    use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;

    /// Waits until the service answers a Stat with NOT_FOUND (backend reachable, bucket ready).
    pub async fn wait_serving(uri: &str) -> anyhow::Result<()> {
        let mut c = StorageServiceClient::new(wpsmesh_runtime::grpc::channel(uri)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = c
                .stat(StatRequest {
                    id: "00000000000000000000000000000000".into(),
                })
                .await;
            if matches!(&r, Err(s) if s.code() == tonic::Code::NotFound) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "storage not ready: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Samples a process's RSS every 10 ms until stopped; keeps the maximum.
struct RssProbe {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssProbe {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some((rss, _)) = rss_of(pid) {
                    m.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// Uploads a file over gRPC; `declared` sends its length first (one streaming PutObject
/// behind), otherwise the storage service goes multipart.
async fn grpc_upload(uri: &str, path: &Path, declared: bool) -> anyhow::Result<String> {
    let mut client = StorageServiceClient::new(wpsmesh_runtime::grpc::channel(uri)?);
    let len = declared
        .then(|| std::fs::metadata(path).map(|m| m.len()))
        .transpose()?;
    let mut file = tokio::fs::File::open(path).await?;
    let stream = async_stream::stream! {
        yield UploadRequest { part: Some(upload_request::Part::Metadata(UploadMetadata {
            name: "bench.bin".into(), length: len, ..Default::default()
        })) };
        loop {
            let mut buf = vec![0u8; MIB as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
            }
            if filled == 0 { break; }
            buf.truncate(filled);
            yield UploadRequest { part: Some(upload_request::Part::Chunk(buf.into())) };
        }
    };
    let info = client.upload(stream).await?.into_inner().object;
    Ok(info.map(|o| o.id).unwrap_or_default())
}

async fn grpc_download(uri: &str, id: &str) -> anyhow::Result<u64> {
    let mut client = StorageServiceClient::new(wpsmesh_runtime::grpc::channel(uri)?)
        .max_decoding_message_size(wpsmesh_runtime::grpc::MAX_MESSAGE);
    let mut stream = client
        .download(DownloadRequest {
            id: id.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(m) = stream.message().await? {
        if let Some(download_response::Part::Chunk(c)) = m.part {
            n += c.len() as u64;
        }
    }
    Ok(n)
}

async fn direct_upload(s3: &aws_sdk_s3::Client, key: &str, path: &Path) -> anyhow::Result<()> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_path(path).await?)
        .customize()
        .disable_payload_signing()
        .send()
        .await?;
    Ok(())
}

async fn direct_download(s3: &aws_sdk_s3::Client, key: &str) -> anyhow::Result<u64> {
    let mut body = s3.get_object().bucket(BUCKET).key(key).send().await?.body;
    let mut n = 0;
    while let Some(c) = body.try_next().await? {
        n += c.len() as u64;
    }
    Ok(n)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib: u64 = std::env::var("WPSMESH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib * MIB;
    let rounds = 2;
    let s3fs = S3sFs::start()?;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("source.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src)?);
        for c in content(size as usize, 7) {
            f.write_all(&c)?;
        }
    }

    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}");
    let child = Command::new(workspace_binary("wpsmesh", true)?)
        .args(["storage", "--listen", &format!("127.0.0.1:{port}")])
        .env("WPSMESH_STORAGE__BACKEND", "s3")
        .env("WPSMESH_STORAGE__S3__ENDPOINT", &s3fs.endpoint)
        .env("WPSMESH_STORAGE__S3__BUCKET", BUCKET)
        .env("AWS_ACCESS_KEY_ID", &s3fs.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s3fs.secret_key)
        .env(
            "RUST_LOG",
            std::env::var("WPSMESH_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()?;
    let child = ChildGuard(child);
    wait_serving(&uri).await?;
    let (_, baseline_hwm) = rss_of(child.id()).unwrap_or_default();

    let direct = wpsmesh_storage::s3_client(&S3Config {
        endpoint: s3fs.endpoint.clone(),
        access_key: s3fs.access_key.clone(),
        secret_key: s3fs.secret_key.clone(),
        bucket: BUCKET.into(),
        ..S3Config::default()
    })?;

    let (mut up_direct, mut up_ours, mut up_multipart, mut down_direct, mut down_ours) =
        (f64::MIN, f64::MIN, f64::MIN, f64::MIN, f64::MIN);
    // Peak RSS of the storage process per phase: streaming upload, multipart upload, download.
    let mut peak_rss = [0u64; 3];
    for round in 0..rounds {
        let key = format!("direct-{round}");
        let t = Instant::now();
        direct_upload(&direct, &key, &src).await?;
        up_direct = up_direct.max(mbps(size, t.elapsed()));

        let probe = RssProbe::start(child.id());
        let t = Instant::now();
        let id = grpc_upload(&uri, &src, true).await?;
        up_ours = up_ours.max(mbps(size, t.elapsed()));
        peak_rss[0] = peak_rss[0].max(probe.finish());

        let probe = RssProbe::start(child.id());
        let t = Instant::now();
        let multipart_id = grpc_upload(&uri, &src, false).await?;
        up_multipart = up_multipart.max(mbps(size, t.elapsed()));
        peak_rss[1] = peak_rss[1].max(probe.finish());
        direct
            .delete_object()
            .bucket(BUCKET)
            .key(&multipart_id)
            .send()
            .await?;

        let probe = RssProbe::start(child.id());
        let t = Instant::now();
        let n = grpc_download(&uri, &id).await?;
        down_ours = down_ours.max(mbps(n, t.elapsed()));
        peak_rss[2] = peak_rss[2].max(probe.finish());
        anyhow::ensure!(n == size, "ours downloaded {n} of {size} bytes");

        let t = Instant::now();
        let n = direct_download(&direct, &key).await?;
        down_direct = down_direct.max(mbps(n, t.elapsed()));
        anyhow::ensure!(n == size, "direct downloaded {n} of {size} bytes");

        // Keep the disk from filling up between rounds.
        direct
            .delete_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await?;
        direct
            .delete_object()
            .bucket(BUCKET)
            .key(&id)
            .send()
            .await?;
    }
    let (_, hwm) = rss_of(child.id()).unwrap_or_default();

    println!("storage throughput, {mib} MiB file, best of {rounds} rounds, s3s-fs on loopback");
    println!("| transfer | direct aws-sdk-s3 MiB/s | through wpsmesh storage MiB/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| upload, length declared (streaming PutObject) | {up_direct:.0} | {up_ours:.0} | {:.2} |",
        up_ours / up_direct
    );
    println!(
        "| upload, length unknown (multipart, 8 MiB parts) | {up_direct:.0} | {up_multipart:.0} | {:.2} |",
        up_multipart / up_direct
    );
    println!(
        "| download | {down_direct:.0} | {down_ours:.0} | {:.2} |",
        down_ours / down_direct
    );
    let mib = |b: u64| b as f64 / MIB as f64;
    println!(
        "storage process peak RSS: streaming upload {:.1} MiB, multipart upload {:.1} MiB, download {:.1} MiB; VmHWM {:.1} MiB (after start {:.1} MiB)",
        mib(peak_rss[0]),
        mib(peak_rss[1]),
        mib(peak_rss[2]),
        mib(hwm),
        mib(baseline_hwm)
    );
    Ok(())
}
