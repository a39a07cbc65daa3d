//! Telemetry shared by every wpsmesh binary: log lines (`RUST_LOG`-style filtering, text or
//! JSON, naming their trace inside a traced span) and OpenTelemetry traces exported over OTLP
//! gRPC (`[telemetry]`, `OTEL_*`), with the W3C context carried across every hop
//! ([`propagate`], [`grpc`]).

pub mod config;
#[cfg(test)]
mod ended;
pub mod grpc;
mod logline;
pub mod metrics;
mod otel;
pub mod propagate;
mod queue;
mod sampling;

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing::Metadata;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use config::{Effective, Sampling, TelemetryConfig};
pub use otel::Telemetry;
pub use queue::{dropped_spans, failed_exports};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Log lines of a child process whose stderr its parent relays into its own log (the PyQGIS
/// worker, relayed by its node): plain text without time or colour, which the parent adds,
/// filtered by the variable `filter_var`, else `default_filter`. The child exports no spans:
/// its parent records them from the times it reports.
pub fn init_relayed(filter_var: &str, default_filter: &str) {
    let filter = EnvFilter::try_from_env(filter_var).unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter)
        .try_init();
}

/// Installs the global subscriber for logs only (no traces), writing to stderr; see
/// [`install`].
pub fn init(format: LogFormat, default_filter: &str) {
    let off = TelemetryConfig {
        enabled: false,
        ..TelemetryConfig::default()
    };
    drop(install(format, default_filter, &off, "wpsmesh"));
}

/// Installs the global subscriber, writing log lines to stderr, and exports traces when
/// `telemetry` (or `OTEL_*`) names an endpoint; `service` is the default `service.name`. The
/// log filter comes from `RUST_LOG`, else `default_filter`; spans of wpsmesh's own crates are
/// traced whatever it says. Text lines are coloured only when stderr is a terminal and
/// `NO_COLOR` is not set. Must run within a Tokio runtime when tracing is on. Calling it twice
/// is harmless (the second call installs nothing). An exporter that cannot be built is
/// reported on stderr and tracing stays off: telemetry never stops a service.
pub fn install(
    format: LogFormat,
    default_filter: &str,
    telemetry: &TelemetryConfig,
    service: &str,
) -> Telemetry {
    let settings = Effective::resolve(telemetry, service, |name| std::env::var(name).ok());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let (guard, tracer) = match settings.endpoint.as_deref() {
        None => (Telemetry::default(), None),
        Some(endpoint) => match otel::start(&settings, endpoint) {
            Ok((guard, tracer)) => (guard, Some(tracer)),
            Err(e) => {
                eprintln!("wpsmesh: tracing off: {e}");
                (Telemetry::default(), None)
            }
        },
    };
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .map_event_format(|inner| logline::WithTraceIds { inner, json: false })
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .map_event_format(|inner| logline::WithTraceIds { inner, json: true })
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![logs];
    if let Some(tracer) = tracer {
        layers.push(
            // Per span, no thread attributes (a name allocated per span, meaningless on a
            // work-stealing runtime) and no busy/idle times (a clock read on every poll's enter
            // and exit): they are paid by every span, sampled or not.
            // Behind the gate, requests not sampled never reach it (see `sampling`).
            sampling::Gate::new(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_threads(false)
                    .with_tracked_inactivity(false),
                otel::sampler(settings.sampling),
            )
            .with_filter(tracing_subscriber::filter::filter_fn(traced))
            .boxed(),
        );
    }
    let tracing = layers.len() > 1;
    let installed = tracing_subscriber::registry().with(layers).try_init();
    if installed.is_ok() && tracing {
        logline::remember_dispatch();
    }
    guard
}

/// What goes into traces: wpsmesh's own spans, and warnings and errors inside them (as span
/// events).
fn traced(meta: &Metadata<'_>) -> bool {
    if meta.is_span() {
        meta.target().starts_with("wpsmesh") && *meta.level() <= tracing::Level::INFO
    } else {
        *meta.level() <= tracing::Level::WARN
    }
}

/// Whether log lines carry ANSI colour codes: only on a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
