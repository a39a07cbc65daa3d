//! Backend tests of the worker pool against the real QGIS: real `wpsmesh-worker` processes,
//! data derived from the world map that ships with QGIS (package `qgis-common`).
//!
//! Run with `cargo test -p wpsmesh-node --test pool`; the worker binary is built first (or taken
//! from `$WPSMESH_WORKER_BIN`). `RUST_LOG=wpsmesh_node=debug` shows the pool's and workers' logs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use common::Data;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wpsmesh_node::pool::{JobEvent, OutputValue, Pool, PoolConfig, PoolError, RunJob, RunOutcome};

const CANCEL_GRACE: Duration = Duration::from_secs(3);
/// Scheduling slack on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

static DATA: LazyLock<Data> = LazyLock::new(|| Data::make("pool"));

static WORKER_BUILT: LazyLock<()> = LazyLock::new(common::build_worker);

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
static SHARED: LazyLock<Arc<Pool>> = LazyLock::new(|| {
    let config = PoolConfig {
        workers: 2,
        ..PoolConfig::default()
    };
    Arc::new(RUNTIME.block_on(start_pool(config)))
});

/// The shared pool, started outside the runtime on first use.
fn shared() -> Arc<Pool> {
    Arc::clone(&SHARED)
}

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

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
        !state.starts_with('Z')
    })
}

fn output_file(outcome: &RunOutcome, id: &str) -> PathBuf {
    match outcome.output(id) {
        Some(OutputValue::File { path, .. }) => path.clone(),
        other => panic!("output {id}: {other:?}"),
    }
}

#[test]
fn describe_lists_every_algorithm() {
    let pool = shared();
    RUNTIME.block_on(async {
        let asked = Instant::now();
        let json = pool.describe().await.expect("describe");
        let took = asked.elapsed();
        let described: serde_json::Value = serde_json::from_str(&json).expect("json");
        let processes = described["processes"].as_array().expect("processes");
        let ids: Vec<&str> = processes
            .iter()
            .filter_map(|p| p["summary"]["id"].as_str())
            .collect();
        eprintln!("described {} processes in {took:?}", ids.len());
        assert!(ids.len() >= 300, "only {} processes", ids.len());
        assert!(ids.contains(&"native:buffer"));
    });
}

#[test]
fn buffer_gives_one_polygon_per_point_with_live_progress() {
    let pool = shared();
    RUNTIME.block_on(async {
        for round in ["first", "warm"] {
            let dir = workdir();
            let mut job = spawn_job(&pool, buffer_points(dir.path()), CancellationToken::new());
            let pid = job.started().await;
            let mut events = Vec::new();
            while let Some(event) = job.events.recv().await {
                events.push(event);
            }
            let outcome = job.outcome().await.expect("buffer succeeds");
            eprintln!("{round} buffer job: {:?} on worker {pid}", outcome.elapsed);
            assert_eq!(outcome.worker_pid, pid);
            assert!(
                events.iter().any(|e| matches!(e, JobEvent::Progress(_))),
                "no progress in {events:?}"
            );
            let (count, all_polygons) = polygons(&output_file(&outcome, "OUTPUT"));
            assert_eq!(count, 240);
            assert!(all_polygons);
        }
    });
}

#[test]
fn bad_input_names_the_parameter() {
    let pool = shared();
    RUNTIME.block_on(async {
        let dir = workdir();
        let (tx, _events) = mpsc::channel(16);
        let job = buffer_points(dir.path()).literal("SEGMENTS", "many");
        let error = pool.run(job, tx.clone(), CancellationToken::new()).await;
        match error {
            Err(PoolError::Parameter { name, message, .. }) => {
                assert_eq!(name, "SEGMENTS", "{message}");
            }
            other => panic!("expected a parameter error, got {other:?}"),
        }
        let job = RunJob::new("native:nosuchthing", dir.path());
        let error = pool.run(job, tx, CancellationToken::new()).await;
        assert!(
            matches!(error, Err(PoolError::UnknownProcess { .. })),
            "{error:?}"
        );
    });
}

#[test]
fn a_killed_worker_fails_only_its_job() {
    let pool = shared();
    RUNTIME.block_on(async {
        let dir = workdir();
        let mut job = spawn_job(&pool, slow_job(dir.path()), CancellationToken::new());
        let pid = job.started().await;
        job.progressing().await;
        let pid = Pid::from_raw(i32::try_from(pid).expect("pid"));
        kill(pid, Signal::SIGKILL).expect("kill the worker");
        let error = job.outcome().await.expect_err("the job fails");
        let message = error.to_string();
        assert!(
            message.contains("worker crashed") && message.contains("signal 9"),
            "{message}"
        );
        let next = workdir();
        let (tx, _events) = mpsc::channel(16);
        let outcome = pool
            .run(buffer_points(next.path()), tx, CancellationToken::new())
            .await
            .expect("the next job succeeds");
        assert_eq!(polygons(&output_file(&outcome, "OUTPUT")).0, 240);
    });
}

