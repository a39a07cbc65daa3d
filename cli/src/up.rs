//! `wpsmesh up`: the local mesh on embedded defaults, every service in this one process, until
//! Ctrl-C. Today that is the storage service; the edge and nodes join as they land.

use std::net::SocketAddr;

use figment::Figment;
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;

/// Flags of `wpsmesh up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory for the mesh's files (default `.data/storage`).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Storage port (default 8800).
    #[arg(long)]
    pub storage_port: Option<u16>,
}

impl UpArgs {
    pub(crate) fn overrides(&self, mut f: Figment) -> Figment {
        if let Some(dir) = &self.data_dir {
            f = f.merge(("storage.local.root", dir.join("storage")));
        }
        if let Some(port) = self.storage_port {
            f = f.merge((
                "storage.listen",
                SocketAddr::from(([127, 0, 0, 1], port)).to_string(),
            ));
        }
        f
    }
}

/// Starts every service and waits for Ctrl-C or SIGTERM, then stops them all.
pub async fn run(config: Config, _args: UpArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let storage_listener = crate::bind(config.storage.listen).await?;
    let storage_addr = storage_listener.local_addr()?;
    let storage = tokio::spawn(wpsmesh_storage::run(
        config.storage.clone(),
        storage_listener,
        stopped(),
    ));

    info!(storage = %format!("grpc://{storage_addr}"), "local mesh up; ctrl-c stops it");
    println!("wpsmesh local mesh");
    println!(
        "  storage  grpc://{storage_addr}  (files in {})",
        config.storage.local.root.display()
    );

    tokio::select! {
        () = wpsmesh_runtime::shutdown::signal() => {}
        r = storage => {
            r??;
            anyhow::bail!("storage stopped unexpectedly");
        }
    }
    let _ = stop_tx.send(true);
    Ok(())
}
