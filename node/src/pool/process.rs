//! One running `wpsmesh-worker` process: its start, the framed channel over its stdin and
//! stdout, its stderr forwarded to the log, and its end (kill, exit status, graceful stop).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use wpsmesh_proto::wire::worker::v1::worker_event::Event;
use wpsmesh_proto::wire::worker::v1::worker_request::Request;
use wpsmesh_proto::wire::worker::v1::{Ready, WorkerEvent, WorkerRequest};
use wpsmesh_proto::{framing, text};

use super::PoolError;
use super::spawner::Spawner;
use super::stats::{Alive, PoolStats};

/// The worker checks its parent against this and refuses to start when the node is gone.
const PARENT_ENV: &str = "WPSMESH_WORKER_PARENT";
/// The largest event accepted (describe's JSON is about 1 MiB).
const MAX_EVENT: usize = 256 * 1024 * 1024;
/// Lines of stderr kept to explain a worker's death.
const STDERR_TAIL: usize = 20;
/// How long a worker whose stdout ended may take to exit before it is killed.
const EXIT_PATIENCE: Duration = Duration::from_secs(2);

/// An event from the worker, or why its stdout cannot be read any further.
pub(super) type Received = Result<Event, String>;

/// A live worker process. Dropping it kills the worker's process group.
pub(super) struct WorkerProcess {
    pub(super) pid: u32,
    /// Jobs run so far.
    pub(super) jobs: u32,
    /// From its spawn to its ready report.
    pub(super) started_in: Duration,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Receiver<Received>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    reaped: bool,
    /// Counts the process alive until it is dropped.
    _alive: Alive,
}

impl WorkerProcess {
    /// Starts a worker and waits until it reports ready; its start-up time goes to `stats`.
    pub(super) async fn start(
        binary: &Path,
        spawner: &Spawner,
        timeout: Duration,
        stats: &PoolStats,
    ) -> Result<(Self, Ready), PoolError> {
        let begun = tokio::time::Instant::now();
        let mut command = Command::new(binary);
        command
            .env("QT_QPA_PLATFORM", "offscreen")
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches the node only, and a kill
            // reaches the tools the worker started (GDAL command-line programs).
            .process_group(0)
            .kill_on_drop(true);
        let unavailable = |e: io::Error| {
            PoolError::Unavailable(format!("cannot start {}: {e}", binary.display()))
        };
        let mut child = spawner.spawn(command).await.map_err(unavailable)?;
        let alive = stats.alive();
        let pid = child
            .id()
            .ok_or_else(|| unavailable(io::ErrorKind::NotFound.into()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(unavailable(io::Error::other("no stdio pipes")));
        };
        let (tx, events) = mpsc::channel(64);
        tokio::spawn(read_events(stdout, tx));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(forward_stderr(stderr, pid, Arc::clone(&stderr_tail)));
        let mut worker = Self {
            pid,
            jobs: 0,
            started_in: Duration::ZERO,
            child,
            stdin: Some(stdin),
            events,
            stderr_tail,
            reaped: false,
            _alive: alive,
        };
        let first = tokio::time::timeout(timeout, worker.recv()).await;
        let reason = match first {
            Ok(Some(Ok(Event::Ready(ready)))) => {
                worker.started_in = begun.elapsed();
                stats.started(worker.started_in);
                return Ok((worker, ready));
            }
            Ok(Some(Ok(_))) => "sent an event before ready".to_owned(),
            Ok(Some(Err(error))) => error,
            Ok(None) => format!("exited ({})", worker.exit_status().await),
            Err(_) => format!(
                "not ready after {}",
                humantime_serde::re::humantime::format_duration(timeout)
            ),
        };
        worker.kill_and_reap().await;
        warn!(
            worker = pid,
            reason,
            stderr = worker.stderr_tail(),
            "worker did not start"
        );
        Err(PoolError::Unavailable(format!("worker {pid} {reason}")))
    }

    /// Sends a request; an error means the worker is gone.
    pub(super) async fn send(&mut self, request: Request) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let bytes = framing::encode(&WorkerRequest {
            request: Some(request),
        });
        stdin.write_all(&bytes).await?;
        stdin.flush().await
    }

    /// The next event; `None` once stdout ended (the worker is exiting). Cancel-safe.
    pub(super) async fn recv(&mut self) -> Option<Received> {
        self.events.recv().await
    }

    /// SIGKILLs the worker's process group (the worker and any tool it started).
    pub(super) fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        if let Err(error) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
            debug!(worker = self.pid, %error, "cannot kill the worker's process group");
            let _ = self.child.start_kill();
        }
    }

    /// Kills the worker and waits for it.
    pub(super) async fn kill_and_reap(&mut self) -> ExitStatus {
        self.kill();
        self.exit_status().await
    }

    /// Waits for the worker to exit; kills it when it takes longer than a moment.
    pub(super) async fn exit_status(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(EXIT_PATIENCE, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                self.kill();
                self.child.wait().await
            }
        };
        self.reaped = true;
        status.unwrap_or_else(|error| {
            warn!(worker = self.pid, %error, "cannot wait for the worker");
            std::os::unix::process::ExitStatusExt::from_raw(0)
        })
    }

    /// Ends an idle worker: closes its stdin (it exits at EOF), killing it if it lingers.
    pub(super) async fn stop(mut self) {
        self.stdin = None;
        let status = self.exit_status().await;
        debug!(worker = self.pid, %status, "worker stopped");
    }

    /// The last lines the worker wrote to stderr.
    pub(super) fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Decodes events from the worker's stdout until it ends or breaks the framing.
async fn read_events(stdout: impl AsyncRead + Unpin, tx: mpsc::Sender<Received>) {
    let mut stdout = BufReader::new(stdout);
    loop {
        let received = match framing::read_async(&mut stdout, MAX_EVENT).await {
            Ok(None) => return,
            Ok(Some(WorkerEvent { event: Some(event) })) => Ok(event),
            Ok(Some(WorkerEvent { event: None })) => continue,
            Err(error) => Err(format!("unreadable event: {error}")),
        };
        let failed = received.is_err();
        if tx.send(received).await.is_err() || failed {
            return;
        }
    }
}

/// Logs the worker's stderr lines and keeps the last few.
async fn forward_stderr(
    stderr: impl AsyncRead + Unpin,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut stderr = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stderr.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // A traceback may echo a client's value: lines are bounded like any message.
        let line = text::one_line(String::from_utf8_lossy(&buf).trim_end());
        debug!(worker = pid, line, "worker stderr");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wpsmesh_proto::wire::worker::v1::{Progress, worker_event};

    #[tokio::test]
    async fn events_are_read_until_the_stream_ends() {
        let mut bytes = Vec::new();
        for percent in [1.0, 2.0] {
            let event = WorkerEvent {
                event: Some(worker_event::Event::Progress(Progress {
                    job_id: "j".into(),
                    percent,
                })),
            };
            bytes.extend(framing::encode(&event));
        }
        let (tx, mut rx) = mpsc::channel(4);
        read_events(bytes.as_slice(), tx).await;
        let mut percents = Vec::new();
        while let Some(Ok(Event::Progress(progress))) = rx.recv().await {
            percents.push(progress.percent);
        }
        assert_eq!(percents, vec![1.0, 2.0]);
    }

    #[tokio::test]
    async fn garbage_ends_the_stream_with_an_error() {
        let (tx, mut rx) = mpsc::channel(4);
        read_events(&[0x05, 0xff, 0xff][..], tx).await;
        assert!(matches!(rx.recv().await, Some(Err(_))));
        assert!(rx.recv().await.is_none());
    }
}
