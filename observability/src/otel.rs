//! The OpenTelemetry tracer provider: OTLP over gRPC (tonic) behind the bounded export queue,
//! parent-based ratio sampling, and the resource naming the process (`service.name`,
//! `service.instance.id`, `service.version`). [`Telemetry`] flushes and stops it when dropped.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{Effective, Sampling};
use crate::queue::QueueProcessor;

/// The tracing of this process; spans still queued are exported (within the export timeout)
/// when it is dropped. Keep it for as long as the process serves.
#[derive(Debug, Default)]
#[must_use = "dropping it stops exporting spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an endpoint is configured and tracing is not disabled).
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans queued so far.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// The id of this process in `service.instance.id`: a fresh UUID per start.
fn instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The sampler for `sampling`.
pub(crate) fn sampler(sampling: Sampling) -> Sampler {
    match sampling {
        Sampling::ParentRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
        Sampling::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
    }
}

/// Builds the provider exporting to `endpoint` and makes it the global one (for spans recorded
/// with explicit times). Needs a Tokio runtime. Returns the guard and the tracer for the
/// `tracing` layer.
pub(crate) fn start(
    settings: &Effective,
    endpoint: &str,
) -> Result<(Telemetry, SdkTracer), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(settings.export_timeout)
        .build()
        .map_err(|e| format!("otlp exporter to {endpoint}: {e}"))?;
    let processor = QueueProcessor::start(exporter, settings)?;
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.instance.id", instance_id()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(settings.sampling))
        .with_id_generator(crate::sampling::Ids)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("wpsmesh");
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok((
        Telemetry {
            provider: Some(provider),
        },
        tracer,
    ))
}
