//! Discovery through Consul: the passing instances of a service, watched with blocking queries
//! on `GET /v1/health/service/:name?passing=true&index=..&wait=..`.
//!
//! consulrs 0.1.0 has no client for the `/v1/health` endpoints (only the agent-local
//! `/v1/agent/health/service/name/:name`, which sees one agent's services and does not block),
//! so this is a direct reqwest call, following Consul's blocking-query rules.

use std::time::{Duration, Instant};

use futures::Stream;
use serde::Deserialize;
use tracing::{debug, info, warn};
use url::Url;

use super::{ConsulConfig, ConsulError, duration};
use wpsmesh_runtime::backoff::Backoff;

/// How long Consul holds a blocking query open (Consul's default; its maximum is 10 minutes).
const WAIT: Duration = Duration::from_secs(300);
/// Consul adds up to `wait / 16` of jitter; the client waits that plus this margin.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(10);
/// An answer that came back sooner than this with an unchanged index did not block: wait out
/// the rest before asking again, so a misbehaving server cannot make the watch spin.
const MIN_ROUND: Duration = Duration::from_secs(1);

/// Watches the passing instances of service `name` in Consul.
///
/// The stream yields the `(host, port)` pairs of the instances whose checks all pass, sorted and
/// without duplicates: once when the first answer arrives (possibly empty), then each time the
/// set changes. The host is the service's address, or its node's address when the service
/// registered none. While Consul is unreachable the stream yields nothing (callers keep the
/// last set), logs a warning per attempt and retries with capped exponential backoff. It never
/// ends; drop it to stop watching.
///
/// Fails only when Consul is not configured or its address is malformed.
pub fn watch_service(
    config: &ConsulConfig,
    name: &str,
) -> Result<impl Stream<Item = Vec<(String, u16)>> + Send + Unpin + 'static, ConsulError> {
    let mut url = config.base_url()?;
    url.path_segments_mut()
        .map_err(|()| ConsulError::InvalidAddress {
            address: config.address.clone(),
            reason: "cannot be a base url".into(),
        })?
        .clear()
        .extend(["v1", "health", "service", name]);
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| ConsulError::Client(e.to_string()))?;
    let token = config.token.clone();
    let service = name.to_owned();
    Ok(Box::pin(async_stream::stream! {
        let mut index: u64 = 0;
        let mut last: Option<Vec<(String, u16)>> = None;
        let mut backoff = Backoff::default();
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            match query(&http, &url, &token, index).await {
                Ok((entries, answered_index)) => {
                    if failures > 0 {
                        info!(service = %service, attempts = failures + 1, "consul health query works again");
                    }
                    failures = 0;
                    backoff.reset();
                    let next = next_index(index, answered_index);
                    if next == index && started.elapsed() < MIN_ROUND {
                        tokio::time::sleep(MIN_ROUND - started.elapsed()).await;
                    }
                    index = next;
                    let instances = instances(entries);
                    if last.as_ref() != Some(&instances) {
                        debug!(service = %service, index, count = instances.len(), "consul instances changed");
                        last = Some(instances.clone());
                        yield instances;
                    }
                }
                Err(e) => {
                    failures += 1;
                    // Start over with a non-blocking read: a restarted agent's index may be
                    // lower than ours, and blocking on ours would hide changes.
                    index = 0;
                    let delay = backoff.next_delay();
                    warn!(
                        service = %service,
                        attempt = failures,
                        retry_in = ?delay,
                        error = %e,
                        "consul health query failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }))
}

/// The index for the next query, from the one sent and the `X-Consul-Index` answered, per
/// Consul's blocking-query rules: an index that went backwards resets to 0 (a fresh,
/// non-blocking read); otherwise the index is at least 1, since blocking on 0 returns at once.
fn next_index(sent: u64, answered: Option<u64>) -> u64 {
    let answered = answered.unwrap_or(0).max(1);
    if answered < sent { 0 } else { answered }
}

/// One health query; the entries and the `X-Consul-Index` header.
async fn query(
    http: &reqwest::Client,
    url: &Url,
    token: &str,
    index: u64,
) -> Result<(Vec<HealthEntry>, Option<u64>), ConsulError> {
    let mut url = url.clone();
    url.query_pairs_mut()
        .append_pair("passing", "true")
        .append_pair("index", &index.to_string())
        .append_pair("wait", &duration::format(WAIT));
    let mut request = http.get(url).timeout(WAIT + WAIT / 16 + TIMEOUT_MARGIN);
    if !token.is_empty() {
        request = request.header("X-Consul-Token", token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| ConsulError::Request(super::error_chain(&e)))?;
    let status = response.status();
    let answered_index = response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = response
        .bytes()
        .await
        .map_err(|e| ConsulError::Request(super::error_chain(&e)))?;
    if !status.is_success() {
        return Err(ConsulError::Status {
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    let entries = serde_json::from_slice(&body).map_err(|e| ConsulError::Decode(e.to_string()))?;
    Ok((entries, answered_index))
}

/// The fields used from one entry of `/v1/health/service/:name`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: HealthNode,
    service: HealthService,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthService {
    #[serde(default)]
    address: String,
    port: u16,
}

/// Sorted, deduplicated `(host, port)` pairs; the node's address stands in for an empty
/// service address, as Consul documents.
fn instances(entries: Vec<HealthEntry>) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = entries
        .into_iter()
        .map(|e| {
            let host = if e.service.address.is_empty() {
                e.node.address
            } else {
                e.service.address
            };
            (host, e.service.port)
        })
        .filter(|(host, _)| !host.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn index_follows_consul_rules() {
        assert_eq!(next_index(0, Some(7)), 7);
        assert_eq!(next_index(7, Some(9)), 9);
        assert_eq!(next_index(9, Some(9)), 9);
        assert_eq!(next_index(9, Some(3)), 0, "went backwards");
        assert_eq!(next_index(0, Some(0)), 1, "never block on 0");
        assert_eq!(next_index(0, None), 1);
    }

    #[test]
    fn instances_fall_back_to_the_node_address_and_are_sorted() {
        let entries: Vec<HealthEntry> = serde_json::from_value(serde_json::json!([
            {"Node": {"Node": "b", "Address": "10.0.0.2"}, "Service": {"Address": "", "Port": 8002}},
            {"Node": {"Node": "a", "Address": "10.0.0.1"}, "Service": {"Address": "node-a", "Port": 8001}},
            {"Node": {"Node": "a", "Address": "10.0.0.1"}, "Service": {"Address": "node-a", "Port": 8001}},
        ]))
        .unwrap();
        assert_eq!(
            instances(entries),
            vec![("10.0.0.2".into(), 8002), ("node-a".into(), 8001)]
        );
    }
}
