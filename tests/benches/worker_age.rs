//! Worker ageing benchmark: native:buffer on the 240 country points, N times on ONE worker that
//! is never recycled, through the node's pool in process; prints the p50 (and p90) latency and
//! the worker's RSS per bucket of 250 jobs, and a worker's start-up time (spawn to ready), the
//! figures `max_jobs_per_worker` is chosen from.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench worker_age`
//! (`WPSMESH_WORKER_BIN` to pick the worker, `WPSMESH_BENCH_JOBS=10000` for a longer curve, `WPSMESH_BENCH_BUCKET=500` for wider buckets,
//! `WPSMESH_BENCH_STARTS=5` start-up samples).

use std::time::{Duration, Instant};

use wpsmesh_node::pool::{Pool, PoolConfig, RunJob, WORKER_BINARY_ENV};
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::{cpu, data, load, rss_of, workspace_binary};

/// The value at fraction `p` of `values`, in any order.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    load::percentile(&sorted, p)
}

/// CPU time (user + system) a process has used.
fn cpu_of(pid: u32) -> Option<Duration> {
    let ticks = cpu::stat(pid)?.own;
    Some(Duration::from_secs_f64(ticks as f64 / cpu::TICKS_PER_SEC))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs = setting("WPSMESH_BENCH_JOBS", 3000);
    let bucket = setting("WPSMESH_BENCH_BUCKET", 250).max(1);
    let starts = setting("WPSMESH_BENCH_STARTS", 5).max(1);
    if let Ok(filter) = std::env::var("WPSMESH_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    // `$WPSMESH_WORKER_BIN` (read by the pool), else the release build's worker.
    let binary = match std::env::var_os(WORKER_BINARY_ENV) {
        Some(_) => None,
        None => Some(workspace_binary("wpsmesh-worker", true)?),
    };
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let config = PoolConfig {
        workers: 1,
        worker_binary: binary,
        max_jobs_per_worker: 0,
        ..PoolConfig::default()
    };

    // Start-up: a one-worker pool from spawn to ready (QGIS and Processing initialised).
    let mut startup = Vec::new();
    for _ in 0..starts {
        let begun = Instant::now();
        let pool = Pool::start(config.clone()).await?;
        startup.push(begun.elapsed());
        pool.shutdown().await;
    }
    println!(
        "worker start-up (spawn to ready), {starts} starts: p50 {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(percentile(&startup, 0.5)),
        ms(percentile(&startup, 0.0)),
        ms(percentile(&startup, 1.0)),
    );

    // Ageing: every job on the same worker, latency by job index and RSS after each job.
    let pool = Pool::start(config).await?;
    let mut latency = Vec::with_capacity(jobs);
    let mut rss = Vec::with_capacity(jobs);
    let mut cpu = Vec::with_capacity(jobs);
    let mut pid = None;
    let begun = Instant::now();
    for index in 0..jobs {
        let workdir = tempfile::tempdir_in(dir.path())?;
        let job = RunJob::new("native:buffer", workdir.path())
            .file("INPUT", &points)
            .literal("DISTANCE", "0.5");
        let (events, _ignored) = tokio::sync::mpsc::channel(64);
        let asked = Instant::now();
        let outcome = pool.run(job, events, Default::default()).await?;
        latency.push(asked.elapsed());
        anyhow::ensure!(
            *pid.get_or_insert(outcome.worker_pid) == outcome.worker_pid,
            "job {index} ran on another worker: the worker was replaced"
        );
        rss.push(rss_of(outcome.worker_pid).map_or(0, |(now, _)| now));
        cpu.push(cpu_of(outcome.worker_pid).unwrap_or_default());
        if (index + 1) % 1000 == 0 {
            eprintln!("{} jobs in {:?}", index + 1, begun.elapsed());
        }
    }
    pool.shutdown().await;

    println!(
        "\n{jobs} jobs on one worker in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    // Wall-clock latency moves with the machine's load; the worker's CPU time per job much less.
    println!(
        "| jobs | p50 ms | p90 ms | p50 vs first | CPU ms/job | CPU vs first | RSS MiB at end |"
    );
    println!("|---|---|---|---|---|---|---|");
    let first = percentile(&latency[..bucket.min(jobs)], 0.5);
    // cpu[i]: the worker's total after job i, start-up included: per-job CPU is taken between
    // totals, the first bucket's from the end of its first job.
    let cpu_per_job = |start: usize, end: usize| {
        let from = start.saturating_sub(1);
        let count = (end - 1 - from).max(1);
        cpu[end - 1].saturating_sub(cpu[from]).as_secs_f64() * 1000.0 / count as f64
    };
    let first_cpu = cpu_per_job(0, bucket.min(jobs));
    println!(
        "the worker's CPU for its start-up (its total at its first job, less a job): {:.0} ms",
        cpu[0].as_secs_f64() * 1000.0 - first_cpu
    );
    for (start, chunk) in (0..jobs).step_by(bucket).zip(latency.chunks(bucket)) {
        let end = (start + bucket).min(jobs);
        let p50 = percentile(chunk, 0.5);
        let job_cpu = cpu_per_job(start, end);
        println!(
            "| {}–{} | {:.1} | {:.1} | {:+.1} % | {:.1} | {:+.1} % | {:.0} |",
            start + 1,
            end,
            ms(p50),
            ms(percentile(chunk, 0.9)),
            (p50.as_secs_f64() / first.as_secs_f64() - 1.0) * 100.0,
            job_cpu,
            (job_cpu / first_cpu - 1.0) * 100.0,
            mib(rss[end - 1]),
        );
    }
    Ok(())
}
