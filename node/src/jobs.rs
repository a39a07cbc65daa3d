//! The jobs running on this node right now: live handles (status to watch, log, cancellation)
//! beside their records in the job store, which stay the one source of truth for every job.
//! A handle lives from the start of a run to its recorded end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wpsmesh_proto::process::{JobId, JobState, JobStatus};

/// The jobs running here, by id.
#[derive(Default)]
pub struct Running {
    map: Mutex<HashMap<JobId, Arc<Live>>>,
}

/// A running job: its status as it changes (watchable), its log and its cancellation.
pub struct Live {
    pub id: JobId,
    status: watch::Sender<JobStatus>,
    log: Mutex<Vec<String>>,
    /// Cancelled on dismiss or when the client goes; the run stops (cooperatively, then by kill).
    pub cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Running {
    /// Registers a job starting here (its status as the store recorded it).
    pub fn begin(&self, status: JobStatus) -> Arc<Live> {
        let job = Arc::new(Live {
            id: status.job_id,
            status: watch::Sender::new(status),
            log: Mutex::default(),
            cancel: CancellationToken::new(),
        });
        lock(&self.map).insert(job.id, job.clone());
        job
    }

    /// Forgets a job whose end is recorded (or was handed back).
    pub fn end(&self, id: &JobId) {
        lock(&self.map).remove(id);
    }

    /// The job if it runs here.
    pub fn find(&self, id: &JobId) -> Option<Arc<Live>> {
        lock(&self.map).get(id).cloned()
    }
}

impl Live {
    pub fn status(&self) -> JobStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<JobStatus> {
        self.status.subscribe()
    }

    /// A worker took the job.
    pub fn started(&self, worker: String) {
        self.status.send_modify(|s| {
            if s.state == JobState::Accepted {
                s.state = JobState::Running;
                s.started_at = Some(SystemTime::now());
                s.message = JobState::Running.name().into();
            }
            s.worker = worker;
        });
    }

    pub fn progress(&self, percent: f64) {
        let p = percent.clamp(0.0, 100.0) as u8;
        self.status.send_if_modified(|s| {
            let changed = s.percent_done != p && !s.state.is_terminal();
            s.percent_done = p;
            changed
        });
    }

    pub fn log_line(&self, line: String) {
        lock(&self.log).push(line);
        // Wake watchers so they pick the new line up.
        self.status.send_modify(|_| {});
    }

    /// Log lines from index `from` on.
    pub fn log_since(&self, from: usize) -> Vec<String> {
        lock(&self.log)
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    pub fn log(&self) -> Vec<String> {
        self.log_since(0)
    }

    /// Publishes the status the run ended with, to watchers still following this handle.
    pub fn ended(&self, status: JobStatus) {
        self.status.send_replace(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_job_reports_start_progress_and_log_to_watchers() {
        let running = Running::default();
        let id = JobId::random();
        let job = running.begin(JobStatus::new(id, "native:buffer", JobState::Accepted));
        let mut rx = job.subscribe();
        job.started("4242".into());
        assert!(rx.has_changed().unwrap_or(false));
        let s = rx.borrow_and_update().clone();
        assert_eq!((s.state, s.worker.as_str()), (JobState::Running, "4242"));
        assert!(s.started_at.is_some());
        job.progress(42.7);
        job.progress(250.0);
        job.log_line("one".into());
        assert_eq!(job.status().percent_done, 100);
        assert_eq!(job.log_since(0), ["one"]);
        assert!(job.log_since(5).is_empty());
        assert!(running.find(&id).is_some());
        running.end(&id);
        assert!(running.find(&id).is_none());
    }
}
