//! gRPC plumbing: a server that always carries the standard health and reflection services,
//! and client channels tuned for streaming large files over HTTP/2.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::server::HealthReporter;

/// HTTP/2 flow-control windows: large enough that a 1 MiB chunk never waits for a window update
/// on loopback or a LAN.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// HTTP/2 frame size: a 1 MiB chunk crosses in a few frames instead of 64 of the 16 KiB default.
const MAX_FRAME: u32 = 1024 * 1024;
/// Largest gRPC message accepted: a 1 MiB chunk plus framing, with room to spare.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest header block a client accepts (h2's own default; hyper lowers it to 16 KiB). An
/// error status travels in headers, and one over this limit makes the client's h2 close the
/// whole connection, failing every call on it: the limit stays far above any message a
/// service means to send, so one oversized answer fails its own call only.
pub const MAX_HEADER_LIST: u32 = 16 * 1024 * 1024;

/// A server builder with wpsmesh's transport settings.
pub fn server() -> Server {
    Server::builder()
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
}

/// Adds the standard health service (`grpc.health.v1`) and reflection (v1 and v1alpha) to a
/// server. Returns the router and the health reporter; the caller marks its services serving.
pub fn with_health_and_reflection(mut server: Server) -> (Router, HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wpsmesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("wpsmesh descriptors are valid");
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wpsmesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("wpsmesh descriptors are valid");
    let router = server
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha);
    (router, reporter)
}

/// Serves `router` on an already bound listener until `shutdown` resolves, then drains.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Accepted sockets get TCP_NODELAY here: the server builder's setting only applies to
    // listeners tonic binds itself, and without it small messages wait ~40 ms for delayed ACKs.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A lazily connecting channel to `uri` (e.g. `http://127.0.0.1:8800`) with wpsmesh's settings.
pub fn channel(uri: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(endpoint(uri)?.connect_lazy())
}

/// An endpoint to `uri` with wpsmesh's transport settings, for callers that want to connect
/// eagerly or adjust it.
pub fn endpoint(uri: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(uri.to_owned())?
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .http2_max_header_list_size(MAX_HEADER_LIST)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10)))
}
