//! The storage service's one error enum, mapped to gRPC status codes; the conversion is the one
//! choke point where messages become one bounded line.

use wpsmesh_proto::storage::{InvalidMessage, ObjectId};
use wpsmesh_proto::text;

/// Everything a storage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Invalid(#[from] InvalidMessage),
    #[error("object {0} not found")]
    NotFound(ObjectId),
    #[error("object exceeds the maximum size of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("upload ended after {received} bytes but {declared} bytes were declared")]
    LengthMismatch { declared: u64, received: u64 },
    #[error("storage backend {endpoint} is unavailable: {reason}")]
    Unavailable { endpoint: String, reason: String },
    #[error("upload stream broke off: {}", .0.message())]
    Stream(tonic::Status),
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("storage i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StorageError> for tonic::Status {
    fn from(e: StorageError) -> Self {
        use tonic::Code;
        let code = match &e {
            StorageError::Invalid(_) | StorageError::LengthMismatch { .. } => Code::InvalidArgument,
            StorageError::NotFound(_) => Code::NotFound,
            StorageError::TooLarge { .. } => Code::ResourceExhausted,
            StorageError::Unavailable { .. } => Code::Unavailable,
            StorageError::Stream(s) => s.code(),
            StorageError::Backend(_) | StorageError::Io(_) => Code::Internal,
        };
        tonic::Status::new(code, text::one_line(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_bounded_line() {
        let long = format!("invalid format {:?}", "x".repeat(2_000_000));
        let status = tonic::Status::from(StorageError::Invalid(InvalidMessage(long)));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() < 1100, "{}", status.message().len());
        assert!(status.message().starts_with("invalid format \"xxx"));
        let broken = StorageError::Stream(tonic::Status::cancelled("h2 protocol error: reset"));
        assert_eq!(
            tonic::Status::from(broken).message(),
            "upload stream broke off: h2 protocol error: reset"
        );
    }
}
