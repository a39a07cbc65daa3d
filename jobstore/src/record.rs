//! A job record as the store keeps it, and its encoding as a Redis hash (times in ms since the
//! epoch, outcome and request as protobuf).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use wpsmesh_proto::process::{self, Invalid, JobId, JobState, JobStatus};
use wpsmesh_proto::storage::ObjectId;
use wpsmesh_proto::wire::process::v1 as wire;

use crate::StoreError;

/// The number a state is stored as (the wire enum's), as the Lua scripts compare it.
pub(crate) fn state_code(state: JobState) -> i64 {
    i64::from(wire::JobState::from(state) as i32)
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        outputs: Vec<process::Output>,
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
            Self::Succeeded { .. } => JobState::Succeeded,
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
    pub fn object_ids(&self) -> Vec<ObjectId> {
        match self {
            Self::Succeeded { outputs, .. } => outputs
                .iter()
                .filter_map(process::Output::object_id)
                .collect(),
            Self::Failed { .. } => Vec::new(),
        }
    }

    /// The stored form: protobuf, outputs as wire `Output`s.
    pub fn encode(&self) -> Vec<u8> {
        let stored = match self {
            Self::Succeeded { outputs, log } => StoredOutcome {
                succeeded: true,
                outputs: process::outputs_to_wire(outputs.clone()),
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

    /// Reads the stored form back; bytes that are no outcome, or outputs the domain types
    /// refuse, are [`Invalid`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Invalid> {
        let s =
            StoredOutcome::decode(bytes).map_err(|e| Invalid::new("protobuf", e.to_string()))?;
        Ok(if s.succeeded {
            Self::Succeeded {
                outputs: process::outputs_from_wire(s.outputs)?,
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
    pub status: JobStatus,
    pub outcome: Option<Outcome>,
}

impl JobRecord {
    pub fn state(&self) -> JobState {
        self.status.state
    }

    /// Reads a record from its Redis hash fields.
    pub fn from_hash(id: &JobId, mut h: HashMap<String, Bytes>) -> Result<Self, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            id: id.to_string(),
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
            ms => Some(from_millis(ms)),
        };
        let state = i32::try_from(number(&h, "state"))
            .ok()
            .and_then(|code| JobState::try_from(code).ok())
            .ok_or_else(|| corrupt(format!("unknown state {:?}", text(&h, "state"))))?;
        let percent_done = u8::try_from(number(&h, "percent"))
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| corrupt(format!("percent {:?} is over 100", text(&h, "percent"))))?;
        let status = JobStatus {
            job_id: *id,
            process_id: text(&h, "process"),
            state,
            percent_done,
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
pub(crate) mod tests {
    use super::*;

    /// The stored form of a success with these wire outputs, unchecked.
    pub(crate) fn stored_success(outputs: Vec<wire::Output>) -> Vec<u8> {
        StoredOutcome {
            succeeded: true,
            outputs,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn outcomes_round_trip() {
        let object = ObjectId::random();
        let ok = Outcome::Succeeded {
            outputs: vec![process::Output {
                id: "OUTPUT".into(),
                value: process::OutputValue::Stored(process::StoredFile {
                    id: object,
                    format: process::Format::of("application/geo+json"),
                    size: 42,
                }),
            }],
            log: vec!["one".into()],
        };
        assert_eq!(Outcome::decode(&ok.encode()).unwrap(), ok);
        assert_eq!(ok.object_ids(), [object]);
        let failed = Outcome::Failed {
            code: tonic::Code::InvalidArgument,
            message: "bad DISTANCE".into(),
            log: vec![],
        };
        assert_eq!(Outcome::decode(&failed.encode()).unwrap(), failed);
        // Stored outputs the domain types refuse are refused on the way back.
        let bad = stored_success(vec![wire::Output {
            id: "OUTPUT".into(),
            value: Some(wire::output::Value::Reference(wire::FileReference {
                object_id: "abc".into(),
                ..Default::default()
            })),
        }]);
        let e = Outcome::decode(&bad).unwrap_err();
        assert_eq!(e.locator, "OUTPUT");
        assert!(e.message.contains("invalid object id"), "{e}");
    }

    #[test]
    fn states_are_stored_as_the_wire_numbers() {
        for (state, code) in [
            (JobState::Accepted, 1),
            (JobState::Running, 2),
            (JobState::Succeeded, 3),
            (JobState::Failed, 4),
            (JobState::Dismissed, 5),
        ] {
            assert_eq!(state_code(state), code);
            assert_eq!(JobState::try_from(code as i32).unwrap(), state);
        }
    }

    fn hash(fields: &[(&str, &str)]) -> HashMap<String, Bytes> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect()
    }

    #[test]
    fn a_hash_becomes_a_record() {
        let id = JobId::random();
        let h = hash(&[
            ("process", "native:buffer"),
            ("state", "2"),
            ("percent", "40"),
            ("created", "1700000000000"),
            ("node", "n1"),
            ("attempt", "2"),
        ]);
        let r = JobRecord::from_hash(&id, h).unwrap();
        assert_eq!(r.state(), JobState::Running);
        assert_eq!(r.status.job_id, id);
        assert_eq!(
            (
                r.status.percent_done,
                r.status.attempt,
                r.status.node.as_str()
            ),
            (40, 2, "n1")
        );
        assert_eq!(r.status.created_at, Some(from_millis(1_700_000_000_000)));
        assert!(r.status.started_at.is_none());
        for bad in [
            hash(&[("state", "9")]),
            hash(&[("state", "2"), ("percent", "101")]),
            hash(&[("state", "3"), ("outcome", "not protobuf")]),
        ] {
            assert!(matches!(
                JobRecord::from_hash(&JobId::random(), bad),
                Err(StoreError::Corrupt { .. })
            ));
        }
        let bad_outputs = stored_success(vec![wire::Output {
            id: "OUTPUT".into(),
            value: None,
        }]);
        let mut h = hash(&[("state", "3")]);
        h.insert("outcome".into(), bad_outputs.into());
        match JobRecord::from_hash(&id, h) {
            Err(StoreError::Corrupt { id: bad, message }) => {
                assert_eq!(bad, id.to_string());
                assert_eq!(message, "outcome: OUTPUT: output without a value");
            }
            other => panic!("{other:?}"),
        }
    }
}
