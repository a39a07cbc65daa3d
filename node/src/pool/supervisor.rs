//! The task that owns one worker slot: takes jobs from the queue, runs them on its worker with
//! timeout, cancel and live events, and replaces the worker when it dies, times out, is killed
//! after a cancel, or has run its share of jobs.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wpsmesh_proto::wire::worker::v1::worker_event::Event;
use wpsmesh_proto::wire::worker::v1::worker_request::Request;
use wpsmesh_proto::wire::worker::v1::{CancelRequest, DescribeRequest};
use wpsmesh_runtime::backoff::Backoff;

use super::process::WorkerProcess;
use super::spawner::Spawner;
use super::{JobEvent, PoolConfig, PoolError, RunJob, RunOutcome};

/// Work waiting for a worker.
pub(super) enum Task {
    Describe(oneshot::Sender<Result<String, PoolError>>),
    Run(RunTask),
}

pub(super) struct RunTask {
    pub(super) job: RunJob,
    pub(super) events: mpsc::Sender<JobEvent>,
    pub(super) cancel: CancellationToken,
    /// Set when a worker takes the job; until then a cancel just drops it.
    pub(super) started: Arc<AtomicBool>,
    pub(super) reply: oneshot::Sender<Result<RunOutcome, PoolError>>,
}

/// What every slot shares.
pub(super) struct Shared {
    pub(super) config: PoolConfig,
    pub(super) binary: PathBuf,
    pub(super) spawner: Spawner,
    pub(super) queue: Mutex<mpsc::Receiver<Task>>,
    pub(super) shutdown: CancellationToken,
    pub(super) stats: super::stats::PoolStats,
}

/// Whether the worker can take another job after a task.
enum After {
    /// The worker ran the task and can take another.
    Alive,
    /// The task was dropped before it reached the worker (cancelled while queued).
    Untouched,
    /// The worker died or was killed.
    Gone,
}

/// Serves jobs on one worker slot until the pool shuts down.
pub(super) async fn supervise(shared: Arc<Shared>, first: WorkerProcess) {
    let mut worker = Some(first);
    loop {
        let mut current = match worker.take() {
            Some(current) => current,
            None => match respawn(&shared).await {
                Some(current) => current,
                None => return,
            },
        };
        let task = tokio::select! {
            task = async { shared.queue.lock().await.recv().await } => task,
            () = shared.shutdown.cancelled() => None,
            received = current.recv() => {
                if let Some(Ok(event)) = received {
                    debug!(worker = current.pid, ?event, "event from an idle worker ignored");
                } else {
                    let status = current.kill_and_reap().await;
                    shared.stats.crashes.inc();
                    warn!(worker = current.pid, %status, ?received,
                        stderr = current.stderr_tail(), "idle worker exited");
                    continue;
                }
                worker = Some(current);
                continue;
            }
        };
        let Some(task) = task else {
            current.stop().await;
            return;
        };
        let after = match task {
            Task::Describe(reply) => {
                let (result, after) = describe(&shared, &mut current).await;
                let _ = reply.send(result);
                after
            }
            Task::Run(task) => run(&shared, &mut current, task).await,
        };
        match after {
            After::Alive => {}
            After::Untouched => {
                worker = Some(current);
                continue;
            }
            After::Gone => continue,
        }
        current.jobs += 1;
        let limit = shared.config.max_jobs_per_worker;
        if limit > 0 && current.jobs >= limit {
            shared.stats.recycles.inc();
            info!(
                worker = current.pid,
                jobs = current.jobs,
                "recycling worker"
            );
            current.stop().await;
        } else {
            worker = Some(current);
        }
    }
}

