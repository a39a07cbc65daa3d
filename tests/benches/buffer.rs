//! Node benchmark: warm Execute of native:buffer on the 240 country points through the node's
//! gRPC API (input read from storage, output written to storage), against `processing.run` in
//! one warm PyQGIS process and `qgis_process.bin run` per call, all in one run; then throughput
//! with 1..=cores workers.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-node --bench buffer`
//! (`WPSMESH_BENCH_RUNS=10` for a shorter run).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::transport::Channel;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, ListProcessesRequest, StoredObject, reference,
};
use wpsmesh_runtime::grpc;
use wpsmesh_tests::bench::ms;
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::buffer_execute;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts storage and a node with `workers` workers; returns the node client and the stored
/// points object.
async fn start(
    workers: usize,
    dir: &Path,
    points: &Path,
) -> anyhow::Result<(ProcessServiceClient<Channel>, String)> {
    let storage_uri = wpsmesh_storage::spawn_local(dir.join(format!("storage-{workers}"))).await?;

    let mut config = wpsmesh_node::Config {
        storage: storage_uri.clone(),
        work_dir: dir.join(format!("work-{workers}")),
        ..Default::default()
    };
    config.pool.workers = workers;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("http://{}", listener.local_addr()?);
    tokio::spawn(wpsmesh_node::run(config, listener, std::future::pending()));
    let mut node = ProcessServiceClient::new(grpc::channel(&uri)?);
    let deadline = Instant::now() + Duration::from_secs(120);
    while node.list_processes(ListProcessesRequest {}).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storage = wpsmesh_node::outputs::Storage::new(grpc::channel(&storage_uri)?);
    let info = wpsmesh_node::outputs::store_file(&storage, points, "points.geojson").await?;
    Ok((node, info.id.to_string()))
}

fn buffer(object: &str) -> ExecuteRequest {
    buffer_execute(
        reference::Source::Object(StoredObject {
            id: object.into(),
            extension: "geojson".into(),
        }),
        "1.5",
    )
}

/// Jobs per second with `workers` workers and as many clients, over `jobs` jobs.
async fn throughput(
    node: &ProcessServiceClient<Channel>,
    href: &str,
    workers: usize,
    jobs: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..workers {
        let (mut node, href) = (node.clone(), href.to_owned());
        let share = jobs / workers + usize::from(c < jobs % workers);
        clients.spawn(async move {
            for _ in 0..share {
                node.execute(buffer(&href)).await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(r) = clients.join_next().await {
        r??;
    }
    Ok(jobs as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("WPSMESH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    if let Ok(filter) = std::env::var("WPSMESH_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);

    // Ours: warm Execute latency with one worker.
    let (mut node, href) = start(1, dir.path(), &points).await?;
    for _ in 0..3 {
        node.execute(buffer(&href)).await?;
    }
    let mut ours = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        node.execute(buffer(&href)).await?;
        ours.push(t.elapsed());
    }
    let ours = median(ours);

    // processing.run in one warm Python process.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/processing_run.py");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&points)
        .arg(dir.path())
        .arg(runs.to_string())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let in_process: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("median_ms="))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "processing_run.py: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?
        .parse()?;

    // qgis_process.bin per call.
    let mut cli = Vec::new();
    for i in 0..5.min(runs) {
        let t = Instant::now();
        let status = Command::new("/usr/bin/qgis_process.bin")
            .env("QT_QPA_PLATFORM", "offscreen")
            .args(["run", "native:buffer"])
            .arg(format!("--INPUT={}", points.display()))
            .arg("--DISTANCE=1.5")
            .arg(format!(
                "--OUTPUT={}",
                dir.path().join(format!("cli-{i}.geojson")).display()
            ))
            .output()?;
        anyhow::ensure!(status.status.success(), "qgis_process failed");
        cli.push(t.elapsed());
    }
    let cli = median(cli);

    println!("native:buffer on 240 points, warm, median of {runs} runs");
    println!("| path | ms per job | vs processing.run |");
    println!("|---|---|---|");
    println!("| processing.run in one warm Python | {in_process:.1} | 1.00 |");
    println!(
        "| wpsmesh node Execute over gRPC (storage in and out) | {:.1} | {:.2} |",
        ms(ours),
        ms(ours) / in_process
    );
    println!(
        "| qgis_process.bin run per call | {:.1} | {:.2} |",
        ms(cli),
        ms(cli) / in_process
    );

    // Throughput with 1..=cores workers, each pool started fresh.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let jobs = runs.max(10) * 2;
    let one = throughput(&node, &href, 1, jobs).await?;
    println!("\n| workers | jobs/s | vs N x one worker |");
    println!("|---|---|---|");
    println!("| 1 | {one:.1} | 1.00 |");
    for n in 2..=cores {
        let (node, href) = start(n, dir.path(), &points).await?;
        throughput(&node, &href, n, n * 2).await?;
        let tput = throughput(&node, &href, n, jobs).await?;
        println!("| {n} | {tput:.1} | {:.2} |", tput / (n as f64 * one));
    }
    Ok(())
}
