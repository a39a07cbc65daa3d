//! Starting workers after the pool's start: the warm replacement of a worker that ran its share
//! of jobs (started while the old one keeps serving, swapped in once ready, the old one retired
//! in the background), and the restart of a slot whose worker died.
//!
//! At most one warm replacement is in flight per pool: a slot takes the pool's one replacement
//! permit before it starts one, and the permit is released only once the old worker has exited.
//! The pool thus never runs more than `workers + 1` worker processes (a restart after a crash
//! replaces a process that is already gone, so it needs no permit). One at a time because a QGIS
//! start-up takes about a core for a second or two and some hundred MiB: the pool is sized to
//! the cores, so several at once would slow the jobs running beside them, and nothing is lost by
//! waiting, since the old worker keeps serving meanwhile (a few jobs past its limit). Workers
//! started together reach their limit together; the permit staggers their replacements, and so
//! their next recycles.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::{Sleep, sleep};
use tracing::{info, warn};
use wpsmesh_runtime::backoff::Backoff;

use super::PoolError;
use super::process::WorkerProcess;
use super::supervisor::Shared;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The warm replacement of one slot's worker, from the wait for the permit to a ready worker.
pub(super) struct Replacement {
    state: State,
    /// Held from the start of the replacement until the worker it replaces has exited.
    permit: Option<OwnedSemaphorePermit>,
    /// Pauses between failed starts.
    backoff: Backoff,
}

enum State {
    /// Waiting for the pool's replacement permit.
    Waiting(Boxed<Result<OwnedSemaphorePermit, AcquireError>>),
    /// QGIS initialising.
    Starting(Boxed<Result<WorkerProcess, PoolError>>),
    /// Ready to take over.
    Ready(Box<WorkerProcess>),
    /// The last start failed: a pause before the next try (the old worker keeps serving).
    Pause(Pin<Box<Sleep>>),
}

impl Replacement {
    /// Begins a replacement: waits for the permit, then starts a worker.
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        Self {
            state: waiting(shared),
            permit: None,
            backoff: backoff(),
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// Takes one step (permit, start, pause); never ends once ready. Cancel-safe: polled beside
    /// the slot's jobs and queue, it keeps its progress when they win.
    pub(super) async fn advance(&mut self, shared: &Arc<Shared>) {
        match &mut self.state {
            State::Waiting(permit) => match permit.await {
                Ok(permit) => {
                    self.permit = Some(permit);
                    self.state = State::Starting(start_worker(shared, "replacement"));
                }
                // The permit's semaphore lives as long as the pool: never closed.
                Err(_) => std::future::pending().await,
            },
            State::Starting(start) => match start.await {
                Ok(worker) => {
                    self.backoff.reset();
                    self.state = State::Ready(Box::new(worker));
                }
                Err(_) => {
                    self.permit = None;
                    let delay = self.backoff.next_delay();
                    warn!(retry_in = ?delay, "replacement worker did not start; the old one keeps serving");
                    self.state = State::Pause(Box::pin(sleep(delay)));
                }
            },
            State::Pause(pause) => {
                pause.await;
                self.state = waiting(shared);
            }
            State::Ready(_) => std::future::pending().await,
        }
    }

    /// The ready worker, and the permit to release once the worker it replaces has exited.
    pub(super) fn into_ready(self) -> Option<(WorkerProcess, Option<OwnedSemaphorePermit>)> {
        match self.state {
            State::Ready(worker) => Some((*worker, self.permit)),
            _ => None,
        }
    }

    /// For a slot whose worker died: the replacement if it is ready or starting (waiting for
    /// it is quicker than a new start), `None` otherwise. There is nothing left to retire, so
    /// the permit goes.
    pub(super) async fn adopt(self) -> Option<WorkerProcess> {
        match self.state {
            State::Ready(worker) => Some(*worker),
            State::Starting(start) => start.await.ok(),
            State::Waiting(_) | State::Pause(_) => None,
        }
    }

    /// At shutdown: stops a ready worker gracefully; one still starting is killed.
    pub(super) async fn stop(self) {
        if let State::Ready(worker) = self.state {
            worker.stop().await;
        }
    }
}

fn waiting(shared: &Arc<Shared>) -> State {
    State::Waiting(Box::pin(Arc::clone(&shared.replacements).acquire_owned()))
}

fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
}

/// Starts a worker (`role`: replacement or restart), counting it; `Err` when it does not start or
/// the pool shuts down first.
fn start_worker(
    shared: &Arc<Shared>,
    role: &'static str,
) -> Boxed<Result<WorkerProcess, PoolError>> {
    let shared = Arc::clone(shared);
    Box::pin(async move {
        let _starting = shared.stats.starting();
        let config = &shared.config;
        let start = WorkerProcess::start(
            &shared.binary,
            &shared.spawner,
            config.start_timeout,
            &shared.stats,
        );
        let outcome = tokio::select! {
            outcome = start => outcome,
            () = shared.shutdown.cancelled() => {
                return Err(PoolError::Unavailable("the pool is shutting down".into()));
            }
        };
        match outcome {
            Ok((worker, ready)) => {
                shared.stats.starts.inc();
                info!(
                    worker = worker.pid,
                    seconds = ready.init_seconds,
                    startup = ?worker.started_in,
                    role,
                    "worker started"
                );
                Ok(worker)
            }
            Err(error) => {
                shared.stats.start_failures.inc();
                warn!(%error, role, "cannot start a worker");
                Err(error)
            }
        }
    })
}

/// Starts a worker for a slot that has none, retrying with backoff; `None` when the pool shuts
/// down first.
pub(super) async fn restart(shared: &Arc<Shared>) -> Option<WorkerProcess> {
    let mut backoff = backoff();
    loop {
        if let Ok(worker) = start_worker(shared, "restart").await {
            return Some(worker);
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = sleep(delay) => {}
            () = shared.shutdown.cancelled() => return None,
        }
    }
}

/// Retires a worker replaced by a ready one: stops it in the background (it exits at the end
/// of its stdin), then releases the replacement permit. [`Pool::shutdown`](super::Pool) waits
/// for it.
pub(super) fn retire(shared: &Shared, old: WorkerProcess, permit: Option<OwnedSemaphorePermit>) {
    let task = async move {
        old.stop().await;
        drop(permit);
    };
    match shared.retiring.lock() {
        Ok(mut retiring) => {
            while retiring.try_join_next().is_some() {}
            retiring.spawn(task);
        }
        // A poisoned lock: the old worker is killed as it drops, and the permit released.
        Err(_) => drop(task),
    }
}
