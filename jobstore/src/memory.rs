//! The in-process job store: the embedded default, shared by every node of one process. Same
//! semantics as Redis (queue bound, leases, fencing, reaping, expiry), minus surviving the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, broadcast};
use wpsmesh_proto::wire::process::v1::{self as wire, JobState};

use crate::{
    Claim, Heartbeat, JobRecord, JobStore, Lease, Limits, NewJob, Outcome, Reaped, StoreError,
    is_terminal,
};

/// Job state in this process.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    queued: Notify,
    limits: Limits,
    dismissed: broadcast::Sender<String>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Entry>,
    queue: VecDeque<String>,
}

impl Inner {
    /// The job `lease` is about, if that lease's attempt still holds it (fencing).
    fn owned(&mut self, lease: &Lease) -> Option<&mut Entry> {
        self.jobs
            .get_mut(&lease.job_id)
            .filter(|e| e.owned_by(lease))
    }
}

struct Entry {
    record: JobRecord,
    request: wire::ExecuteRequest,
    lease_until: Option<SystemTime>,
    /// Attempts handed back by their node, not counted against `max_attempts`.
    released: u32,
}

impl Entry {
    fn owned_by(&self, lease: &Lease) -> bool {
        self.record.state() == JobState::Running && self.record.status.attempt == lease.attempt
    }
}

impl MemoryStore {
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Mutex::default(),
            queued: Notify::new(),
            limits,
            dismissed: broadcast::channel(1024).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the first queued job that is still waiting and claims it.
    fn try_claim(&self, node: &str, lease: Duration) -> Option<Claim> {
        let mut inner = self.lock();
        while let Some(id) = inner.queue.pop_front() {
            let Some(entry) = inner.jobs.get_mut(&id) else {
                continue;
            };
            if entry.record.state() != JobState::Accepted {
                continue;
            }
            let now = SystemTime::now();
            let s = &mut entry.record.status;
            s.state = JobState::Running as i32;
            s.attempt += 1;
            s.node = node.to_owned();
            s.worker.clear();
            s.percent_done = 0;
            s.message = "running".into();
            s.started_at = Some(now.into());
            entry.lease_until = Some(now + lease);
            return Some(Claim {
                lease: Lease {
                    job_id: id,
                    attempt: s.attempt,
                    node: node.to_owned(),
                },
                status: s.clone(),
                request: entry.request.clone(),
            });
        }
        None
    }

    fn end(&self, entry: &mut Entry, state: JobState, message: String, now: SystemTime) {
        let s = &mut entry.record.status;
        s.state = state as i32;
        s.message = message;
        s.finished_at = Some(now.into());
        s.expires_at = Some((now + self.limits.ttl).into());
        entry.lease_until = None;
    }
}

#[tonic::async_trait]
impl JobStore for MemoryStore {
    async fn submit(&self, job: NewJob) -> Result<wire::JobStatus, StoreError> {
        let mut inner = self.lock();
        let waiting = inner.queue.len() as u64;
        if waiting >= self.limits.max_queued {
            return Err(StoreError::QueueFull { waiting });
        }
        let now = SystemTime::now();
        let status = wire::JobStatus {
            job_id: job.id.clone(),
            process_id: job.request.process_id.clone(),
            state: JobState::Accepted as i32,
            message: "accepted".into(),
            created_at: Some(now.into()),
            expires_at: Some((now + self.limits.ttl).into()),
            ..Default::default()
        };
        inner.jobs.insert(
            job.id.clone(),
            Entry {
                record: JobRecord {
                    status: status.clone(),
                    outcome: None,
                },
                request: job.request,
                lease_until: None,
                released: 0,
            },
        );
        inner.queue.push_back(job.id);
        drop(inner);
        self.queued.notify_one();
        Ok(status)
    }

