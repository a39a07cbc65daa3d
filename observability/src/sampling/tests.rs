//! Tests of sampling decided at the start: request spans made through
//! [`crate::propagate::server_span`] under a subscriber built as [`crate::install`] builds it
//! (the gate in front of the OpenTelemetry layer, the provider's sampler and ids), their spans
//! captured by an exporter in the test.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::config::Sampling;
use crate::ended::{Ended, capture};
use crate::otel::sampler;

/// Runs `f` under a subscriber with the gate and a provider sampling as `sampling` says;
/// returns what `f` returns and the spans exported.
fn traced<T>(sampling: Sampling, f: impl FnOnce() -> T) -> (T, Vec<SpanData>) {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(ended.clone())
        .with_sampler(sampler(sampling))
        .with_id_generator(Ids)
        .build();
    let layer = Gate::new(
        tracing_opentelemetry::layer().with_tracer(provider.tracer("test")),
        sampler(sampling),
    );
    let subscriber = tracing_subscriber::registry().with(layer);
    let out = tracing::subscriber::with_default(subscriber, f);
    let _ = provider.force_flush();
    (out, ended.spans())
}

fn headers(traceparent: Option<&str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = traceparent {
        headers.insert(
            propagate::TRACEPARENT,
            http::HeaderValue::from_str(value).expect("header"),
        );
    }
    headers
}

/// What one request shows the world: its span context, the `traceparent` a call it makes
/// carries, and the trace a log line inside a child span would name.
#[derive(Debug)]
struct Seen {
    context: SpanContext,
    outgoing: String,
    child: SpanContext,
}

/// One request with `traceparent`: a server span, a child span with an event, a client call
/// from the child.
fn request(traceparent: Option<&str>) -> Seen {
    let span = propagate::server_span(&headers(traceparent), || tracing::info_span!("request"));
    let context = propagate::span_context(&span).expect("a trace, sampled or not");
    let (outgoing, child) = span.in_scope(|| {
        let child = tracing::info_span!("child", field = tracing::field::Empty);
        child.record("field", 1);
        let _entered = child.enter();
        tracing::warn!("an event under the request");
        let call = tracing::info_span!("grpc client");
        let mut out = http::HeaderMap::new();
        propagate::inject_span(&call, &mut out);
        let outgoing = out
            .get(propagate::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            outgoing,
            propagate::span_context(&child).expect("child context"),
        )
    });
    Seen {
        context,
        outgoing,
        child,
    }
}

#[test]
fn at_ratio_zero_nothing_is_exported_yet_the_trace_is_named_and_passed_on_unsampled() {
    let (seen, spans) = traced(Sampling::ParentRatio(0.0), || request(None));
    assert!(spans.is_empty(), "{spans:#?}");
    assert!(seen.context.is_valid() && !seen.context.is_sampled());
    let trace = seen.context.trace_id().to_string();
    assert!(
        seen.outgoing.starts_with(&format!("00-{trace}-")) && seen.outgoing.ends_with("-00"),
        "{seen:?}"
    );
    assert_eq!(seen.child.trace_id(), seen.context.trace_id());
}

#[test]
fn at_ratio_one_every_span_is_exported_in_one_trace_with_the_id_answered() {
    let (seen, spans) = traced(Sampling::ParentRatio(1.0), || request(None));
    assert!(seen.context.is_sampled());
    let trace = seen.context.trace_id();
    let mut names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["child", "grpc client", "request"], "{spans:#?}");
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace));
    let root = spans.iter().find(|s| s.name == "request").expect("root");
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(root.span_context.span_id(), seen.context.span_id());
    let child = spans.iter().find(|s| s.name == "child").expect("child");
    assert_eq!(child.parent_span_id, root.span_context.span_id());
    assert_eq!(child.events.len(), 1, "the event is on the child span");
    assert!(seen.outgoing.ends_with("-01"), "{seen:?}");
}

#[test]
fn the_callers_flag_wins_over_the_ratio_in_both_directions() {
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sampled = format!("00-{caller}-00f067aa0ba902b7-01");
    let (seen, spans) = traced(Sampling::ParentRatio(0.0), || request(Some(&sampled)));
    assert_eq!(seen.context.trace_id().to_string(), caller);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let root = spans.iter().find(|s| s.name == "request").expect("root");
    assert_eq!(root.parent_span_id.to_string(), "00f067aa0ba902b7");

    let unsampled = format!("00-{caller}-00f067aa0ba902b7-00");
    let (seen, spans) = traced(Sampling::ParentRatio(1.0), || request(Some(&unsampled)));
    assert!(spans.is_empty(), "{spans:#?}");
    assert_eq!(seen.context.trace_id().to_string(), caller);
    assert!(!seen.context.is_sampled());
    assert!(seen.outgoing.starts_with(&format!("00-{caller}-")) && seen.outgoing.ends_with("-00"));
}

#[test]
fn a_ratio_samples_each_new_trace_once_on_the_trace_id_it_answers_with() {
    let (seen, spans) = traced(Sampling::ParentRatio(0.5), || {
        (0..400).map(|_| request(None)).collect::<Vec<_>>()
    });
    let sampled: Vec<_> = seen.iter().filter(|s| s.context.is_sampled()).collect();
    // Binomial(400, 0.5): outside 120..280 about once in 10^20.
    assert!((120..280).contains(&sampled.len()), "{}", sampled.len());
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "request").collect();
    assert_eq!(
        roots.len(),
        sampled.len(),
        "each sampled request exported, no other"
    );
    for s in &sampled {
        assert!(
            roots
                .iter()
                .any(|r| r.span_context.trace_id() == s.context.trace_id()
                    && r.parent_span_id == SpanId::INVALID),
            "{s:?}"
        );
    }
    // Nothing under an unsampled request became a trace of its own.
    assert_eq!(spans.len(), 3 * sampled.len(), "{spans:#?}");
}

#[test]
fn without_the_gate_spans_are_made_as_before() {
    let (ended, provider, guard) = capture();
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{caller}-00f067aa0ba902b7-01");
    let span = propagate::server_span(&headers(Some(&traceparent)), || {
        tracing::info_span!("request")
    });
    assert_eq!(propagate::trace_id(&span).as_deref(), Some(caller));
    drop((span, guard));
    let _ = provider.force_flush();
    let spans = ended.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].parent_span_id.to_string(), "00f067aa0ba902b7");
}
