//! `FetchError`: what can go wrong turning an input reference into a local file, and the gRPC
//! status each case answers with.

use tonic::Code;

use super::guard::Refusal;
use super::unzip::ZipRefusal;

/// Everything that can fail while fetching or unpacking an input. Messages are lowercase and
/// name the input, e.g. `input INPUT: address 127.0.0.1 is not allowed (loopback)`.
///
/// Mapping to gRPC (`impl From<FetchError> for tonic::Status`):
///
/// | variant | code | why |
/// |---|---|---|
/// | `Refused`, `InvalidReference` | `INVALID_ARGUMENT` | the client's reference is not acceptable |
/// | `TooLarge`, `Zip` (limits, bombs, unsafe entries, no `.shp`), `FormatMismatch` | `INVALID_ARGUMENT` | the client's data is refused; not `RESOURCE_EXHAUSTED`, which clients read as "retry later" |
/// | `Timeout`, `Unreachable`, `HttpStatus` | `INVALID_ARGUMENT` | the client's URL could not be fetched; the message names it |
/// | `NotFound` | `NOT_FOUND` | the storage object named by the href does not exist |
/// | `Storage` | `UNAVAILABLE` when storage was unreachable or timed out, else `INTERNAL` | our own service failed |
/// | `NoStorage` | `FAILED_PRECONDITION` | the node has no storage client configured |
/// | `Io`, `Config` | `INTERNAL` | local disk or configuration trouble |
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Scheme, address, host name or redirect refused by the address policy.
    #[error("input {input}: {refusal}")]
    Refused { input: String, refusal: Refusal },
    /// The href cannot be used at all (unparsable, a path of this service that is not a file).
    #[error("input {input}: invalid reference {href:?}: {reason}")]
    InvalidReference {
        input: String,
        href: String,
        reason: String,
    },
    /// Declared or actual size above the limit; the partial file is removed.
    #[error("input {input}: {url} is larger than the limit of {limit} bytes")]
    TooLarge {
        input: String,
        url: String,
        limit: u64,
    },
    #[error("input {input}: fetching {url} timed out after {secs} s")]
    Timeout {
        input: String,
        url: String,
        secs: u64,
    },
    #[error("input {input}: fetching {url} failed: {reason}")]
    Unreachable {
        input: String,
        url: String,
        reason: String,
    },
    #[error("input {input}: {url} answered with http status {status}")]
    HttpStatus {
        input: String,
        url: String,
        status: u16,
    },
    #[error("input {input}: storage object {id} not found")]
    NotFound { input: String, id: String },
    #[error("input {input}: reading storage object {id} failed: {message}")]
    Storage {
        input: String,
        id: String,
        code: Code,
        message: String,
    },
    #[error("input {input}: storage references cannot be read: no storage service is configured")]
    NoStorage { input: String },
    #[error("input {input}: {reason}")]
    Zip { input: String, reason: ZipRefusal },
    /// The client said the file is one format and its content is another.
    #[error("input {input}: {claim} but the content is {content}")]
    FormatMismatch {
        input: String,
        claim: String,
        content: &'static str,
    },
    #[error("input {input}: {context}: {source}")]
    Io {
        input: String,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid fetch configuration: {0}")]
    Config(String),
}

impl FetchError {
    /// The input this error is about (none for configuration errors).
    pub fn input(&self) -> Option<&str> {
        match self {
            Self::Refused { input, .. }
            | Self::InvalidReference { input, .. }
            | Self::TooLarge { input, .. }
            | Self::Timeout { input, .. }
            | Self::Unreachable { input, .. }
            | Self::HttpStatus { input, .. }
            | Self::NotFound { input, .. }
            | Self::Storage { input, .. }
            | Self::NoStorage { input }
            | Self::Zip { input, .. }
            | Self::FormatMismatch { input, .. }
            | Self::Io { input, .. } => Some(input),
            Self::Config(_) => None,
        }
    }

    /// The gRPC code this error answers with (see the table on [`FetchError`]).
    pub fn code(&self) -> Code {
        match self {
            Self::Refused { .. }
            | Self::InvalidReference { .. }
            | Self::TooLarge { .. }
            | Self::Timeout { .. }
            | Self::Unreachable { .. }
            | Self::HttpStatus { .. }
            | Self::Zip { .. }
            | Self::FormatMismatch { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::Storage { code, .. } => match code {
                Code::Unavailable | Code::DeadlineExceeded => Code::Unavailable,
                _ => Code::Internal,
            },
            Self::NoStorage { .. } => Code::FailedPrecondition,
            Self::Io { .. } | Self::Config(_) => Code::Internal,
        }
    }

    pub(crate) fn io(input: &str, context: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            input: input.to_owned(),
            context,
            source,
        }
    }
}

impl From<FetchError> for tonic::Status {
    fn from(e: FetchError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_grpc_codes() {
        let refused = FetchError::Refused {
            input: "INPUT".into(),
            refusal: Refusal::Address {
                ip: [127, 0, 0, 1].into(),
                kind: "loopback".into(),
            },
        };
        let status = tonic::Status::from(refused);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "input INPUT: address 127.0.0.1 is not allowed (loopback)"
        );
        let missing = FetchError::NotFound {
            input: "INPUT".into(),
            id: "0123456789abcdef0123456789abcdef".into(),
        };
        assert_eq!(missing.code(), Code::NotFound);
        let down = FetchError::Storage {
            input: "INPUT".into(),
            id: "x".into(),
            code: Code::Unavailable,
            message: "connection refused".into(),
        };
        assert_eq!(down.code(), Code::Unavailable);
        let zip = FetchError::Zip {
            input: "INPUT".into(),
            reason: ZipRefusal::NoShapefile,
        };
        assert_eq!(zip.code(), Code::InvalidArgument);
        assert_eq!(zip.to_string(), "input INPUT: zip contains no .shp file");
        assert_eq!(zip.input(), Some("INPUT"));
    }
}