#[test]
fn a_timeout_kills_a_long_job() {
    let pool = shared();
    RUNTIME.block_on(async {
        let dir = workdir();
        let timeout = Duration::from_secs(2);
        let job = slow_job(dir.path()).timeout(timeout);
        let mut job = spawn_job(&pool, job, CancellationToken::new());
        job.started().await;
        let started = Instant::now();
        let error = job.outcome().await.expect_err("the job times out");
        let took = started.elapsed();
        eprintln!("timed out after {took:?}");
        assert_eq!(error, PoolError::TimedOut { after: timeout });
        assert!(took >= timeout - Duration::from_millis(100), "{took:?}");
        assert!(took <= timeout + CANCEL_GRACE + SLACK, "{took:?}");
    });
}

/// One worker and a queue of one: a queued job is refused beyond the queue, a waiting job is
/// cancelled at once, a running one stops within the grace period without losing its worker,
/// and dropping the pool kills the worker.
#[test]
fn cancel_and_queue_on_a_single_worker() {
    RUNTIME.block_on(async {
        let pool = Arc::new(
            start_pool(PoolConfig {
                workers: 1,
                queue_limit: 1,
                ..PoolConfig::default()
            })
            .await,
        );
        let (long_dir, queued_dir) = (workdir(), workdir());
        let long_cancel = CancellationToken::new();
        let mut long = spawn_job(&pool, slow_job(long_dir.path()), long_cancel.clone());
        let pid = long.started().await;
        {
            // The first poll of `run` puts the job in the queue.
            let queued_cancel = CancellationToken::new();
            let (tx, _queued_events) = mpsc::channel(16);
            let queued = pool.run(buffer_points(queued_dir.path()), tx, queued_cancel.clone());
            tokio::pin!(queued);
            assert!(futures::poll!(&mut queued).is_pending());
            let (tx, _events) = mpsc::channel(16);
            let refused = pool.run(buffer_points(queued_dir.path()), tx, Default::default());
            assert_eq!(refused.await, Err(PoolError::Busy));
            queued_cancel.cancel();
            assert_eq!(queued.await, Err(PoolError::Cancelled));
        }

        long.progressing().await;
        let cancelled_at = Instant::now();
        long_cancel.cancel();
        assert_eq!(long.outcome().await, Err(PoolError::Cancelled));
        let took = cancelled_at.elapsed();
        eprintln!("cancelled within {took:?}");
        assert!(took <= CANCEL_GRACE + SLACK, "{took:?}");

        let next = workdir();
        let (tx, _events) = mpsc::channel(16);
        let outcome = pool
            .run(buffer_points(next.path()), tx, CancellationToken::new())
            .await
            .expect("the next job succeeds");
        if took < CANCEL_GRACE {
            assert_eq!(outcome.worker_pid, pid, "a stopped job keeps its worker");
        }
        drop(Arc::into_inner(pool).expect("no other owner"));
        // A process's death has no signal to wait for here (it is not our child): poll.
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(outcome.worker_pid) {
            assert!(
                Instant::now() < deadline,
                "worker outlived its dropped pool"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// A worker due for recycling keeps serving until its replacement is ready, then is retired;
/// both are gone after shutdown.
#[test]
fn workers_are_recycled_and_gone_after_shutdown() {
    RUNTIME.block_on(async {
        let pool = start_pool(PoolConfig {
            workers: 1,
            max_jobs_per_worker: 2,
            ..PoolConfig::default()
        })
        .await;
        let mut pids = Vec::new();
        while pids.len() < 2 || pids.first() == pids.last() {
            assert!(pids.len() < 1000, "no replacement took over");
            let dir = workdir();
            let (tx, _events) = mpsc::channel(16);
            let outcome = pool
                .run(buffer_points(dir.path()), tx, CancellationToken::new())
                .await
                .expect("buffer succeeds");
            pids.push(outcome.worker_pid);
        }
        let (first, fresh) = (pids[0], pids[pids.len() - 1]);
        eprintln!("worker {first} ran {} jobs", pids.len() - 1);
        assert!(pids.len() > 2, "the first worker ran its 2 jobs: {pids:?}");
        assert_eq!(pool.counts().recycles, 1);
        pool.shutdown().await;
        for pid in [first, fresh] {
            let pid = Pid::from_raw(i32::try_from(pid).expect("pid"));
            assert!(kill(pid, None).is_err(), "worker {pid} still exists");
        }
    });
}
