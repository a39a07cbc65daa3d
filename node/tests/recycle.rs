//! Recycling and restarting workers against the real QGIS: a worker due for recycling is
//! replaced by a warm one started beforehand, so no job waits for a QGIS start-up (the pool's
//! "waited for a start" counter stays 0, and each job's queue wait stays far below a start-up),
//! while a restart after a crash is waited for, and counted, only by the jobs of its own slot.
//!
//! Run with `cargo test -p wpsmesh-node --test recycle`; the worker binary is built first (or
//! taken from `$WPSMESH_WORKER_BIN`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use common::Data;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wpsmesh_node::pool::{JobEvent, Pool, PoolConfig, PoolError, RunJob};

static DATA: LazyLock<Data> = LazyLock::new(|| Data::make("recycle"));

static WORKER_BUILT: LazyLock<()> = LazyLock::new(common::build_worker);

/// A pool and how long it took to start (a worker's start-up, spawn to ready).
async fn start_pool(workers: usize, max_jobs_per_worker: u32) -> (Arc<Pool>, Duration) {
    LazyLock::force(&WORKER_BUILT);
    LazyLock::force(&DATA);
    let config = PoolConfig {
        workers,
        max_jobs_per_worker,
        ..PoolConfig::default()
    };
    let begun = Instant::now();
    let pool = Pool::start(config).await.expect("pool starts");
    let startup = begun.elapsed();
    eprintln!("pool of {workers} started in {startup:?}");
    (Arc::new(pool), startup)
}

/// Runs a buffer of the points; returns its worker and how long it waited in the queue (its
/// time to answer less its time on the worker).
async fn buffer(pool: &Pool) -> (u32, Duration) {
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    let job = RunJob::new("native:buffer", dir.path())
        .file("INPUT", &DATA.points)
        .literal("DISTANCE", "0.5");
    let (tx, _events) = mpsc::channel(64);
    let asked = Instant::now();
    let outcome = pool.run(job, tx, CancellationToken::new()).await;
    let outcome = outcome.expect("buffer succeeds");
    let waited = asked.elapsed().saturating_sub(outcome.elapsed);
    (outcome.worker_pid, waited)
}

/// Starts the slow job, kills its worker once it progresses, and checks the job failed.
async fn crash_a_job(pool: &Arc<Pool>) -> u32 {
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    let job = RunJob::new("native:buffer", dir.path())
        .file("INPUT", &DATA.slow)
        .literal("DISTANCE", "0.5")
        .literal("SEGMENTS", "8");
    let (tx, mut events) = mpsc::channel(256);
    let running = tokio::spawn({
        let pool = Arc::clone(pool);
        async move { pool.run(job, tx, CancellationToken::new()).await }
    });
    let mut pid = None;
    while let Some(event) = events.recv().await {
        match event {
            JobEvent::Started { worker_pid } => pid = Some(worker_pid),
            JobEvent::Progress(_) => break,
            JobEvent::Log(_) => {}
        }
    }
    let pid = pid.expect("the job started");
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill");
    let error = running.await.expect("run does not panic");
    assert!(matches!(error, Err(PoolError::Crashed { .. })), "{error:?}");
    pid
}

/// The worker's open descriptors: how many, and those on files deleted since.
fn descriptors(pid: u32) -> (usize, Vec<String>) {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the worker's fds");
    let targets: Vec<String> = entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    let deleted = targets
        .iter()
        .filter(|target| target.ends_with("(deleted)"))
        .cloned()
        .collect();
    (targets.len(), deleted)
}

/// Workers do not age by the job: QGIS deletes a job's layers later (deleteLater), and a worker
/// without an event loop used to keep each input file open forever (one descriptor a job, the
/// cause of the slow-down the recycling bounds). Each job here reads its own copy of the input
/// from its own folder, removed afterwards, as node jobs do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_no_file_open_after_its_jobs() {
    const RUNS: usize = 20;
    let (pool, _) = start_pool(1, 0).await;
    let job_on_a_copy = || async {
        let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
        let input = dir.path().join("input.geojson");
        std::fs::copy(&DATA.points, &input).expect("copy the input");
        let job = RunJob::new("native:buffer", dir.path())
            .file("INPUT", &input)
            .literal("DISTANCE", "0.5");
        let (tx, _events) = mpsc::channel(64);
        let outcome = pool.run(job, tx, CancellationToken::new()).await;
        outcome.expect("buffer succeeds").worker_pid
    };
    let pid = job_on_a_copy().await;
    let (before, _) = descriptors(pid);
    for _ in 0..RUNS {
        assert_eq!(job_on_a_copy().await, pid, "one worker, never recycled");
    }
    // The worker releases a job's layers after answering, before it takes the next job: one
    // more job (on the kept input) makes sure the last copy's turn to be released has come.
    assert_eq!(buffer(&pool).await.0, pid);
    let (after, deleted) = descriptors(pid);
    eprintln!("worker {pid}: {before} descriptors, {after} after {RUNS} more jobs");
    assert!(deleted.is_empty(), "removed inputs still open: {deleted:?}");
    assert!(
        after < before + 3,
        "{before} descriptors grew to {after} over {RUNS} jobs"
    );
    pool.shutdown().await;
}

