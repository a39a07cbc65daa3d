//! The stdin reader thread: forwards describe and run requests to the Python (main) thread and
//! handles cancel requests itself, by raising the running job's cancel flag.

use std::io::{self, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;

use wpsmesh_proto::wire::worker::v1::worker_request::Request;
use wpsmesh_proto::wire::worker::v1::{DescribeRequest, RunRequest};

use crate::wire;

/// Work for the Python thread.
pub enum Command {
    Describe(DescribeRequest),
    Run(RunRequest),
}

/// The job the reader last handed to the Python thread, and whether it was asked to stop.
#[derive(Default)]
pub struct JobControl {
    job_id: Mutex<String>,
    cancelled: AtomicBool,
}

impl JobControl {
    /// True once the current job was cancelled, or the node closed the channel.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Called by the reader before it forwards a run, so a cancel right behind it is not lost.
    fn start(&self, job_id: &str) {
        if let Ok(mut current) = self.job_id.lock() {
            job_id.clone_into(&mut current);
        }
        self.cancelled.store(false, Ordering::SeqCst);
    }

    fn cancel(&self, job_id: &str) {
        let current = self.job_id.lock().map(|id| id.clone()).unwrap_or_default();
        if job_id.is_empty() || job_id == current {
            self.cancelled.store(true, Ordering::SeqCst);
        } else {
            tracing::debug!(job = job_id, "cancel for a job that is not running");
        }
    }

    fn cancel_all(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// Starts the reader thread. The receiver ends when stdin ends (the node is done with this
/// worker) or cannot be read; a job still running then sees itself cancelled.
pub fn spawn_reader(control: Arc<JobControl>) -> io::Result<Receiver<Command>> {
    let (tx, rx) = channel();
    thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || read_loop(&control, &tx))?;
    Ok(rx)
}

fn read_loop(control: &JobControl, tx: &Sender<Command>) {
    let mut stdin = BufReader::new(io::stdin().lock());
    loop {
        let request = match wire::read_request(&mut stdin) {
            Ok(Some(request)) => request,
            Ok(None) => {
                tracing::debug!("stdin closed");
                break;
            }
            Err(error) => {
                tracing::error!(%error, "cannot read a request");
                break;
            }
        };
        let command = match request.request {
            Some(Request::Cancel(cancel)) => {
                control.cancel(&cancel.job_id);
                continue;
            }
            Some(Request::Describe(describe)) => Command::Describe(describe),
            Some(Request::Run(run)) => {
                control.start(&run.job_id);
                Command::Run(run)
            }
            None => {
                tracing::warn!("empty request ignored");
                continue;
            }
        };
        if tx.send(command).is_err() {
            break;
        }
    }
    control.cancel_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_applies_to_the_current_job_only() {
        let control = JobControl::default();
        control.start("a");
        control.cancel("b");
        assert!(!control.is_cancelled());
        control.cancel("a");
        assert!(control.is_cancelled());
        control.start("b");
        assert!(!control.is_cancelled());
    }
}
