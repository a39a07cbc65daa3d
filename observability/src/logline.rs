//! Log lines that name their trace: inside a traced span, a text line ends with
//! `trace_id=… span_id=…` and a JSON line gains `"trace_id"` and `"span_id"` keys, so a log
//! search and a trace view meet on the same id, whether the trace is sampled or not (a request
//! not sampled names the trace id it answered with). Outside a span, or with tracing off, lines
//! are the formatter's own (a line with ids is formatted without colour codes).

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::sampling::Unsampled;

/// Wraps an event formatter, adding the current span's trace and span ids.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F> {
    pub(crate) inner: F,
    pub(crate) json: bool,
}

/// The installed subscriber, for reading spans' OTel contexts (set once tracing is on).
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Remembers the global subscriber: from then on, lines inside traced spans carry the ids.
pub(crate) fn remember_dispatch() {
    tracing::dispatcher::get_default(|d| {
        let _ = DISPATCH.set(d.downgrade());
    });
}

/// The ids of the innermost span with a valid OTel context, as hex.
fn ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let dispatch = DISPATCH.get()?.upgrade()?;
    let span = ctx.lookup_current()?;
    span.scope().find_map(|span| {
        // A span of a request not sampled has no OTel context: its mark names the trace.
        let mark = span.extensions().get::<Unsampled>().map(|u| u.0.clone());
        if let Some(sc) = mark {
            return Some((sc.trace_id().to_string(), sc.span_id().to_string()));
        }
        let cx = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let sc = cx.span().span_context().clone();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = ids(ctx) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let ended = line.ends_with('\n');
        let body = line.trim_end_matches('\n');
        if self.json {
            match body.strip_prefix('{') {
                Some(rest) => write!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
                )?,
                None => writer.write_str(body)?,
            }
        } else {
            write!(writer, "{body} trace_id={trace_id} span_id={span_id}")?;
        }
        if ended {
            writer.write_char('\n')?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, Registry};

    use super::*;

    /// Log lines written into memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lines").clone()).expect("utf-8")
        }
    }

    #[test]
    fn lines_inside_a_traced_span_name_its_trace_in_text_and_json() {
        let (text, json) = (Lines::default(), Lines::default());
        let provider = SdkTracerProvider::builder().build();
        let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(text.clone())
                .map_event_format(|inner| WithTraceIds { inner, json: false })
                .boxed(),
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(json.clone())
                .map_event_format(|inner| WithTraceIds { inner, json: true })
                .boxed(),
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("t"))
                .boxed(),
        ];
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layers));
        let _ = DISPATCH.set(dispatch.downgrade());
        let ids = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("outside");
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!("inside");
            let cx = tracing_opentelemetry::OpenTelemetrySpanExt::context(&span);
            let sc = cx.span().span_context().clone();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let (trace, span) = ids;
        let text = text.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(!lines[0].contains("trace_id"), "{}", lines[0]);
        assert!(
            lines[1].ends_with(&format!("inside trace_id={trace} span_id={span}")),
            "{}",
            lines[1]
        );
        let json = json.text();
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("a json line"))
            .collect();
        assert_eq!(lines[0].get("trace_id"), None);
        assert_eq!(lines[1]["trace_id"], trace.as_str());
        assert_eq!(lines[1]["span_id"], span.as_str());
        assert_eq!(lines[1]["message"], "inside");
    }
}
