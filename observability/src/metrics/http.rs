//! HTTP server latency as an axum middleware: `wpsmesh_http_request_duration_seconds`, a
//! histogram by route template, method and status, measured to the response head.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::registry::Registry;

use super::{HistogramFamily, latency_histogram};

/// Labels: route template (`unmatched` when no route matched), method, status code.
type Labels = [(&'static str, String); 3];

/// The HTTP latency histogram of one server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    duration: HistogramFamily<Labels>,
}

impl HttpMetrics {
    /// Registers the histogram in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let duration = HistogramFamily::<Labels>::new_with_constructor(latency_histogram as _);
        registry.register(
            "wpsmesh_http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by route template, method and status",
            duration.clone(),
        );
        Self { duration }
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let labels = [
            ("route", route.to_owned()),
            ("method", method_label(method).to_owned()),
            ("status", status.to_string()),
        ];
        self.duration.get_or_create(&labels).observe(seconds);
    }

    /// The middleware: `router.layer(axum::middleware::from_fn_with_state(metrics,
    /// HttpMetrics::track))`. The route is the matched template, never the request path.
    pub async fn track(State(metrics): State<Self>, request: Request, next: Next) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let method = request.method().clone();
        let started = Instant::now();
        let response = next.run(request).await;
        metrics.observe(
            &route,
            &method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        response
    }
}

/// The method as a label: the standard ones by name, anything a client invents as `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let invented = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&invented), "other");
    }
}
