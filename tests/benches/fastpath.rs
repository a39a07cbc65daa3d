//! Fast-path benchmark (issue 14), in one run over release processes on loopback (storage on
//! its local backend, one node with one worker per core, the edge, as `wpsmesh up --nodes 1`
//! but each a process of its own), the 240 country points uploaded through the file API:
//!
//! 1. latency, interleaved rounds: WPS 1.0.0 KVP GET Execute of native:buffer (DISTANCE 0.5,
//!    input by reference) with RawDataOutput, ResponseDocument by value and by reference (the
//!    reference checked afterwards, untimed), and `processing.run` of the same job in one warm
//!    PyQGIS process (`processing_run.py --serve`); p50 and the ratio to processing.run;
//! 2. closed-loop load, RawDataOutput, at 1, 8 and 32 clients: requests/s, p50, p99, errors
//!    (not 200, or not 240 features) and CPU ms per request of edge, node, workers, storage and
//!    this client (`/proc/<pid>/stat`);
//! 3. the 8-client load with 1 and 2 workers per core and on the best peer (PyWPS 4.8.1
//!    under gunicorn running the same buffer through PyQGIS, `fastpath/peer.rs`), all up and
//!    loaded in turns (`WPSMESH_BENCH_ROUNDS`, default 2, slices of `WPSMESH_BENCH_SECS /
//!    rounds`); ours against the peer: requests/s and p99 ratios.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench fastpath`
//! (`WPSMESH_BENCH_RUNS`, default 30 per path; `WPSMESH_BENCH_SECS`, default 20 per load).
//! `WPSMESH_BENCH_HOLD=1`: only start the mesh, print `pids edge=… node=… storage=… workers=…`
//! and run the load (`WPSMESH_BENCH_CLIENTS`, default 8; `WPSMESH_BENCH_WORKERS`, default one
//! per core) for `WPSMESH_BENCH_SECS`, e.g. for `perf record` (scripts/profile-fastpath.sh).

#[path = "fastpath/answer.rs"]
mod answer;
#[path = "fastpath/closed_loop.rs"]
mod closed_loop;
#[path = "fastpath/peer.rs"]
mod peer;
#[path = "fastpath/python.rs"]
mod python;

use std::path::Path;
use std::time::Duration;

use answer::{Answer, FEATURES, Form, check_features, timed_get};
use closed_loop::{LOAD_HEAD, LoadRow, Pids, measured};
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::load::percentile;
use wpsmesh_tests::mesh::{buffer_kvp, upload};
use wpsmesh_tests::{Launch, Service, cpu, data, free_port};

const DISTANCE: f64 = 0.5;
/// The best peer at 8 clients in issue 14: requests/s and p99 ms.
const PEER: (f64, f64) = (19.0, 548.0);
const WARM_UP_ROUNDS: usize = 5;

/// Storage, one node with `workers` workers and the edge: release processes, killed on drop.
struct Mesh {
    storage: Service,
    node: Service,
    edge: Service,
}

