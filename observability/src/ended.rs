//! For this crate's tests: an exporter that keeps the spans ended, as they end.

use std::sync::{Arc, Mutex};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

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
