//! The `[telemetry]` configuration section and the standard `OTEL_*` variables that win over
//! it: where spans go, which service sends them, how many are kept, how they are batched.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Trace export settings (`[telemetry]`). Every field has an `OTEL_*` variable that wins when
/// set (see [`Effective::resolve`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP gRPC endpoint of the collector, e.g. `http://jaeger:4317`; empty: no exporter and
    /// no tracing cost (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// `service.name`; empty: `wpsmesh-<command>` (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Share of new traces sampled, 0 to 1; a request that arrives with a trace context keeps
    /// its parent's decision (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`).
    pub sample_ratio: f64,
    /// Off turns tracing off whatever the endpoint (`OTEL_SDK_DISABLED=true`).
    pub enabled: bool,
    /// Spans waiting for export; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue: usize,
    /// Spans per export call (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub batch_size: usize,
    /// Longest wait before a partial batch goes out, in ms (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay_ms: u64,
    /// Longest an export call may take, in ms (`OTEL_BSP_EXPORT_TIMEOUT`).
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            service_name: String::new(),
            sample_ratio: 1.0,
            enabled: true,
            max_queue: 2048,
            batch_size: 512,
            schedule_delay_ms: 5000,
            export_timeout_ms: 10_000,
        }
    }
}

/// Which traces are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Parent-based: a remote or local parent's decision is kept; new roots are sampled with
    /// this probability.
    ParentRatio(f64),
    /// Every trace whatever the parent says, with this probability (`traceidratio`,
    /// `always_on`, `always_off`).
    Ratio(f64),
}

/// The settings in force once the environment has had its say.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// `None`: tracing is off (no endpoint, disabled by config or `OTEL_SDK_DISABLED`).
    pub endpoint: Option<String>,
    pub service_name: String,
    pub sampling: Sampling,
    pub max_queue: usize,
    pub batch_size: usize,
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
}

impl Effective {
    /// `config` with the `OTEL_*` variables `env` returns applied over it; `service` names the
    /// command when neither sets a service name.
    pub fn resolve(
        config: &TelemetryConfig,
        service: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str, fallback: u64| {
            var(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(fallback)
        };
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| Some(config.endpoint.trim().to_owned()).filter(|e| !e.is_empty()))
            .filter(|_| config.enabled && !disabled);
        let service_name = var("OTEL_SERVICE_NAME")
            .or_else(|| Some(config.service_name.clone()).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| service.to_owned());
        let ratio = var("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(config.sample_ratio)
            .clamp(0.0, 1.0);
        let sampling = match var("OTEL_TRACES_SAMPLER").as_deref() {
            Some("always_on") => Sampling::Ratio(1.0),
            Some("always_off") => Sampling::Ratio(0.0),
            Some("traceidratio") => Sampling::Ratio(ratio),
            Some("parentbased_always_on") => Sampling::ParentRatio(1.0),
            Some("parentbased_always_off") => Sampling::ParentRatio(0.0),
            _ => Sampling::ParentRatio(ratio),
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", config.max_queue as u64).max(1) as usize;
        let batch_size = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", config.batch_size as u64)
            .clamp(1, max_queue as u64) as usize;
        Self {
            endpoint,
            service_name,
            sampling,
            max_queue,
            batch_size,
            schedule_delay: Duration::from_millis(number(
                "OTEL_BSP_SCHEDULE_DELAY",
                config.schedule_delay_ms,
            )),
            export_timeout: Duration::from_millis(
                number("OTEL_BSP_EXPORT_TIMEOUT", config.export_timeout_ms).max(1),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_endpoint_means_no_tracing() {
        let e = Effective::resolve(&TelemetryConfig::default(), "wpsmesh-edge", env(&[]));
        assert_eq!(e.endpoint, None);
        assert_eq!(e.service_name, "wpsmesh-edge");
        assert_eq!(e.sampling, Sampling::ParentRatio(1.0));
    }

    #[test]
    fn variables_win_over_the_section() {
        let config = TelemetryConfig {
            endpoint: "http://from-config:4317".into(),
            service_name: "from-config".into(),
            sample_ratio: 0.5,
            ..Default::default()
        };
        let e = Effective::resolve(
            &config,
            "wpsmesh-node",
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4317"),
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ]),
        );
        assert_eq!(e.endpoint.as_deref(), Some("http://from-env:4317"));
        assert_eq!(e.service_name, "from-env");
        assert_eq!(e.sampling, Sampling::ParentRatio(0.1));
        assert_eq!(e.schedule_delay, Duration::from_millis(50));
        let e = Effective::resolve(&config, "wpsmesh-node", env(&[]));
        assert_eq!(e.endpoint.as_deref(), Some("http://from-config:4317"));
        assert_eq!(e.sampling, Sampling::ParentRatio(0.5));
    }

    #[test]
    fn sdk_disabled_wins_over_any_endpoint() {
        let e = Effective::resolve(
            &TelemetryConfig::default(),
            "wpsmesh-edge",
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_SDK_DISABLED", "TRUE"),
            ]),
        );
        assert_eq!(e.endpoint, None);
        let off = TelemetryConfig {
            endpoint: "http://c:4317".into(),
            enabled: false,
            ..Default::default()
        };
        assert_eq!(Effective::resolve(&off, "x", env(&[])).endpoint, None);
    }
}