impl Mesh {
    async fn start(dir: &Path, workers: usize) -> anyhow::Result<Self> {
        let dir = dir.join(format!("mesh-{workers}"));
        std::fs::create_dir_all(&dir)?;
        let storage = Launch::storage(&dir, "storage").release().start().await?;
        let node = Launch::node(&dir, "node", &storage.uri())
            .env("WPSMESH_NODE__POOL__WORKERS", workers.to_string())
            .release()
            .start()
            .await?;
        // Output references name the edge's own URL, as `wpsmesh up --port` sets it.
        let port = free_port();
        let edge = Launch::edge(&dir, "edge", &storage.uri(), &[node.uri()])
            .port(port)
            .env(
                "WPSMESH_EDGE__PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .release()
            .start()
            .await?;
        Ok(Self {
            storage,
            node,
            edge,
        })
    }

    fn pids(&self) -> Pids {
        Pids {
            edge: self.edge.pid(),
            node: self.node.pid(),
            storage: self.storage.pid(),
        }
    }

    /// The Execute URL with response form `form` on `points`, uploaded through the file API.
    async fn url(&self, http: &reqwest::Client, points: &Path, form: Form) -> String {
        let href = upload(http, &self.edge.uri(), points).await;
        buffer_kvp(&self.edge.uri(), &href, DISTANCE, form.param())
    }
}

/// Part 1: the three Execute forms and processing.run, `runs` interleaved rounds after the
/// warm-up; the latency table (p50, p90, ratio to processing.run, goal, CPU per job of the
/// workers or of the Python process).
async fn latency(
    mesh: &Mesh,
    http: &reqwest::Client,
    points: &Path,
    dir: &Path,
    runs: usize,
) -> anyhow::Result<String> {
    let mut urls = Vec::new();
    for form in Form::ALL {
        urls.push(mesh.url(http, points, form).await);
    }
    let mut python = python::ProcessingRun::start(points, dir, DISTANCE)?;
    let (mut times, mut cpu_secs) = (vec![Vec::new(); 4], [0.0; 4]);
    for round in 0..runs + WARM_UP_ROUNDS {
        let measured = round >= WARM_UP_ROUNDS;
        for (i, form) in Form::ALL.into_iter().enumerate() {
            let before = cpu::usage(mesh.node.pid());
            let (t, status, body) = timed_get(http, &urls[i]).await?;
            let after = cpu::usage(mesh.node.pid());
            let geojson = match answer::answer(form, status, &body).map_err(anyhow::Error::msg)? {
                Answer::GeoJson(g) => g,
                // Fetched after the timing: the issue measures the Execute alone.
                Answer::Reference(out) => timed_get(http, &out).await?.2,
            };
            check_features(&geojson).map_err(|e| anyhow::anyhow!("{}: {e}", form.name()))?;
            if measured {
                times[i].push(t);
                if let (Some(b), Some(a)) = (before, after) {
                    cpu_secs[i] += a.descendants_secs_since(&b);
                }
            }
        }
        let run = python.run()?;
        check_features(&run.output).map_err(|e| anyhow::anyhow!("processing.run: {e}"))?;
        if measured {
            times[3].push(run.time);
            cpu_secs[3] += run.cpu_secs;
        }
    }
    for t in &mut times {
        t.sort();
    }
    let base = ms(percentile(&times[3], 0.5));
    let mut table = format!(
        "| path ({runs} runs each, interleaved) | p50 ms | p90 ms | vs processing.run | goal | CPU ms per job |\n|---|---|---|---|---|---|\n"
    );
    for (i, t) in times.iter().enumerate() {
        let p50 = ms(percentile(t, 0.5));
        let (ratio, per_job) = (p50 / base, cpu_secs[i] * 1000.0 / runs as f64);
        let (name, goal) = match Form::ALL.get(i) {
            Some(&form) => (
                format!("WPS 1.0.0 KVP Execute, {}", form.name()),
                format!(
                    "≤ {} ({})",
                    form.goal(),
                    if ratio <= form.goal() {
                        "met"
                    } else {
                        "not met"
                    }
                ),
            ),
            None => ("processing.run in one warm PyQGIS".into(), String::new()),
        };
        let p90 = ms(percentile(t, 0.9));
        table +=
            &format!("| {name} | {p50:.1} | {p90:.1} | {ratio:.2} | {goal} | {per_job:.1} |\n");
    }
    Ok(table)
}

/// `WPSMESH_BENCH_HOLD=1`: the load alone, with the pids to attach a profiler to.
async fn hold(dir: &Path, points: &Path, http: &reqwest::Client) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = setting("WPSMESH_BENCH_WORKERS", cores);
    let clients = setting("WPSMESH_BENCH_CLIENTS", 8);
    let secs = Duration::from_secs(setting("WPSMESH_BENCH_SECS", 20));
    let mesh = Mesh::start(dir, workers).await?;
    let url = mesh.url(http, points, Form::Raw).await;
    closed_loop::closed_loop(mesh.pids(), &url, clients, Duration::from_secs(2), "").await?;
    let pids: Vec<String> = cpu::descendants(mesh.node.pid())
        .iter()
        .map(u32::to_string)
        .collect();
    let Pids {
        edge,
        node,
        storage,
    } = mesh.pids();
    println!(
        "pids edge={edge} node={node} storage={storage} workers={}",
        pids.join(",")
    );
    println!("{LOAD_HEAD}");
    let label = workers.to_string();
    let sample = closed_loop::closed_loop(mesh.pids(), &url, clients, secs, &label).await?;
    LoadRow::of(&label, clients, vec![sample]).print();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = setting("WPSMESH_BENCH_RUNS", 30);
    let secs = Duration::from_secs(setting("WPSMESH_BENCH_SECS", 20));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let dir = tempfile::tempdir()?;
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    if std::env::var("WPSMESH_BENCH_HOLD").is_ok_and(|v| v == "1") {
        return hold(dir.path(), &points, &http).await;
    }

