//! gRPC spans on both ends of a call: [`Traced`] wraps a tonic service so every call is a
//! server span under the caller's context (read from the request's `traceparent`), and
//! [`client_span`] opens the client span of an outgoing call and writes its context into the
//! request's headers. Span names follow the gRPC conventions (`package.Service/Method`, kind
//! client or server); a `grpc-status` other than OK in the response headers (every error a
//! handler returns) sets the span's error status with the status message.
//!
//! Only the services wrapped are traced: health checks and reflection stay out of traces.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tower::Service;
use tracing::Instrument;
use tracing::field::Empty;

use crate::propagate;

/// `/package.Service/Method` as (`package.Service`, `Method`).
fn split(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

/// A tonic service whose calls are server spans.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S> Traced<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for Traced<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Traced<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split(request.uri().path());
        let span = tracing::info_span!(
            "grpc server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = Empty,
        );
        propagate::set_remote_parent(&span, request.headers());
        let call = span.in_scope(|| self.inner.call(request));
        let recorded = span.clone();
        Box::pin(
            async move {
                let answer = call.await;
                if let Ok(response) = &answer {
                    record_status(&recorded, response.headers());
                }
                answer
            }
            .instrument(span),
        )
    }
}

/// The client span of a call to `peer` (a URI), its context written into `request`'s
/// headers. Run the call inside it (`Instrument`) and hand the answer to [`client_answer`].
pub fn client_span<B>(request: &mut http::Request<B>, peer: &str) -> tracing::Span {
    let (service, method) = split(request.uri().path());
    let span = tracing::info_span!(
        "grpc client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        server.address = %peer,
        rpc.grpc.status_code = Empty,
    );
    propagate::inject_span(&span, request.headers_mut());
    span
}

/// Records the answer of a call on its client span: the status in the response headers, or the
/// transport error.
pub fn client_answer<R, E: std::fmt::Display>(
    span: &tracing::Span,
    answer: &Result<http::Response<R>, E>,
) {
    match answer {
        Ok(response) => record_status(span, response.headers()),
        Err(e) => propagate::fail(span, e.to_string()),
    }
}

/// `grpc-status` (and `grpc-message`) from response headers onto `span`; absent means the
/// status comes in trailers, after the span's work.
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        let message = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        let code = tonic::Code::from_i32(code);
        propagate::fail(span, format!("{code:?}: {message}"));
    }
}

/// `grpc-message` is percent-encoded (RFC 3986 unreserved characters stay as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split("/wpsmesh.process.v1.ProcessService/Execute"),
            ("wpsmesh.process.v1.ProcessService", "Execute")
        );
        assert_eq!(split("/odd"), ("odd", ""));
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("no%20node%3A x"), "no node: x");
        assert_eq!(percent_decode("50%"), "50%");
    }
}
