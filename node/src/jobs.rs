//! The jobs this node runs or ran (in-process): status, live log, results and cancellation,
//! kept until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wpsmesh_jobstore::is_terminal;
use wpsmesh_proto::wire::process::v1::{self as wire, JobState};

use crate::error::NodeError;

/// Every job known to this node, by id.
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<Job>>>,
    ttl: Duration,
    node: String,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobResult {
    Succeeded(Vec<wire::Output>),
    Failed(tonic::Status),
}

/// One job: its status (watchable), log and result.
pub struct Job {
    pub id: String,
    status: watch::Sender<wire::JobStatus>,
    log: Mutex<Vec<String>>,
    result: Mutex<Option<JobResult>>,
    /// Cancelled on dismiss; the run stops (cooperatively, then by kill).
    pub cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Jobs {
    pub fn new(node: String, ttl: Duration) -> Self {
        Self {
            map: Mutex::default(),
            ttl,
            node,
        }
    }

    /// Registers a new accepted job.
    pub fn create(&self, process_id: &str) -> Arc<Job> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = SystemTime::now();
        let status = wire::JobStatus {
            job_id: id.clone(),
            process_id: process_id.to_owned(),
            state: JobState::Accepted as i32,
            message: "accepted".into(),
            created_at: Some(now.into()),
            expires_at: Some((now + self.ttl).into()),
            node: self.node.clone(),
            attempt: 1,
            ..Default::default()
        };
        let job = Arc::new(Job {
            id: id.clone(),
            status: watch::Sender::new(status),
            log: Mutex::default(),
            result: Mutex::default(),
            cancel: CancellationToken::new(),
        });
        lock(&self.map).insert(id, job.clone());
        job
    }

    /// Registers a job the store handed to this node (its status as the store has it).
    pub fn adopt(&self, status: wire::JobStatus) -> Arc<Job> {
        let job = Arc::new(Job {
            id: status.job_id.clone(),
            status: watch::Sender::new(status),
            log: Mutex::default(),
            result: Mutex::default(),
            cancel: CancellationToken::new(),
        });
        lock(&self.map).insert(job.id.clone(), job.clone());
        job
    }

    /// Forgets a job (its record lives on in the store).
    pub fn remove(&self, id: &str) {
        lock(&self.map).remove(id);
    }

    /// The job if it is known here.
    pub fn find(&self, id: &str) -> Option<Arc<Job>> {
        lock(&self.map).get(id).cloned()
    }

    pub fn get(&self, id: &str) -> Result<Arc<Job>, NodeError> {
        self.find(id)
            .ok_or_else(|| NodeError::JobNotFound(id.to_owned()))
    }

    /// Removes and returns the finished jobs whose expiry has passed.
    pub fn take_expired(&self, now: SystemTime) -> Vec<Arc<Job>> {
        let mut map = lock(&self.map);
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, j)| {
                let s = j.status();
                is_terminal(s.state)
                    && s.expires_at
                        .and_then(|t| SystemTime::try_from(t).ok())
                        .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        expired.iter().filter_map(|id| map.remove(id)).collect()
    }
}

impl Job {
    pub fn status(&self) -> wire::JobStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<wire::JobStatus> {
        self.status.subscribe()
    }

    pub fn started(&self, worker: String) {
        self.status.send_modify(|s| {
            if s.state == JobState::Accepted as i32 {
                s.state = JobState::Running as i32;
                s.started_at = Some(SystemTime::now().into());
                s.message = "running".into();
            }
            s.worker = worker;
        });
    }

    pub fn progress(&self, percent: f64) {
        let p = percent.clamp(0.0, 100.0) as u32;
        self.status.send_if_modified(|s| {
            let changed = s.percent_done != p && !is_terminal(s.state);
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

    /// Records the end of the run, unless the job was dismissed meanwhile.
    pub fn finish(&self, result: Result<Vec<wire::Output>, tonic::Status>) {
        let mut slot = lock(&self.result);
        let dismissed = self.status.borrow().state == JobState::Dismissed as i32;
        if dismissed {
            return;
        }
        self.status.send_modify(|s| {
            s.finished_at = Some(SystemTime::now().into());
            match &result {
                Ok(_) => {
                    s.state = JobState::Successful as i32;
                    s.percent_done = 100;
                    s.message = "succeeded".into();
                }
                Err(e) => {
                    s.state = JobState::Failed as i32;
                    s.message = e.message().to_owned();
                }
            }
        });
        *slot = Some(match result {
            Ok(outputs) => JobResult::Succeeded(outputs),
            Err(e) => JobResult::Failed(e),
        });
    }

    /// Marks the job dismissed and cancels its run. Returns the outputs it had, to delete.
    pub fn dismiss(&self) -> Vec<wire::Output> {
        let mut slot = lock(&self.result);
        self.cancel.cancel();
        self.status.send_modify(|s| {
            if s.finished_at.is_none() {
                s.finished_at = Some(SystemTime::now().into());
            }
            s.state = JobState::Dismissed as i32;
            s.message = "dismissed".into();
        });
        match slot.replace(JobResult::Failed(tonic::Status::cancelled("job dismissed"))) {
            Some(JobResult::Succeeded(outputs)) => outputs,
            _ => Vec::new(),
        }
    }

    pub fn result(&self) -> Option<JobResult> {
        lock(&self.result).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_moves_from_accepted_to_its_end() {
        let jobs = Jobs::new("node-1".into(), Duration::from_secs(60));
        let job = jobs.create("native:buffer");
        assert_eq!(job.status().state, JobState::Accepted as i32);
        let rx = job.subscribe();
        job.started("4242".into());
        assert!(rx.has_changed().unwrap_or(false));
        job.progress(42.7);
        job.log_line("one".into());
        assert_eq!(job.status().percent_done, 42);
        job.finish(Ok(vec![]));
        let s = job.status();
        assert_eq!(
            (s.state, s.percent_done),
            (JobState::Successful as i32, 100)
        );
        assert_eq!(job.log(), ["one"]);
        assert!(jobs.get(&job.id).is_ok());
        assert!(matches!(jobs.get("nope"), Err(NodeError::JobNotFound(_))));
    }

    #[test]
    fn dismissed_jobs_stay_dismissed_and_hand_back_outputs() {
        let jobs = Jobs::new("n".into(), Duration::from_secs(60));
        let job = jobs.create("p");
        job.finish(Ok(vec![wire::Output {
            id: "OUTPUT".into(),
            value: None,
        }]));
        assert_eq!(job.dismiss().len(), 1);
        assert!(job.cancel.is_cancelled());
        job.finish(Err(tonic::Status::cancelled("late")));
        assert_eq!(job.status().state, JobState::Dismissed as i32);
    }

    #[test]
    fn expired_jobs_are_taken_out() {
        let jobs = Jobs::new("n".into(), Duration::from_secs(1));
        let job = jobs.create("p");
        let later = SystemTime::now() + Duration::from_secs(2);
        assert!(jobs.take_expired(later).is_empty(), "still running");
        job.finish(Ok(vec![]));
        assert!(jobs.take_expired(SystemTime::now()).is_empty());
        assert_eq!(jobs.take_expired(later).len(), 1);
        assert!(jobs.get(&job.id).is_err());
    }
}
