//! HTTP load for the benches: keep-alive clients hammering one URL (with extra headers if
//! asked), requests/s, latency percentiles and bytes per answer.

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
    Ok(hammer_with(url, clients, duration, &[]).await?.0)
}

/// What the answers of [`hammer_with`] were: body bytes as sent (not decoded) per answer, and
/// the `Content-Encoding` of the last one.
pub struct Sent {
    pub bytes_per_response: f64,
    pub content_encoding: Option<String>,
}

/// [`hammer_for`] with `headers` on every request (e.g. `Accept-Encoding`); also what the
/// answers were.
pub async fn hammer_with(
    url: &str,
    clients: usize,
    duration: Duration,
    headers: &[(&str, &str)],
) -> anyhow::Result<(Load, Sent)> {
    let until = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for _ in 0..clients {
        let url = url.to_owned();
        let headers = headers.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            let (mut bytes, mut encoding) = (0u64, None);
            while Instant::now() < until {
                let t = Instant::now();
                let mut request = client.get(&url);
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                let r = request.send().await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                encoding = r
                    .headers()
                    .get(reqwest::header::CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                bytes += r.bytes().await?.len() as u64;
                latencies.push(t.elapsed());
            }
            anyhow::Ok((latencies, bytes, encoding))
        });
    }
    let started = Instant::now();
    let (mut all, mut bytes, mut content_encoding) = (Vec::new(), 0u64, None);
    while let Some(r) = tasks.join_next().await {
        let (latencies, sent, encoding) = r??;
        all.extend(latencies);
        bytes += sent;
        content_encoding = content_encoding.or(encoding);
    }
    anyhow::ensure!(!all.is_empty(), "no request finished within {duration:?}");
    let sent = Sent {
        bytes_per_response: bytes as f64 / all.len() as f64,
        content_encoding,
    };
    Ok((Load::of(all, started.elapsed()), sent))
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
