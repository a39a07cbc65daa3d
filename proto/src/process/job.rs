//! Job domain types: ids, states and statuses, converted from `wire::JobStatus` on receipt.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::Invalid;
use crate::storage::ObjectId;
use crate::time::system_time;
use crate::wire::process::v1 as wire;

/// A job id: 32 lowercase hexadecimal digits (a simple UUID), safe in paths and keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(ObjectId);

impl JobId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(ObjectId::random())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for JobId {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self).map_err(|_| {
            Invalid::new(
                JOB_ID,
                format!(
                    "invalid job id {:?}: job ids are 32 lowercase hexadecimal digits",
                    crate::text::bounded(s, 64)
                ),
            )
        })
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.as_str())
    }
}

/// The locator of every error about a job id.
pub const JOB_ID: &str = "JobID";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Accepted,
    Running,
    Succeeded,
    Failed,
    Dismissed,
}

impl JobState {
    /// Whether nothing changes the job again (succeeded, failed or dismissed).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Dismissed)
    }

    /// The lowercase name: accepted, running, succeeded, failed or dismissed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dismissed => "dismissed",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<i32> for JobState {
    type Error = Invalid;

    fn try_from(v: i32) -> Result<Self, Invalid> {
        Ok(match wire::JobState::try_from(v) {
            Ok(wire::JobState::Accepted) => Self::Accepted,
            Ok(wire::JobState::Running) => Self::Running,
            Ok(wire::JobState::Successful) => Self::Succeeded,
            Ok(wire::JobState::Failed) => Self::Failed,
            Ok(wire::JobState::Dismissed) => Self::Dismissed,
            Ok(wire::JobState::Unspecified) | Err(_) => {
                return Err(Invalid::new("state", format!("unknown job state {v}")));
            }
        })
    }
}

impl From<JobState> for wire::JobState {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Accepted => Self::Accepted,
            JobState::Running => Self::Running,
            JobState::Succeeded => Self::Successful,
            JobState::Failed => Self::Failed,
            JobState::Dismissed => Self::Dismissed,
        }
    }
}

/// A job record as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub job_id: JobId,
    pub process_id: String,
    pub state: JobState,
    /// 0 to 100.
    pub percent_done: u8,
    pub message: String,
    pub created_at: Option<SystemTime>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// After this the record and its output files are deleted.
    pub expires_at: Option<SystemTime>,
    /// The node and worker running or having run the job ("" while queued).
    pub node: String,
    pub worker: String,
    /// 0 until a node claims the job.
    pub attempt: u32,
}

impl JobStatus {
    /// A new job in `state`, created now.
    pub fn new(job_id: JobId, process_id: impl Into<String>, state: JobState) -> Self {
        Self {
            job_id,
            process_id: process_id.into(),
            state,
            percent_done: 0,
            message: state.name().to_owned(),
            created_at: Some(SystemTime::now()),
            started_at: None,
            finished_at: None,
            expires_at: None,
            node: String::new(),
            worker: String::new(),
            attempt: 0,
        }
    }
}

impl TryFrom<wire::JobStatus> for JobStatus {
    type Error = Invalid;

    fn try_from(w: wire::JobStatus) -> Result<Self, Invalid> {
        let time = |t: Option<prost_types::Timestamp>| t.as_ref().map(system_time);
        if w.percent_done > 100 {
            return Err(Invalid::new(
                "percent_done",
                format!("{} is over 100", w.percent_done),
            ));
        }
        Ok(Self {
            job_id: w.job_id.parse()?,
            process_id: w.process_id,
            state: JobState::try_from(w.state)?,
            percent_done: w.percent_done as u8,
            message: w.message,
            created_at: time(w.created_at),
            started_at: time(w.started_at),
            finished_at: time(w.finished_at),
            expires_at: time(w.expires_at),
            node: w.node,
            worker: w.worker,
            attempt: w.attempt,
        })
    }
}

impl From<JobStatus> for wire::JobStatus {
    fn from(s: JobStatus) -> Self {
        let time = |t: Option<SystemTime>| t.map(prost_types::Timestamp::from);
        Self {
            job_id: s.job_id.to_string(),
            process_id: s.process_id,
            state: wire::JobState::from(s.state) as i32,
            percent_done: u32::from(s.percent_done),
            message: s.message,
            created_at: time(s.created_at),
            started_at: time(s.started_at),
            finished_at: time(s.finished_at),
            expires_at: time(s.expires_at),
            node: s.node,
            worker: s.worker,
            attempt: s.attempt,
        }
    }
}

/// The status of `status`, required in an answer: its absence is [`Invalid`].
pub fn required_status(status: Option<wire::JobStatus>) -> Result<JobStatus, Invalid> {
    status
        .ok_or_else(|| Invalid::new("job", "answer without a job status"))?
        .try_into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_32_lowercase_hex_digits() {
        let id: JobId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(id.as_str(), "0123456789abcdef0123456789abcdef");
        assert_ne!(JobId::random(), JobId::random());
        for bad in [
            "",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "../../../../etc/passwd0123456789",
        ] {
            let e = bad.parse::<JobId>().unwrap_err();
            assert_eq!(e.locator, JOB_ID);
            assert!(e.message.contains("32 lowercase hexadecimal"), "{e}");
        }
    }

    #[test]
    fn statuses_round_trip_and_unknown_states_are_refused() {
        let mut status = JobStatus::new(JobId::random(), "native:buffer", JobState::Running);
        status.percent_done = 40;
        status.node = "n1".into();
        status.attempt = 2;
        let back = JobStatus::try_from(wire::JobStatus::from(status.clone())).unwrap();
        // Timestamps keep nanoseconds through the wire.
        assert_eq!(back, status);
        for state in [0, 9] {
            let w = wire::JobStatus {
                state,
                ..wire::JobStatus::from(status.clone())
            };
            let e = JobStatus::try_from(w).unwrap_err();
            assert_eq!(e.message, format!("unknown job state {state}"));
        }
        let w = wire::JobStatus {
            percent_done: 101,
            ..wire::JobStatus::from(status)
        };
        assert_eq!(JobStatus::try_from(w).unwrap_err().locator, "percent_done");
        assert!(JobState::Dismissed.is_terminal() && !JobState::Running.is_terminal());
    }
}
