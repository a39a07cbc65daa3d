//! The node's one error enum, mapped to gRPC codes; the offending parameter travels in the
//! `wpsmesh-locator` metadata key so the edge can fill an OWS exception's locator. The conversion
//! to a status is the one choke point: its message is one bounded line, its metadata ASCII.

use tonic::Code;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use wpsmesh_proto::text;

use crate::dependency::{self, Failure};
use crate::fetch::FetchError;
use crate::pool::PoolError;
use wpsmesh_jobstore::StoreError;

// The metadata keys, defined with the contract in [`wpsmesh_proto::metadata`].
use wpsmesh_proto::metadata::{DEPENDENCY_KEY, LOCATOR_KEY};

/// Everything a ProcessService call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("process {:?} not found", text::shown(.0))]
    UnknownProcess(String),
    #[error("invalid parameter {}: {message}", text::shown(name))]
    InvalidParameter { name: String, message: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("job {:?} not found", text::shown(.0))]
    JobNotFound(String),
    #[error("job {} was dismissed; its outputs are deleted", text::shown(.0))]
    JobDismissed(String),
    #[error("job {} is {state}: {message}", text::shown(id))]
    JobNotReady {
        id: String,
        state: &'static str,
        message: String,
    },
    /// A storage call failed; see [`NodeError::storage`].
    #[error("{}", .0.message(dependency::STORAGE))]
    Storage(Failure),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("node i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl NodeError {
    pub fn invalid(name: &str, message: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.to_owned(),
            message: message.into(),
        }
    }

    /// A failed storage call: UNAVAILABLE `storage unavailable: connection refused` (reset,
    /// timed out) when storage could not be reached or dropped the call, else its own answer.
    pub fn storage(status: &tonic::Status) -> Self {
        Self::Storage(Failure::of(status))
    }

    /// The dependency this error says is unavailable, if any.
    pub fn dependency(&self) -> Option<&'static str> {
        match self {
            Self::Store(StoreError::Unavailable(_)) => Some(dependency::JOB_STORE),
            Self::Storage(Failure::Unavailable(_)) => Some(dependency::STORAGE),
            Self::Fetch(e @ FetchError::Storage { .. }) if e.code() == Code::Unavailable => {
                Some(dependency::STORAGE)
            }
            _ => None,
        }
    }

    /// The parameter this error is about, if any.
    pub fn locator(&self) -> Option<&str> {
        match self {
            Self::UnknownProcess(_) => Some("Identifier"),
            Self::InvalidParameter { name, .. } => Some(name),
            Self::Fetch(e) => e.input(),
            Self::Pool(PoolError::Parameter { name, .. }) if !name.is_empty() => Some(name),
            Self::Pool(PoolError::UnknownProcess { .. }) => Some("Identifier"),
            Self::JobNotFound(_) | Self::JobDismissed(_) => Some("JobID"),
            Self::Store(StoreError::Invalid(e)) => Some(&e.locator),
            _ => None,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::UnknownProcess(_) | Self::JobNotFound(_) | Self::JobDismissed(_) => {
                Code::NotFound
            }
            Self::InvalidParameter { .. } => Code::InvalidArgument,
            Self::Fetch(e) => e.code(),
            Self::Pool(p) => match p {
                PoolError::Parameter { .. } => Code::InvalidArgument,
                PoolError::UnknownProcess { .. } => Code::NotFound,
                PoolError::Execution { .. } => Code::Aborted,
                PoolError::Cancelled => Code::Cancelled,
                PoolError::TimedOut { .. } => Code::DeadlineExceeded,
                PoolError::Busy => Code::ResourceExhausted,
                PoolError::Unavailable(_) => Code::Unavailable,
                PoolError::Crashed { .. } | PoolError::Protocol(_) => Code::Internal,
            },
            Self::JobNotReady { .. } => Code::FailedPrecondition,
            Self::Storage(f) => match f.code() {
                Code::NotFound | Code::InvalidArgument => Code::Internal,
                c => c,
            },
            Self::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            Self::Store(StoreError::QueueFull { .. }) => Code::ResourceExhausted,
            Self::Store(StoreError::Corrupt { .. }) => Code::Internal,
            Self::Store(StoreError::Invalid(_)) => Code::InvalidArgument,
            Self::Io(_) => Code::Internal,
        }
    }
}

/// A wire message that failed a domain check is an invalid parameter, named by its locator.
impl From<wpsmesh_proto::process::Invalid> for NodeError {
    fn from(e: wpsmesh_proto::process::Invalid) -> Self {
        Self::InvalidParameter {
            name: e.locator,
            message: e.message,
        }
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> Self {
        let mut status = tonic::Status::new(e.code(), text::one_line(&e.to_string()));
        if let Some(locator) = e.locator() {
            status
                .metadata_mut()
                .insert(LOCATOR_KEY, header_value(locator));
        }
        if let Some(dependency) = e.dependency() {
            status
                .metadata_mut()
                .insert(DEPENDENCY_KEY, MetadataValue::from_static(dependency));
        }
        status
    }
}

/// `value` as a metadata value: [`text::shown`] with the ellipsis in ASCII, every character
/// that is not printable ASCII as `?`.
pub fn header_value(value: &str) -> AsciiMetadataValue {
    let ascii: String = text::shown(value)
        .replace('…', "...")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    ascii
        .parse()
        .unwrap_or_else(|_| MetadataValue::from_static("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_are_bounded_in_message_and_metadata() {
        let id = "é".repeat(1_000_000);
        let status = tonic::Status::from(NodeError::invalid(&id, "unknown input"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() < 400, "{}", status.message().len());
        assert!(status.message().ends_with("(2000000 bytes): unknown input"));
        let locator = status.metadata().get(LOCATOR_KEY).expect("locator");
        let locator = locator.to_str().expect("ascii");
        assert!(locator.len() < 300, "{}", locator.len());
        assert!(locator.ends_with("... (2000000 bytes)"), "{locator}");
        // A known parameter stays as it is.
        let status = tonic::Status::from(NodeError::invalid("DISTANCE", "expected a number"));
        assert_eq!(
            status.metadata().get(LOCATOR_KEY).map(|v| v.to_str().ok()),
            Some(Some("DISTANCE"))
        );
        assert_eq!(
            status.message(),
            "invalid parameter DISTANCE: expected a number"
        );
    }

    #[test]
    fn storage_away_names_the_dependency() {
        let e = NodeError::storage(&tonic::Status::unavailable("tcp connect error"));
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get(DEPENDENCY_KEY)
                .map(|v| v.to_str().ok()),
            Some(Some("storage"))
        );
        // Storage's own answers are not "unavailable".
        let status = tonic::Status::from(NodeError::storage(&tonic::Status::not_found("gone")));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "storage: gone");
        assert!(status.metadata().get(DEPENDENCY_KEY).is_none());
    }
}
