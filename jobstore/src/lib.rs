//! The job store: where asynchronous jobs live so that any node answers for any job. Two
//! engines behind one trait: in-process ([`MemoryStore`], the embedded default for a one-process
//! mesh) and Redis ([`RedisStore`], the distributed one).
//!
//! A job is submitted (accepted, queued), claimed by a node with a free worker (running, with a
//! lease and a new attempt number), kept alive by heartbeats that renew the lease, and finished.
//! Every write a node makes about a running job carries its [`Lease`]; the store refuses it when
//! the job's attempt is no longer that lease's (fencing), so a node that was presumed dead cannot
//! overwrite the attempt that replaced it. Leases that run out are reaped: the job is queued again
//! while attempts are left, otherwise it fails with a message saying why.
//!
//! Both engines keep a job index beside the records for the job list ([`JobStore::list`], see
//! `list.rs`): newest first, paged by opaque tokens, filtered by the one rule of
//! `JobFilter::matches`, written with the records and forgotten with them.

mod config;
mod list;
mod memory;
mod record;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use wpsmesh_proto::process::{self, Invalid, JobId, JobPage, JobState, JobStatus, ListJobs};

pub use config::{JobsConfig, StoreKind};
pub use list::{MAX_INDEXED, SCAN_LIMIT};
pub use memory::MemoryStore;
pub use record::{JobRecord, Outcome};
pub use redis::RedisStore;

/// What can go wrong talking to the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (Redis down, timed out); transient.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// The queue holds `waiting` jobs already, its bound.
    #[error("job queue is full ({waiting} jobs waiting)")]
    QueueFull { waiting: u64 },
    /// A record the store holds cannot be read back (undecodable, or refused by the domain
    /// types' checks).
    #[error("job store record {id} is unreadable: {message}")]
    Corrupt { id: String, message: String },
    /// A request the store refuses, naming the parameter (a page token it never wrote: `next`).
    #[error("invalid parameter {}: {}", .0.locator, .0.message)]
    Invalid(Invalid),
}

/// A new job, as Submit hands it to the store.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub request: process::ExecuteRequest,
    /// The submitting call's W3C trace context (`traceparent[ tracestate]`, empty when
    /// untraced), kept with the job and handed back in its [`Claim`]: the run is linked to it.
    pub trace: String,
}

/// The right to write about one attempt of a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: JobId,
    pub attempt: u32,
    pub node: String,
}

/// A job a node has claimed: its lease, record and request.
#[derive(Debug, Clone)]
pub struct Claim {
    pub lease: Lease,
    pub status: JobStatus,
    pub request: process::ExecuteRequest,
    /// The trace context the job was submitted with ([`NewJob::trace`]).
    pub trace: String,
}

/// What a heartbeat reports of a running job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heartbeat {
    /// 0 to 100 (more is recorded as 100).
    pub percent: u8,
    pub message: String,
    pub worker: String,
}

/// A job whose lease ran out, as the reaper left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    pub job_id: JobId,
    /// The node that held the lease.
    pub node: String,
    pub attempt: u32,
    /// Queued again (true) or failed for good (false).
    pub requeued: bool,
}

/// Store-wide settings every engine honours.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a finished job's record and outputs are kept.
    pub ttl: Duration,
    /// Queued jobs past which Submit is refused.
    pub max_queued: u64,
    /// Attempts a job gets when nodes holding it are lost (1 = no retry).
    pub max_attempts: u32,
}

/// The job store, as nodes use it.
#[tonic::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Records an accepted job and queues it; [`StoreError::QueueFull`] past the bound.
    async fn submit(&self, job: NewJob) -> Result<JobStatus, StoreError>;

    /// Records a job that runs on `node` from its start (a synchronous Execute): running,
    /// attempt 1, under a lease of `lease`, never queued. Nothing can run it again, so a lost
    /// lease fails it. Heartbeat, finish, dismiss and expiry work as for claimed jobs.
    async fn begin(
        &self,
        id: &JobId,
        process_id: &str,
        node: &str,
        lease: Duration,
    ) -> Result<(Lease, JobStatus), StoreError>;

    /// Waits up to `wait` for a queued job and claims it for `node` with a lease of `lease`
    /// (a new attempt); `None` when nothing came.
    async fn claim(
        &self,
        node: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claim>, StoreError>;

    /// Renews the lease for `lease` more and records progress. `false`: the attempt is fenced
    /// out (reaped, dismissed or superseded) and must stop.
    async fn heartbeat(
        &self,
        lease: &Lease,
        duration: Duration,
        beat: &Heartbeat,
    ) -> Result<bool, StoreError>;

    /// Records how the attempt ended (and the worker that ran it). `false`: fenced out, the
    /// outcome was not recorded (the caller deletes the outputs it made).
    async fn finish(
        &self,
        lease: &Lease,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<bool, StoreError>;

    /// Hands a running attempt back to the queue without counting it against the job's
    /// attempts (its node is stopping, or has no worker after all). `false`: fenced out.
    async fn release(&self, lease: &Lease, reason: &str) -> Result<bool, StoreError>;

    /// One job's record.
    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Marks a job dismissed and tells the node running it (see [`JobStore::dismissals`]).
    /// Returns the record as it was before, whose outputs the caller deletes; `None` when unknown.
    async fn dismiss(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Ids of jobs dismissed anywhere, as they are dismissed.
    fn dismissals(&self) -> broadcast::Receiver<JobId>;

    /// Requeues or fails jobs whose lease has run out, and recovers queue entries a node took
    /// but never claimed.
    async fn reap(&self) -> Result<Vec<Reaped>, StoreError>;

    /// Finished jobs whose expiry has passed (at most `limit`), still in the store.
    async fn expired(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError>;

    /// Jobs waiting in the queue for a node (Redis: entries no node has read yet, a job
    /// dismissed while it waited included until a node skips it).
    async fn queued(&self) -> Result<u64, StoreError>;

    /// Deletes a job's record (after its outputs were deleted) and its index entry.
    async fn forget(&self, id: &JobId) -> Result<(), StoreError>;

    /// A page of jobs matching the query's filter, newest first by creation time (ties by id).
    /// Reads at most [`SCAN_LIMIT`] index entries: a sparse filter may answer fewer jobs than
    /// the limit, even none, with a next token. A page token the store never wrote is
    /// [`StoreError::Invalid`] naming `next`.
    async fn list(&self, query: &ListJobs) -> Result<JobPage, StoreError>;
}

/// The lease and status of a job begun on `node` at `now` (see [`JobStore::begin`]).
pub(crate) fn begun(
    id: &JobId,
    process_id: &str,
    node: &str,
    now: std::time::SystemTime,
    ttl: Duration,
) -> (Lease, JobStatus) {
    let status = JobStatus {
        message: JobState::Running.name().to_owned(),
        created_at: Some(now),
        started_at: Some(now),
        expires_at: Some(now + ttl),
        node: node.to_owned(),
        attempt: 1,
        ..JobStatus::new(*id, process_id, JobState::Running)
    };
    let lease = Lease {
        job_id: *id,
        attempt: 1,
        node: node.to_owned(),
    };
    (lease, status)
}

/// Opens the store the config names.
pub async fn open(config: &JobsConfig) -> Result<Arc<dyn JobStore>, StoreError> {
    Ok(match config.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(config.limits())),
        StoreKind::Redis => Arc::new(RedisStore::connect(config).await?),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod contract;
