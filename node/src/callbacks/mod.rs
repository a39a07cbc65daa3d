//! Job callbacks (OGC API - Processes `subscriber`): the URIs judged on receipt by the address
//! policy that guards input fetching, then POSTed by the node running the job — its statusInfo
//! while it runs (`inProgressUri`), its results document when it succeeds (`successUri`), its
//! statusInfo when it fails (`failedUri`).
//!
//! Nothing here is on the job's path: each attempt with a subscriber gets a task of its own
//! (`follow`) that watches the job's live status and sends in order (`send`), with at most
//! `max_jobs` such tasks and `concurrency` POSTs in flight node-wide; beyond that a job's
//! callbacks are dropped and counted. The final callback goes out once the outcome is recorded
//! in the store, and not at all when the store refused it (dismissed, fenced out) or the
//! attempt was handed back to the queue.

mod config;
mod follow;
mod send;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;
use tracing::warn;
use url::Url;
use wpsmesh_proto::process::{JobId, Output, Subscriber};

use crate::error::NodeError;
use crate::fetch::{Outbound, shown};
use crate::jobs::Live;
use crate::metrics::NodeMetrics;

pub use config::CallbacksConfig;

/// The subscriber URI a callback goes to; its label in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Success,
    InProgress,
    Failed,
}

impl Kind {
    /// The `kind` label (one of [`crate::metrics::CALLBACK_KINDS`]).
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InProgress => "in_progress",
            Self::Failed => "failed",
        }
    }

    /// The kind of the URI OGC API names `name` ([`Subscriber::uris`]).
    fn named(name: &str) -> Self {
        match name {
            "successUri" => Self::Success,
            "inProgressUri" => Self::InProgress,
            _ => Self::Failed,
        }
    }
}

/// Sends the callbacks of the jobs run on this node. Cheap to clone; one per node.
#[derive(Clone)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

struct Inner {
    config: CallbacksConfig,
    outbound: Outbound,
    client: reqwest::Client,
    metrics: NodeMetrics,
    /// POSTs in flight.
    in_flight: Semaphore,
    /// Attempts whose callbacks are outstanding.
    jobs: Arc<Semaphore>,
    /// Those attempts, by job and attempt, for [`Callbacks::abandon`].
    hooks: Mutex<HashMap<(JobId, u32), Arc<Hook>>>,
}

/// What the attempt tells its callback task beside the live status: the outputs it produced,
/// and whether its outcome was refused by the store.
#[derive(Default)]
pub struct Hook {
    outputs: Mutex<Option<Vec<Output>>>,
    abandoned: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hook {
    /// The run ended with `result` (its outcome is not recorded yet).
    pub fn ran<E>(&self, result: &Result<Vec<Output>, E>) {
        *lock(&self.outputs) = result.as_ref().ok().cloned();
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Callbacks {
    /// Checks the settings and builds the client under `outbound`'s address policy.
    pub fn new(
        config: CallbacksConfig,
        outbound: Outbound,
        metrics: NodeMetrics,
    ) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let client = outbound.client(config.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                in_flight: Semaphore::new(config.concurrency),
                jobs: Arc::new(Semaphore::new(config.max_jobs)),
                config,
                outbound,
                client,
                metrics,
                hooks: Mutex::default(),
            }),
        })
    }

    /// Judges every URI of `subscriber` by the address policy (host names resolved now): a
    /// refused one is an invalid parameter named `subscriber.successUri` (...) with the reason.
    pub async fn admit(&self, subscriber: Option<&Subscriber>) -> Result<(), NodeError> {
        let Some(subscriber) = subscriber else {
            return Ok(());
        };
        for (name, uri) in subscriber.uris() {
            let locator = format!("subscriber.{name}");
            let url = Url::parse(uri)
                .map_err(|e| NodeError::invalid(&locator, format!("not a URL: {e}")))?;
            if let Err(refusal) = self.inner.outbound.check(&url).await {
                self.count(Kind::named(name), "refused");
                warn!(locator = %locator, uri = %shown(&url), reason = %refusal, "callback uri refused");
                return Err(NodeError::invalid(
                    &locator,
                    format!("callback refused: {refusal}"),
                ));
            }
        }
        Ok(())
    }

    /// Starts following attempt `attempt` of `job` for `subscriber`'s callbacks; the hook is
    /// for telling it the run's outputs. `None` without a subscriber, or when too many jobs
    /// have callbacks outstanding (then they are dropped and counted).
    pub fn follow(
        &self,
        job: &Live,
        attempt: u32,
        subscriber: Option<&Subscriber>,
    ) -> Option<Arc<Hook>> {
        let subscriber = subscriber?.clone();
        let Ok(permit) = self.inner.jobs.clone().try_acquire_owned() else {
            for (name, _) in subscriber.uris() {
                self.count(Kind::named(name), "dropped");
            }
            warn!(job = %job.id, max_jobs = self.inner.config.max_jobs, "too many jobs with callbacks outstanding; this job's callbacks are dropped");
            return None;
        };
        let hook = Arc::new(Hook::default());
        lock(&self.inner.hooks).insert((job.id, attempt), hook.clone());
        let following = follow::Following {
            callbacks: self.clone(),
            job: job.id,
            attempt,
            subscriber,
            hook: hook.clone(),
        };
        tokio::spawn(following.run(job.subscribe(), permit));
        Some(hook)
    }

    /// The store refused the outcome of this attempt (dismissed, fenced out, store away): its
    /// final callback is not sent.
    pub fn abandon(&self, job: &JobId, attempt: u32) {
        if let Some(hook) = lock(&self.inner.hooks).get(&(*job, attempt)) {
            hook.abandoned.store(true, Ordering::SeqCst);
        }
    }

    /// The attempt's task is done.
    fn forget(&self, job: &JobId, attempt: u32) {
        lock(&self.inner.hooks).remove(&(*job, attempt));
    }

    fn count(&self, kind: Kind, outcome: &'static str) {
        self.inner.metrics.callback(kind.label(), outcome);
    }
}

