//! gRPC spans on both ends of a call: [`Traced`] wraps a tonic service so every call is a
//! server span under the caller's context (read from the request's `traceparent`), and
//! [`client_span`] opens the client span of an outgoing call and writes its context into the
//! request's headers. Span names follow the gRPC conventions (`package.Service/Method`, kind
//! client or server). A span lasts until its response ends (the last message of a stream, its
//! trailers, or the response given up), records the bytes of the request and response bodies
//! (`rpc.request.bytes`, `rpc.response.bytes`) and the `grpc-status`, from the trailers or, for
//! a trailers-only answer, the headers; a status other than OK sets the span's error status
//! with the status message.
//!
//! Only the services wrapped are traced: health checks and reflection stay out of traces.

mod body;
#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use body::{Counted, TracedBody};
use tonic::server::NamedService;
use tower::Service;
use tracing::Instrument;
use tracing::field::Empty;

use crate::propagate;

/// The status of a server response its client gave up before the end.
const CLIENT_GONE: &str = "Cancelled: the client went away before the end of the response";
/// The status of a client call whose response was dropped before its end.
const ANSWER_DROPPED: &str = "Cancelled: the response was dropped before its end";

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
    S: Service<http::Request<Counted<B>>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body + Unpin,
    R::Error: Display,
{
    type Response = http::Response<TracedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = split(request.uri().path());
        // Sampled or not as the caller decided (its `traceparent` flag), before the span exists.
        let span = propagate::server_span(request.headers(), || {
            tracing::info_span!(
                "grpc server",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = Empty,
                rpc.request.bytes = Empty,
                rpc.response.bytes = Empty,
            )
        });
        let request = request.map(|body| Counted::new(body, span.clone(), "rpc.request.bytes"));
        let call = span.in_scope(|| self.inner.call(request));
        let recorded = span.clone();
        Box::pin(
            async move {
                let response = call.await?;
                // The span lives on in the body, until the response ends.
                let status = record_status(&recorded, response.headers());
                Ok(response.map(|body| TracedBody::new(body, recorded, status, CLIENT_GONE)))
            }
            .instrument(span),
        )
    }
}

/// The client span of a call to `peer` (a URI), its context written into `request`'s
/// headers and the bytes of its body counted. Run the call inside it (`Instrument`) and hand
/// the answer to [`client_answer`].
pub fn client_span(request: &mut http::Request<tonic::body::Body>, peer: &str) -> tracing::Span {
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
        rpc.request.bytes = Empty,
        rpc.response.bytes = Empty,
    );
    propagate::inject_span(&span, request.headers_mut());
    let body = std::mem::replace(request.body_mut(), tonic::body::Body::empty());
    *request.body_mut() =
        tonic::body::Body::new(Counted::new(body, span.clone(), "rpc.request.bytes"));
    span
}

/// Records the answer of a call on its client span: the transport error, or the status in the
/// response headers; a response's body is wrapped so that the span lasts until it ends, with
/// the status in its trailers and its bytes.
pub fn client_answer<E: Display>(
    span: &tracing::Span,
    answer: &mut Result<http::Response<tonic::body::Body>, E>,
) {
    match answer {
        Ok(response) => {
            let status = record_status(span, response.headers());
            let body = std::mem::replace(response.body_mut(), tonic::body::Body::empty());
            *response.body_mut() =
                tonic::body::Body::new(TracedBody::new(body, span.clone(), status, ANSWER_DROPPED));
        }
        Err(e) => propagate::fail(span, e.to_string()),
    }
}

/// `grpc-status` (and `grpc-message`) from response headers or trailers onto `span`; whether
/// there was one.
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) -> bool {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
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
    true
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
