//! One callback delivered: the URI judged again by this node's address policy (a job may have
//! been accepted by a node with another allowlist), then POSTed as `application/json` with the
//! guarded client (admitted addresses only, no redirect followed), each attempt within the
//! configured timeout, retried with capped exponential backoff while the receiver is away or
//! answers 408, 429 or 5xx; at most [`ANSWER_READ`] bytes of an answer are read. Counted by
//! outcome.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tracing::{info, warn};
use url::Url;
use wpsmesh_proto::ogcapi;
use wpsmesh_proto::process::JobId;
use wpsmesh_proto::text;
use wpsmesh_runtime::backoff::Backoff;

use super::follow::Following;
use super::{Callbacks, Kind};
use crate::fetch::{failure_cause, shown};

/// Bytes of a receiver's answer read at most (for the log); the rest is never read.
const ANSWER_READ: usize = 1024;

/// How one POST went.
enum Answer {
    /// A 2xx status.
    Delivered(u16),
    /// Worth another attempt: unreachable, timed out, 408, 429 or 5xx.
    Transient(String),
    /// Not worth another: refused by the policy, a redirect, another 4xx.
    Final(String),
}

impl Following {
    /// Delivers one callback of this attempt, retrying as configured.
    pub(super) async fn send(&self, kind: Kind, uri: &str, body: Value) {
        let retries = self.callbacks.inner.config.retries;
        self.callbacks
            .deliver(&self.job, kind, uri, body, retries)
            .await;
    }

    /// Delivers one callback of this attempt in a single try.
    pub(super) async fn send_once(&self, kind: Kind, uri: &str, body: Value) {
        self.callbacks.deliver(&self.job, kind, uri, body, 0).await;
    }
}

impl Callbacks {
    /// Delivers `body` to `uri` with up to `retries` retries, and counts the outcome.
    async fn deliver(&self, job: &JobId, kind: Kind, uri: &str, body: Value, retries: u32) {
        let outcome = self.attempts(job, kind, uri, body, retries).await;
        self.count(kind, outcome);
    }

    async fn attempts(
        &self,
        job: &JobId,
        kind: Kind,
        uri: &str,
        body: Value,
        retries: u32,
    ) -> &'static str {
        let config = &self.inner.config;
        let url = match Url::parse(uri) {
            Ok(url) => url,
            Err(e) => {
                warn!(job = %job, kind = kind.label(), uri = %text::shown(uri), error = %e, "callback failed: not a url");
                return "failed";
            }
        };
        let shown_url = shown(&url);
        if let Err(refusal) = self.inner.outbound.check_url(&url) {
            warn!(job = %job, kind = kind.label(), uri = %shown_url, reason = %refusal, "callback refused");
            return "failed";
        }
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut backoff = Backoff::new(config.backoff, config.backoff_max);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = {
                let Ok(_slot) = self.inner.in_flight.acquire().await else {
                    return "dropped";
                };
                self.post(url.clone(), body.clone()).await
            };
            match answer {
                Answer::Delivered(status) => {
                    info!(job = %job, kind = kind.label(), uri = %shown_url, status, attempt, "callback delivered");
                    return "delivered";
                }
                Answer::Transient(reason) if attempt <= retries => {
                    let pause = backoff.next_delay();
                    info!(job = %job, kind = kind.label(), uri = %shown_url, attempt, reason = %reason, ?pause, "callback not delivered; retrying");
                    tokio::time::sleep(pause).await;
                }
                Answer::Transient(reason) | Answer::Final(reason) => {
                    warn!(job = %job, kind = kind.label(), uri = %shown_url, attempt, reason = %reason, "callback failed");
                    return "failed";
                }
            }
        }
    }

    /// One POST (the client's timeout bounds it whole).
    async fn post(&self, url: Url, body: Bytes) -> Answer {
        let sent = self
            .inner
            .client
            .post(url)
            .header(CONTENT_TYPE, ogcapi::JSON)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return failure(&e),
        };
        let status = response.status();
        // A little of the answer, for the log; the rest is left unread.
        let mut head = Vec::new();
        while head.len() < ANSWER_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    head.extend_from_slice(&chunk[..chunk.len().min(ANSWER_READ - head.len())])
                }
                _ => break,
            }
        }
        drop(response);
        let said = || {
            let text = String::from_utf8_lossy(&head);
            let text = text::one_line(text.trim());
            if text.is_empty() {
                format!("answered {status}")
            } else {
                format!("answered {status}: {}", text::shown(&text))
            }
        };
        if status.is_success() {
            Answer::Delivered(status.as_u16())
        } else if status.is_server_error()
            || matches!(
                status,
                StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
            )
        {
            Answer::Transient(said())
        } else if status.is_redirection() {
            Answer::Final(format!("{}; redirects are not followed", said()))
        } else {
            Answer::Final(said())
        }
    }
}

/// A failed send: a policy refusal (the guarded resolver's) is final; anything else
/// (unreachable, timed out) is worth another attempt.
fn failure(e: &reqwest::Error) -> Answer {
    match failure_cause(e) {
        Err(refusal) => Answer::Final(format!("refused: {refusal}")),
        Ok(_) if e.is_timeout() => Answer::Transient("timed out".into()),
        Ok(reason) => Answer::Transient(reason),
    }
}
