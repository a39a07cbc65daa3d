//! The task that owns one worker slot: takes jobs from the queue, runs them on its worker with
//! timeout, cancel and live events, and replaces the worker when it dies, times out or is killed
//! after a cancel (a restart the slot waits for), or has run its share of jobs (a warm
//! replacement started beforehand, see [`super::replace`]: no job waits for it).

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};

use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wpsmesh_proto::wire::worker::v1::worker_event::Event;
use wpsmesh_proto::wire::worker::v1::worker_request::Request;
use wpsmesh_proto::wire::worker::v1::{CancelRequest, DescribeRequest};

use super::forward::Forward;
use super::process::WorkerProcess;
use super::replace::{self, Replacement};
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
    /// When the job entered the queue.
    pub(super) queued: Instant,
}

/// What every slot shares.
pub(super) struct Shared {
    pub(super) config: PoolConfig,
    pub(super) binary: PathBuf,
    pub(super) spawner: Spawner,
    pub(super) queue: Mutex<mpsc::Receiver<Task>>,
    pub(super) shutdown: CancellationToken,
    pub(super) stats: super::stats::PoolStats,
    /// One permit: the warm replacement in flight (see [`super::replace`]).
    pub(super) replacements: Arc<Semaphore>,
    /// Replaced workers on their way out.
    pub(super) retiring: SyncMutex<JoinSet<()>>,
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
    let mut replacement: Option<Replacement> = None;
    // When the slot last got a worker back after having none: a job queued before then that
    // this slot takes waited for that start.
    let mut back_at: Option<Instant> = None;
    let limit = shared.config.max_jobs_per_worker;
    loop {
        let mut current = match worker.take() {
            Some(current) => current,
            None => {
                let adopted = match replacement.take() {
                    Some(replacement) => replacement.adopt().await,
                    None => None,
                };
                let started = match adopted {
                    Some(adopted) => Some(adopted),
                    None => replace::restart(&shared).await,
                };
                let Some(started) = started else { return };
                back_at = Some(Instant::now());
                started
            }
        };
        if limit > 0 && current.jobs >= limit {
            let ready = replacement.take_if(|r| r.is_ready());
            if let Some((fresh, permit)) = ready.and_then(Replacement::into_ready) {
                shared.stats.recycles.inc();
                info!(
                    worker = current.pid,
                    jobs = current.jobs,
                    replacement = fresh.pid,
                    "recycling worker, its replacement is ready"
                );
                replace::retire(&shared, current, permit);
                current = fresh;
            } else if replacement.is_none() {
                debug!(
                    worker = current.pid,
                    jobs = current.jobs,
                    "worker due for recycling, starting its replacement"
                );
                replacement = Some(Replacement::new(&shared));
            }
        }
        let task = tokio::select! {
            task = async { shared.queue.lock().await.recv().await } => task,
            () = shared.shutdown.cancelled() => None,
            () = advance(&mut replacement, &shared) => {
                worker = Some(current);
                continue;
            }
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
            if let Some(replacement) = replacement {
                replacement.stop().await;
            }
            return;
        };
        let after = match task {
            Task::Describe(reply) => {
                let describing = describe(&shared, &mut current);
                let (result, after) = alongside(describing, &mut replacement, &shared).await;
                let _ = reply.send(result);
                after
            }
            Task::Run(task) => {
                let waited = back_at.is_some_and(|back| task.queued < back);
                let running = run(&shared, &mut current, task);
                let after = alongside(running, &mut replacement, &shared).await;
                if waited && !matches!(after, After::Untouched) {
                    shared.stats.waited_for_start.inc();
                }
                after
            }
        };
        match after {
            After::Alive => current.jobs += 1,
            After::Untouched => {}
            After::Gone => continue,
        }
        worker = Some(current);
    }
}

/// Advances the slot's replacement, if it has one not yet ready; pending otherwise.
async fn advance(replacement: &mut Option<Replacement>, shared: &Arc<Shared>) {
    match replacement {
        Some(replacement) if !replacement.is_ready() => replacement.advance(shared).await,
        _ => std::future::pending().await,
    }
}

/// Runs `work` on the slot's worker while its replacement, if any, keeps starting.
async fn alongside<T>(
    work: impl Future<Output = T>,
    replacement: &mut Option<Replacement>,
    shared: &Arc<Shared>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            output = &mut work => return output,
            () = advance(replacement, shared) => {}
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
        queued,
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
            queued = ?begun.saturating_duration_since(queued),
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