/// The jobs a test runs at least, and the recycles it waits for (at most `CAP` jobs); each
/// recycle takes a few jobs past the limit (as many as run during a start-up).
const JOBS: usize = 30;
const RECYCLES: u64 = 2;
const CAP: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_jobs_never_wait_for_a_recycle() {
    let (pool, startup) = start_pool(1, 3).await;
    let (mut jobs, mut pids) = (0, Vec::new());
    let mut longest = Duration::ZERO;
    // Until the worker after the last recycle ran a job.
    while jobs < JOBS || pids.len() as u64 <= RECYCLES {
        assert!(jobs < CAP, "too few recycles: {:?}", pool.counts());
        let (pid, waited) = buffer(&pool).await;
        if pids.last() != Some(&pid) {
            pids.push(pid);
        }
        jobs += 1;
        longest = longest.max(waited);
    }
    let counts = pool.counts();
    eprintln!("{jobs} jobs, {counts:?}, workers in turn {pids:?}, longest queue wait {longest:?}");
    assert_eq!(counts.waited_for_start, 0);
    assert_eq!(counts.crashes, 0);
    assert!(counts.recycles >= RECYCLES, "{counts:?}");
    assert!(
        counts.peak_processes <= 2,
        "one worker and its replacement: {counts:?}"
    );
    assert!(
        longest < startup / 2,
        "a job waited {longest:?}, a start takes {startup:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_never_wait_for_a_recycle() {
    let (pool, startup) = start_pool(2, 3).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (pool, ran) = (Arc::clone(&pool), Arc::clone(&ran));
        clients.spawn(async move {
            let mut waits = Vec::new();
            while ran.load(Ordering::SeqCst) < JOBS || pool.counts().recycles < RECYCLES {
                assert!(ran.load(Ordering::SeqCst) < CAP, "too few recycles");
                waits.push(buffer(&pool).await.1);
                ran.fetch_add(1, Ordering::SeqCst);
            }
            waits
        });
    }
    let mut waits: Vec<Duration> = clients.join_all().await.into_iter().flatten().collect();
    waits.sort();
    let counts = pool.counts();
    let median = waits[waits.len() / 2];
    eprintln!(
        "{} jobs, {counts:?}, queue wait p50 {median:?}",
        waits.len()
    );
    assert_eq!(counts.waited_for_start, 0);
    assert_eq!(counts.crashes, 0);
    assert!(counts.recycles >= RECYCLES);
    assert!(
        counts.peak_processes <= 3,
        "two workers and one replacement: {counts:?}"
    );
    assert!(
        median < startup / 2,
        "p50 wait {median:?}, a start takes {startup:?}"
    );
    pool.shutdown().await;
}

/// The positive control: with one worker, the job after a crash has to wait for the restart,
/// and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_after_a_crash_waits_for_the_restart() {
    let (pool, startup) = start_pool(1, 3).await;
    let killed = crash_a_job(&pool).await;
    let (pid, waited) = buffer(&pool).await;
    let counts = pool.counts();
    eprintln!("waited {waited:?} for the restart, {counts:?}");
    assert_ne!(pid, killed);
    assert_eq!(counts.crashes, 1);
    assert_eq!(counts.waited_for_start, 1);
    assert!(
        waited > startup / 4,
        "waited {waited:?}, a start takes {startup:?}"
    );
    // The next jobs find the worker ready.
    buffer(&pool).await;
    assert_eq!(pool.counts().waited_for_start, 1);
    pool.shutdown().await;
}

/// A slot restarting after a crash does not hold up the other: its jobs go to the live worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_hold_up_the_other_slot() {
    let (pool, startup) = start_pool(2, 0).await;
    crash_a_job(&pool).await;
    for _ in 0..5 {
        let (_, waited) = buffer(&pool).await;
        assert!(
            waited < startup / 2,
            "waited {waited:?}, a start takes {startup:?}"
        );
    }
    let counts = pool.counts();
    eprintln!("{counts:?}");
    assert_eq!(counts.crashes, 1);
    assert_eq!(counts.waited_for_start, 0);
    pool.shutdown().await;
}
