//! A real Prometheus for metrics tests: started on a free port with a generated configuration
//! (targets scraped every second, rule files evaluated every second), ready once `/-/ready`
//! answers, read through its HTTP API; and `promtool`, which ships with it. Both come from
//! Debian's `prometheus` package (`scripts/setup.sh`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ChildGuard, free_port};

/// A running Prometheus; killed on drop.
pub struct Prometheus {
    url: String,
    http: reqwest::Client,
    log: PathBuf,
    child: ChildGuard,
}

impl Prometheus {
    /// Starts Prometheus with its data and log in `dir`, scraping `jobs` (job name, targets as
    /// `host:port`) and loading `rules`; returns once it is ready.
    pub async fn start(
        dir: &Path,
        jobs: &[(&str, Vec<String>)],
        rules: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text(jobs, rules))?;
        let mut tries = 0;
        loop {
            tries += 1;
            let port = free_port();
            let log = dir.join("prometheus.log");
            let file = std::fs::File::create(&log)?;
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .map_err(|e| {
                    anyhow::anyhow!("cannot run prometheus ({e}): run scripts/setup.sh")
                })?;
            let mut prometheus = Self {
                url: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
                log,
                child: ChildGuard(child),
            };
            match prometheus.wait_ready(Duration::from_secs(60)).await {
                Ok(()) => return Ok(prometheus),
                // Someone took the free port in between: another one.
                Err(_) if tries < 3 && prometheus.log_text().contains("address already in use") => {
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What Prometheus logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = self.http.get(format!("{}/-/ready", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.0.try_wait() {
                anyhow::bail!("prometheus exited ({status}):\n{}", self.log_text());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "prometheus not ready within {timeout:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let answer: Value = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("prometheus unreachable: {e}"))?
            .json()
            .await
            .map_err(|e| format!("prometheus answer unreadable: {e}"))?;
        if answer["status"] == "success" {
            Ok(answer["data"].clone())
        } else {
            Err(format!(
                "{}: {}",
                answer["errorType"].as_str().unwrap_or("error"),
                answer["error"].as_str().unwrap_or("(no message)")
            ))
        }
    }

    /// Evaluates a PromQL expression now: the samples (`data.result`), or Prometheus's error
    /// (`bad_data: 1:5: parse error: ...`).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        Ok(match data["resultType"].as_str() {
            // A scalar or string is one `[time, value]` pair.
            Some("scalar" | "string") => vec![data["result"].clone()],
            _ => data["result"].as_array().cloned().unwrap_or_default(),
        })
    }

    /// The value of an expression that yields one sample, once it is `done`, within `timeout`.
    pub async fn wait_value(
        &self,
        expr: &str,
        done: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.query(expr).await.map_err(anyhow::Error::msg)?;
            let value = samples
                .first()
                .and_then(|s| s["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = value
                && done(v)
            {
                return Ok(v);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{expr} not as wanted within {timeout:?}: {samples:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The active scrape targets.
    pub async fn targets(&self) -> anyhow::Result<Vec<Value>> {
        let data = self
            .api("targets", &[("state", "active")])
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until `count` targets are scraped and every one is up.
    pub async fn wait_up(&self, count: usize, timeout: Duration) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.targets().await?;
            if targets.len() == count && targets.iter().all(|t| t["health"] == "up") {
                return Ok(targets);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "targets not all up within {timeout:?}: {targets:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The loaded rules, each with its `name`, `query`, `health` and `lastError`.
    pub async fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("rules", &[]).await.map_err(anyhow::Error::msg)?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

/// The configuration: 1 s scrapes and evaluations, `jobs` as static targets, `rules` loaded.
fn config_text(jobs: &[(&str, Vec<String>)], rules: &[PathBuf]) -> String {
    let mut text = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    text.push_str("rule_files:\n");
    for rule in rules {
        text.push_str(&format!("  - {:?}\n", rule.display().to_string()));
    }
    text.push_str("scrape_configs:\n");
    for (job, targets) in jobs {
        let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
        text.push_str(&format!(
            "  - job_name: {job:?}\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ));
    }
    text
}

/// Runs `promtool` with `args`, feeding `stdin`: whether it passed, and what it printed.
pub fn promtool(args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run promtool ({e}): run scripts/setup.sh"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)?;
    }
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}
