//! Bench fastpath: closed-loop load (keep-alive clients sending the Execute back to back),
//! every answer checked, and the CPU each process of the mesh spent per request.

use std::time::{Duration, Instant};

use wpsmesh_tests::cpu;
use wpsmesh_tests::load::Load;

use crate::answer::{Form, answer, check_features, timed_get};

pub const LOAD_HEAD: &str = "| workers | clients | requests/s | p50 ms | p99 ms | errors | CPU ms/request: edge | node | workers | storage | bench client |\n|---|---|---|---|---|---|---|---|---|---|---|";

/// Processes whose CPU is billed: the edge, the node (its workers apart) and storage.
#[derive(Debug, Clone, Copy)]
pub struct Pids {
    pub edge: u32,
    pub node: u32,
    pub storage: u32,
}

/// What one closed loop measured, to be summed into a [`LoadRow`].
pub struct Sample {
    ok: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
    /// CPU ms in all: edge, node, workers (the node's descendants), storage, this client.
    cpu_ms: [f64; 5],
}

/// What one or more samples of the same load measured.
pub struct LoadRow {
    pub label: String,
    pub clients: usize,
    pub load: Load,
    pub requests: usize,
    pub errors: usize,
    /// CPU ms per request: edge, node, workers, storage, this client.
    pub cpu: [f64; 5],
}

impl LoadRow {
    /// The rate over the samples' summed time, percentiles of all their correct answers.
    pub fn of(label: &str, clients: usize, samples: Vec<Sample>) -> Self {
        let errors = samples.iter().map(|s| s.errors).sum::<usize>();
        let elapsed = samples.iter().map(|s| s.elapsed).sum::<Duration>();
        let mut cpu_ms = [0.0; 5];
        for s in &samples {
            for (total, one) in cpu_ms.iter_mut().zip(s.cpu_ms) {
                *total += one;
            }
        }
        let ok: Vec<Duration> = samples.into_iter().flat_map(|s| s.ok).collect();
        let requests = ok.len() + errors;
        Self {
            label: label.into(),
            clients,
            load: Load::of(ok, elapsed),
            requests,
            errors,
            cpu: cpu_ms.map(|ms| ms / requests as f64),
        }
    }

    pub fn print(&self) {
        let c = self.cpu;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.0} | {} of {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.label,
            self.clients,
            self.load.requests_per_sec,
            self.load.p50.as_secs_f64() * 1000.0,
            self.load.p99.as_secs_f64() * 1000.0,
            self.errors,
            self.requests,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4]
        );
    }
}

/// `clients` keep-alive clients GET `url` (a RawDataOutput Execute) back to back for
/// `duration`; an answer that is not 200 or not the 240 features is an error.
pub async fn closed_loop(
    pids: Pids,
    url: &str,
    clients: usize,
    duration: Duration,
    label: &str,
) -> anyhow::Result<Sample> {
    let me = std::process::id();
    let usage = || [pids.edge, pids.node, pids.storage, me].map(cpu::usage);
    let before = usage();
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let url = url.to_owned();
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()?;
            let (mut ok, mut errors) = (Vec::new(), Vec::new());
            while Instant::now() < until {
                let checked = match timed_get(&http, &url).await {
                    Ok((t, status, body)) => answer(Form::Raw, status, &body)
                        .and_then(|_| check_features(&body))
                        .map(|()| t),
                    Err(e) => Err(e.to_string()),
                };
                match checked {
                    Ok(t) => ok.push(t),
                    Err(e) => errors.push(e),
                }
            }
            anyhow::Ok((ok, errors))
        });
    }
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (o, e) = r??;
        ok.extend(o);
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    let after = usage();
    if let Some(first) = errors.first() {
        eprintln!(
            "{label}, {clients} clients: {} errors, first: {first}",
            errors.len()
        );
    }
    anyhow::ensure!(!ok.is_empty(), "no correct answer: {:?}", errors.first());
    let ms = |i: usize, descendants: bool| match (&before[i], &after[i]) {
        (Some(b), Some(a)) if descendants => a.descendants_secs_since(b) * 1000.0,
        (Some(b), Some(a)) => a.own_secs_since(b) * 1000.0,
        _ => f64::NAN,
    };
    Ok(Sample {
        ok,
        errors: errors.len(),
        elapsed,
        cpu_ms: [
            ms(0, false),
            ms(1, false),
            ms(1, true),
            ms(2, false),
            ms(3, false),
        ],
    })
}

/// A 2 s warm-up at `clients` (connections open, every worker busy once), then the measured
/// load, printed as it ends.
pub async fn measured(
    pids: Pids,
    url: &str,
    clients: usize,
    duration: Duration,
    label: &str,
) -> anyhow::Result<LoadRow> {
    closed_loop(pids, url, clients, Duration::from_secs(2), label).await?;
    let sample = closed_loop(pids, url, clients, duration, label).await?;
    let row = LoadRow::of(label, clients, vec![sample]);
    row.print();
    Ok(row)
}

/// The same load on several meshes (`(label, pids, url)`), warmed up, then in `rounds`
/// alternating slices of `duration / rounds` each, so the machine's changing load falls on
/// all of them alike; a row per mesh.
pub async fn alternating(
    meshes: &[(String, Pids, String)],
    clients: usize,
    duration: Duration,
    rounds: u32,
) -> anyhow::Result<Vec<LoadRow>> {
    let mut samples: Vec<Vec<Sample>> = meshes.iter().map(|_| Vec::new()).collect();
    for (label, pids, url) in meshes {
        closed_loop(*pids, url, clients, Duration::from_secs(2), label).await?;
    }
    for _ in 0..rounds.max(1) {
        for ((label, pids, url), samples) in meshes.iter().zip(&mut samples) {
            let slice = duration / rounds.max(1);
            samples.push(closed_loop(*pids, url, clients, slice, label).await?);
        }
    }
    let rows: Vec<LoadRow> = meshes
        .iter()
        .zip(samples)
        .map(|((label, _, _), samples)| LoadRow::of(label, clients, samples))
        .collect();
    rows.iter().for_each(LoadRow::print);
    Ok(rows)
}
