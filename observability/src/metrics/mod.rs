//! Prometheus metrics shared by every wpsmesh service: a registry per service instance
//! (`prometheus-client`), its exposition, the HTTP and gRPC server latency layers, and a small
//! `/metrics` server for services that have no HTTP port of their own.
//!
//! Names follow Prometheus conventions (`_total`, `_seconds`, `_bytes`); labels are bounded
//! (routes are templates, methods and codes come from fixed sets, never ids or URLs).

mod exposition;
mod grpc;
mod http;
mod server;

pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

pub use exposition::{CLASSIC_TEXT, OPENMETRICS_TEXT, classic, encode, response};
pub use grpc::{GrpcMetrics, Metered, MeteredBody, code_name};
pub use http::{HttpMetrics, method_label};
pub use server::{MetricsServer, spawn};

/// Buckets of request latencies, in seconds: 1 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of job durations and queue waits, in seconds: 10 ms to one hour.
pub const JOB_BUCKETS: [f64; 16] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];

/// A family of histograms with fixed buckets, one per label set.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A histogram with [`JOB_BUCKETS`].
pub fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

/// A new registry for one service instance, holding the process-wide metrics too (the trace
/// exporter's dropped spans and failed exports: one exporter per process, whatever it runs).
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter));
    registry
}

/// Reads the trace exporter's counts at each scrape.
#[derive(Debug)]
struct Exporter;

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "wpsmesh_telemetry_spans_dropped",
                "Spans the trace exporter dropped because its queue was full (collector down, hanging or slow), in this process.",
                crate::dropped_spans(),
            ),
            (
                "wpsmesh_telemetry_failed_exports",
                "Span export calls that failed or timed out, in this process.",
                crate::failed_exports(),
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
