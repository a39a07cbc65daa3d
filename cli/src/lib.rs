//! The `wpsmesh` command: argument parsing, configuration, and starting services in-process.

pub mod config;
pub mod up;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use figment::Figment;
use tokio::net::TcpListener;

/// wpsmesh: every QGIS Processing algorithm over OGC WPS, on a gRPC mesh.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "WPSMESH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long, global = true)]
    pub dump_config: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local mesh on embedded defaults, until Ctrl-C.
    Up(up::UpArgs),
    /// Run the HTTP edge: WPS 1.0.0/2.0.0, the JSON job API and the file API.
    Edge {
        /// Address to listen on (default 0.0.0.0:9000).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Node addresses for static discovery, e.g. http://10.0.0.5:8001 (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
    },
    /// Run one node: a pool of PyQGIS workers behind the ProcessService.
    Node {
        /// Address to listen on (default 0.0.0.0:8001).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Worker processes (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// The storage service, e.g. http://127.0.0.1:8800.
        #[arg(long)]
        storage: Option<String>,
    },
    /// Run the storage service alone.
    Storage {
        /// Address to listen on (default 0.0.0.0:8800).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// `local` or `s3`.
        #[arg(long)]
        backend: Option<String>,
    },
}

impl Cli {
    /// Flag values that override the configuration.
    fn overrides(&self) -> Figment {
        let mut f = Figment::new();
        match &self.command {
            Command::Storage { listen, backend } => {
                if let Some(l) = listen {
                    f = f.merge(("storage.listen", l.to_string()));
                }
                if let Some(b) = backend {
                    f = f.merge(("storage.backend", b.as_str()));
                }
            }
            Command::Edge { listen, nodes } => {
                if let Some(l) = listen {
                    f = f.merge(("edge.listen", l.to_string()));
                }
                if !nodes.is_empty() {
                    f = f.merge(("edge.discovery.nodes", nodes.clone()));
                }
            }
            Command::Node {
                listen,
                workers,
                storage,
            } => {
                if let Some(l) = listen {
                    f = f.merge(("node.listen", l.to_string()));
                }
                if let Some(w) = workers {
                    f = f.merge(("node.pool.workers", *w));
                }
                if let Some(s) = storage {
                    f = f.merge(("node.storage", s.as_str()));
                }
            }
            Command::Up(args) => f = args.overrides(f),
        }
        f
    }
}

/// Runs the command line; returns when the service stops.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    let config = config::load(cli.config.as_deref(), cli.overrides())?;
    if cli.dump_config {
        print!("{}", config::dump(&config)?);
        return Ok(());
    }
    let service = match cli.command {
        Command::Storage { .. } => "wpsmesh-storage",
        Command::Edge { .. } => "wpsmesh-edge",
        Command::Node { .. } => "wpsmesh-node",
        Command::Up(_) => "wpsmesh",
    };
    // Held until the service stops: spans still queued are exported then.
    let _telemetry = config.log.install(&config.telemetry, service);
    match cli.command {
        Command::Storage { .. } => {
            let listener = bind(config.storage.listen).await?;
            wpsmesh_storage::run(
                config.storage,
                listener,
                wpsmesh_runtime::shutdown::signal(),
            )
            .await
        }
        Command::Edge { .. } => {
            let listener = bind(config.edge.listen).await?;
            wpsmesh_edge::run(config.edge, listener, wpsmesh_runtime::shutdown::signal()).await
        }
        Command::Node { .. } => {
            let listener = bind(config.node.listen).await?;
            wpsmesh_node::run(config.node, listener, wpsmesh_runtime::shutdown::signal()).await
        }
        Command::Up(args) => up::run(config, args).await,
    }
}

/// Binds a listener, naming the address when it fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