    let mesh = Mesh::start(dir.path(), cores).await?;
    println!("fast path: native:buffer DISTANCE {DISTANCE} on {FEATURES} points, {cores} cores");
    let latency_table = latency(&mesh, &http, &points, dir.path(), runs).await?;
    println!("{latency_table}");

    let secs_each = secs.as_secs();
    println!("closed-loop load, RawDataOutput, {secs_each} s each after 2 s of warm-up");
    println!("{LOAD_HEAD}");
    let url = mesh.url(&http, &points, Form::Raw).await;
    let mut rows: Vec<LoadRow> = Vec::new();
    for clients in [1, 8, 32] {
        let label = cores.to_string();
        rows.push(measured(mesh.pids(), &url, clients, secs, &label).await?);
    }
    drop(mesh);

    let rounds = setting("WPSMESH_BENCH_ROUNDS", 2);
    println!(
        "\n8 clients by workers per core and on the peer: all up, {rounds} alternating rounds"
    );
    println!("{LOAD_HEAD}");
    let mut meshes = Vec::new();
    for per_core in [1, 2] {
        meshes.push(Mesh::start(dir.path(), per_core * cores).await?);
    }
    let mut targets = Vec::new();
    for (mesh, per_core) in meshes.iter().zip(1..) {
        let url = mesh.url(&http, &points, Form::Raw).await;
        let label = format!("{} ({per_core} per core)", per_core * cores);
        targets.push((label, mesh.pids(), url));
    }
    // The peer reads the same input from the one-per-core mesh's file API, so that mesh's edge
    // and storage columns are what serving its input cost.
    let peer = peer::Peer::start(dir.path(), cores, &http).await?;
    let href = upload(&http, &meshes[0].edge.uri(), &points).await;
    let peer_pids = Pids {
        node: peer.pid(),
        ..meshes[0].pids()
    };
    let peer_label = format!("{} ({cores} workers)", peer::LABEL);
    targets.push((peer_label, peer_pids, peer.url(&href, DISTANCE)));
    let turns = closed_loop::alternating(&targets, 8, secs, rounds).await?;
    let (ours, theirs) = (&turns[0], &turns[2]);
    let versus = format!(
        "ours (one worker per core) against {} in the same turns: {:.2}× its requests/s (goal ≥ 2), \
         {:.2}× its p99 (goal ≤ 0.5)",
        peer::LABEL,
        ours.load.requests_per_sec / theirs.load.requests_per_sec,
        ours.load.p99.as_secs_f64() / theirs.load.p99.as_secs_f64(),
    );
    println!("{versus}");
    rows.extend(turns);
    drop((meshes, peer));

    println!("\n## fast path, all figures\n\n{latency_table}");
    println!("{LOAD_HEAD}");
    for row in &rows {
        row.print();
    }
    let (rps, p99) = PEER;
    println!(
        "\n{versus}\nas the issue measured it: the best peer's {rps:.1} requests/s, p99 {p99:.0} ms; goal ≥ 38 requests/s, p99 ≤ 270 ms, no errors"
    );
    Ok(())
}
