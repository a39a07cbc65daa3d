//! Job list benchmark of issue 13: a real redis-server job store holding 100,000 jobs, then
//! ListJobs limit=50 over real gRPC through a node (the newest page, and a walk through every
//! page by next tokens) and `GET /jobs?limit=50` through an edge, p50/p99 of each (goal: p99
//! under 10 ms).
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench job_list`
//! (`WPSMESH_BENCH_JOBS=20000` for a smaller store).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use wpsmesh_jobstore::{JobStore, JobsConfig, RedisStore, StoreKind};
use wpsmesh_proto::process::JobId;
use wpsmesh_proto::wire::process::v1::ListJobsRequest;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_runtime::grpc;
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::load::percentile;
use wpsmesh_tests::{RedisServer, release_mesh};

/// The page size of the figure.
const LIMIT: u32 = 50;
/// Timed requests per figure (after as many warm-up requests as a tenth of it).
const REQUESTS: usize = 2000;
/// Concurrent writers filling the store.
const FILLERS: usize = 64;
/// The goal for p99.
const GOAL_MS: f64 = 10.0;

fn jobs_wanted() -> usize {
    setting("WPSMESH_BENCH_JOBS", 100_000)
}

fn redis_config(url: &str) -> JobsConfig {
    JobsConfig {
        store: StoreKind::Redis,
        redis_url: url.into(),
        ..JobsConfig::default()
    }
}

/// `count` jobs recorded through the store API, [`FILLERS`] at a time, each as a job begun on a
/// node with an hour's lease (nothing queued, nothing reaped while the bench runs).
async fn fill(url: &str, count: usize) -> anyhow::Result<Duration> {
    let store = Arc::new(RedisStore::connect(&redis_config(url)).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..FILLERS {
        let (store, next) = (store.clone(), next.clone());
        tasks.spawn(async move {
            let processes = ["native:buffer", "native:centroids", "native:dissolve"];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let process = processes[i % processes.len()];
                let lease = Duration::from_secs(3600);
                store
                    .begin(&JobId::random(), process, "bench-filler", lease)
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let verdict = if ms(p99) < GOAL_MS { "meets" } else { "MISSES" };
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms over {} requests ({verdict} the p99 goal of {GOAL_MS} ms)",
        ms(p50),
        ms(p99),
        latencies.len()
    );
}

/// The newest page, asked [`REQUESTS`] times; each answer must be a full page.
async fn newest_page(node_uri: &str) -> anyhow::Result<Vec<Duration>> {
    let mut client = ProcessServiceClient::new(grpc::channel(node_uri)?);
    let request = ListJobsRequest {
        limit: LIMIT,
        ..Default::default()
    };
    let mut latencies = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + REQUESTS / 10 {
        let t = Instant::now();
        let page = client.list_jobs(request.clone()).await?.into_inner();
        let took = t.elapsed();
        anyhow::ensure!(
            page.jobs.len() == LIMIT as usize,
            "a page of {}",
            page.jobs.len()
        );
        if i >= REQUESTS / 10 {
            latencies.push(took);
        }
    }
    Ok(latencies)
}

/// Every page, following next tokens to the end; checks that every job was listed once.
async fn walk(node_uri: &str, jobs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut client = ProcessServiceClient::new(grpc::channel(node_uri)?);
    let mut request = ListJobsRequest {
        limit: LIMIT,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(jobs);
    loop {
        let t = Instant::now();
        let page = client.list_jobs(request.clone()).await?.into_inner();
        latencies.push(t.elapsed());
        for job in page.jobs {
            anyhow::ensure!(seen.insert(job.job_id), "a job listed twice");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    anyhow::ensure!(seen.len() == jobs, "walked {} of {jobs} jobs", seen.len());
    Ok(latencies)
}

/// `GET /jobs?limit=50` through the edge; `None` when the edge has no such route yet.
async fn through_edge(edge_url: &str) -> anyhow::Result<Option<Vec<Duration>>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let url = format!("{edge_url}/jobs?limit={LIMIT}");
    let first = http.get(&url).send().await?;
    if first.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    anyhow::ensure!(
        first.status().is_success(),
        "GET /jobs answered {}",
        first.status()
    );
    let body: serde_json::Value = first.json().await?;
    let listed = body["jobs"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        listed == LIMIT as usize,
        "GET /jobs listed {listed}: {body}"
    );
    let mut latencies = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + REQUESTS / 10 {
        let t = Instant::now();
        let r = http.get(&url).send().await?;
        anyhow::ensure!(r.status().is_success(), "GET /jobs answered {}", r.status());
        r.bytes().await?;
        if i >= REQUESTS / 10 {
            latencies.push(t.elapsed());
        }
    }
    Ok(Some(latencies))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let redis = RedisServer::start()?;
    // Filling is about the index, not the disk: no fsync per write while it runs.
    redis.command(&["CONFIG", "SET", "appendfsync", "no"]);
    let jobs = jobs_wanted();
    let filled = fill(&redis.url(), jobs).await?;
    println!(
        "filled the redis job store with {jobs} jobs in {:.1} s",
        filled.as_secs_f64()
    );
    redis.command(&["CONFIG", "SET", "appendfsync", "always"]);
    let redis_url = redis.url();
    let node_env = [
        ("WPSMESH_NODE__JOBS__STORE", "redis"),
        ("WPSMESH_NODE__JOBS__REDIS_URL", redis_url.as_str()),
    ];
    let (_storage, node, edge) = release_mesh(dir.path(), &node_env).await?;
    let (node_uri, edge_url) = (node.uri(), edge.uri());
    report(
        &format!("ListJobs limit={LIMIT} via node gRPC, newest page"),
        newest_page(&node_uri).await?,
    );
    report(
        &format!("ListJobs limit={LIMIT} via node gRPC, walking every page by next token"),
        walk(&node_uri, jobs).await?,
    );
    match through_edge(&edge_url).await? {
        Some(latencies) => report(&format!("GET /jobs?limit={LIMIT} via edge"), latencies),
        None => {
            println!("GET /jobs?limit={LIMIT} via edge: not measured, the edge has no /jobs route")
        }
    }
    Ok(())
}
