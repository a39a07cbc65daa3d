//! `deploy/local-cluster` end to end: the original service's demo over three nodes and two edges
//! on redis-server and s3s-fs, losing a node under load and starting it again, and Ctrl-C
//! leaving no process behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use wpsmesh_tests::data;
use wpsmesh_tests::local_cluster::{
    Cluster, Outcome, alive, execute_v1, finished, job, load, pgrep, submit,
};
use wpsmesh_tests::mesh::{buffer_job, feature_count, upload};

/// Countries in the world map: every output has one buffered point per country.
const COUNTRIES: usize = 240;
/// The edges' health-check interval (the script's edge configuration).
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Lease of running jobs in the node-loss test: short, so a lost job comes back quickly.
const LEASE: &str = "3s";

/// Where the derived inputs go (kept between runs).
fn data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-cluster");
    std::fs::create_dir_all(&dir).expect("data dir");
    dir
}

/// One point in each country.
static POINTS: LazyLock<PathBuf> =
    LazyLock::new(|| data::derive(&data_dir(), "points.geojson", data::POINTS_SQL));
/// France 150 times: a job that runs for seconds, long enough to be cut short.
static SLOW: LazyLock<PathBuf> =
    LazyLock::new(|| data::derive(&data_dir(), "slow.geojson", &data::slow_sql(150)));

/// One cluster at a time: three nodes' QGIS workers already fill this machine's two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The feature count of the output at `href` (fetched through the edge that wrote it).
async fn features_at(http: &reqwest::Client, href: &str) -> usize {
    let r = http.get(href).send().await.expect("fetch output");
    assert!(r.status().is_success(), "{href}: {}", r.status());
    feature_count(&r.bytes().await.expect("output body"))
}

