//! The pool of PyQGIS worker processes (`wpsmesh-worker`): N long-lived workers, one job at a
//! time each, behind a bounded queue. A worker that crashes, times out or ignores a cancel is
//! killed and replaced, failing only its own job; workers are recycled after a number of jobs
//! (their replacement started beforehand, so no job waits for a QGIS start-up) and killed with
//! the pool (or with the node, even on SIGKILL).
//!
//! ```no_run
//! # async fn example(pool: wpsmesh_node::pool::Pool) -> Result<(), wpsmesh_node::pool::PoolError> {
//! use wpsmesh_node::pool::{JobEvent, RunJob};
//! let job = RunJob::new("native:buffer", "/tmp/job-1")
//!     .file("INPUT", "/tmp/points.geojson")
//!     .literal("DISTANCE", "0.5");
//! let (events, mut progress) = tokio::sync::mpsc::channel(64);
//! tokio::spawn(async move {
//!     while let Some(JobEvent::Progress(percent)) = progress.recv().await {
//!         println!("{percent}%");
//!     }
//! });
//! let outcome = pool.run(job, events, Default::default()).await?;
//! println!("{:?}", outcome.output("OUTPUT"));
//! # Ok(()) }
//! ```

mod config;
mod error;
mod forward;
mod job;
mod process;
mod replace;
mod spawner;
mod stats;
mod supervisor;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{
    PoolConfig, WORKER_BINARY, WORKER_BINARY_ENV, WORKERS_PER_CORE, workers_for_this_machine,
};
pub use error::{PoolError, RunTimes};
pub use job::{
    Format, InputValue, JobEvent, JobInput, JobOutput, OutputRequest, OutputValue, RunJob,
    RunOutcome,
};
pub use stats::PoolCounts;

use process::WorkerProcess;
use spawner::Spawner;
use supervisor::{RunTask, Shared, Task};

/// A running pool of workers. Dropping it kills every worker; [`Pool::shutdown`] also waits.
pub struct Pool {
    queue: mpsc::Sender<Task>,
    shared: Arc<Shared>,
    slots: Mutex<JoinSet<()>>,
    qgis_version: String,
    size: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("qgis_version", &self.qgis_version)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts the workers and waits until every one is ready (QGIS initialised).
    pub async fn start(config: PoolConfig) -> Result<Self, PoolError> {
        let binary = config.resolve_worker_binary()?;
        let size = config.worker_count();
        let spawner = Spawner::start()
            .map_err(|e| PoolError::Unavailable(format!("cannot start the spawner thread: {e}")))?;
        let stats = stats::PoolStats::new(size);
        let starts = (0..size)
            .map(|_| WorkerProcess::start(&binary, &spawner, config.start_timeout, &stats));
        let workers = futures::future::try_join_all(starts).await?;
        let qgis_version = workers
            .first()
            .map(|(_, ready)| ready.qgis_version.clone())
            .unwrap_or_default();
        for (worker, ready) in &workers {
            info!(
                worker = worker.pid,
                seconds = ready.init_seconds,
                startup = ?worker.started_in,
                python = ready.python_version,
                python_home = ready.python_home,
                "worker started; its embedded python is fixed at build, whatever PATH says"
            );
        }
        let (queue, receiver) = mpsc::channel(config.queue_limit.max(1));
        let shared = Arc::new(Shared {
            config,
            binary,
            spawner,
            queue: tokio::sync::Mutex::new(receiver),
            shutdown: CancellationToken::new(),
            stats,
            replacements: Arc::new(tokio::sync::Semaphore::new(1)),
            retiring: Mutex::new(JoinSet::new()),
        });
        let mut slots = JoinSet::new();
        for (worker, _) in workers {
            slots.spawn(supervisor::supervise(Arc::clone(&shared), worker));
        }
        info!(workers = size, qgis = qgis_version, "worker pool ready");
        Ok(Self {
            queue,
            shared,
            slots: Mutex::new(slots),
            qgis_version,
            size,
        })
    }

    /// The number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The QGIS version the workers run.
    pub fn qgis_version(&self) -> &str {
        &self.qgis_version
    }

    /// The pool's counters now: recycles, crashes, starts, jobs that waited for a start, live
    /// worker processes (also in the metrics).
    pub fn counts(&self) -> PoolCounts {
        self.shared.stats.counts()
    }

    /// Registers the pool's metrics: busy and idle slots, queue depth, crashes, recycles,
    /// worker starts and their time, jobs that waited for a start, live worker processes.
    pub fn register_metrics(&self, registry: &mut wpsmesh_telemetry::metrics::Registry) {
        self.shared.stats.register(registry, self.queue.downgrade());
    }

    /// The JSON of `describe_all()` (`{"processes": [...], "skipped": [...]}`) from one worker.
    pub async fn describe(&self) -> Result<String, PoolError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Task::Describe(reply))?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Runs a job on the next free worker, sending its events to `events` as they come (see
    /// [`JobEvent`]; events that do not fit once the job ended are dropped). Fails with
    /// [`PoolError::Busy`] when the queue is full. `cancel` (or dropping the returned future)
    /// cancels the job: a waiting job is dropped at once, a running one is asked to stop and its
    /// worker killed after the grace period.
    pub async fn run(
        &self,
        job: RunJob,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, PoolError> {
        let cancel = cancel.child_token();
        let _cancel_when_dropped = cancel.clone().drop_guard();
        let started = Arc::new(AtomicBool::new(false));
        let (reply, mut answer) = oneshot::channel();
        self.submit(Task::Run(RunTask {
            job,
            events,
            cancel: cancel.clone(),
            started: Arc::clone(&started),
            reply,
            queued: tokio::time::Instant::now(),
        }))?;
        tokio::select! {
            answer = &mut answer => return answer.unwrap_or_else(|_| Err(gone())),
            () = cancel.cancelled() => {}
        }
        // The worker checks the token after marking the job started: either it will skip the
        // job, or the job runs and answers after its cancel.
        if !started.load(Ordering::SeqCst) {
            return Err(PoolError::Cancelled);
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Stops every worker (running jobs fail as unavailable) and waits until they are gone.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        drain(&self.slots).await;
        // Workers retired by a recycle, still exiting.
        drain(&self.shared.retiring).await;
        info!("worker pool stopped");
    }

    fn submit(&self, task: Task) -> Result<(), PoolError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(gone());
        }
        self.queue.try_send(task).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => PoolError::Busy,
            mpsc::error::TrySendError::Closed(_) => gone(),
        })
    }
}

/// Takes the tasks out of `set` and waits until every one has ended.
async fn drain(set: &Mutex<JoinSet<()>>) {
    let taken = set.lock().map(|mut tasks| std::mem::take(&mut *tasks)).ok();
    if let Some(mut tasks) = taken {
        while tasks.join_next().await.is_some() {}
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Slot tasks see the token; the JoinSet's drop aborts them, and dropping a worker
        // kills its process group.
        self.shared.shutdown.cancel();
    }
}

fn gone() -> PoolError {
    PoolError::Unavailable("the pool is shut down".into())
}
