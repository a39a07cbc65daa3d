//! wpsmesh edge: OGC WPS 1.0.0/2.0.0, the JSON job API and the file API over HTTP, translated
//! into gRPC calls on nodes (balanced) and storage.
//!
//! `run(config, listener, shutdown)` serves everything on an already bound listener;
//! [`Edge`] does the same in two steps, handing out its [`Readiness`] in between (`wpsmesh up`
//! waits on it); `app(...)` builds the router alone, for in-process tests.

pub mod catalog;
pub mod config;
pub mod encoding;
pub mod files;
pub mod jobs;
mod listener;
pub mod metrics;
pub mod nodes;
pub mod ogcapi;
pub mod ows;
pub mod ready;
pub mod trace;
pub mod wps;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tracing::info;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;

pub use config::Config;
pub use ready::{Readiness, Report};

/// The whole HTTP surface of the edge over `nodes` and the storage service on `storage`.
pub fn app(config: &Config, nodes: nodes::Nodes, storage: Channel) -> Router {
    build(config, nodes, storage).0
}

/// The router and the readiness check over the same nodes and storage.
fn build(config: &Config, nodes: nodes::Nodes, storage: Channel) -> (Router, Readiness) {
    let readiness = Readiness::new(nodes.clone(), storage.clone(), config.discovery.retry_after);
    let storage = files::Storage::new(
        StorageServiceClient::new(storage),
        config.storage_timeout,
        config.storage_idle_timeout,
    );
    let metrics = Arc::new(metrics::Metrics::new(nodes.clone()));
    let mut service = wps::Service::new(&config.public_url);
    service.title = config.title.clone();
    let own_files = jobs::OwnFiles::new(&config.public_url, config.listen, &config.file_hosts);
    let catalog = Arc::new(catalog::Catalog::new(&nodes));
    let ogc_state = ogcapi::OgcState {
        nodes: nodes.clone(),
        catalog: catalog.clone(),
        files: own_files.clone(),
        public_url: config.public_url.trim_end_matches('/').to_owned(),
        max_body: config.max_body_bytes,
        storage: storage.clone(),
    };
    let wps_state = Arc::new(wps::handler::WpsState {
        catalog,
        nodes: nodes.clone(),
        storage: storage.clone(),
        service,
        files: own_files.clone(),
        max_body: config.max_body_bytes,
    });
    let router = Router::new()
        .merge(wps::handler::router(wps_state))
        .merge(ogcapi::router(ogc_state))
        .merge(jobs::api::router(jobs::api::JobsState {
            nodes: nodes.clone(),
            files: own_files,
            max_body: config.max_body_bytes,
        }))
        .merge(files::router(files::FilesState::new(
            storage,
            config.max_upload_bytes,
            &config.public_url,
        )))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready::handler).with_state(readiness.clone()))
        .route(
            "/metrics",
            get(metrics::handler).with_state(metrics.clone()),
        )
        // gzip/br by Accept-Encoding: cached documents from their precomputed forms, other
        // XML and JSON answers per response; files and raw outputs never.
        .layer(axum::middleware::from_fn(encoding::compress))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        // Outermost: the request's span covers everything, and every answer names its trace.
        .layer(axum::middleware::from_fn(trace::http));
    (router, readiness)
}

/// A configured edge: discovery and health checking started, not serving yet.
#[derive(Debug)]
pub struct Edge {
    config: Config,
    router: Router,
    readiness: Readiness,
}

impl Edge {
    /// Starts node discovery (needs a tokio runtime) and builds the router.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        jobs::OwnFiles::check(&config.public_url, &config.file_hosts)
            .map_err(|e| anyhow::anyhow!("edge.file_hosts: {e}"))?;
        // Balanced over the discovered storage instances; discovery stops with the last clone.
        let storage = wpsmesh_discovery::balanced_channel(
            &config.storage_discovery.or_member(&config.storage),
            tokio_util::sync::CancellationToken::new(),
        )?
        .channel;
        let nodes = nodes::Nodes::start(&config.discovery)?;
        let (router, readiness) = build(&config, nodes, storage);
        Ok(Self {
            config,
            router,
            readiness,
        })
    }

    /// The check behind `GET /ready`, for callers in the same process.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The WPS endpoint clients use, `{public_url}/api/wps`.
    pub fn wps_url(&self) -> String {
        wps::endpoint(&self.config.public_url)
    }

    /// Serves on `listener` until `shutdown` resolves; connections close gracefully, so a
    /// client still sending a refused request reads its answer (see `listener`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(addr = %listener.local_addr()?, public_url = %self.config.public_url, "edge listening");
        axum::serve(listener::Listener::new(listener), self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        info!("edge stopped");
        Ok(())
    }
}

/// Serves the edge on `listener` until `shutdown` resolves.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Where it really listens (a port 0 in the config is the listener's choice): hrefs to this
    // address are the edge's own files.
    config.listen = listener.local_addr()?;
    Edge::new(config)?.serve(listener, shutdown).await
}
