//! WPS requests as the edge understands them, whatever their version and encoding (KVP or XML):
//! parsed into these types on receipt, executed against nodes, answered by the version's writer.

use wpsmesh_proto::process::ExecuteRequest;

/// The WPS version a request is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V100,
    V200,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V100 => "1.0.0",
            Self::V200 => "2.0.0",
        }
    }
}

/// One WPS operation.
#[derive(Debug, Clone, PartialEq)]
pub enum WpsRequest {
    /// Answered in the highest version `accept_versions` allows (all when empty);
    /// VersionNegotiationFailed when none fits.
    GetCapabilities {
        accept_versions: Vec<String>,
    },
    /// `identifiers` may be `["ALL"]` (WPS 1.0.0).
    DescribeProcess {
        version: Version,
        identifiers: Vec<String>,
    },
    Execute(Box<Execute>),
    /// WPS 2.0 (and the 1.0.0 statusLocation, which the edge serves itself).
    GetStatus {
        version: Version,
        job_id: String,
    },
    GetResult {
        version: Version,
        job_id: String,
    },
    Dismiss {
        version: Version,
        job_id: String,
    },
}

/// Execute mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    /// WPS 1.0.0 storeExecuteResponse=true with status=true; WPS 2.0 mode="async".
    Async,
}

/// How the result comes back.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseForm {
    /// An ExecuteResponse (1.0.0) or Result document (2.0).
    Document {
        /// WPS 1.0.0: echo DataInputs and OutputDefinitions.
        lineage: bool,
        /// WPS 1.0.0 `status` (progress reporting requested).
        status: bool,
        /// WPS 1.0.0 `storeExecuteResponse`.
        store: bool,
    },
    /// The single output's bytes, with its MIME type (1.0.0 RawDataOutput, 2.0 response="raw").
    Raw { output: String },
}

/// A checked Execute request.
#[derive(Debug, Clone, PartialEq)]
pub struct Execute {
    pub version: Version,
    /// Process id, inputs and requested outputs (id, format, as_reference), ready for a node.
    /// Complex values given inline arrive decoded (base64 already undone).
    pub request: ExecuteRequest,
    pub mode: Mode,
    pub response: ResponseForm,
}

impl Execute {
    /// Whether the request runs as an asynchronous job: WPS 2.0 `mode="async"`, or WPS 1.0.0
    /// `storeExecuteResponse="true"` (with or without `status`: the stored response is the
    /// job's statusLocation either way).
    pub fn submits(&self) -> bool {
        self.mode == Mode::Async
            || matches!(self.response, ResponseForm::Document { store: true, .. })
    }
}
