//! Asynchronous jobs on this node: claims queued jobs from the store whenever a worker is free,
//! runs them, keeps their leases alive (relaying progress), records their outcome — fenced, so a
//! late attempt changes nothing — cancels them when they are dismissed anywhere, and does the
//! store's housekeeping (reaping lost leases, deleting expired jobs and their files).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wpsmesh_jobstore::{Claim, Heartbeat, JobStore, JobsConfig, Lease, Outcome, StoreError};

use crate::error::NodeError;
use crate::execute::Executor;
use crate::jobs::{Job, JobResult, Jobs};
use crate::outputs;
use crate::pool::PoolError;

/// Longest a claim blocks before looking at shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// Progress reaches the store at most this often (the lease is renewed at least every third).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Pause after the store failed, before trying again.
const BACKOFF: Duration = Duration::from_millis(500);

/// Runs the store's jobs on this node.
pub struct Scheduler {
    pub store: Arc<dyn JobStore>,
    pub executor: Arc<Executor>,
    /// Jobs running here (also the synchronous ones), for dismissal and WatchJob.
    pub jobs: Arc<Jobs>,
    /// This node's name, as job records show it.
    pub node: String,
    pub config: JobsConfig,
    /// Cancelled when the node stops: no more claims.
    pub stop: CancellationToken,
}

impl Scheduler {
    /// Starts claiming, listening for dismissals and housekeeping until `stop`; the returned
    /// set finishes once running jobs have ended.
    pub fn start(self: &Arc<Self>) -> JoinSet<()> {
        let stop = self.stop.clone();
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().claim_loop(stop.clone()));
        tasks.spawn(self.clone().dismissals(stop.clone()));
        tasks.spawn(self.clone().housekeeping(stop));
        tasks
    }

    /// Claims a job whenever a worker is free.
    async fn claim_loop(self: Arc<Self>, stop: CancellationToken) {
        let free = Arc::new(Semaphore::new(self.executor.pool.size()));
        let mut running = JoinSet::new();
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                p = free.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let claimed = tokio::select! {
                () = stop.cancelled() => break,
                c = self.store.claim(&self.node, self.config.lease, CLAIM_WAIT) => c,
            };
            match claimed {
                Ok(Some(claim)) => {
                    running.spawn(self.clone().run(claim, permit));
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(error = %e, "cannot claim jobs");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(BACKOFF) => {}
                    }
                }
            }
            while running.try_join_next().is_some() {}
        }
        // Jobs already claimed run to their end (their workers are stopped by the pool).
        while running.join_next().await.is_some() {}
    }

    /// Runs one claimed job to its recorded end.
    async fn run(self: Arc<Self>, claim: Claim, permit: OwnedSemaphorePermit) {
        let Claim {
            lease,
            status,
            request,
        } = claim;
        let job = self.jobs.adopt(status);
        info!(job = %job.id, attempt = lease.attempt, process = %request.process_id, "job claimed");
        let heartbeat = CancellationToken::new();
        let beats = tokio::spawn(self.clone().keep_alive(
            job.clone(),
            lease.clone(),
            heartbeat.clone(),
        ));
        let result = self.executor.run(&job, request).await;
        heartbeat.cancel();
        let _ = beats.await;
        let handed_back = match &result {
            Err(_) if self.stop.is_cancelled() && !job.cancel.is_cancelled() => {
                Some(format!("queued again: node {} is shutting down", self.node))
            }
            Err(NodeError::Pool(PoolError::Busy)) => Some(format!(
                "queued again: node {} had no room in its worker queue",
                self.node
            )),
            _ => None,
        };
        if let Some(reason) = handed_back {
            // Not the job's fault: another node takes it, without using up an attempt.
            match self.store.release(&lease, &reason).await {
                Ok(true) => {
                    info!(job = %job.id, attempt = lease.attempt, reason = %reason, "job handed back to the queue")
                }
                Ok(false) => {
                    warn!(job = %job.id, attempt = lease.attempt, "job not handed back; attempt fenced out")
                }
                Err(e) => {
                    warn!(job = %job.id, error = %e, "job not handed back; another node takes it when its lease runs out")
                }
            }
            self.jobs.remove(&job.id);
            if !self.stop.is_cancelled() {
                // Keep the slot a moment so this node does not take the job straight back.
                tokio::time::sleep(BACKOFF).await;
            }
            return;
        }
        // The worker is free: the next claim overlaps recording this outcome.
        drop(permit);
        let log = job.log();
        let outcome = match result {
            Ok((outputs, _)) => Outcome::Succeeded { outputs, log },
            Err(e) => {
                let status = tonic::Status::from(e);
                Outcome::Failed {
                    code: status.code(),
                    message: status.message().to_owned(),
                    log,
                }
            }
        };
        let worker = job.status().worker;
        self.record(&lease, &worker, outcome).await;
        self.jobs.remove(&job.id);
    }

    /// Renews the lease (and relays progress) until `done`; a fenced-out attempt is cancelled.
    async fn keep_alive(self: Arc<Self>, job: Arc<Job>, lease: Lease, done: CancellationToken) {
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
    /// An outcome the store refuses (fenced out) or cannot take has its files deleted.
    async fn record(&self, lease: &Lease, worker: &str, outcome: Outcome) {
        let give_up = Instant::now() + self.config.lease;
        loop {
            match self.store.finish(lease, worker, &outcome).await {
                Ok(true) => {
                    info!(job = %lease.job_id, attempt = lease.attempt, state = ?outcome.state(), "job finished");
                    return;
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
        let mut storage = self.executor.storage.clone();
        outputs::delete(&mut storage, outcome.object_ids()).await;
    }

    /// Cancels jobs running here when they are dismissed anywhere.
    async fn dismissals(self: Arc<Self>, stop: CancellationToken) {
        let mut announced = self.store.dismissals();
        loop {
            let id = tokio::select! {
                () = stop.cancelled() => return,
                id = announced.recv() => id,
            };
            match id {
                Ok(id) => {
                    if let Some(job) = self.jobs.find(&id) {
                        info!(job = %id, "job dismissed; cancelling its run");
                        job.dismiss();
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "dismissals lagged");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Reaps lost leases and deletes expired jobs with their files, every `sweep_interval`.
    async fn housekeeping(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sweep().await {
                debug!(error = %e, "job store housekeeping skipped");
            }
        }
    }

    /// One round of housekeeping.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        for r in self.store.reap().await? {
            if r.requeued {
                warn!(job = %r.job_id, node = %r.node, attempt = r.attempt, "job lease ran out; queued again");
            } else {
                warn!(job = %r.job_id, node = %r.node, attempt = r.attempt, "job lease ran out; no attempts left, job failed");
            }
        }
        let mut storage = self.executor.storage.clone();
        for record in self.store.expired(100).await? {
            let id = record.status.job_id.clone();
            if let Some(outcome) = record.outcome {
                outputs::delete(&mut storage, outcome.object_ids()).await;
            }
            self.store.forget(&id).await?;
            info!(job = %id, "expired job deleted");
        }
        // Synchronous jobs, kept here only.
        for job in self.jobs.take_expired(SystemTime::now()) {
            if let Some(JobResult::Succeeded(outputs)) = job.result() {
                outputs::delete(&mut storage, wpsmesh_proto::process::object_ids(&outputs)).await;
            }
            debug!(job = %job.id, "expired synchronous job deleted");
        }
        Ok(())
    }
}
