//! A job record as the store keeps it, and its encoding as a Redis hash (times in ms since the
//! epoch, outcome and request as protobuf).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use wpsmesh_proto::wire::process::v1::{self as wire, JobState};

use crate::StoreError;

/// Whether a job in `state` is done (succeeded, failed or dismissed): nothing changes it again.
pub fn is_terminal(state: i32) -> bool {
    state == JobState::Successful as i32
        || state == JobState::Failed as i32
        || state == JobState::Dismissed as i32
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        outputs: Vec<wire::Output>,
        log: Vec<String>,
    },
    Failed {
        code: tonic::Code,
        message: String,
        log: Vec<String>,
    },
}

impl Outcome {
    pub fn state(&self) -> JobState {
        match self {
            Self::Succeeded { .. } => JobState::Successful,
            Self::Failed { .. } => JobState::Failed,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Succeeded { .. } => "succeeded",
            Self::Failed { message, .. } => message,
        }
    }

    /// Storage objects this outcome refers to (to delete with the job).
    pub fn object_ids(&self) -> Vec<String> {
        match self {
            Self::Succeeded { outputs, .. } => wpsmesh_proto::process::object_ids(outputs),
            Self::Failed { .. } => Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let stored = match self {
            Self::Succeeded { outputs, log } => StoredOutcome {
                succeeded: true,
                outputs: outputs.clone(),
                log: log.clone(),
                ..Default::default()
            },
            Self::Failed { code, message, log } => StoredOutcome {
                code: *code as i32,
                message: message.clone(),
                log: log.clone(),
                ..Default::default()
            },
        };
        stored.encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let s = StoredOutcome::decode(bytes)?;
        Ok(if s.succeeded {
            Self::Succeeded {
                outputs: s.outputs,
                log: s.log,
            }
        } else {
            Self::Failed {
                code: tonic::Code::from_i32(s.code),
                message: s.message,
                log: s.log,
            }
        })
    }
}

/// The stored form of an [`Outcome`].
#[derive(Clone, PartialEq, prost::Message)]
struct StoredOutcome {
    #[prost(bool, tag = "1")]
    succeeded: bool,
    #[prost(message, repeated, tag = "2")]
    outputs: Vec<wire::Output>,
    #[prost(string, repeated, tag = "3")]
    log: Vec<String>,
    #[prost(int32, tag = "4")]
    code: i32,
    #[prost(string, tag = "5")]
    message: String,
}

/// A job as the store holds it: its status and, once finished, its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub status: wire::JobStatus,
    pub outcome: Option<Outcome>,
}

impl JobRecord {
    pub fn state(&self) -> JobState {
        self.status.state()
    }

    /// Reads a record from its Redis hash fields.
    pub fn from_hash(id: &str, mut h: HashMap<String, Bytes>) -> Result<Self, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            id: id.to_owned(),
            message,
        };
        let text = |h: &HashMap<String, Bytes>, k: &str| {
            h.get(k)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let number = |h: &HashMap<String, Bytes>, k: &str| -> u64 {
            h.get(k)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        let time = |h: &HashMap<String, Bytes>, k: &str| match number(h, k) {
            0 => None,
            ms => Some(prost_types::Timestamp::from(from_millis(ms))),
        };
        let state = JobState::try_from(number(&h, "state") as i32)
            .map_err(|_| corrupt(format!("unknown state {:?}", text(&h, "state"))))?;
        let status = wire::JobStatus {
            job_id: id.to_owned(),
            process_id: text(&h, "process"),
            state: state as i32,
            percent_done: number(&h, "percent") as u32,
            message: text(&h, "message"),
            created_at: time(&h, "created"),
            started_at: time(&h, "started"),
            finished_at: time(&h, "finished"),
            expires_at: time(&h, "expires"),
            node: text(&h, "node"),
            worker: text(&h, "worker"),
            attempt: number(&h, "attempt") as u32,
        };
        let outcome = match h.remove("outcome") {
            Some(b) if !b.is_empty() => {
                Some(Outcome::decode(&b).map_err(|e| corrupt(format!("outcome: {e}")))?)
            }
            _ => None,
        };
        Ok(Self { status, outcome })
    }
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        let ok = Outcome::Succeeded {
            outputs: vec![wire::Output {
                id: "OUTPUT".into(),
                value: Some(wire::output::Value::Reference(wire::FileReference {
                    object_id: "abc".into(),
                    ..Default::default()
                })),
            }],
            log: vec!["one".into()],
        };
        assert_eq!(Outcome::decode(&ok.encode()).unwrap(), ok);
        assert_eq!(ok.object_ids(), ["abc"]);
        let failed = Outcome::Failed {
            code: tonic::Code::InvalidArgument,
            message: "bad DISTANCE".into(),
            log: vec![],
        };
        assert_eq!(Outcome::decode(&failed.encode()).unwrap(), failed);
    }

    #[test]
    fn a_hash_becomes_a_record() {
        let h: HashMap<String, Bytes> = [
            ("process", "native:buffer"),
            ("state", "2"),
            ("percent", "40"),
            ("created", "1700000000000"),
            ("node", "n1"),
            ("attempt", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Bytes::from(v)))
        .collect();
        let r = JobRecord::from_hash("j1", h).unwrap();
        assert_eq!(r.state(), JobState::Running);
        assert_eq!(
            (
                r.status.percent_done,
                r.status.attempt,
                r.status.node.as_str()
            ),
            (40, 2, "n1")
        );
        assert!(r.status.created_at.is_some() && r.status.started_at.is_none());
        let bad: HashMap<String, Bytes> = [("state".to_owned(), Bytes::from("9"))].into();
        assert!(matches!(
            JobRecord::from_hash("j2", bad),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
