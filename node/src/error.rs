//! The node's one error enum, mapped to gRPC codes; the offending parameter travels in the
//! `wpsmesh-locator` metadata key so the edge can fill an OWS exception's locator.

use tonic::Code;

use crate::fetch::FetchError;
use crate::pool::PoolError;
use crate::store::StoreError;

/// Metadata key naming the parameter an error is about.
pub const LOCATOR_KEY: &str = "wpsmesh-locator";

/// Metadata key naming the dependency that is unavailable (`job-store`), so the edge can tell
/// "no node" from "the job store is down".
pub const DEPENDENCY_KEY: &str = "wpsmesh-dependency";

/// Everything a ProcessService call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("process {0:?} not found")]
    UnknownProcess(String),
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter { name: String, message: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("job {0:?} not found")]
    JobNotFound(String),
    #[error("job {0} was dismissed; its outputs are deleted")]
    JobDismissed(String),
    #[error("job {id} is {state}: {message}")]
    JobNotReady {
        id: String,
        state: &'static str,
        message: String,
    },
    #[error("storage: {0}")]
    Storage(tonic::Status),
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

    /// The parameter this error is about, if any.
    pub fn locator(&self) -> Option<&str> {
        match self {
            Self::UnknownProcess(_) => Some("Identifier"),
            Self::InvalidParameter { name, .. } => Some(name),
            Self::Fetch(e) => e.input(),
            Self::Pool(PoolError::Parameter { name, .. }) if !name.is_empty() => Some(name),
            Self::Pool(PoolError::UnknownProcess { .. }) => Some("Identifier"),
            Self::JobNotFound(_) | Self::JobDismissed(_) => Some("JobID"),
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
            Self::Storage(s) => match s.code() {
                Code::NotFound | Code::InvalidArgument => Code::Internal,
                c => c,
            },
            Self::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            Self::Store(StoreError::QueueFull { .. }) => Code::ResourceExhausted,
            Self::Store(StoreError::Corrupt { .. }) => Code::Internal,
            Self::Io(_) => Code::Internal,
        }
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> Self {
        let mut status = tonic::Status::new(e.code(), e.to_string());
        if let Some(locator) = e.locator()
            && let Ok(v) = locator.parse()
        {
            status.metadata_mut().insert(LOCATOR_KEY, v);
        }
        if let NodeError::Store(StoreError::Unavailable(_)) = &e {
            status.metadata_mut().insert(
                DEPENDENCY_KEY,
                tonic::metadata::MetadataValue::from_static("job-store"),
            );
        }
        status
    }
}
