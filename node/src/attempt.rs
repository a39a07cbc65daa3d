//! One attempt of a job on this node, synchronous or claimed from the queue alike: the run with
//! its lease kept alive (relaying progress), and its outcome recorded in the store — fenced, so
//! a late attempt changes nothing and its files are deleted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wpsmesh_jobstore::{Heartbeat, JobStore, JobsConfig, Lease, Outcome};
use wpsmesh_proto::process::{ExecuteRequest, JobState, JobStatus, Output};

use crate::error::NodeError;
use crate::execute::Executor;
use crate::jobs::{Live, Running};
use crate::outputs::{self, Published};

/// Progress reaches the store at most this often (the lease is renewed at least every third).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Pause after the store failed, before trying again.
pub(crate) const BACKOFF: Duration = Duration::from_millis(500);

/// What running an attempt needs; one per node.
pub struct Runner {
    pub store: Arc<dyn JobStore>,
    pub executor: Arc<Executor>,
    /// Jobs running here, for dismissal and WatchJob.
    pub running: Arc<Running>,
    /// This node's name, as job records show it.
    pub node: String,
    pub config: JobsConfig,
    pub metrics: crate::metrics::NodeMetrics,
    /// Callbacks of jobs whose request has a subscriber.
    pub callbacks: crate::callbacks::Callbacks,
}

/// How a run ended: as the store records it, and as the caller of a synchronous Execute hears
/// it (the status keeps the error's locator metadata).
pub fn settle(
    result: Result<Vec<Output>, NodeError>,
    log: Vec<String>,
) -> (Outcome, Result<Vec<Output>, tonic::Status>) {
    match result {
        Ok(outputs) => (
            Outcome::Succeeded {
                outputs: outputs.clone(),
                log,
            },
            Ok(outputs),
        ),
        Err(e) => {
            let status = tonic::Status::from(e);
            let outcome = Outcome::Failed {
                code: status.code(),
                message: status.message().to_owned(),
                log,
            };
            (outcome, Err(status))
        }
    }
}

/// `status` as the store leaves it once `outcome` is recorded.
pub fn ended(mut status: JobStatus, outcome: &Outcome, ttl: Duration) -> JobStatus {
    let now = SystemTime::now();
    status.state = outcome.state();
    status.message = outcome.message().to_owned();
    if status.state == JobState::Succeeded {
        status.percent_done = 100;
    }
    status.finished_at = Some(now);
    status.expires_at = Some(now + ttl);
    status
}

impl Runner {
    /// Runs `request` for `job`; with a `lease`, keeps it alive meanwhile (a fenced-out attempt
    /// is cancelled), and has its subscriber's callbacks sent off its path. Returns the outputs.
    pub async fn run(
        self: &Arc<Self>,
        job: &Arc<Live>,
        lease: Option<&Lease>,
        request: ExecuteRequest,
        stream: Option<String>,
    ) -> Result<Published, NodeError> {
        let heartbeat = CancellationToken::new();
        let beats = lease.map(|lease| {
            tokio::spawn(
                self.clone()
                    .keep_alive(job.clone(), lease.clone(), heartbeat.clone()),
            )
        });
        let attempt = lease.map_or(0, |l| l.attempt);
        let callbacks = self
            .callbacks
            .follow(job, attempt, request.subscriber.as_ref());
        let result = self.executor.run(job, request, stream).await;
        if let Some(hook) = callbacks {
            hook.ran(&result.as_ref().map(|p| p.outputs.clone()));
        }
        heartbeat.cancel();
        if let Some(beats) = beats {
            let _ = beats.await;
        }
        result
    }

    /// Renews the lease (and relays progress) until `done`; a fenced-out attempt is cancelled.
    async fn keep_alive(self: Arc<Self>, job: Arc<Live>, lease: Lease, done: CancellationToken) {
        let renew_every = self.config.lease / 3;
        let mut changes = job.subscribe();
        let mut last = Instant::now();
        let mut sent = Heartbeat::default();
        loop {
            let due = last + renew_every;
            tokio::select! {
                () = done.cancelled() => return,
                () = tokio::time::sleep_until(due) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Progress is batched: at most one beat per PROGRESS_EVERY.
                    tokio::select! {
                        () = done.cancelled() => return,
                        () = tokio::time::sleep_until((last + PROGRESS_EVERY).min(due)) => {}
                    }
                }
            }
            let s = job.status();
            let beat = Heartbeat {
                percent: s.percent_done,
                message: String::new(),
                worker: s.worker,
            };
            if beat == sent && Instant::now() < due {
                continue;
            }
            match self.store.heartbeat(&lease, self.config.lease, &beat).await {
                Ok(true) => sent = beat,
                Ok(false) => {
                    warn!(job = %lease.job_id, attempt = lease.attempt, "job lease lost; attempt fenced out, cancelling it");
                    job.cancel.cancel();
                    return;
                }
                Err(e) => warn!(job = %lease.job_id, error = %e, "cannot renew job lease"),
            }
            last = Instant::now();
        }
    }

    /// Records an outcome, retrying while the store is away and the lease would still hold.
    /// An outcome the store refuses (fenced out) or cannot take has its files deleted; `false`
    /// then.
    pub async fn record(&self, lease: &Lease, worker: &str, outcome: &Outcome) -> bool {
        let give_up = Instant::now() + self.config.lease;
        loop {
            match self.store.finish(lease, worker, outcome).await {
                Ok(true) => {
                    info!(job = %lease.job_id, attempt = lease.attempt, state = %outcome.state(), "job finished");
                    return true;
                }
                Ok(false) => {
                    warn!(job = %lease.job_id, attempt = lease.attempt, "late completion rejected; attempt fenced out, outputs deleted");
                    break;
                }
                Err(e) if Instant::now() < give_up => {
                    warn!(job = %lease.job_id, error = %e, "cannot record job outcome yet");
                    tokio::time::sleep(BACKOFF).await;
                }
                Err(e) => {
                    warn!(job = %lease.job_id, error = %e, "cannot record job outcome within the lease; outputs deleted, the job will be retried or failed");
                    break;
                }
            }
        }
        // Dismissed or fenced out: no final callback for this attempt.
        self.callbacks.abandon(&lease.job_id, lease.attempt);
        outputs::delete(&self.executor.storage, outcome.object_ids()).await;
        false
    }
}
