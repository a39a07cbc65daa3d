//! OWS exceptions: the one error type of the edge, with its exception code, locator and HTTP
//! status, and the mapping from a node's or storage's gRPC status. Texts and locators are
//! bounded here, where every exception is made ([`wpsmesh_proto::text`]): whatever user value
//! or node message they quote, ExceptionReports, JSON errors and log lines stay short.

use axum::http::StatusCode;
use wpsmesh_proto::{metadata, text};

/// The exception codes of OWS Common and WPS 1.0.0/2.0.0 that the edge answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwsCode {
    MissingParameterValue,
    InvalidParameterValue,
    NoApplicableCode,
    OperationNotSupported,
    OptionNotSupported,
    VersionNegotiationFailed,
    ServerBusy,
    FileSizeExceeded,
    /// WPS 2.0: the process identifier is unknown.
    NoSuchProcess,
    /// WPS 2.0: the job identifier is unknown.
    NoSuchJob,
    /// WPS 2.0: GetResult on a job that has not finished.
    ResultNotReady,
}

impl OwsCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingParameterValue => "MissingParameterValue",
            Self::InvalidParameterValue => "InvalidParameterValue",
            Self::NoApplicableCode => "NoApplicableCode",
            Self::OperationNotSupported => "OperationNotSupported",
            Self::OptionNotSupported => "OptionNotSupported",
            Self::VersionNegotiationFailed => "VersionNegotiationFailed",
            Self::ServerBusy => "ServerBusy",
            Self::FileSizeExceeded => "FileSizeExceeded",
            Self::NoSuchProcess => "NoSuchProcess",
            Self::NoSuchJob => "NoSuchJob",
            Self::ResultNotReady => "ResultNotReady",
        }
    }

    /// The HTTP status OWS Common 2.0 (table 28) and WPS 2.0 give the code.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::MissingParameterValue
            | Self::InvalidParameterValue
            | Self::VersionNegotiationFailed
            | Self::NoSuchProcess
            | Self::NoSuchJob
            | Self::ResultNotReady => StatusCode::BAD_REQUEST,
            Self::OperationNotSupported | Self::OptionNotSupported => StatusCode::NOT_IMPLEMENTED,
            Self::ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::FileSizeExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoApplicableCode => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An exception the edge answers with. Rendered as an OWS ExceptionReport in the request's
/// WPS version (see `wps::v1`/`wps::v2`), or as JSON on the JSON APIs. Made only through
/// [`OwsError::new`], which bounds the text to one line of at most
/// [`text::MAX_MESSAGE`] bytes and the locator to [`text::MAX_SHOWN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {text}", code.as_str())]
pub struct OwsError {
    pub code: OwsCode,
    /// The parameter the exception is about, e.g. `DISTANCE` or `version`.
    pub locator: Option<String>,
    pub text: String,
    /// Seconds a client should wait before retrying (ServerBusy, a dependency down).
    pub retry_after: Option<u32>,
    /// The HTTP status when the code's own does not fit (a node's dependency down: 503).
    pub http_status: Option<StatusCode>,
}

impl OwsError {
    pub fn new(code: OwsCode, locator: Option<&str>, text: impl Into<String>) -> Self {
        Self {
            code,
            locator: locator.map(|l| text::one_line(&text::shown(l))),
            text: text::one_line(&text.into()).trim().to_owned(),
            retry_after: None,
            http_status: None,
        }
    }

    pub fn missing(locator: &str) -> Self {
        Self::new(
            OwsCode::MissingParameterValue,
            Some(locator),
            format!("missing parameter {locator}"),
        )
    }

    pub fn invalid(locator: &str, text: impl Into<String>) -> Self {
        Self::new(OwsCode::InvalidParameterValue, Some(locator), text)
    }

    pub fn not_supported(locator: &str, text: impl Into<String>) -> Self {
        Self::new(OwsCode::OptionNotSupported, Some(locator), text)
    }

    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(OwsCode::NoApplicableCode, None, text)
    }

    pub fn busy(text: impl Into<String>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(OwsCode::ServerBusy, None, text)
        }
    }

    /// A dependency down mid-call (a node's job store or storage, the edge's storage):
    /// NoApplicableCode with 503 and Retry-After. The request was fine and nothing the edge
    /// can do elsewhere would help; the same request later will.
    pub fn dependency_down(text: impl Into<String>) -> Self {
        Self {
            retry_after: Some(RETRY_AFTER),
            ..Self::internal(text).with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }

    /// The same exception answered with `status` instead of the code's HTTP status.
    pub fn with_status(self, status: StatusCode) -> Self {
        Self {
            http_status: Some(status),
            ..self
        }
    }

    pub fn status(&self) -> StatusCode {
        self.http_status.unwrap_or_else(|| self.code.http_status())
    }

    /// Maps a gRPC status from a node or storage; the parameter comes from the
    /// `wpsmesh-locator` metadata key when the node set it. UNAVAILABLE naming a dependency in
    /// `wpsmesh-dependency` (the job store, storage) is [`OwsError::dependency_down`], its
    /// text the node's one-line message, which names the dependency: the request was fine,
    /// the nodes' shared dependency is not (no other node would do better).
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let locator = metadata::locator(status);
        let text = status.message();
        if status.code() == Code::Unavailable
            && let Some(name) = metadata::dependency(status)
        {
            let name = match name {
                metadata::JOB_STORE => "job store",
                other => other,
            };
            return Self::dependency_down(if text.contains(name) {
                text.to_owned()
            } else {
                format!("{name} unavailable: {text}")
            });
        }
        let code = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => OwsCode::InvalidParameterValue,
            Code::NotFound if locator == Some("JobID") => OwsCode::NoSuchJob,
            Code::NotFound if locator == Some("Identifier") => OwsCode::NoSuchProcess,
            Code::NotFound => OwsCode::InvalidParameterValue,
            Code::FailedPrecondition => OwsCode::ResultNotReady,
            Code::Unimplemented => OwsCode::OperationNotSupported,
            Code::ResourceExhausted | Code::Unavailable => {
                return Self {
                    retry_after: Some(RETRY_AFTER),
                    ..Self::new(OwsCode::ServerBusy, locator, text)
                };
            }
            _ => OwsCode::NoApplicableCode,
        };
        Self::new(code, locator, text)
    }

    /// Maps a status of the edge's own storage call: storage out of reach (or saying it is
    /// unavailable) is [`OwsError::dependency_down`] with one line such as `file storage is
    /// unavailable: connection refused`; its other answers map as a node's do.
    pub fn from_storage_status(status: &tonic::Status) -> Self {
        match crate::files::storage::storage_unavailable(status) {
            Some(text) => Self::dependency_down(text),
            None => Self::from_status(status),
        }
    }
}

/// Seconds a client waits before retrying a call a node refused as busy or unavailable.
const RETRY_AFTER: u32 = 5;
