//! For this crate's tests: an exporter that keeps the spans ended, as they end, and a subscriber
//! sending this thread's spans to it.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

/// Spans of this thread go, through the OpenTelemetry layer alone (no sampling gate), to the
/// returned exporter while the guard lives.
pub(crate) fn capture() -> (Ended, SdkTracerProvider, tracing::subscriber::DefaultGuard) {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(ended.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let guard = tracing::subscriber::set_default(subscriber);
    (ended, provider, guard)
}

/// Keeps the spans ended, as they end.
#[derive(Debug, Default, Clone)]
pub(crate) struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Ended {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().expect("spans").extend(batch);
        Ok(())
    }
}

impl Ended {
    pub(crate) fn spans(&self) -> Vec<SpanData> {
        self.0.lock().expect("spans").clone()
    }

    /// The one span ended so far.
    pub(crate) fn only(&self) -> SpanData {
        let spans = self.spans();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans.into_iter().next().expect("a span")
    }
}
