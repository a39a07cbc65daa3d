//! The exposition of a registry: OpenMetrics text for scrapers that ask for it (Prometheus
//! does), the classic Prometheus text format (0.0.4) for everything else, e.g. `curl` or
//! `promtool check metrics`.

use std::collections::HashSet;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const CLASSIC_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry's metrics as OpenMetrics text, or converted to the classic format.
pub fn encode(registry: &Registry, openmetrics: bool) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a metric that fails to encode ends the text early,
    // which the scraper reports.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "metrics exposition incomplete");
    }
    if openmetrics { text } else { classic(&text) }
}

/// OpenMetrics text as the classic Prometheus text format: a counter family `x` exposes its
/// samples as `x_total`, so its HELP and TYPE lines are renamed to match; `# UNIT` and `# EOF`
/// lines, which the classic format does not have, are left out. Gauges and histograms read the
/// same in both.
pub fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match descriptor.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
            Some((prefix, (name, tail))) if counters.contains(name) => {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The `GET /metrics` answer: OpenMetrics when the `Accept` header asks for it, else classic.
pub fn response(registry: &Registry, headers: &HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        CLASSIC_TEXT
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        encode(registry, openmetrics),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    fn sample() -> Registry {
        let mut registry = Registry::default();
        let jobs = Family::<[(&'static str, &'static str); 1], Counter>::default();
        jobs.get_or_create(&[("status", "succeeded")]).inc_by(3);
        registry.register("wpsmesh_jobs", "Jobs ended", jobs);
        let busy = Gauge::<i64>::default();
        busy.set(2);
        registry.register("wpsmesh_workers_busy", "Busy workers", busy);
        let latency = crate::metrics::latency_histogram();
        latency.observe(0.003);
        registry.register("wpsmesh_latency_seconds", "Latency", latency);
        registry
    }

    #[test]
    fn openmetrics_counters_read_as_classic_counters() {
        let registry = sample();
        let open = encode(&registry, true);
        assert!(open.contains("# TYPE wpsmesh_jobs counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        let text = encode(&registry, false);
        for line in [
            "# HELP wpsmesh_jobs_total Jobs ended.",
            "# TYPE wpsmesh_jobs_total counter",
            "wpsmesh_jobs_total{status=\"succeeded\"} 3",
            "# TYPE wpsmesh_workers_busy gauge",
            "wpsmesh_workers_busy 2",
            "# TYPE wpsmesh_latency_seconds histogram",
            "wpsmesh_latency_seconds_bucket{le=\"0.005\"} 1",
            "wpsmesh_latency_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("TYPE wpsmesh_jobs counter"), "{text}");
    }

    #[test]
    fn accept_header_chooses_the_format() {
        let registry = sample();
        let mut headers = HeaderMap::new();
        let classic = response(&registry, &headers);
        assert_eq!(classic.headers()[header::CONTENT_TYPE], CLASSIC_TEXT);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
        );
        let open = response(&registry, &headers);
        assert_eq!(open.headers()[header::CONTENT_TYPE], OPENMETRICS_TEXT);
    }
}
