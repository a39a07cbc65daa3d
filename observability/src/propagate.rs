//! W3C trace context (`traceparent`, `tracestate`) in and out of the places a trace crosses:
//! HTTP and gRPC headers, the worker channel and the job store (as a compact carrier string),
//! and the trace id a user quotes from a response header.
//!
//! Extracting never fails: a missing or malformed `traceparent` gives an empty context, so the
//! span started under it is a new root. With tracing off (no endpoint) spans carry no OTel data,
//! every function here sees an empty context and injects nothing. A request not sampled has no
//! OTel data either ([`server_span`]): the context of its spans is the one its mark holds, with
//! flag 00, so it is still answered with its trace id and passed on to every call it makes.

use std::collections::HashMap;
use std::time::SystemTime;

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, Tracer,
    TracerProvider as _,
};
pub use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header naming the trace and the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";
/// The response header carrying the request's trace id (32 lowercase hex digits).
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Reads headers for the propagator.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes headers for the propagator.
struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote context in `headers`; empty (a new root follows) when absent or malformed.
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Writes `cx`'s span context into `headers` (nothing for an empty context).
pub fn inject(cx: &Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeadersMut(headers));
}

/// Writes the context of `span` into `headers`.
pub fn inject_span(span: &tracing::Span, headers: &mut http::HeaderMap) {
    inject(&context_of(span), headers);
}

/// Makes the context in `headers` the parent of `span` (no-op for an empty one).
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The span `make` returns (it must make exactly one, e.g. `tracing::info_span!`) for a
/// request that came in with `headers` (HTTP or gRPC metadata): a child of the caller's
/// context when there is a valid one, else a new root; sampled or not as decided before the
/// span exists, with the process's sampler (parent-based: the caller's flag). A span not sampled,
/// and every span under it, costs the OpenTelemetry layer nothing and is never exported, yet
/// names its trace (logs, [`trace_id`]) and passes it on with flag 00 ([`inject_span`],
/// [`carrier`]).
pub fn server_span(
    headers: &http::HeaderMap,
    make: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    crate::sampling::start(headers, make)
}

/// The OTel context of `span` (empty with tracing off), as a parent for [`Finished`].
pub fn context_of(span: &tracing::Span) -> Context {
    match crate::sampling::unsampled(span) {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => span.context(),
    }
}

/// The W3C context of `span` if it has a trace (not with tracing off), sampled or not.
pub fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    let sc = match crate::sampling::unsampled(span) {
        Some(sc) => sc,
        None => span.context().span().span_context().clone(),
    };
    sc.is_valid().then_some(sc)
}

/// The trace id of `span` as 32 hex digits; `None` when it has no trace (tracing off).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|sc| sc.trace_id().to_string())
}

/// Writes `sc` into the headers of an answer: [`TRACE_ID_HEADER`] and the W3C
/// `traceparent` (and `tracestate` when there is one).
pub fn answer_headers(sc: &SpanContext, headers: &mut http::HeaderMap) {
    let trace_id = sc.trace_id();
    let parent = format!(
        "00-{trace_id}-{}-{:02x}",
        sc.span_id(),
        sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
    );
    // From the strings themselves: no copy.
    if let (Ok(id), Ok(parent)) = (
        http::HeaderValue::try_from(trace_id.to_string()),
        http::HeaderValue::try_from(parent),
    ) {
        headers.insert(TRACE_ID_HEADER, id);
        headers.insert(TRACEPARENT, parent);
    }
    let state = sc.trace_state().header();
    if !state.is_empty()
        && let Ok(state) = http::HeaderValue::try_from(state)
    {
        headers.insert(TRACESTATE, state);
    }
}

/// The context of `span` as one line, `traceparent[ tracestate]`, for carriers that are not
/// headers (the worker channel, the job store); empty when `span` has no trace.
pub fn carrier(span: &tracing::Span) -> String {
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&context_of(span), &mut map);
    match (map.get(TRACEPARENT), map.get(TRACESTATE)) {
        (Some(parent), Some(state)) if !state.is_empty() => format!("{parent} {state}"),
        (Some(parent), _) => parent.clone(),
        _ => String::new(),
    }
}

/// The context a [`carrier`] line holds; empty for an empty or malformed line.
pub fn from_carrier(line: &str) -> Context {
    let mut map = HashMap::new();
    let mut parts = line.trim().splitn(2, ' ');
    if let Some(parent) = parts.next().filter(|p| !p.is_empty()) {
        map.insert(TRACEPARENT.to_owned(), parent.to_owned());
    }
    if let Some(state) = parts.next() {
        map.insert(TRACESTATE.to_owned(), state.to_owned());
    }
    TraceContextPropagator::new().extract(&map)
}

/// The span context a [`carrier`] line names, if valid: for links.
pub fn linked(line: &str) -> Option<SpanContext> {
    let cx = from_carrier(line);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// Links `span` to the trace a [`carrier`] line names (no-op for an empty line).
pub fn link(span: &tracing::Span, line: &str) {
    if let Some(sc) = linked(line) {
        span.add_link(sc);
    }
}

/// Marks `span` failed with `message` (the OTel error status).
pub fn fail(span: &tracing::Span, message: impl Into<String>) {
    span.set_status(Status::error(message.into()));
}

/// A span already over, recorded with explicit times as a child of `parent` ([`context_of`] a
/// tracing span, or [`from_carrier`]): for work timed elsewhere (the worker's run, the time a
/// job waited in the queue).
#[derive(Debug)]
pub struct Finished {
    pub name: &'static str,
    pub parent: Context,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub links: Vec<SpanContext>,
    /// The error message when the work failed.
    pub error: Option<String>,
}

impl Finished {
    /// Records the span through the global tracer provider (a no-op without tracing or
    /// without a valid parent).
    pub fn record(self) {
        let parent = self.parent;
        if !parent.span().span_context().is_valid() {
            return;
        }
        let tracer = global::tracer_provider().tracer("wpsmesh");
        let mut builder = tracer
            .span_builder(self.name)
            .with_kind(SpanKind::Internal)
            .with_start_time(self.start)
            .with_attributes(self.attributes);
        if !self.links.is_empty() {
            builder = builder.with_links(self.links.into_iter().map(Link::with_context).collect());
        }
        let mut span = builder.start_with_context(&tracer, &parent);
        if let Some(message) = self.error {
            span.set_status(Status::error(message));
        }
        span.end_with_timestamp(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_traceparent_gives_an_empty_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, http::HeaderValue::from_static("00-zz-1-01"));
        assert!(!extract(&headers).span().span_context().is_valid());
        assert!(!from_carrier("garbage").span().span_context().is_valid());
        assert!(linked("").is_none());
    }

    #[test]
    fn a_valid_traceparent_round_trips_through_headers_and_carriers() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, http::HeaderValue::from_static(parent));
        headers.insert(TRACESTATE, http::HeaderValue::from_static("k=v"));
        let cx = extract(&headers);
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        let mut out = http::HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(out[TRACEPARENT], parent);
        assert_eq!(out[TRACESTATE], "k=v");
        let line = format!("{parent} k=v");
        let back = linked(&line).expect("valid carrier");
        assert_eq!(back.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(back.trace_state().header(), "k=v");
    }
}
