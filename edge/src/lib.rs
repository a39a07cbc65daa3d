//! wpsmesh edge: OGC WPS 1.0.0/2.0.0, the JSON job API and the file API over HTTP, translated
//! into gRPC calls on nodes (balanced) and storage.
//!
//! `run(config, listener, shutdown)` serves everything on an already bound listener;
//! `app(...)` builds the router alone, for in-process tests.

pub mod catalog;
pub mod config;
pub mod files;
pub mod jobs;
pub mod jobs_api;
pub mod metrics;
pub mod nodes;
pub mod ows;
pub mod wps;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tracing::info;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_runtime::grpc;

pub use config::Config;

/// The whole HTTP surface of the edge over `nodes` and `storage`.
pub fn app(config: &Config, nodes: nodes::Nodes, storage: StorageServiceClient<Channel>) -> Router {
    let metrics = Arc::new(metrics::Metrics::default());
    let mut service = wps::Service::new(&config.public_url);
    service.title = config.title.clone();
    let wps_state = Arc::new(wps::handler::WpsState {
        catalog: catalog::Catalog::new(&nodes),
        nodes: nodes.clone(),
        storage: storage.clone(),
        service,
        max_body: config.max_body_bytes,
    });
    Router::new()
        .merge(wps::handler::router(wps_state))
        .merge(jobs_api::router(jobs_api::JobsState {
            nodes: nodes.clone(),
            max_body: config.max_body_bytes,
        }))
        .merge(files::router(files::FilesState::new(
            storage,
            config.max_upload_bytes,
        )))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(metrics::handler).with_state((metrics.clone(), nodes)),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
}

/// Serves the edge on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let storage = StorageServiceClient::new(grpc::channel(&config.storage)?)
        .max_decoding_message_size(grpc::MAX_MESSAGE);
    let nodes = nodes::Nodes::start(&config.discovery)?;
    let app = app(&config, nodes, storage);
    info!(addr = %listener.local_addr()?, public_url = %config.public_url, "edge listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    info!("edge stopped");
    Ok(())
}
