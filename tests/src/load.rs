//! HTTP load for the benches: keep-alive clients hammering one URL, requests/s and latency
//! percentiles.

use std::time::{Duration, Instant};

/// Value at fraction `p` (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What [`hammer`] measured.
pub struct Load {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// `clients` keep-alive clients GET `url` for `secs`; every answer must be a success.
pub async fn hammer(url: &str, clients: usize, secs: u64) -> anyhow::Result<Load> {
    hammer_for(url, clients, Duration::from_secs(secs)).await
}

/// [`hammer`] for any `duration`.
pub async fn hammer_for(url: &str, clients: usize, duration: Duration) -> anyhow::Result<Load> {
    let until = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let url = url.to_owned();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let r = client.get(&url).send().await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.bytes().await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let started = Instant::now();
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    anyhow::ensure!(!all.is_empty(), "no request finished within {duration:?}");
    Ok(Load::of(all, started.elapsed()))
}

impl Load {
    /// The rate and percentiles of `latencies` (not empty), all finished within `elapsed`.
    pub fn of(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        Self {
            requests_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
        }
    }
}
