//! gRPC server latency for any tonic service: [`Metered`] wraps a generated server (keeping its
//! name, so `Router::add_service` takes it as is) and records
//! `wpsmesh_grpc_server_handling_seconds` by service, method and status code when the response
//! ends: at once for an error sent in the headers, at the trailers for a (streamed) answer, as
//! `Canceled` when the client goes away first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::registry::Registry;
use tonic::server::NamedService;
use tower::Service;

use super::{HistogramFamily, latency_histogram};

/// Labels: service (full protobuf name), method, code (`OK`, `NotFound`, ...).
type Labels = [(&'static str, String); 3];

/// The gRPC latency histogram of one server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    handling: HistogramFamily<Labels>,
}

impl GrpcMetrics {
    /// Registers the histogram in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let handling = HistogramFamily::<Labels>::new_with_constructor(latency_histogram as _);
        registry.register(
            "wpsmesh_grpc_server_handling_seconds",
            "Time to complete a gRPC call (to its last message), by service, method and status code",
            handling.clone(),
        );
        Self { handling }
    }

    /// Wraps a generated tonic server.
    pub fn wrap<S>(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: self.clone(),
        }
    }

    fn observe(&self, service: &'static str, method: &str, code: i32, seconds: f64) {
        // A method the service does not have is named by the client: not a label value.
        let method = if code == tonic::Code::Unimplemented as i32 {
            "unknown"
        } else {
            method
        };
        let labels = [
            ("service", service.to_owned()),
            ("method", method.to_owned()),
            ("code", code_name(code).to_owned()),
        ];
        self.handling.get_or_create(&labels).observe(seconds);
    }
}

/// A tonic server whose calls are timed; see [`GrpcMetrics::wrap`].
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S: NamedService> NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metered<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + NamedService,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut call = Call {
            metrics: Some(self.metrics.clone()),
            service: S::NAME,
            method,
            started: Instant::now(),
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if let Some(code) = status_in(response.headers()) {
                call.end(code);
            }
            Ok(response.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// One call being timed; recorded once, at its end or when dropped unfinished.
struct Call {
    metrics: Option<GrpcMetrics>,
    service: &'static str,
    method: String,
    started: Instant,
}

impl Call {
    fn end(&mut self, code: i32) {
        if let Some(metrics) = self.metrics.take() {
            let seconds = self.started.elapsed().as_secs_f64();
            metrics.observe(self.service, &self.method, code, seconds);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(tonic::Code::Cancelled as i32);
    }
}

/// A response body that records its call when the trailers (or the end) come through.
pub struct MeteredBody<B> {
    inner: B,
    call: Call,
}

impl<B> std::fmt::Debug for MeteredBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredBody")
            .field("method", &self.call.method)
            .finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for MeteredBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    self.call.end(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.call.end(tonic::Code::Unknown as i32),
            // Ended without a status: the protocol says there always is one.
            Poll::Ready(None) => self.call.end(tonic::Code::Unknown as i32),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn status_in(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The name of a gRPC status code as gRPC's own libraries label it (`OK`, `NotFound`, ...).
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A service answering with the status in the headers (`Some`) or in the trailers.
    #[derive(Clone)]
    struct Answer(Option<&'static str>);

    impl NamedService for Answer {
        const NAME: &'static str = "test.v1.Probe";
    }

    /// A body of trailers only.
    struct Trailers(Option<HeaderMap>);

    impl Body for Trailers {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|t| Ok(Frame::trailers(t))))
        }
    }

    impl Service<Request<()>> for Answer {
        type Response = Response<Trailers>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().expect("header"));
            let mut response = Response::new(Trailers(Some(trailers)));
            if let Some(code) = self.0 {
                response
                    .headers_mut()
                    .insert("grpc-status", code.parse().expect("header"));
            }
            std::future::ready(Ok(response))
        }
    }

    async fn call(service: &mut Metered<Answer>, path: &str) -> Response<MeteredBody<Trailers>> {
        let request = Request::builder().uri(path).body(()).expect("request");
        service.call(request).await.expect("answer")
    }

    #[tokio::test]
    async fn calls_are_timed_by_the_status_they_end_with() {
        let mut registry = Registry::default();
        let metrics = GrpcMetrics::new(&mut registry);
        // The status in the trailers, read once the body is read to its end.
        let mut ok = metrics.wrap(Answer(None));
        let mut body = call(&mut ok, "/test.v1.Probe/Get").await.into_body();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frame.expect("frame");
        }
        // An error in the headers.
        let mut missing = metrics.wrap(Answer(Some("5")));
        drop(call(&mut missing, "/test.v1.Probe/Get").await);
        // The client gone before the end.
        drop(call(&mut ok, "/test.v1.Probe/Watch").await);
        // A method the service does not have.
        drop(
            call(
                &mut metrics.wrap(Answer(Some("12"))),
                "/test.v1.Probe/x-1234",
            )
            .await,
        );
        let text = crate::metrics::encode(&registry, false);
        for line in [
            r#"wpsmesh_grpc_server_handling_seconds_count{service="test.v1.Probe",method="Get",code="OK"} 1"#,
            r#"wpsmesh_grpc_server_handling_seconds_count{service="test.v1.Probe",method="Get",code="NotFound"} 1"#,
            r#"wpsmesh_grpc_server_handling_seconds_count{service="test.v1.Probe",method="Watch",code="Canceled"} 1"#,
            r#"wpsmesh_grpc_server_handling_seconds_count{service="test.v1.Probe",method="unknown",code="Unimplemented"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("x-1234"), "{text}");
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(tonic::Code::NotFound as i32), "NotFound");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(99), "Unknown");
        assert_eq!(code_name(-1), "Unknown");
    }
}