/// Starts a replacement worker, retrying with backoff; `None` when the pool shuts down first.
async fn respawn(shared: &Shared) -> Option<WorkerProcess> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let start =
            WorkerProcess::start(&shared.binary, &shared.spawner, shared.config.start_timeout);
        let outcome = tokio::select! {
            outcome = start => outcome,
            () = shared.shutdown.cancelled() => return None,
        };
        let delay = backoff.next_delay();
        match outcome {
            Ok((worker, ready)) => {
                info!(
                    worker = worker.pid,
                    seconds = ready.init_seconds,
                    "worker started"
                );
                return Some(worker);
            }
            Err(error) => warn!(%error, retry_in = ?delay, "cannot start a worker"),
        }
        tokio::select! {
            () = sleep(delay) => {}
            () = shared.shutdown.cancelled() => return None,
        }
    }
}

async fn describe(
    shared: &Shared,
    worker: &mut WorkerProcess,
) -> (Result<String, PoolError>, After) {
    if worker
        .send(Request::Describe(DescribeRequest {}))
        .await
        .is_err()
    {
        return (Err(crashed(worker).await), After::Gone);
    }
    let deadline = Instant::now() + shared.config.job_timeout;
    loop {
        tokio::select! {
            received = worker.recv() => match received {
                Some(Ok(Event::Described(described))) => return (Ok(described.json), After::Alive),
                Some(Ok(Event::Failed(failed))) => {
                    return (Err(PoolError::reported(failed, "describe")), After::Alive);
                }
                Some(Ok(event)) => debug!(worker = worker.pid, ?event, "event ignored"),
                Some(Err(error)) => return (Err(broken(worker, error).await), After::Gone),
                None => return (Err(crashed(worker).await), After::Gone),
            },
            () = sleep_until(deadline) => {
                worker.kill_and_reap().await;
                let after = shared.config.job_timeout;
                return (Err(PoolError::TimedOut { after }), After::Gone);
            }
            () = shared.shutdown.cancelled() => {
                worker.kill_and_reap().await;
                return (Err(shutting_down()), After::Gone);
            }
        }
    }
}

/// Runs a job and replies; the job's caller gets events as its channel has room.
async fn run(shared: &Shared, worker: &mut WorkerProcess, task: RunTask) -> After {
    let RunTask {
        job,
        events,
        cancel,
        started,
        reply,
    } = task;
    started.store(true, Ordering::SeqCst);
    if cancel.is_cancelled() {
        let _ = reply.send(Err(PoolError::Cancelled));
        return After::Untouched;
    }
    let begun = Instant::now();
    let _busy = shared.stats.busy();
    let mut forward = Forward::new(events);
    forward.push(JobEvent::Started {
        worker_pid: worker.pid,
    });
    let (result, after) = execute(shared, worker, &job, &cancel, &mut forward).await;
    shared.stats.ran(&result);
    forward.flush();
    let elapsed = begun.elapsed();
    match &result {
        Ok(_) => debug!(
            job = job.job_id,
            worker = worker.pid,
            ?elapsed,
            "job finished"
        ),
        Err(error) => info!(job = job.job_id, worker = worker.pid, %error, "job failed"),
    }
    let _ = reply.send(result.map(|finished| RunOutcome::from_wire(finished, worker.pid, elapsed)));
    after
}

