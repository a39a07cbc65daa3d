//! Queued jobs on this node: claims them from the store whenever a worker is free and runs each
//! as an attempt (see `attempt`), cancels jobs running here when they are dismissed anywhere,
//! and does the store's housekeeping (reaping lost leases, deleting expired jobs and files).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};
use wpsmesh_jobstore::{Claim, StoreError};
use wpsmesh_telemetry::propagate::{self, KeyValue};

use crate::attempt::{BACKOFF, Runner, settle};
use crate::error::NodeError;
use crate::outputs;
use crate::pool::PoolError;

/// Longest a claim blocks before looking at shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// Runs the store's queued jobs on this node.
pub struct Scheduler {
    pub runner: Arc<Runner>,
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
        let r = self.runner.clone();
        let free = Arc::new(Semaphore::new(self.runner.executor.pool.size()));
        let mut running = JoinSet::new();
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                p = free.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let claimed = tokio::select! {
                () = stop.cancelled() => break,
                c = self.runner.store.claim(&r.node, r.config.lease, CLAIM_WAIT) => c,
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

    /// Runs one claimed job to its recorded end, in a trace of its own linked to the submit's
    /// (whose trace also gets the time the job waited in the queue).
    async fn run(self: Arc<Self>, claim: Claim, permit: OwnedSemaphorePermit) {
        let span = tracing::info_span!(
            "job run",
            job = %claim.lease.job_id,
            attempt = claim.lease.attempt,
            wps.process_id = %claim.request.process_id,
        );
        propagate::link(&span, &claim.trace);
        if let Some(created) = claim.status.created_at {
            propagate::Finished {
                name: "job queued",
                parent: propagate::from_carrier(&claim.trace),
                start: created,
                end: claim.status.started_at.unwrap_or_else(SystemTime::now),
                attributes: vec![
                    KeyValue::new("job.id", claim.lease.job_id.to_string()),
                    KeyValue::new("job.attempt", i64::from(claim.lease.attempt)),
                    KeyValue::new("node", self.runner.node.clone()),
                ],
                links: propagate::linked(&propagate::carrier(&span))
                    .into_iter()
                    .collect(),
                error: None,
            }
            .record();
        }
        self.run_claimed(claim, permit).instrument(span).await;
    }

    async fn run_claimed(self: Arc<Self>, claim: Claim, permit: OwnedSemaphorePermit) {
        let Claim {
            lease,
            status,
            request,
            ..
        } = claim;
        let r = &self.runner;
        r.metrics.job_claimed(&status);
        let job = r.running.begin(status);
        info!(job = %job.id, attempt = lease.attempt, process = %request.process_id, "job claimed");
        let result = r
            .run(&job, Some(&lease), request, None)
            .await
            .map(|p| p.outputs);
        let handed_back = match &result {
            Err(_) if self.stop.is_cancelled() && !job.cancel.is_cancelled() => {
                Some(format!("queued again: node {} is shutting down", r.node))
            }
            Err(NodeError::Pool(PoolError::Busy)) => Some(format!(
                "queued again: node {} had no room in its worker queue",
                r.node
            )),
            _ => None,
        };
        if let Some(reason) = handed_back {
            // Not the job's fault: another node takes it, without using up an attempt.
            match r.store.release(&lease, &reason).await {
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
            r.running.end(&job.id);
            if !self.stop.is_cancelled() {
                // Keep the slot a moment so this node does not take the job straight back.
                tokio::time::sleep(BACKOFF).await;
            }
            return;
        }
        // The worker is free: the next claim overlaps recording this outcome.
        drop(permit);
        let (outcome, _) = settle(result, job.log());
        let status = job.status();
        r.record(&lease, &status.worker, &outcome).await;
        job.ended(crate::attempt::ended(status, &outcome, r.config.ttl));
        r.metrics.job_ended(&job.status());
        r.running.end(&job.id);
    }

    /// Cancels jobs running here when they are dismissed anywhere.
    async fn dismissals(self: Arc<Self>, stop: CancellationToken) {
        let mut announced = self.runner.store.dismissals();
        loop {
            let id = tokio::select! {
                () = stop.cancelled() => return,
                id = announced.recv() => id,
            };
            match id {
                Ok(id) => {
                    if let Some(job) = self.runner.running.find(&id) {
                        info!(job = %id, "job dismissed; cancelling its run");
                        job.cancel.cancel();
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
        let mut tick = tokio::time::interval(self.runner.config.sweep_interval);
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
        let store = &self.runner.store;
        for r in store.reap().await? {
            if r.requeued {
                warn!(job = %r.job_id, node = %r.node, attempt = r.attempt, "job lease ran out; queued again");
            } else {
                warn!(job = %r.job_id, node = %r.node, attempt = r.attempt, "job lease ran out; no attempts left, job failed");
            }
        }
        self.runner.metrics.queue_depth(store.queued().await?);
        for record in store.expired(100).await? {
            let id = record.status.job_id;
            if let Some(outcome) = record.outcome {
                outputs::delete(&self.runner.executor.storage, outcome.object_ids()).await;
            }
            store.forget(&id).await?;
            info!(job = %id, "expired job deleted");
        }
        Ok(())
    }
}
