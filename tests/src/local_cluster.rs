//! `deploy/local-cluster` as a fixture: the script runs as a child in a process group of its own
//! (as in a terminal), its printed URLs are parsed, and the WPS and JSON job calls the tests and
//! the bench make through its edges; stopping it is checked to leave no process behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{files_under, free_ports};

/// How long the script may take to start everything (three nodes start QGIS side by side).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the script may take to stop everything: a node drains for one lease at most.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A node of the cluster as the script printed it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// gRPC URI, `http://127.0.0.1:PORT`; the node names itself `127.0.0.1:PORT` in job records.
    pub uri: String,
    pub metrics: String,
    pub log: PathBuf,
    /// The launcher that starts this node again with the same configuration.
    pub restart: PathBuf,
}

impl ClusterNode {
    pub fn addr(&self) -> &str {
        self.uri.trim_start_matches("http://")
    }
}

/// The running script; stopped (and its process group killed if need be) on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub edges: Vec<String>,
    pub nodes: Vec<ClusterNode>,
    pub http: reqwest::Client,
    script: Child,
    /// Nodes the test started again through their launcher (children of the test to reap).
    restarted: Vec<Child>,
}

impl Cluster {
    /// Runs `deploy/local-cluster --base-port P ARGS` with `env` (e.g. `WPSMESH_*` settings) and
    /// waits for its `ready:` line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local-cluster");
        // The script uses 34 ports from its base (see the script's header).
        let base = free_ports(34).to_string();
        let mut child = Command::new(&script)
            .args(["--base-port", &base])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("running {}", script.display()))?;
        let lines = read_lines(child.stdout.take().context("script stdout")?);
        let mut printed = Vec::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with("ready:") => break,
                Ok(line) => printed.push(line),
                Err(e) => {
                    let _ = kill_group(&child, Signal::SIGKILL);
                    let _ = child.wait();
                    anyhow::bail!("local-cluster not ready ({e}); it printed {printed:?}");
                }
            }
        }
        let mut cluster = Self {
            dir: PathBuf::new(),
            edges: Vec::new(),
            nodes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            script: child,
            restarted: Vec::new(),
        };
        for line in &printed {
            cluster.parse(line)?;
        }
        Ok(cluster)
    }

    /// One line of the script's listing: `ROLE URL key=value...`.
    fn parse(&mut self, line: &str) -> anyhow::Result<()> {
        let mut words = line.split_whitespace();
        let (role, url) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("no {key}= in {line:?}"))
        };
        match role {
            "dir" => self.dir = PathBuf::from(url),
            r if r.starts_with("edge-") => self.edges.push(url.to_owned()),
            r if r.starts_with("node-") => self.nodes.push(ClusterNode {
                uri: url.to_owned(),
                metrics: field("metrics")?,
                log: field("log")?.into(),
                restart: field("restart")?.into(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// Process id of the script, which is also its process group.
    pub fn pgid(&self) -> u32 {
        self.script.id()
    }

    /// The pid a service's launcher recorded (`edge-1`, `node-2`, `storage`, `s3`, `redis`).
    pub fn pid_of(&self, name: &str) -> anyhow::Result<u32> {
        let file = self.dir.join("run").join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        Ok(text.trim().parse()?)
    }

    /// Every process of the cluster now: what the launchers recorded and their children (the
    /// nodes' PyQGIS workers).
    pub fn processes(&self) -> Vec<u32> {
        let services: Vec<u32> = files_under(&self.dir.join("run"))
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
            .collect();
        let mut all = services.clone();
        all.extend(children_of(&services));
        all
    }

    /// SIGKILL to node `i` (0-based).
    pub fn kill_node(&self, i: usize) -> anyhow::Result<()> {
        crate::signal(self.pid_of(&format!("node-{}", i + 1))?, Signal::SIGKILL)
    }

    /// Starts node `i` again through its launcher, in the script's process group (so Ctrl-C
    /// reaches it, and the script's cleanup finds it by its pid file); waits until it serves.
    pub async fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        let pgid = i32::try_from(self.pgid())?;
        let child = Command::new(&self.nodes[i].restart)
            .stdin(Stdio::null())
            .process_group(pgid)
            .spawn()?;
        self.restarted.push(child);
        crate::until_serving(
            &self.nodes[i].uri,
            "wpsmesh.process.v1.ProcessService",
            Duration::from_secs(180),
        )
        .await
    }

    /// `wpsmesh_jobs_total{status="succeeded"}` of node `i`, over every process.
    pub async fn jobs_succeeded(&self, i: usize) -> anyhow::Result<u64> {
        let text = self.get_text(&self.nodes[i].metrics).await?;
        Ok(sum_metric(
            &text,
            "wpsmesh_jobs_total{",
            r#"status="succeeded""#,
        ))
    }

    /// The edge's `wpsmesh_edge_node_calls_total` for node `i`.
    pub async fn edge_calls(&self, e: usize, i: usize) -> anyhow::Result<u64> {
        let text = self.get_text(&format!("{}/metrics", self.edges[e])).await?;
        let label = format!(r#"node="{}""#, self.nodes[i].uri);
        Ok(sum_metric(&text, "wpsmesh_edge_node_calls_total{", &label))
    }

    async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        let r = self.http.get(url).send().await?.error_for_status()?;
        Ok(r.text().await?)
    }

    /// Ctrl-C as a terminal sends it (SIGINT to the whole process group); waits until the
    /// script exits.
    pub fn interrupt(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        kill_group(&self.script, Signal::SIGINT)?;
        // Nodes started again are the test's children: reaped here, not by the script.
        for child in &mut self.restarted {
            wait_child(child, STOP_TIMEOUT)?;
        }
        wait_child(&mut self.script, STOP_TIMEOUT)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if matches!(self.script.try_wait(), Ok(None)) {
            let _ = kill_group(&self.script, Signal::SIGTERM);
            if wait_child(&mut self.script, STOP_TIMEOUT).is_err() {
                let _ = kill_group(&self.script, Signal::SIGKILL);
                let _ = self.script.wait();
            }
        }
        for child in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines of `out` as they come, read by a thread of their own (to the end, so the script never
/// blocks on a full pipe).
fn read_lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn kill_group(child: &Child, signal: Signal) -> anyhow::Result<()> {
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::killpg(pgid, signal).map_err(|e| anyhow::anyhow!("{signal} to group: {e}"))
}

fn wait_child(child: &mut Child, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "process {} still running after {timeout:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(") ")?.1.starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// Processes whose parent is one of `parents` (from `/proc/*/stat`).
fn children_of(parents: &[u32]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            parents.contains(&ppid).then_some(pid)
        })
        .collect()
}

/// Processes whose command line mentions `text` (`pgrep -f`), excluding this one.
pub fn pgrep(text: &str) -> Vec<String> {
    let out = Command::new("pgrep").args(["-a", "-f", text]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with(&format!("{} ", std::process::id())))
        .map(str::to_owned)
        .collect()
}

/// Sum of the samples of a metric family whose line starts with `prefix` and contains `label`.
pub fn sum_metric(text: &str, prefix: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A synchronous WPS 1.0.0 Execute (XML POST) of native:buffer (0.5) of the GeoJSON at `href`
/// through the edge at `edge`, output as a reference: the output's href, or why not.
pub async fn execute_v1(http: &reqwest::Client, edge: &str, href: &str) -> anyhow::Result<String> {
    // Built from its parts: the inputs, then the one output wanted by reference.
    let input = |id: &str, value: String| {
        format!("<wps:Input><ows:Identifier>{id}</ows:Identifier>{value}</wps:Input>")
    };
    let inputs = [
        input(
            "INPUT",
            format!(r#"<wps:Reference xlink:href="{href}" mimeType="application/geo+json"/>"#),
        ),
        input(
            "DISTANCE",
            "<wps:Data><wps:LiteralData>0.5</wps:LiteralData></wps:Data>".into(),
        ),
    ]
    .concat();
    let output =
        r#"<wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output>"#;
    let body = format!(
        r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink"><ows:Identifier>native:buffer</ows:Identifier><wps:DataInputs>{inputs}</wps:DataInputs><wps:ResponseForm><wps:ResponseDocument>{output}</wps:ResponseDocument></wps:ResponseForm></wps:Execute>"#
    );
    let r = http
        .post(format!("{edge}/api/wps"))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !(status.is_success() && text.contains("ProcessSucceeded")) {
        let reason = text
            .split_once("ExceptionText>")
            .and_then(|(_, rest)| rest.split_once('<'))
            .map_or_else(|| one_line(&text), |(reason, _)| reason.to_owned());
        anyhow::bail!("{status}: {reason}");
    }
    let after = text
        .split_once("<wps:Reference")
        .and_then(|(_, rest)| rest.split_once("href=\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(href, _)| href.replace("&amp;", "&"));
    after.with_context(|| format!("no output reference in {}", one_line(&text)))
}

/// The start of a document on one line, for error reports.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(300).collect()
}

/// One synchronous Execute of a [`load`] client: when it started and ended, and why it failed.
pub struct Outcome {
    pub started: Instant,
    pub ended: Instant,
    pub error: Option<String>,
}

/// `clients` clients looping [`execute_v1`] of `href` over the cluster's edges (client `c`
/// through edge `c mod M`) until `stop` is set; each task answers every outcome.
pub fn load(
    cluster: &Cluster,
    href: &str,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<Vec<Outcome>> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let edge = cluster.edges[c % cluster.edges.len()].clone();
        let (http, href, stop) = (cluster.http.clone(), href.to_owned(), Arc::clone(stop));
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let error = execute_v1(&http, &edge, &href).await.err();
                outcomes.push(Outcome {
                    started,
                    ended: Instant::now(),
                    error: error.map(|e| e.to_string()),
                });
            }
            outcomes
        });
    }
    tasks
}

/// `POST {edge}/api/wps/jobs` of `body` with `"mode": "async"`: the job id.
pub async fn submit(http: &reqwest::Client, edge: &str, body: &Value) -> anyhow::Result<String> {
    let mut body = body.clone();
    body["mode"] = "async".into();
    let r = http
        .post(format!("{edge}/api/wps/jobs"))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.as_u16() == 201, "submit: {status} {answer}");
    Ok(answer["jobID"].as_str().context("jobID")?.to_owned())
}

/// `GET {edge}/api/wps/jobs/{id}`: the record (status, node, attempt, outputs).
pub async fn job(http: &reqwest::Client, edge: &str, id: &str) -> anyhow::Result<Value> {
    let r = http.get(format!("{edge}/api/wps/jobs/{id}")).send().await?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "job {id}: {status} {answer}");
    Ok(answer)
}

/// Polls job `id` through `edge` until it is no longer accepted or running (or `timeout`).
pub async fn finished(
    http: &reqwest::Client,
    edge: &str,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let record = job(http, edge, id).await?;
        let status = record["status"]["status"].as_str().unwrap_or_default();
        if !matches!(status, "accepted" | "running") {
            return Ok(record);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "job {id} not finished within {timeout:?}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
