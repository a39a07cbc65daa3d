//! wpsmesh storage service: streams files over gRPC into S3/MinIO or a local directory.
//!
//! `run(config, listener, shutdown)` serves `wpsmesh.storage.v1.StorageService` with the
//! standard health and reflection services on an already bound listener, registered in Consul as
//! `wps-file-storage` when `[storage.consul] address` is set (deregistered before it stops); its
//! Prometheus metrics are served on `metrics_listen` when set.

mod backend;
mod config;
mod error;
mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};
use wpsmesh_discovery::Registration;
use wpsmesh_proto::wire::storage::v1::storage_service_server::StorageServiceServer;
use wpsmesh_runtime::grpc;

pub use backend::{Backend, s3_client};
pub use config::{BackendKind, Config, LocalConfig, S3Config};
pub use error::StorageError;
pub use service::StorageService;

/// Starts a storage service with the local backend in `root` on a free loopback port, in the
/// background of the current runtime, for tests, benchmarks and local tools; returns its URI.
pub async fn spawn_local(root: std::path::PathBuf) -> anyhow::Result<String> {
    spawn_local_on(TcpListener::bind("127.0.0.1:0").await?, root)
}

/// [`spawn_local`] on an already bound listener (a port a client was told in advance).
pub fn spawn_local_on(listener: TcpListener, root: std::path::PathBuf) -> anyhow::Result<String> {
    let mut config = Config::default();
    config.local.root = root;
    let uri = format!("http://{}", listener.local_addr()?);
    tokio::spawn(run(config, listener, std::future::pending()));
    Ok(uri)
}

/// Serves the storage service on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backend = Backend::from_config(&config).await?;
    let mut registry = wpsmesh_telemetry::metrics::registry();
    let storage = StorageService::new(backend.clone(), &config);
    storage.register_metrics(&mut registry);
    let grpc_metrics = wpsmesh_telemetry::metrics::GrpcMetrics::new(&mut registry);
    let service = grpc_metrics.wrap(
        StorageServiceServer::new(storage)
            .max_decoding_message_size(grpc::MAX_MESSAGE)
            .max_encoding_message_size(grpc::MAX_MESSAGE),
    );
    let (router, health) = grpc::with_health_and_reflection(grpc::server());
    // Calls are server spans under the caller's trace (health checks stay out of traces).
    let router = router.add_service(wpsmesh_telemetry::grpc::Traced::new(service));

    // Serving is reported once the backend is reachable (the bucket exists); until then the
    // health service says NOT_SERVING and calls fail with UNAVAILABLE naming the endpoint.
    health
        .set_not_serving::<StorageServiceServer<StorageService>>()
        .await;
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        loop {
            match backend.ready().await {
                Ok(()) => {
                    health
                        .set_serving::<StorageServiceServer<StorageService>>()
                        .await;
                    info!(backend = backend.describe(), "storage backend ready");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?delay, "storage backend not ready");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    });

    let addr = listener.local_addr()?;
    let registration =
        Registration::spawn(&config.consul, &config.consul.advertise_host(), addr.port())?;
    let _metrics_server = match config.metrics_listen {
        Some(at) => Some(wpsmesh_telemetry::metrics::spawn(at, Arc::new(registry)).await?),
        None => None,
    };
    info!(%addr, backend = ?config.backend, "storage listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(grpc::serve(router, listener, async move {
        let _ = stop_rx.await;
    }));
    let shutdown = std::pin::pin!(shutdown);
    let failed = tokio::select! {
        () = shutdown => None,
        served = &mut serving => Some(served),
    };
    // Leave Consul first so callers stop routing here, then drain.
    registration.deregister().await;
    match failed {
        Some(served) => served??,
        None => {
            let _ = stop_tx.send(());
            serving.await??;
        }
    }
    info!("storage stopped");
    Ok(())
}
