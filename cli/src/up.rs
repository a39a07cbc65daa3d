//! `wpsmesh up`: the local mesh on embedded defaults — edge, storage and N nodes in this one
//! process (each node with its own pool of worker processes) — until Ctrl-C. Once the edge's
//! own readiness check passes (a healthy node, storage answering) it prints one line,
//! `ready: {public_url}/api/wps`, on stdout: from then on an Execute is served.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use figment::Figment;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};
use wpsmesh_discovery::DiscoveryKind;
use wpsmesh_edge::{Edge, Readiness};

use crate::config::Config;

/// Flags of `wpsmesh up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory for the mesh's files (default `.data`).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Storage port (default 8800).
    #[arg(long)]
    pub storage_port: Option<u16>,
    /// Edge HTTP port (default 9000).
    #[arg(long)]
    pub port: Option<u16>,
    /// Nodes to run, on ports 8001, 8002, ...
    #[arg(long, default_value_t = 2)]
    pub nodes: u16,
    /// Worker processes per node (default: one per core, shared out among the nodes).
    #[arg(long)]
    pub workers: Option<usize>,
}

impl UpArgs {
    pub(crate) fn overrides(&self, mut f: Figment) -> Figment {
        if let Some(dir) = &self.data_dir {
            f = f.merge(("storage.local.root", dir.join("storage")));
            f = f.merge(("node.work_dir", dir.join("work")));
        }
        if let Some(port) = self.storage_port {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            f = f.merge(("storage.listen", addr.to_string()));
        }
        if let Some(port) = self.port {
            f = f.merge((
                "edge.listen",
                SocketAddr::from(([0, 0, 0, 0], port)).to_string(),
            ));
            f = f.merge(("edge.public_url", format!("http://localhost:{port}")));
        }
        f
    }
}

/// Starts every service and waits for Ctrl-C or SIGTERM, then stops them all.
pub async fn run(config: Config, args: UpArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut services = JoinSet::new();

    let storage_listener = crate::bind(config.storage.listen).await?;
    let storage_addr = storage_listener.local_addr()?;
    services.spawn(wpsmesh_storage::run(
        config.storage.clone(),
        storage_listener,
        stopped(),
    ));
    println!("wpsmesh local mesh");
    println!(
        "  storage  grpc://{storage_addr}  (files in {}{})",
        config.storage.local.root.display(),
        shown_metrics(config.storage.metrics_listen),
    );

    let workers = args.workers.unwrap_or_else(|| {
        (wpsmesh_node::pool::workers_for_this_machine() / usize::from(args.nodes.max(1))).max(1)
    });
    // One job store for every node: the in-process one unless the config names Redis.
    let store = wpsmesh_jobstore::open(&config.node.jobs).await?;
    let mut node_uris = Vec::new();
    let metrics_ports = node_metrics_ports(
        config.node.metrics_listen,
        args.nodes,
        config.storage.metrics_listen.map(|a| a.port()),
    );
    for i in 0..args.nodes {
        let mut node = config.node.clone();
        node.listen = SocketAddr::from(([127, 0, 0, 1], config.node.listen.port() + i));
        node.storage = format!("http://127.0.0.1:{}", storage_addr.port());
        // The embedded storage, whatever the config says about finding another one.
        node.storage_discovery.kind = DiscoveryKind::Static;
        node.storage_discovery.members.clear();
        node.work_dir = config.node.work_dir.join(format!("node-{}", i + 1));
        node.pool.workers = workers;
        node.metrics_listen = metrics_ports
            .get(usize::from(i))
            .copied()
            .flatten()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        node_uris.push(format!("http://{}", node.listen));
        let listener = crate::bind(node.listen).await?;
        println!(
            "  node {}   grpc://{}  ({workers} workers{})",
            i + 1,
            node.listen,
            shown_metrics(node.metrics_listen),
        );
        services.spawn(wpsmesh_node::run_with_store(
            node,
            store.clone(),
            listener,
            stopped(),
        ));
    }
    let mut edge = config.edge.clone();
    edge.storage = format!("http://127.0.0.1:{}", storage_addr.port());
    edge.storage_discovery.kind = DiscoveryKind::Static;
    edge.storage_discovery.members.clear();
    edge.discovery.nodes = node_uris;
    let edge_listener = crate::bind(edge.listen).await?;
    edge.listen = edge_listener.local_addr()?;
    let edge = Edge::new(edge)?;
    let wps_url = edge.wps_url();
    let edge_addr = edge_listener.local_addr()?;
    println!("  edge     http://{edge_addr}  (WPS: {wps_url}, metrics http://{edge_addr}/metrics)");
    let _announce = AbortOnDrop(tokio::spawn(announce(edge.readiness(), wps_url)));
    services.spawn(edge.serve(edge_listener, stopped()));
    info!(nodes = args.nodes, "local mesh starting; ctrl-c stops it");

    let outcome = tokio::select! {
        () = wpsmesh_runtime::shutdown::signal() => Ok(()),
        Some(r) = services.join_next() => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("a service stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        },
    };
    let _ = stop_tx.send(true);
    while let Some(r) = services.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "service stopped with an error");
        }
    }
    outcome
}

/// How long the mesh may take to become ready before a warning says what is missing (QGIS
/// takes about 1.5 s per worker, then the catalog is described).
const READY_WITHIN: Duration = Duration::from_secs(180);

/// Waits for the edge's readiness, then prints `ready: {wps_url}` on stdout. Past
/// [`READY_WITHIN`] it warns once, naming what is missing, and keeps waiting.
async fn announce(readiness: Readiness, wps_url: String) {
    let mut report = readiness.wait(READY_WITHIN).await;
    if !report.is_ready() {
        warn!(missing = ?report.missing, waited = ?READY_WITHIN, "local mesh not ready yet; still waiting");
        while !report.is_ready() {
            report = readiness.wait(READY_WITHIN).await;
        }
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "ready: {wps_url}");
    let _ = stdout.flush();
    info!(url = %wps_url, nodes = report.nodes, "local mesh ready");
}

/// `, metrics http://addr/metrics` for a service that serves them.
fn shown_metrics(addr: Option<SocketAddr>) -> String {
    addr.map(|a| format!(", metrics http://{a}/metrics"))
        .unwrap_or_default()
}

/// A metrics port for each of `nodes` nodes in one process: the configured one, then the next
/// ones up, skipping `taken` (the storage service's); none when the config has none.
fn node_metrics_ports(
    base: Option<SocketAddr>,
    nodes: u16,
    taken: Option<u16>,
) -> Vec<Option<u16>> {
    let Some(base) = base else {
        return vec![None; usize::from(nodes)];
    };
    (base.port()..=u16::MAX)
        .filter(|p| Some(*p) != taken)
        .take(usize::from(nodes))
        .map(Some)
        .collect()
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_own_metrics_port_past_the_storage_one() {
        let base = "0.0.0.0:9101".parse().ok();
        assert_eq!(
            node_metrics_ports(base, 3, Some(9102)),
            [Some(9101), Some(9103), Some(9104)]
        );
        assert_eq!(node_metrics_ports(base, 2, None), [Some(9101), Some(9102)]);
        assert_eq!(node_metrics_ports(None, 2, Some(9102)), [None, None]);
    }
}
