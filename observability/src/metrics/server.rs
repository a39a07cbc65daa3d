//! The metrics port of a service without HTTP of its own (node, storage): `GET /metrics` on a
//! listener of its own, served until the returned handle is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running metrics server; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `GET /metrics` for `registry` in the background.
pub async fn spawn(addr: SocketAddr, registry: Arc<Registry>) -> anyhow::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on metrics address {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(%addr, error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%addr, "metrics listening");
    Ok(MetricsServer { addr, task })
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    super::response(&registry, &headers)
}