#[cfg(test)]
mod tests {
    use wpsmesh_proto::process::{JobState, JobStatus};
    use wpsmesh_telemetry::metrics::Registry;

    use super::*;
    use crate::fetch::{FetchConfig, Fetcher};
    use crate::jobs::Running;

    fn callbacks(max_jobs: usize) -> (Callbacks, Registry) {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::new(&mut registry);
        let fetcher = Fetcher::new(FetchConfig::default(), None).expect("fetcher");
        let config = CallbacksConfig {
            max_jobs,
            ..CallbacksConfig::default()
        };
        let callbacks = Callbacks::new(config, fetcher.outbound(), metrics).expect("callbacks");
        (callbacks, registry)
    }

    fn subscriber(success: &str) -> Subscriber {
        Subscriber {
            success_uri: Some(success.into()),
            in_progress_uri: None,
            failed_uri: None,
            base_url: "http://wps.example.com".into(),
        }
    }

    #[tokio::test]
    async fn refused_uris_are_named_with_the_reason_and_counted() {
        let (cb, registry) = callbacks(4);
        assert!(cb.admit(None).await.is_ok());
        let err = cb
            .admit(Some(&subscriber("http://169.254.169.254/latest/meta-data")))
            .await
            .expect_err("metadata address");
        assert_eq!(err.locator(), Some("subscriber.successUri"));
        assert_eq!(
            err.to_string(),
            "invalid parameter subscriber.successUri: callback refused: address 169.254.169.254 is not allowed (cloud metadata)"
        );
        let text = wpsmesh_telemetry::metrics::encode(&registry, false);
        let line = r#"wpsmesh_node_callbacks_total{kind="success",outcome="refused"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
    }

    #[tokio::test]
    async fn jobs_beyond_the_bound_have_their_callbacks_dropped() {
        let (cb, registry) = callbacks(1);
        let running = Running::default();
        let status = |state| JobStatus::new(JobId::random(), "native:buffer", state);
        let sub = subscriber("http://93.184.216.34/cb");
        let first = running.begin(status(JobState::Accepted));
        assert!(cb.follow(&first, 1, Some(&sub)).is_some());
        assert!(cb.follow(&first, 1, None).is_none());
        let second = running.begin(status(JobState::Accepted));
        assert!(cb.follow(&second, 1, Some(&sub)).is_none());
        let text = wpsmesh_telemetry::metrics::encode(&registry, false);
        let line = r#"wpsmesh_node_callbacks_total{kind="success",outcome="dropped"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
        // The first job is handed back (its handle goes without an end): nothing is sent.
        running.end(&first.id);
        drop(first);
    }
}
