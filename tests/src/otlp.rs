//! A real OTLP gRPC trace receiver inside the test process: `opentelemetry.proto.collector.
//! trace.v1.TraceService` over tonic, as a collector serves it, keeping every span exported to
//! it with the `service.name` that sent it. Tests wait on it with [`Collector::wait_for`]
//! (woken by each export, no polling), and use [`hanging_endpoint`] / [`down_endpoint`] for
//! collectors that never answer or are not there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use tokio::sync::{Notify, oneshot};

/// One span as the receiver got it; ids in lowercase hex, parent empty for a root.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// OTLP `SpanKind` (2 server, 3 client).
    pub kind: i32,
    /// OTLP status code (2 error) and message.
    pub status_code: i32,
    pub status_message: String,
    pub attributes: BTreeMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

#[derive(Default)]
struct Received {
    /// Count the spans only (a bench): no conversion, nothing kept.
    counting: bool,
    counted: std::sync::atomic::AtomicU64,
    spans: Mutex<Vec<Span>>,
    exports: Mutex<u64>,
    changed: Notify,
}

struct Receiver(Arc<Received>);

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.0.counting {
            let n: usize = (request.get_ref().resource_spans.iter())
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.0
                .counted
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            return Ok(tonic::Response::new(ExportTraceServiceResponse::default()));
        }
        let mut got = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for s in scope.spans {
                    let status = s.status.unwrap_or_default();
                    got.push(Span {
                        service: service.clone(),
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        kind: s.kind,
                        status_code: status.code,
                        status_message: status.message,
                        attributes: attributes(&s.attributes),
                        links: s
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                        start_unix_nanos: s.start_time_unix_nano,
                        end_unix_nanos: s.end_time_unix_nano,
                    });
                }
            }
        }
        self.0.spans.lock().expect("spans").extend(got);
        *self.0.exports.lock().expect("exports") += 1;
        self.0.changed.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The running receiver; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    received: Arc<Received>,
    _stop: oneshot::Sender<()>,
}

impl Collector {
    /// Serves on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::serve(Received::default()).await
    }

    /// A receiver that only counts what it gets ([`Collector::counted`]): the cheapest stand-in
    /// for a collector elsewhere, for benches that share the machine with it.
    pub async fn counting() -> anyhow::Result<Self> {
        Self::serve(Received {
            counting: true,
            ..Received::default()
        })
        .await
    }

    /// Spans received by a [`Collector::counting`] receiver.
    pub fn counted(&self) -> u64 {
        self.received
            .counted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn serve(received: Received) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(received);
        let (stop, stopped) = oneshot::channel::<()>();
        let service = TraceServiceServer::new(Receiver(received.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        Ok(Self {
            addr,
            received,
            _stop: stop,
        })
    }

    /// The endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received.spans.lock().expect("spans").clone()
    }

    /// Export calls received so far.
    pub fn exports(&self) -> u64 {
        *self.received.exports.lock().expect("exports")
    }

    /// Waits until `done` holds for the spans received (checked after every export), at most
    /// `timeout`; returns them either way (the caller's assertions say what is missing).
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let changed = self.received.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if done(&self.spans()) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        let _ = waited;
        self.spans()
    }
}

/// An endpoint that accepts connections and never answers (a hung collector). Keep the
/// listener alive for as long as the endpoint is used.
pub fn hanging_endpoint() -> anyhow::Result<(std::net::TcpListener, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    Ok((listener, endpoint))
}

/// An endpoint where nothing listens (a collector that is down).
pub fn down_endpoint() -> String {
    format!("http://127.0.0.1:{}", crate::free_port())
}