    async fn claim(
        &self,
        node: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(claim) = self.try_claim(node, lease) {
                // Others may be waiting for the rest of the queue.
                if !self.lock().queue.is_empty() {
                    self.queued.notify_one();
                }
                return Ok(Some(claim));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        duration: Duration,
        beat: &Heartbeat,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.owned(lease) else {
            return Ok(false);
        };
        entry.lease_until = Some(SystemTime::now() + duration);
        let s = &mut entry.record.status;
        s.percent_done = beat.percent.min(100);
        if !beat.message.is_empty() {
            s.message = beat.message.clone();
        }
        if !beat.worker.is_empty() {
            s.worker = beat.worker.clone();
        }
        Ok(true)
    }

    async fn finish(
        &self,
        lease: &Lease,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.owned(lease) else {
            return Ok(false);
        };
        if matches!(outcome, Outcome::Succeeded { .. }) {
            entry.record.status.percent_done = 100;
        }
        if !worker.is_empty() {
            entry.record.status.worker = worker.to_owned();
        }
        self.end(
            entry,
            outcome.state(),
            outcome.message().to_owned(),
            SystemTime::now(),
        );
        entry.record.outcome = Some(outcome.clone());
        Ok(true)
    }

    async fn release(&self, lease: &Lease, reason: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.owned(lease) else {
            return Ok(false);
        };
        let s = &mut entry.record.status;
        s.state = JobState::Accepted as i32;
        s.worker.clear();
        s.message = reason.to_owned();
        entry.lease_until = None;
        entry.released += 1;
        inner.queue.push_back(lease.job_id.clone());
        drop(inner);
        self.queued.notify_one();
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().jobs.get(id).map(|e| e.record.clone()))
    }

    async fn dismiss(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get_mut(id) else {
            return Ok(None);
        };
        let before = entry.record.clone();
        let was_finished = entry.record.status.finished_at.is_some();
        let now = SystemTime::now();
        self.end(entry, JobState::Dismissed, "dismissed".into(), now);
        if was_finished {
            entry.record.status.finished_at = before.status.finished_at;
        }
        entry.record.outcome = None;
        drop(inner);
        if !is_terminal(before.status.state) {
            let _ = self.dismissed.send(id.to_owned());
        }
        Ok(Some(before))
    }

    fn dismissals(&self) -> broadcast::Receiver<String> {
        self.dismissed.subscribe()
    }

    async fn reap(&self) -> Result<Vec<Reaped>, StoreError> {
        let now = SystemTime::now();
        let mut reaped = Vec::new();
        let mut inner = self.lock();
        let Inner { jobs, queue } = &mut *inner;
        for (id, entry) in jobs.iter_mut() {
            if entry.record.state() != JobState::Running
                || entry.lease_until.is_none_or(|t| t > now)
            {
                continue;
            }
            let s = &mut entry.record.status;
            let (node, attempt) = (s.node.clone(), s.attempt);
            let requeued = attempt.saturating_sub(entry.released) < self.limits.max_attempts;
            if requeued {
                s.state = JobState::Accepted as i32;
                s.message = format!(
                    "queued again: node {node} stopped renewing its lease on attempt {attempt}"
                );
                s.worker.clear();
                entry.lease_until = None;
                queue.push_back(id.clone());
            } else {
                let message = lease_lost_message(&node, attempt, self.limits.max_attempts);
                self.end(entry, JobState::Failed, message, now);
            }
            reaped.push(Reaped {
                job_id: id.clone(),
                node,
                attempt,
                requeued,
            });
        }
        drop(inner);
        for _ in reaped.iter().filter(|r| r.requeued) {
            self.queued.notify_one();
        }
        Ok(reaped)
    }

    async fn expired(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let now = SystemTime::now();
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|e| is_terminal(e.record.status.state))
            .filter(|e| {
                e.record
                    .status
                    .expires_at
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .is_some_and(|t| t <= now)
            })
            .take(limit)
            .map(|e| e.record.clone())
            .collect())
    }

    async fn forget(&self, id: &str) -> Result<(), StoreError> {
        self.lock().jobs.remove(id);
        Ok(())
    }
}

/// Why a job failed when its last attempt's node went silent.
fn lease_lost_message(node: &str, attempt: u32, max: u32) -> String {
    format!(
        "node {node} stopped renewing its lease on attempt {attempt} of {max} (node lost or stalled); no attempts left"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        crate::contract::run(|limits| async move { MemoryStore::new(limits) }).await;
    }
}
