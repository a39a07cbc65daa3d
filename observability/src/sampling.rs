//! Sampling decided when a request's span starts, not when it ends.
//!
//! tracing-opentelemetry builds every span's OpenTelemetry data (its builder, attributes,
//! context, the context attached on each poll) and asks the sampler only when it starts the
//! span: a request that is not sampled pays for all of it. Here the span of an incoming
//! request (HTTP at the edge, gRPC at a node or storage: [`crate::propagate::server_span`])
//! takes the sampler's decision before it exists, with the same sampler the provider has
//! (parent-based: the caller's flag when a valid `traceparent` came in, else the ratio on the
//! trace id; `traceidratio`: the ratio on the trace id whatever the caller said):
//!
//! - sampled: the span is made exactly as before, and a new root is started at once with the
//!   trace id the decision was taken on ([`Ids`] hands it to the provider), so the provider's
//!   own sampler, which sees the same trace id, agrees;
//! - not sampled: the span is marked [`Unsampled`] with its W3C context (the trace id, a span
//!   id, flag 00) and the [`Gate`] in front of the OpenTelemetry layer keeps it and every span
//!   under it (the mark is inherited through the registry's parents) away from that layer: no
//!   OpenTelemetry data at all. Log lines, the `x-trace-id` answer header and the
//!   `traceparent` (flag 00) injected into every outgoing call read the mark instead
//!   ([`crate::propagate`]), so the next service follows the decision and nothing under an
//!   unsampled request ever becomes a trace of its own.

#[cfg(test)]
mod tests;

use std::any::TypeId;
use std::cell::{Cell, RefCell};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::propagate;

thread_local! {
    /// The context of the unsampled request span being made on this thread.
    static UNSAMPLED_ROOT: RefCell<Option<SpanContext>> = const { RefCell::new(None) };
    /// The trace id a sampled new root was decided on, for [`Ids`] to hand out.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// The mark of a span whose trace is not sampled, in the registry's extensions: the W3C context
/// it passes on (its request's trace id and span id, flag 00).
#[derive(Debug, Clone)]
pub(crate) struct Unsampled(pub(crate) SpanContext);

/// The provider's ids: random, except the trace id of a root whose sampling was decided up
/// front, which is the one decided on.
#[derive(Debug, Default)]
pub(crate) struct Ids;

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .take()
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        RandomIdGenerator::default().new_span_id()
    }
}

/// The sampler of the provider, reachable from the subscriber (by downcast) for decisions
/// taken up front.
#[derive(Debug)]
pub(crate) struct Decider {
    sampler: Sampler,
}

/// Wraps the OpenTelemetry layer: spans marked [`Unsampled`], and the spans and events under
/// them, never reach it.
pub(crate) struct Gate<L> {
    inner: L,
    decider: Decider,
}

impl<L> Gate<L> {
    /// `inner` (the OpenTelemetry layer) behind the gate, deciding with `sampler` (the
    /// provider's).
    pub(crate) fn new(inner: L, sampler: Sampler) -> Self {
        Self {
            inner,
            decider: Decider { sampler },
        }
    }
}

/// Whether the span `id` is marked unsampled.
fn marked<S>(id: &Id, ctx: &LayerContext<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.span(id)
        .is_some_and(|span| span.extensions().get::<Unsampled>().is_some())
}

impl<S, L> Layer<S> for Gate<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return self.inner.on_new_span(attrs, id, ctx);
        };
        let mark = UNSAMPLED_ROOT
            .with(|root| root.borrow_mut().take())
            .or_else(|| {
                let parent = span.parent()?;
                let extensions = parent.extensions();
                extensions.get::<Unsampled>().map(|u| u.0.clone())
            });
        match mark {
            Some(cx) => span.extensions_mut().insert(Unsampled(cx)),
            None => {
                drop(span);
                self.inner.on_new_span(attrs, id, ctx);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if !marked(id, &ctx) {
            self.inner.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: LayerContext<'_, S>) {
        if !marked(id, &ctx) {
            self.inner.on_follows_from(id, follows, ctx);
        }
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let unsampled = ctx
            .event_span(event)
            .is_some_and(|span| span.extensions().get::<Unsampled>().is_some());
        if !unsampled {
            self.inner.on_event(event, ctx);
        }
    }

    // A marked span has no OpenTelemetry data, which the layer checks first on enter, exit and
    // close: no second look-up here.
    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // The one unsafe item: `Layer::downcast_raw` is an unsafe trait method, and a layer that
    // wraps another must forward it, or tracing-opentelemetry's context access (which finds its
    // layer by downcasting the subscriber) would find nothing.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<Decider>() {
            Some(&self.decider as *const Decider as *const ())
        } else {
            // SAFETY: the wrapped layer answers for its own types with pointers into itself,
            // valid as long as `self` is, which is what the caller relies on.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}

/// The span `make` returns, for a request that came with `headers`, sampled or not as decided
/// now (see the module). Without a gate (tracing off, or another subscriber) it is made as it
/// always was: a child of the caller's context when there is one.
pub(crate) fn start(
    headers: &http::HeaderMap,
    make: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    let decided = tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<Decider>()
            .map(|decider| decide(&decider.sampler, headers))
    });
    match decided {
        None => {
            let span = make();
            propagate::set_remote_parent(&span, headers);
            span
        }
        Some(Decision::Unsampled(cx)) => {
            UNSAMPLED_ROOT.with(|root| *root.borrow_mut() = Some(cx));
            let span = make();
            UNSAMPLED_ROOT.with(|root| root.borrow_mut().take());
            span
        }
        Some(Decision::Child(parent)) => {
            let span = make();
            let _ = span.set_parent(parent);
            span
        }
        Some(Decision::Root(trace_id)) => {
            NEXT_TRACE_ID.set(Some(trace_id));
            let span = make();
            // Started now, while its trace id is the one decided on.
            let _ = span.context();
            NEXT_TRACE_ID.set(None);
            span
        }
    }
}

/// What [`decide`] found.
enum Decision {
    /// Not sampled: the context to pass on.
    Unsampled(SpanContext),
    /// Sampled, under the caller's context.
    Child(Context),
    /// Sampled, a new trace with this id.
    Root(TraceId),
}

/// The sampler's decision for a request with `headers`, on the caller's trace id or a new one.
fn decide(sampler: &Sampler, headers: &http::HeaderMap) -> Decision {
    let parent = propagate::extract(headers);
    let remote = parent.span().span_context().clone();
    let (trace_id, on) = if remote.is_valid() {
        (remote.trace_id(), parent)
    } else {
        (RandomIdGenerator::default().new_trace_id(), Context::new())
    };
    let result = sampler.should_sample(Some(&on), trace_id, "", &SpanKind::Server, &[], &[]);
    match result.decision {
        SamplingDecision::Drop => Decision::Unsampled(SpanContext::new(
            trace_id,
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::default(),
            false,
            result.trace_state,
        )),
        _ if remote.is_valid() => Decision::Child(on),
        _ => Decision::Root(trace_id),
    }
}

/// The context `span` passes on if it is marked unsampled.
pub(crate) fn unsampled(span: &tracing::Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let extensions = data.extensions();
        extensions.get::<Unsampled>().map(|u| u.0.clone())
    })
    .flatten()
}
