//! Local cluster benchmark of issue 15: throughput of the original service's demo workload
//! (12 clients looping synchronous WPS 1.0.0 Executes of native:buffer on the 240 country
//! points, by reference, through two edges) on `deploy/local-cluster` with 1, 2 and 3 nodes of
//! one worker each, in one run; each figure against N × the one-node figure.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench local_cluster`
//! (`WPSMESH_BENCH_SECS=10` for a shorter run; 20 s per row by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wpsmesh_tests::data;
use wpsmesh_tests::load::Load;
use wpsmesh_tests::local_cluster::{Cluster, load};
use wpsmesh_tests::mesh::upload;

/// Concurrent clients of the demo.
const CLIENTS: usize = 12;

/// `CLIENTS` clients loop Executes through the edges for `secs`; every one must succeed.
async fn demo(cluster: &Cluster, href: &str, secs: u64) -> anyhow::Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = load(cluster, href, CLIENTS, &stop);
    // The clock, not synchronisation: the run lasts `secs`, then the clients finish their call.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    while let Some(outcomes) = clients.join_next().await {
        for o in outcomes? {
            anyhow::ensure!(o.error.is_none(), "an Execute failed: {:?}", o.error);
            latencies.push(o.ended - o.started);
        }
    }
    anyhow::ensure!(!latencies.is_empty(), "no Execute finished within {secs} s");
    Ok(Load::of(latencies, started.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let secs = match std::env::var("WPSMESH_BENCH_SECS") {
        Ok(v) => v.parse::<u64>()?,
        Err(_) => 20,
    };
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "local cluster (release, 2 edges, redis-server, s3s-fs), {CLIENTS} clients of sync \
         WPS 1.0.0 Executes of native:buffer on {cores} cores shared by clients and servers, \
         {secs} s per row"
    );
    println!("nodes  Executes/s   p50 ms   p99 ms   vs N × one node");
    let mut one = None;
    for nodes in 1..=3usize {
        let n = nodes.to_string();
        let cluster = Cluster::start(&["--release", "--nodes", &n, "--workers", "1"], &[])?;
        let href = upload(&cluster.http, &cluster.edges[0], &points).await;
        // Warm-up: every worker has run the algorithm once before the clock starts.
        demo(&cluster, &href, 2).await?;
        let load = demo(&cluster, &href, secs).await?;
        let base = *one.get_or_insert(load.requests_per_sec);
        println!(
            "{nodes:>5}  {:>10.1}  {:>7.0}  {:>7.0}   {:.2} (of {nodes} × {base:.1})",
            load.requests_per_sec,
            load.p50.as_secs_f64() * 1000.0,
            load.p99.as_secs_f64() * 1000.0,
            load.requests_per_sec / (base * nodes as f64),
        );
        drop(cluster);
    }
    Ok(())
}
