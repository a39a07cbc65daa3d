//! The in-process job store: the embedded default, shared by every node of one process. Same
//! semantics as Redis (queue bound, leases, fencing, reaping, expiry), minus surviving the process.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, broadcast};
use wpsmesh_proto::process::{ExecuteRequest, JobId, JobPage, JobState, JobStatus, ListJobs};

use crate::list::{Pager, Position, Step};
use crate::{
    Claim, Heartbeat, JobRecord, JobStore, Lease, Limits, NewJob, Outcome, Reaped, StoreError,
};

/// Job state in this process.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    queued: Notify,
    limits: Limits,
    dismissed: broadcast::Sender<JobId>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<JobId, Entry>,
    queue: VecDeque<JobId>,
    /// Every job by creation time and id: the job list, newest last.
    index: BTreeSet<Position>,
}

impl Inner {
    /// The job `lease` is about, if that lease's attempt still holds it (fencing).
    fn insert(&mut self, entry: Entry) {
        let at = Position::of(&entry.record.status);
        if let Some(old) = self.jobs.insert(at.id, entry) {
            self.index.remove(&Position::of(&old.record.status));
        }
        self.index.insert(at);
    }

    fn owned(&mut self, lease: &Lease) -> Option<&mut Entry> {
        self.jobs
            .get_mut(&lease.job_id)
            .filter(|e| e.owned_by(lease))
    }
}

struct Entry {
    record: JobRecord,
    /// `None` for a job begun by its node (synchronous): it is never queued or run again.
    request: Option<ExecuteRequest>,
    /// The submitting call's trace context.
    trace: String,
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
            let Some(request) = entry.request.clone() else {
                continue;
            };
            if entry.record.state() != JobState::Accepted {
                continue;
            }
            let now = SystemTime::now();
            let s = &mut entry.record.status;
            s.state = JobState::Running;
            s.attempt += 1;
            s.node = node.to_owned();
            s.worker.clear();
            s.percent_done = 0;
            s.message = "running".into();
            s.started_at = Some(now);
            entry.lease_until = Some(now + lease);
            return Some(Claim {
                lease: Lease {
                    job_id: id,
                    attempt: s.attempt,
                    node: node.to_owned(),
                },
                status: s.clone(),
                request,
                trace: entry.trace.clone(),
            });
        }
        None
    }

    fn end(&self, entry: &mut Entry, state: JobState, message: String, now: SystemTime) {
        let s = &mut entry.record.status;
        s.state = state;
        s.message = message;
        s.finished_at = Some(now);
        s.expires_at = Some(now + self.limits.ttl);
        entry.lease_until = None;
    }
}

#[tonic::async_trait]
impl JobStore for MemoryStore {
    async fn submit(&self, job: NewJob) -> Result<JobStatus, StoreError> {
        let mut inner = self.lock();
        let waiting = inner.queue.len() as u64;
        if waiting >= self.limits.max_queued {
            return Err(StoreError::QueueFull { waiting });
        }
        let now = created_now();
        let status = JobStatus {
            created_at: Some(now),
            expires_at: Some(now + self.limits.ttl),
            ..JobStatus::new(job.id, job.request.process_id.clone(), JobState::Accepted)
        };
        inner.insert(Entry {
            record: JobRecord {
                status: status.clone(),
                outcome: None,
            },
            request: Some(job.request),
            trace: job.trace,
            lease_until: None,
            released: 0,
        });
        inner.queue.push_back(job.id);
        drop(inner);
        self.queued.notify_one();
        Ok(status)
    }

    async fn begin(
        &self,
        id: &JobId,
        process_id: &str,
        node: &str,
        lease: Duration,
    ) -> Result<(Lease, JobStatus), StoreError> {
        let now = created_now();
        let (held, status) = crate::begun(id, process_id, node, now, self.limits.ttl);
        self.lock().insert(Entry {
            record: JobRecord {
                status: status.clone(),
                outcome: None,
            },
            request: None,
            trace: String::new(),
            lease_until: Some(now + lease),
            released: 0,
        });
        Ok((held, status))
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
        s.state = JobState::Accepted;
        s.worker.clear();
        s.message = reason.to_owned();
        entry.lease_until = None;
        entry.released += 1;
        inner.queue.push_back(lease.job_id);
        drop(inner);
        self.queued.notify_one();
        Ok(true)
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().jobs.get(id).map(|e| e.record.clone()))
    }

    async fn dismiss(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
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
        if !before.state().is_terminal() {
            let _ = self.dismissed.send(*id);
        }
        Ok(Some(before))
    }

    fn dismissals(&self) -> broadcast::Receiver<JobId> {
        self.dismissed.subscribe()
    }

    async fn reap(&self) -> Result<Vec<Reaped>, StoreError> {
        let now = SystemTime::now();
        let mut reaped = Vec::new();
        let mut inner = self.lock();
        let Inner { jobs, queue, .. } = &mut *inner;
        for (id, entry) in jobs.iter_mut() {
            if entry.record.state() != JobState::Running
                || entry.lease_until.is_none_or(|t| t > now)
            {
                continue;
            }
            let s = &mut entry.record.status;
            let (node, attempt) = (s.node.clone(), s.attempt);
            let sync = entry.request.is_none();
            let requeued =
                !sync && attempt.saturating_sub(entry.released) < self.limits.max_attempts;
            if sync {
                let message = format!(
                    "node {node} stopped renewing its lease (node lost or stalled); a synchronous job is not run again"
                );
                self.end(entry, JobState::Failed, message, now);
            } else if requeued {
                s.state = JobState::Accepted;
                s.message = format!(
                    "queued again: node {node} stopped renewing its lease on attempt {attempt}"
                );
                s.worker.clear();
                entry.lease_until = None;
                queue.push_back(*id);
            } else {
                let message = lease_lost_message(&node, attempt, self.limits.max_attempts);
                self.end(entry, JobState::Failed, message, now);
            }
            reaped.push(Reaped {
                job_id: *id,
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
            .filter(|e| e.record.state().is_terminal())
            .filter(|e| e.record.status.expires_at.is_some_and(|t| t <= now))
            .take(limit)
            .map(|e| e.record.clone())
            .collect())
    }

    async fn queued(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        let waiting = inner
            .queue
            .iter()
            .filter(|id| {
                inner
                    .jobs
                    .get(id)
                    .is_some_and(|e| e.record.state() == JobState::Accepted)
            })
            .count();
        Ok(waiting as u64)
    }

    async fn forget(&self, id: &JobId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(entry) = inner.jobs.remove(id) {
            inner.index.remove(&Position::of(&entry.record.status));
        }
        Ok(())
    }

    async fn list(&self, query: &ListJobs) -> Result<JobPage, StoreError> {
        let (mut pager, after) = Pager::new(query)?;
        let inner = self.lock();
        let end = after.map_or(Bound::Unbounded, Bound::Excluded);
        for at in inner.index.range((Bound::Unbounded, end)).rev() {
            let job = inner.jobs.get(&at.id).map(|e| &e.record.status);
            if pager.offer(*at, job) == Step::Done {
                break;
            }
        }
        Ok(pager.page())
    }
}

/// Now, to the millisecond: creation times are kept as Redis keeps them, so the job list orders
/// (and its page tokens name) jobs alike in both engines.
fn created_now() -> SystemTime {
    crate::record::from_millis(crate::record::millis(SystemTime::now()))
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
