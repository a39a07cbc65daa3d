//! wpsmesh node: serves `wpsmesh.process.v1.ProcessService` from a pool of PyQGIS workers.
//!
//! `run(config, listener, shutdown)` starts the worker pool, reads the process catalog once,
//! serves gRPC (with health and reflection) until `shutdown`, registering in Consul when
//! configured and deregistering before it stops; its Prometheus metrics are served on
//! `metrics_listen` when set.

pub mod attempt;
pub mod callbacks;
pub mod catalog;
pub mod config;

pub mod dependency;
pub mod error;
pub mod execute;
pub mod fetch;
pub mod jobs;
pub mod metrics;
pub mod outputs;
pub mod pool;
pub mod scheduler;
pub mod service;
pub mod stream;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;
use wpsmesh_proto::wire::process::v1::process_service_server::ProcessServiceServer;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_runtime::grpc;

pub use config::Config;
pub use error::NodeError;
use wpsmesh_jobstore::JobStore;

/// Serves a node on `listener` until `shutdown` resolves, with the job store its config names.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = wpsmesh_jobstore::open(&config.jobs).await?;
    run_with_store(config, store, listener, shutdown).await
}

/// Serves a node with a given job store (`wpsmesh up` shares one in-process store among its
/// nodes).
pub async fn run_with_store(
    config: Config,
    store: Arc<dyn JobStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tokio::fs::create_dir_all(&config.work_dir).await?;
    let mut registry = wpsmesh_telemetry::metrics::registry();
    let metrics = metrics::NodeMetrics::new(&mut registry);
    let store = metrics::MeteredStore::wrap(store, metrics.clone());
    // Balanced over the discovered storage instances; discovery stops with the last clone.
    let storage_channel = wpsmesh_discovery::balanced_channel(
        &config.storage_discovery.or_member(&config.storage),
        CancellationToken::new(),
    )?
    .channel;
    let storage =
        StorageServiceClient::new(storage_channel).max_decoding_message_size(grpc::MAX_MESSAGE);
    let fetcher = fetch::Fetcher::new(config.fetch.clone(), Some(storage.clone()))?;
    let pool = Arc::new(pool::Pool::start(config.pool.clone()).await?);
    pool.register_metrics(&mut registry);
    fetcher.register_metrics(&mut registry);
    let catalog = catalog::Catalog::from_json(&pool.describe().await?)?;
    if !catalog.skipped().is_empty() {
        let ids: Vec<&str> = catalog
            .skipped()
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        info!(count = ids.len(), ids = ?ids, "algorithms left out: a required parameter cannot be expressed");
    }
    info!(
        processes = catalog.len(),
        workers = pool.size(),
        qgis = pool.qgis_version(),
        "process catalog ready"
    );

    let callbacks = callbacks::Callbacks::new(
        config.callbacks.clone(),
        fetcher.outbound(),
        metrics.clone(),
    )?;
    let node_name = format!("{}:{}", config.consul.advertise_host(), addr.port());
    let executor = Arc::new(execute::Executor {
        catalog: Arc::new(catalog),
        pool: pool.clone(),
        fetcher,
        storage: storage.into(),
        work_dir: config.work_dir.clone(),
        max_inline_bytes: config.max_inline_bytes,
        max_timeout: config.pool.job_timeout,
    });
    let runner = Arc::new(attempt::Runner {
        store,
        executor,
        running: Arc::default(),
        node: node_name,
        config: config.jobs.clone(),
        metrics,
        callbacks,
    });
    let service = service::ProcessService::new(runner.clone());
    let scheduler = Arc::new(scheduler::Scheduler {
        runner,
        stop: CancellationToken::new(),
    });
    let mut scheduling = scheduler.start();

    let grpc_metrics = wpsmesh_telemetry::metrics::GrpcMetrics::new(&mut registry);
    let (router, health) = grpc::with_health_and_reflection(grpc::server());
    // Calls are server spans under the caller's trace (health checks stay out of traces).
    let router = router.add_service(wpsmesh_telemetry::grpc::Traced::new(
        grpc_metrics.wrap(
            ProcessServiceServer::new(service)
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        ),
    ));
    health
        .set_serving::<ProcessServiceServer<service::ProcessService>>()
        .await;

    let registration = wpsmesh_discovery::Registration::spawn(
        &config.consul,
        &config.consul.advertise_host(),
        addr.port(),
    )?;
    let _metrics_server = match config.metrics_listen {
        Some(at) => Some(wpsmesh_telemetry::metrics::spawn(at, Arc::new(registry)).await?),
        None => None,
    };
    info!(%addr, "node listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(grpc::serve(router, listener, async move {
        let _ = stop_rx.await;
    }));
    shutdown.await;
    // Leave Consul first so the edge stops routing here, then drain.
    registration.deregister().await;
    let _ = stop_tx.send(());
    serving.await??;
    // No new claims; claimed jobs get a lease's time to finish, then the pool's shutdown cuts
    // them short and they are handed back to the queue for another node.
    scheduler.stop.cancel();
    let drained = tokio::time::timeout(config.jobs.lease, async {
        while scheduling.join_next().await.is_some() {}
    })
    .await;
    pool.shutdown().await;
    if drained.is_err() {
        while scheduling.join_next().await.is_some() {}
    }
    info!("node stopped");
    Ok(())
}
