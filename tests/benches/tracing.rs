//! Tracing benchmark: what exporting spans costs, side by side in one run. Three meshes of
//! release `wpsmesh` processes (storage, one node with one worker, edge) differ only in
//! tracing: off (no endpoint), exporting to an OTLP receiver in this process at 10 % and at
//! 100 % sampling. For each: edge GetCapabilities requests/s under concurrent keep-alive
//! clients, and the p50 of a synchronous native:buffer Execute (input by reference from
//! storage, output by reference) through the edge's JSON API.
//!
//! Goals (issue 12): at 10 %, ≥ 0.9 of the untraced requests/s; at 100 %, the Execute p50
//! within +1 ms of untraced.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench tracing`
//! (`WPSMESH_BENCH_SECS=3`, `WPSMESH_BENCH_RUNS=10` for a shorter run).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use wpsmesh_tests::otlp::Collector;
use wpsmesh_tests::{Launch, Service, data};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One configuration's processes.
struct Mesh {
    _storage: Service,
    _node: Service,
    edge: Service,
}

/// Starts storage, a node and an edge with `env` (the tracing settings) on each.
async fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> anyhow::Result<Mesh> {
    let with = |mut launch: Launch| {
        for (k, v) in env {
            launch = launch.env(*k, v);
        }
        launch.env("RUST_LOG", "warn").release()
    };
    let storage = with(Launch::storage(dir, &format!("{name}-storage")))
        .start()
        .await?;
    let node = with(Launch::node(dir, &format!("{name}-node"), &storage.uri()))
        .start()
        .await?;
    let edge = with(Launch::edge(
        dir,
        &format!("{name}-edge"),
        &storage.uri(),
        &[node.uri()],
    ))
    .start()
    .await?;
    Ok(Mesh {
        _storage: storage,
        _node: node,
        edge,
    })
}

/// Median of `runs` synchronous Executes of native:buffer on `points` through the edge.
async fn execute_p50(edge: &str, points: &Path, runs: usize) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let href = wpsmesh_tests::mesh::upload(&http, edge, points).await;
    let body = json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href, "mimeType": "application/geo+json"},
            "DISTANCE": {"type": "literal", "value": 0.5},
        },
        "outputs": {"OUTPUT": {"transmission": "reference"}},
    });
    let mut times = Vec::new();
    // Two warm-up runs: the worker's first run of an algorithm is slower.
    for i in 0..runs + 2 {
        let t = Instant::now();
        let r = http
            .post(format!("{edge}/api/wps/jobs"))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "execute: {}", r.status());
        r.bytes().await?;
        if i >= 2 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_number("WPSMESH_BENCH_SECS", 10);
    let runs = env_number("WPSMESH_BENCH_RUNS", 30) as usize;
    let clients = 32;
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let collector = Collector::start().await?;
    let traced = |ratio: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG", ratio.to_owned()),
        ]
    };
    let configs = [
        ("off", Vec::new()),
        ("10 %", traced("0.1")),
        ("100 %", traced("1.0")),
    ];
    println!("tracing bench: {clients} clients x {secs} s of GetCapabilities, {runs} Executes");
    let mut rows = Vec::new();
    for (i, (label, env)) in configs.iter().enumerate() {
        let mesh = start(dir.path(), &format!("m{i}"), env).await?;
        let edge = mesh.edge.uri();
        let url = format!("{edge}/api/wps?service=WPS&request=GetCapabilities");
        wpsmesh_tests::load::hammer(&url, clients, 1).await?; // warm the capabilities cache and connections
        let rps = wpsmesh_tests::load::hammer(&url, clients, secs)
            .await?
            .requests_per_sec;
        let p50 = execute_p50(&edge, &points, runs).await?;
        println!(
            "  {label:>6}: {rps:>9.0} GetCapabilities/s, Execute p50 {:.2} ms",
            ms(p50)
        );
        rows.push((*label, rps, p50));
    }
    let (_, base_rps, base_p50) = rows[0];
    println!();
    println!("| tracing | GetCapabilities/s | vs off | Execute p50 | vs off |");
    println!("|---|---|---|---|---|");
    for (label, rps, p50) in &rows {
        println!(
            "| {label} | {rps:.0} | {:.2} | {:.2} ms | {:+.2} ms |",
            rps / base_rps,
            ms(*p50),
            ms(*p50) - ms(base_p50)
        );
    }
    println!("spans received: {}", collector.spans().len());
    Ok(())
}
