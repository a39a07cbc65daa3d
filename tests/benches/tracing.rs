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
//! A fourth mesh, untraced like the first, is the control: the difference between the two is
//! what this machine's noise alone makes of the same configuration.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench tracing`
//! (`WPSMESH_BENCH_SECS=3`, `WPSMESH_BENCH_RUNS=10` for a shorter run; `WPSMESH_BENCH_ROUNDS`,
//! default 5: the configurations take turns round by round).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::otlp::Collector;
use wpsmesh_tests::{Launch, Service, data};

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

/// A configuration under test: its mesh, a GetCapabilities URL, an Execute body.
struct Subject {
    label: &'static str,
    _mesh: Mesh,
    edge: String,
    body: serde_json::Value,
    rps: Vec<f64>,
    times: Vec<Duration>,
}

/// The body of a synchronous native:buffer Execute through the edge's JSON API on `points`,
/// uploaded to that edge.
async fn execute_body(http: &reqwest::Client, edge: &str, points: &Path) -> serde_json::Value {
    let href = wpsmesh_tests::mesh::upload(http, edge, points).await;
    json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href, "mimeType": "application/geo+json"},
            "DISTANCE": {"type": "literal", "value": 0.5},
        },
        "outputs": {"OUTPUT": {"transmission": "reference"}},
    })
}

/// `runs` synchronous Executes of `body` through `edge`, timed.
async fn executes(
    http: &reqwest::Client,
    edge: &str,
    body: &serde_json::Value,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = http
            .post(format!("{edge}/api/wps/jobs"))
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "execute: {}", r.status());
        r.bytes().await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

fn median<T: PartialOrd + Copy>(values: &mut [T]) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = setting("WPSMESH_BENCH_SECS", 10);
    let runs: usize = setting("WPSMESH_BENCH_RUNS", 30);
    let rounds = setting("WPSMESH_BENCH_ROUNDS", 5usize).max(1);
    let clients = 32;
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    // Counting only: the receiver shares the cores with the bench's clients, and converting and
    // keeping 20,000 spans a second would bill the collector's work to the traced meshes.
    let collector = Collector::counting().await?;
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
        // A second untraced mesh: how far two identical meshes differ on this machine, the
        // resolution of the other rows.
        ("off, again", Vec::new()),
    ];
    println!(
        "tracing bench: {rounds} rounds, each configuration in turn: {clients} clients x \
         {secs} s of GetCapabilities and {runs} Executes in all"
    );
    let http = reqwest::Client::new();
    let mut subjects = Vec::new();
    for (i, (label, env)) in configs.iter().enumerate() {
        let mesh = start(dir.path(), &format!("m{i}"), env).await?;
        let edge = mesh.edge.uri();
        let body = execute_body(&http, &edge, &points).await;
        // Warm-up: the capabilities cache, connections, the worker's first runs.
        wpsmesh_tests::load::hammer(&caps(&edge), clients, 1).await?;
        executes(&http, &edge, &body, 2).await?;
        subjects.push(Subject {
            label,
            _mesh: mesh,
            edge,
            body,
            rps: Vec::new(),
            times: Vec::new(),
        });
    }
    // Rounds interleave the configurations, so a change in the machine's load over the run
    // falls on all three alike instead of on whichever ran last.
    let slice = Duration::from_secs(secs).div_f64(rounds as f64);
    let per_round = runs.div_ceil(rounds);
    for _ in 0..rounds {
        for s in &mut subjects {
            let load = wpsmesh_tests::load::hammer_for(&caps(&s.edge), clients, slice).await?;
            s.rps.push(load.requests_per_sec);
            s.times
                .extend(executes(&http, &s.edge, &s.body, per_round).await?);
        }
    }
    let rows: Vec<_> = subjects
        .iter_mut()
        .map(|s| (s.label, median(&mut s.rps), median(&mut s.times)))
        .collect();
    let (_, base_rps, base_p50) = rows[0];
    println!();
    println!("| tracing | GetCapabilities/s (median of rounds) | vs off | Execute p50 | vs off |");
    println!("|---|---|---|---|---|");
    for (label, rps, p50) in &rows {
        println!(
            "| {label} | {rps:.0} | {:.2} | {:.2} ms | {:+.2} ms |",
            rps / base_rps,
            ms(*p50),
            ms(*p50) - ms(base_p50)
        );
    }
    println!("spans received: {}", collector.counted());
    Ok(())
}

fn caps(edge: &str) -> String {
    format!("{edge}/api/wps?service=WPS&request=GetCapabilities")
}