async fn execute(
    shared: &Shared,
    worker: &mut WorkerProcess,
    job: &RunJob,
    cancel: &CancellationToken,
    forward: &mut Forward,
) -> (
    Result<wpsmesh_proto::wire::worker::v1::Finished, PoolError>,
    After,
) {
    if worker.send(Request::Run(job.to_wire())).await.is_err() {
        return (Err(crashed(worker).await), After::Gone);
    }
    let timeout = job.timeout.unwrap_or(shared.config.job_timeout);
    let deadline = Instant::now() + timeout;
    let mut kill_at: Option<Instant> = None;
    let ours = |id: &str| id == job.job_id;
    loop {
        tokio::select! {
            received = worker.recv() => match received {
                Some(Ok(Event::Progress(p))) if ours(&p.job_id) => {
                    forward.push(JobEvent::Progress(p.percent));
                }
                Some(Ok(Event::Log(log))) if ours(&log.job_id) => forward.push(JobEvent::Log(log.line)),
                Some(Ok(Event::Finished(finished))) if ours(&finished.job_id) => {
                    return (Ok(finished), After::Alive);
                }
                Some(Ok(Event::Failed(failed))) if ours(&failed.job_id) => {
                    return (Err(PoolError::reported(failed, &job.process_id)), After::Alive);
                }
                Some(Ok(event)) => debug!(worker = worker.pid, ?event, "event ignored"),
                Some(Err(error)) => return (Err(broken(worker, error).await), After::Gone),
                None => return (Err(crashed(worker).await), After::Gone),
            },
            () = sleep_until(deadline) => {
                warn!(job = job.job_id, worker = worker.pid, ?timeout, "job timed out, killing worker");
                worker.kill_and_reap().await;
                return (Err(PoolError::TimedOut { after: timeout }), After::Gone);
            }
            () = cancel.cancelled(), if kill_at.is_none() => {
                debug!(job = job.job_id, worker = worker.pid, "cancelling job");
                let request = Request::Cancel(CancelRequest { job_id: job.job_id.clone() });
                // A failed send means the worker is gone; `recv` reports it.
                let _ = worker.send(request).await;
                kill_at = Some(Instant::now() + shared.config.cancel_grace);
            }
            () = sleep_until(kill_at.unwrap_or(deadline)), if kill_at.is_some() => {
                warn!(job = job.job_id, worker = worker.pid, "cancelled job did not stop, killing worker");
                worker.kill_and_reap().await;
                return (Err(PoolError::Cancelled), After::Gone);
            }
            permit = forward.events.clone().reserve_owned(), if forward.waiting() => match permit {
                Ok(permit) => forward.send(permit),
                Err(_) => forward.closed(),
            },
            () = shared.shutdown.cancelled() => {
                worker.kill_and_reap().await;
                return (Err(shutting_down()), After::Gone);
            }
        }
    }
}

/// Reaps a worker whose stdout ended and reports the crash.
async fn crashed(worker: &mut WorkerProcess) -> PoolError {
    let status = worker.exit_status().await;
    warn!(worker = worker.pid, %status, stderr = worker.stderr_tail(), "worker crashed");
    PoolError::crashed(status)
}

/// Kills a worker that broke the protocol.
async fn broken(worker: &mut WorkerProcess, error: String) -> PoolError {
    warn!(
        worker = worker.pid,
        error, "worker broke the protocol, killing it"
    );
    worker.kill_and_reap().await;
    PoolError::Protocol(error)
}

fn shutting_down() -> PoolError {
    PoolError::Unavailable("the pool is shutting down".into())
}

/// Events on their way to the job's caller. They are sent as its channel has room, so a slow
/// reader never stalls the job; consecutive progress events are merged meanwhile.
struct Forward {
    events: mpsc::Sender<JobEvent>,
    pending: VecDeque<JobEvent>,
}

impl Forward {
    fn new(events: mpsc::Sender<JobEvent>) -> Self {
        Self {
            events,
            pending: VecDeque::new(),
        }
    }

    fn push(&mut self, event: JobEvent) {
        if self.events.is_closed() {
            return;
        }
        if let (JobEvent::Progress(_), Some(JobEvent::Progress(last))) =
            (&event, self.pending.back_mut())
        {
            if let JobEvent::Progress(percent) = event {
                *last = percent;
            }
            return;
        }
        self.pending.push_back(event);
    }

    fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    fn send(&mut self, permit: mpsc::OwnedPermit<JobEvent>) {
        if let Some(event) = self.pending.pop_front() {
            permit.send(event);
        }
    }

    fn closed(&mut self) {
        self.pending.clear();
    }

    /// At the job's end: sends what fits without waiting and drops the rest (the final log is
    /// in the outcome).
    fn flush(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if self.events.try_send(event).is_err() {
                debug!(
                    dropped = self.pending.len() + 1,
                    "job events dropped, receiver full"
                );
                self.pending.clear();
            }
        }
    }
}