/// Ctrl-C: the script exits and nothing it started is left (recorded pids, the workers, any
/// process naming its directory, its ports).
fn interrupt_leaves_nothing(mut cluster: Cluster) {
    let before = cluster.processes();
    assert!(before.len() >= 5 + cluster.nodes.len() * 2, "{before:?}");
    let dir = cluster.dir.to_string_lossy().into_owned();
    let started = Instant::now();
    let status = cluster.interrupt().expect("the script stops on Ctrl-C");
    eprintln!(
        "Ctrl-C: script exited with {status} after {:?}",
        started.elapsed()
    );
    let left: Vec<u32> = before.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left after Ctrl-C: {left:?}");
    assert_eq!(pgrep(&dir), Vec::<String>::new(), "processes naming {dir}");
    assert!(!Path::new(&dir).exists(), "{dir} removed");
    for url in cluster
        .edges
        .iter()
        .chain(cluster.nodes.iter().map(|n| &n.uri))
    {
        let addr = url.trim_start_matches("http://");
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still accepts connections"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_spreads_over_every_node_and_async_jobs_cross_edges() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&POINTS);
    let cluster = Cluster::start(&[], &[]).expect("local cluster starts");
    assert_eq!((cluster.nodes.len(), cluster.edges.len()), (3, 2));
    let http = cluster.http.clone();
    let href = upload(&http, &cluster.edges[0], &POINTS).await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(cluster.jobs_succeeded(i).await.expect("node metrics"));
    }

    // 12 clients × 3 synchronous WPS 1.0.0 Executes, the clients split over the two edges.
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..12 {
        let (http, edge, href) = (http.clone(), cluster.edges[c % 2].clone(), href.clone());
        clients.spawn(async move {
            let mut outputs = Vec::new();
            for _ in 0..3 {
                outputs.push(execute_v1(&http, &edge, &href).await?);
            }
            anyhow::Ok(outputs)
        });
    }
    let mut outputs = Vec::new();
    while let Some(done) = clients.join_next().await {
        outputs.extend(done.expect("client task").expect("every Execute succeeds"));
    }
    assert_eq!(outputs.len(), 36);
    for output in &outputs {
        assert_eq!(features_at(&http, output).await, COUNTRIES, "{output}");
    }
    let mut served = Vec::new();
    for (i, before) in before.iter().enumerate() {
        served.push(cluster.jobs_succeeded(i).await.expect("node metrics") - before);
    }
    eprintln!("synchronous Executes served per node: {served:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "every node served some: {served:?}"
    );
    assert_eq!(served.iter().sum::<u64>(), 36, "{served:?}");

    // 10 asynchronous jobs submitted through edge 1, collected through edge 2.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = submit(&http, &cluster.edges[0], &buffer_job(&href)).await;
        ids.push(id.expect("submitted through edge 1"));
    }
    for id in &ids {
        let record = finished(&http, &cluster.edges[1], id, Duration::from_secs(120))
            .await
            .expect("followed through edge 2");
        assert_eq!(record["status"]["status"], "succeeded", "{record}");
        let output = record["outputs"]["OUTPUT"]["href"].as_str().expect("href");
        assert!(
            output.starts_with(&cluster.edges[1]),
            "{output} from edge 2"
        );
        assert_eq!(features_at(&http, output).await, COUNTRIES, "{output}");
    }

    interrupt_leaves_nothing(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_leaves_the_pool_its_jobs_move_and_it_rejoins() {
    let _turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&POINTS);
    let env = [
        ("WPSMESH_NODE__JOBS__LEASE", LEASE),
        ("WPSMESH_NODE__JOBS__SWEEP_INTERVAL", "500ms"),
    ];
    let mut cluster = Cluster::start(&[], &env).expect("local cluster starts");
    let http = cluster.http.clone();
    let points = upload(&http, &cluster.edges[0], &POINTS).await;
    let slow = upload(&http, &cluster.edges[0], &SLOW).await;

    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&cluster, &points, 6, &stop);
    // Slow asynchronous jobs, one more than there are nodes: some are always running.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            submit(&http, &cluster.edges[0], &buffer_job(&slow))
                .await
                .expect("submit"),
        );
    }
    // The victim: the node running the first job seen running.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim_addr, on_victim) = loop {
        let mut records = Vec::new();
        for id in &ids {
            records.push(job(&http, &cluster.edges[0], id).await.expect("job record"));
        }
        let running: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["status"]["status"] == "running")
            .collect();
        if let Some(first) = running.first() {
            let node = first["node"].as_str().expect("node").to_owned();
            let on: Vec<String> = running
                .iter()
                .filter(|r| r["node"] == node.as_str())
                .map(|r| r["jobID"].as_str().expect("jobID").to_owned())
                .collect();
            break (node, on);
        }
        assert!(Instant::now() < deadline, "no job running: {records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.addr() == victim_addr)
        .expect("the job names a node of the cluster");

    cluster.kill_node(victim).expect("SIGKILL");
    let killed = Instant::now();
    eprintln!(
        "killed node-{} ({victim_addr}) running jobs {on_victim:?}",
        victim + 1
    );

    // Within the interval (and one failed health check) every edge has dropped it: its call
    // counters stop growing.
    let settle = HEALTH_INTERVAL * 3;
    tokio::time::sleep_until((killed + settle).into()).await;
    let mut calls = Vec::new();
    for e in 0..cluster.edges.len() {
        calls.push(cluster.edge_calls(e, victim).await.expect("edge metrics"));
    }

    // Its jobs finish elsewhere per the lease rules: attempt 2 or another node.
    for id in &ids {
        let record = finished(&http, &cluster.edges[1], id, Duration::from_secs(180))
            .await
            .expect("job finishes");
        assert_eq!(record["status"]["status"], "succeeded", "{record}");
        if on_victim.contains(id) {
            assert_eq!(
                record["attempt"], 2,
                "the killed node's job ran again: {record}"
            );
            assert_ne!(
                record["node"],
                victim_addr.as_str(),
                "on another node: {record}"
            );
        }
    }
    for (e, then) in calls.iter().enumerate() {
        let now = cluster.edge_calls(e, victim).await.expect("edge metrics");
        assert_eq!(now, *then, "edge {e} sent nothing to the dead node");
    }

    // Started again with the same configuration, it rejoins and serves the load again.
    cluster
        .restart_node(victim)
        .await
        .expect("node starts again");
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.jobs_succeeded(victim).await.unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted node served nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut running = running;
    while let Some(done) = running.join_next().await {
        outcomes.extend(done.expect("client task"));
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let late: Vec<&Outcome> = failed
        .iter()
        .copied()
        .filter(|o| o.started >= killed + settle)
        .collect();
    eprintln!(
        "{} synchronous Executes, {} failed (all started before the node left the pool):",
        outcomes.len(),
        failed.len()
    );
    for o in &failed {
        let when = match o.started.checked_duration_since(killed) {
            Some(after) => format!("{after:.2?} after"),
            None => format!("{:.2?} before", killed - o.started),
        };
        let error = o.error.as_deref().unwrap_or("");
        eprintln!("  started {when} the kill: {error}");
    }
    assert!(late.is_empty(), "{} failed after the interval", late.len());
    assert!(
        failed.iter().all(|o| o.ended >= killed),
        "no failure before the kill"
    );

    interrupt_leaves_nothing(cluster);
}
