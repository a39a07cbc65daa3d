//! Real `wpsmesh storage|node|edge` processes for end-to-end tests: configured through the
//! environment and flags as a deployment would be, logs captured to a file, ready only once they
//! answer (gRPC health SERVING, the edge's `/health` and its node count), signals for chaos tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{ChildGuard, files_under, free_port, workspace_binary};

/// Which service, and what "ready" means for it.
#[derive(Debug, Clone)]
enum Kind {
    Storage,
    Node,
    /// Ready when it has this many healthy nodes.
    Edge(usize),
}

/// A `wpsmesh` service to start: subcommand, port, environment.
#[derive(Debug, Clone)]
pub struct Launch {
    kind: Kind,
    name: String,
    dir: PathBuf,
    port: Option<u16>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Run the release build (benches).
    release: bool,
}

impl Launch {
    fn new(kind: Kind, dir: &Path, name: &str) -> Self {
        Self {
            kind,
            name: name.into(),
            dir: dir.to_owned(),
            port: None,
            args: Vec::new(),
            release: false,
            env: vec![
                ("RUST_LOG".into(), "info".into()),
                ("NO_COLOR".into(), "1".into()),
            ],
        }
    }

    /// `wpsmesh storage` with the local backend in `dir/name`.
    pub fn storage(dir: &Path, name: &str) -> Self {
        Self::new(Kind::Storage, dir, name)
            .arg("--backend")
            .arg("local")
            .env(
                "WPSMESH_STORAGE__LOCAL__ROOT",
                dir.join(name).to_string_lossy(),
            )
    }

    /// `wpsmesh node` with one worker and `storage` (a gRPC URI); named `127.0.0.1:PORT` in job
    /// records. Add `WPSMESH_NODE__JOBS__*` with [`Launch::env`].
    pub fn node(dir: &Path, name: &str, storage: &str) -> Self {
        Self::new(Kind::Node, dir, name)
            .env("WPSMESH_NODE__STORAGE", storage)
            .env(
                "WPSMESH_NODE__WORK_DIR",
                dir.join(format!("{name}-work")).to_string_lossy(),
            )
            .env("WPSMESH_NODE__POOL__WORKERS", "1")
            .env("WPSMESH_NODE__CONSUL__ADVERTISE", "127.0.0.1")
    }

    /// `wpsmesh edge` over a static list of node URIs; ready once all of them are healthy.
    pub fn edge(dir: &Path, name: &str, storage: &str, nodes: &[String]) -> Self {
        let mut launch = Self::new(Kind::Edge(nodes.len()), dir, name)
            .env("WPSMESH_EDGE__STORAGE", storage)
            .env("WPSMESH_EDGE__DISCOVERY__HEALTH_INTERVAL", "1s");
        for node in nodes {
            launch = launch.arg("--node").arg(node);
        }
        launch
    }

    /// For an edge: ready with this many healthy nodes instead of all of them.
    pub fn expect_nodes(mut self, healthy: usize) -> Self {
        if let Kind::Edge(n) = &mut self.kind {
            *n = healthy;
        }
        self
    }

    /// Runs `target/release/wpsmesh` (for benches) instead of the debug build.
    pub fn release(mut self) -> Self {
        self.release = true;
        self
    }

