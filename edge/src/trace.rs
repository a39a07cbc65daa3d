//! The span of every HTTP request, and the trace id on every response.
//!
//! A request's W3C `traceparent`/`tracestate` make its span a child of the caller's; a missing
//! or malformed header starts a new root, never an error. Whether the request is sampled is
//! decided before its span exists (the caller's flag, else the ratio): a request not sampled
//! costs the OpenTelemetry layer nothing, exports nothing from any service, and still passes
//! its trace on with flag 00 ([`propagate::server_span`]). The span is named for the route
//! (`GET /api/wps`, `POST /api/file/upload`), records the status, and a 5xx sets its error
//! status. Every response carries the trace id in `x-trace-id` (32 hex digits, to quote in a
//! support request or paste into Jaeger) and the request span's context in `traceparent`
//! (W3C Trace Context response header draft), sampled or not. With tracing off neither header
//! is sent.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;
use wpsmesh_telemetry::propagate;

/// Axum middleware: the request's span, its status, and the trace headers on the answer.
pub async fn http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let span = propagate::server_span(request.headers(), || {
        tracing::info_span!(
            "http request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            url.path = %request.uri().path(),
            http.response.status_code = Empty,
        )
    });
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        propagate::fail(&span, format!("status {}", status.as_u16()));
    }
    if let Some(sc) = propagate::span_context(&span) {
        propagate::answer_headers(&sc, response.headers_mut());
    }
    response
}
