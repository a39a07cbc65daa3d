//! Backend tests of the worker pool against the real QGIS: real `wpsmesh-worker` processes,
//! data derived from the world map that ships with QGIS (package `qgis-common`).
//!
//! Run with `cargo test -p wpsmesh-node --test pool`; the worker binary is built first (or taken
//! from `$WPSMESH_WORKER_BIN`). `RUST_LOG=wpsmesh_node=debug` shows the pool's and workers' logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wpsmesh_node::pool::{
    JobEvent, OutputValue, Pool, PoolConfig, PoolError, RunJob, RunOutcome, WORKER_BINARY_ENV,
};

const WORLD_MAP: &str = "/usr/share/qgis/resources/data/world_map.gpkg";
/// Copies of one country in the slow layer: buffering it takes about a minute and reports
/// progress every ~0.6 s (one feature takes ~30 ms).
const SLOW_COPIES: u32 = 2000;
const CANCEL_GRACE: Duration = Duration::from_secs(3);
/// Scheduling slack on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// Input files, made once per test run under cargo's target tmp dir.
struct Data {
    dir: PathBuf,
    /// 240 country points (GeoJSON).
    points: PathBuf,
    /// France, SLOW_COPIES times (GeoPackage).
    slow: PathBuf,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    assert!(
        Path::new(WORLD_MAP).is_file(),
        "{WORLD_MAP} is missing: apt-get install qgis-common"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pool");
    std::fs::create_dir_all(&dir).expect("data dir");
    let points = dir.join("points.geojson");
    let slow = dir.join("slow.gpkg");
    let copies = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SLOW_COPIES}) \
         SELECT c.geom AS geom, c.name AS name, n.i AS copy FROM countries c, n \
         WHERE c.name = 'France'"
    );
    let point_sql = "SELECT ST_PointOnSurface(geom) AS geom, name FROM countries";
    for (path, sql) in [(&points, point_sql), (&slow, copies.as_str())] {
        let _ = std::fs::remove_file(path);
        let status = Command::new("ogr2ogr")
            .arg(path)
            .arg(WORLD_MAP)
            .args(["-dialect", "sqlite", "-sql", sql])
            .status()
            .expect("ogr2ogr (gdal-bin) runs");
        assert!(status.success(), "ogr2ogr failed for {}", path.display());
    }
    Data { dir, points, slow }
});

/// Builds `wpsmesh-worker` (the pool finds it next to this test's `deps` folder).
static WORKER_BUILT: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os(WORKER_BINARY_ENV).is_some() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "wpsmesh-qgis", "--bin", "wpsmesh-worker"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "cannot build wpsmesh-worker"
    );
});

/// A runtime shared by every test, so the shared pool's tasks outlive each test.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
});

/// Two workers shared by the tests that need no special pool settings.
static SHARED: LazyLock<Pool> = LazyLock::new(|| {
    RUNTIME.block_on(start_pool(PoolConfig {
        workers: 2,
        ..PoolConfig::default()
    }))
});

async fn start_pool(config: PoolConfig) -> Pool {
    LazyLock::force(&WORKER_BUILT);
    LazyLock::force(&DATA);
    let config = PoolConfig {
        cancel_grace: CANCEL_GRACE,
        ..config
    };
    let started = Instant::now();
    let pool = Pool::start(config).await.expect("pool starts");
    eprintln!("pool of {} started in {:?}", pool.size(), started.elapsed());
    pool
}

fn workdir() -> tempfile::TempDir {
    tempfile::tempdir_in(&DATA.dir).expect("workdir")
}

fn buffer_points(workdir: &Path) -> RunJob {
    RunJob::new("native:buffer", workdir)
        .file("INPUT", &DATA.points)
        .literal("DISTANCE", "0.5")
}

fn slow_job(workdir: &Path) -> RunJob {
    RunJob::new("native:buffer", workdir)
        .file("INPUT", &DATA.slow)
        .literal("DISTANCE", "0.5")
        .literal("SEGMENTS", "8")
}

/// A job running in the background, and its events.
struct Running {
    result: JoinHandle<Result<RunOutcome, PoolError>>,
    events: mpsc::Receiver<JobEvent>,
}

fn spawn_job(pool: &Arc<Pool>, job: RunJob, cancel: CancellationToken) -> Running {
    let (tx, events) = mpsc::channel(256);
    let pool = Arc::clone(pool);
    let result = tokio::spawn(async move { pool.run(job, tx, cancel).await });
    Running { result, events }
}

impl Running {
    /// Waits for the job to start on a worker; returns its pid.
    async fn started(&mut self) -> u32 {
        match self.next().await {
            JobEvent::Started { worker_pid } => worker_pid,
            other => panic!("first event {other:?}"),
        }
    }

    /// Waits until the algorithm reports progress.
    async fn progressing(&mut self) {
        while !matches!(self.next().await, JobEvent::Progress(_)) {}
    }

    async fn next(&mut self) -> JobEvent {
        let next = tokio::time::timeout(Duration::from_secs(120), self.events.recv());
        next.await
            .expect("an event in time")
            .expect("the job is still running")
    }

    async fn outcome(self) -> Result<RunOutcome, PoolError> {
        self.result.await.expect("run does not panic")
    }
}

fn shared() -> Arc<Pool> {
    static POOL: LazyLock<Arc<Pool>> = LazyLock::new(|| {
        // The pool lives in SHARED for the whole test binary; an Arc over a static reference
        // is not possible, so the tests share one Arc.
        Arc::new(RUNTIME.block_on(start_pool(PoolConfig {
            workers: 2,
            ..PoolConfig::default()
        })))
    });
    let _ = &SHARED;
    Arc::clone(&POOL)
}

/// (feature count, every geometry a polygon) of a GeoJSON file.
fn polygons(path: &Path) -> (usize, bool) {
    let text = std::fs::read_to_string(path).expect("output file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("GeoJSON");
    let features = json["features"].as_array().expect("features");
    let all_polygons = features.iter().all(|feature| {
        matches!(
            feature["geometry"]["type"].as_str(),
            Some("Polygon" | "MultiPolygon")
        )
    });
    (features.len(), all_polygons)
}

fn output_file(outcome: &RunOutcome, id: &str) -> PathBuf {
    match outcome.output(id) {
        Some(OutputValue::File { path, .. }) => path.clone(),
        other => panic!("output {id}: {other:?}"),
    }
}