    /// Listens on `port` instead of a free one picked at start (to know a URL in advance).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable (later settings of the same name win).
    pub fn env(mut self, key: impl Into<String>, value: impl AsRef<str>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    /// Starts the process and waits until it is ready (at most two minutes: a node starts QGIS).
    pub async fn start(self) -> anyhow::Result<Service> {
        let bin = workspace_binary("wpsmesh", self.release)?;
        let subcommand = match self.kind {
            Kind::Storage => "storage",
            Kind::Node => "node",
            Kind::Edge(_) => "edge",
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let port = self.port.unwrap_or_else(free_port);
            // Node and storage serve metrics on a port of their own (the edge on its port).
            let metrics = match self.kind {
                Kind::Storage => Some(("WPSMESH_STORAGE__METRICS_LISTEN", free_port())),
                Kind::Node => Some(("WPSMESH_NODE__METRICS_LISTEN", free_port())),
                Kind::Edge(_) => None,
            };
            let log = self.dir.join(format!("{}.log", self.name));
            let file = std::fs::File::create(&log)?;
            let child = Command::new(&bin)
                .arg(subcommand)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(&self.args)
                .envs(metrics.map(|(key, port)| (key, format!("127.0.0.1:{port}"))))
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()?;
            let mut service = Service {
                name: self.name.clone(),
                port,
                metrics_port: metrics.map_or(port, |(_, port)| port),
                log,
                child: ChildGuard(child),
            };
            match service.wait_ready(&self.kind).await {
                Ok(()) => return Ok(service),
                // Someone took the free port in between: another one.
                Err(_)
                    if self.port.is_none()
                        && tries < 3
                        && service.log().contains("cannot listen") => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A running `wpsmesh` service; killed on drop.
pub struct Service {
    name: String,
    port: u16,
    metrics_port: u16,
    log: PathBuf,
    child: ChildGuard,
}

impl Service {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, which is also how a node names itself in job records.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (gRPC URI or HTTP base URL).
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` where `GET /metrics` answers: the edge's own port, the metrics port of
    /// a node or storage service.
    pub fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, SIGTERM, ...).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        crate::signal(self.pid(), signal)
    }

    /// SIGKILL, and waits until it is reaped.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    async fn wait_ready(&mut self, kind: &Kind) -> anyhow::Result<()> {
        let timeout = match kind {
            Kind::Node => Duration::from_secs(120),
            Kind::Storage | Kind::Edge(_) => Duration::from_secs(30),
        };
        let deadline = Instant::now() + timeout;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                anyhow::bail!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            let ready = match kind {
                Kind::Storage => {
                    grpc_serving(&self.uri(), "wpsmesh.storage.v1.StorageService").await
                }
                Kind::Node => grpc_serving(&self.uri(), "wpsmesh.process.v1.ProcessService").await,
                Kind::Edge(nodes) => edge_ready(&http, &self.uri(), *nodes).await,
            };
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} was not ready within {timeout:?}:\n{}",
                self.name,
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Release storage (local backend), one node over it (with `node_env` besides its defaults) and
/// an edge over both, in `dir`: the mesh the edge benches measure. Returned as storage, node,
/// edge.
pub async fn release_mesh(
    dir: &Path,
    node_env: &[(&str, &str)],
) -> anyhow::Result<(Service, Service, Service)> {
    let storage = Launch::storage(dir, "storage").release().start().await?;
    let mut node = Launch::node(dir, "node", &storage.uri()).release();
    for (key, value) in node_env {
        node = node.env(*key, value);
    }
    let node = node.start().await?;
    let edge = Launch::edge(dir, "edge", &storage.uri(), &[node.uri()])
        .release()
        .start()
        .await?;
    Ok((storage, node, edge))
}

/// Whether the gRPC health service at `uri` says `service` is SERVING.
pub async fn grpc_serving(uri: &str, service: &str) -> bool {
    let Ok(channel) = wpsmesh_runtime::grpc::channel(uri) else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: service.into(),
    });
    matches!(
        tokio::time::timeout(Duration::from_secs(2), check).await,
        Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32
    )
}

/// Waits until the gRPC server at `uri` reports `service` SERVING, for at most `timeout`.
pub async fn until_serving(uri: &str, service: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !grpc_serving(uri, service).await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{uri} did not serve {service} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Whether the edge at `url` answers `/health` and counts `nodes` healthy nodes in `/metrics`.
pub async fn edge_ready(http: &reqwest::Client, url: &str, nodes: usize) -> bool {
    let ok = |r: reqwest::Result<reqwest::Response>| r.ok().filter(|r| r.status().is_success());
    if ok(http.get(format!("{url}/health")).send().await).is_none() {
        return false;
    }
    let Some(metrics) = ok(http.get(format!("{url}/metrics")).send().await) else {
        return false;
    };
    metrics
        .text()
        .await
        .is_ok_and(|t| t.contains(&format!("\nwpsmesh_edge_nodes {nodes}\n")))
}

/// Object ids in a local storage root (`dir/name` of [`Launch::storage`]): every 32-hex file name under `objects/`, metadata files counted once.
pub fn object_ids(root: &Path) -> BTreeSet<String> {
    files_under(&root.join("objects"))
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let id = name.get(..32)?;
            id.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| id.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_and_edge_start_ready_and_die_on_signals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Launch::storage(dir.path(), "storage")
            .start()
            .await
            .expect("storage starts");
        assert!(dir.path().join("storage/objects").is_dir());
        assert!(object_ids(&dir.path().join("storage")).is_empty());
        // A node nobody runs: the edge is up with none healthy.
        let absent = format!("http://127.0.0.1:{}", free_port());
        let mut edge = Launch::edge(dir.path(), "edge", &storage.uri(), &[absent])
            .expect_nodes(0)
            .start()
            .await
            .expect("edge starts");
        let (http, url) = (reqwest::Client::new(), edge.uri());
        assert!(edge_ready(&http, &url, 0).await);
        assert!(
            edge.log().contains("127.0.0.1"),
            "log captured: {}",
            edge.log()
        );
        edge.signal(Signal::SIGSTOP).expect("stop");
        let probe = tokio::time::timeout(Duration::from_millis(500), edge_ready(&http, &url, 0));
        assert!(probe.await.is_err(), "a stopped edge does not answer");
        edge.signal(Signal::SIGCONT).expect("continue");
        assert!(edge_ready(&http, &url, 0).await);
        edge.kill();
        assert!(!edge.is_running());

        // A bad setting: the error says so, with the log.
        let err = Launch::storage(dir.path(), "bad")
            .env("WPSMESH_STORAGE__NO_SUCH_KEY", "1")
            .start()
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("no_such_key"), "{err}");
    }
}
