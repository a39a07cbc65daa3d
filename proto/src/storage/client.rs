//! The typed storage client shared by the edge and the nodes: the domain types of
//! [`crate::storage`] in and out, wire answers checked on receipt, and a deadline on every step.
//! This file has the client, its errors, the short calls and downloads; uploads are in
//! `upload.rs` beside it.
//!
//! The short calls (stat, delete, opening a download up to its metadata) get the short-call
//! timeout; the streams get at most the idle timeout between two chunks and no total, in both
//! directions (storage taking an upload chunk, storage sending a download chunk, storage
//! answering after the last upload chunk). A deadline missed is a `DEADLINE_EXCEEDED` status
//! carrying the elapsed timer as its source ([`deadline_missed`]), which the runtime's
//! `Failure::of_status` reads as `timed out`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::Instrument;
use tracing::field::Empty;
use wpsmesh_telemetry::propagate;

pub use super::upload::UploadError;
use super::{ByteRange, InvalidMessage, ObjectId, ObjectInfo};
use crate::wire::storage::v1 as wire;
use crate::wire::storage::v1::download_response;
use crate::wire::storage::v1::storage_service_client::StorageServiceClient;

/// Default deadline of the short calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest pause between two chunks of a transfer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest message the client decodes: a [`MAX_CHUNK`] chunk plus framing, with room to spare.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Storage answered, but not as the contract says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A stat or upload answer without the object's metadata.
    #[error("storage answered without metadata")]
    NoObject,
    /// A download stream that ended before its first message.
    #[error("storage sent no metadata")]
    NoMetadata,
    /// A download stream whose first message is not the object's metadata.
    #[error("storage sent data before metadata")]
    DataBeforeMetadata,
    /// A download message after the metadata that is not a chunk.
    #[error("unexpected message in the download stream")]
    NotAChunk,
    /// Object metadata that does not check.
    #[error("{}", .0.0)]
    Invalid(InvalidMessage),
    /// A download stream that ended before the bytes the range asked for.
    #[error("the stream ended after {received} of {expected} bytes")]
    Short { received: u64, expected: u64 },
    /// A download stream with more bytes than the range asked for.
    #[error("the stream sent more than the {expected} bytes expected")]
    Long { expected: u64 },
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The call failed: storage's own answer (a status without source), a transport failure
    /// (the transport error as source) or a deadline of this client missed
    /// ([`deadline_missed`]).
    #[error("{}", .0.message())]
    Status(Status),
    /// Storage answered in breach of the contract.
    #[error(transparent)]
    Violation(#[from] Violation),
}

impl StorageError {
    /// The status' code; `INTERNAL` for a contract breach.
    pub fn code(&self) -> Code {
        match self {
            Self::Status(status) => status.code(),
            Self::Violation(_) => Code::Internal,
        }
    }

    /// Whether storage answered that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NotFound
    }
}

impl From<Status> for StorageError {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl From<StorageError> for Status {
    /// The status as it is; a contract breach is `INTERNAL` with its text.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Status(status) => status,
            StorageError::Violation(v) => Status::internal(v.to_string()),
        }
    }
}

/// The bytes of a download, each chunk within the idle timeout; ends with an error rather than
/// early or long.
pub type Chunks = BoxStream<'static, Result<Bytes, StorageError>>;

/// A storage client with its deadlines; cheap to clone.
#[derive(Debug, Clone)]
pub struct StorageClient {
    pub(super) client: StorageServiceClient<Channel>,
    timeout: Duration,
    idle: Duration,
}

impl From<StorageServiceClient<Channel>> for StorageClient {
    /// A client over `client` (its message limit raised to [`MAX_MESSAGE`]) with the default
    /// deadlines.
    fn from(client: StorageServiceClient<Channel>) -> Self {
        Self {
            client: client.max_decoding_message_size(MAX_MESSAGE),
            timeout: DEFAULT_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl StorageClient {
    /// A client on `channel` with the default deadlines.
    pub fn new(channel: Channel) -> Self {
        StorageServiceClient::new(channel).into()
    }

    /// This client with a `timeout` for the short calls and an `idle` timeout between the
    /// chunks of a stream.
    pub fn with_timeouts(self, timeout: Duration, idle: Duration) -> Self {
        Self {
            timeout,
            idle,
            ..self
        }
    }

    /// The deadline of the short calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest pause between two chunks of a stream.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// An object's metadata.
    pub async fn stat(&self, id: ObjectId) -> Result<ObjectInfo, StorageError> {
        let span = call_span("stat", "Stat", Some(id));
        let request = traced(&span, wire::StatRequest { id: id.to_string() });
        let answered = async {
            let answer = within(self.timeout, self.client.clone().stat(request)).await?;
            checked(answer.into_inner().object)
        };
        ended(&span, answered.instrument(span.clone()).await)
    }

    /// Deletes an object; an object that does not exist is an error with
    /// [`StorageError::is_not_found`].
    pub async fn delete(&self, id: ObjectId) -> Result<(), StorageError> {
        let span = call_span("delete", "Delete", Some(id));
        let request = traced(&span, wire::DeleteRequest { id: id.to_string() });
        let answered = within(self.timeout, self.client.clone().delete(request))
            .instrument(span.clone())
            .await
            .map(drop)
            .map_err(StorageError::from);
        ended(&span, answered)
    }

    /// Opens a download of at most `length` bytes from `offset`: the object's metadata (the
    /// stream's first message, checked, within the short-call timeout) and its bytes, each
    /// chunk within the idle timeout. The chunks end with an error when storage sends anything
    /// but chunks, or fewer or more bytes than the range holds.
    pub async fn download(
        &self,
        id: ObjectId,
        offset: u64,
        length: Option<u64>,
    ) -> Result<(ObjectInfo, Chunks), StorageError> {
        let span = call_span("download", "Download", Some(id));
        let request = traced(
            &span,
            wire::DownloadRequest {
                id: id.to_string(),
                offset,
                length,
            },
        );
        let mut client = self.client.clone();
        let opened = within(self.timeout, async move {
            let mut stream = client.download(request).await?.into_inner();
            let Some(first) = stream.message().await? else {
                return Err(Violation::NoMetadata.into());
            };
            match first.part {
                Some(download_response::Part::Object(info)) => Ok((info, stream)),
                Some(download_response::Part::Chunk(_)) => {
                    Err(StorageError::from(Violation::DataBeforeMetadata))
                }
                None => Err(Violation::NoMetadata.into()),
            }
        })
        .instrument(span.clone())
        .await;
        let (info, mut stream) = ended(&span, opened)?;
        let info = ended(&span, checked(Some(info)))?;
        let (_, expected) = ended(
            &span,
            ByteRange { offset, length }
                .resolve(info.length)
                .map_err(|e| Violation::Invalid(e).into()),
        )?;
        let idle = self.idle;
        // The span lasts until the stream ends, with the bytes received.
        let chunks = async_stream::stream! {
            let mut received = 0u64;
            loop {
                match within(idle, stream.message()).await {
                    Err(status) => {
                        propagate::fail(&span, status.message());
                        yield Err(StorageError::Status(status));
                        break;
                    }
                    Ok(None) => {
                        span.record("storage.bytes", received);
                        if received < expected {
                            propagate::fail(&span, "short download");
                            yield Err(Violation::Short { received, expected }.into());
                        }
                        break;
                    }
                    Ok(Some(wire::DownloadResponse {
                        part: Some(download_response::Part::Chunk(bytes)),
                    })) => {
                        received += bytes.len() as u64;
                        if received > expected {
                            yield Err(Violation::Long { expected }.into());
                            break;
                        }
                        yield Ok(bytes);
                    }
                    Ok(Some(_)) => {
                        yield Err(Violation::NotAChunk.into());
                        break;
                    }
                }
            }
        };
        Ok((info, Box::pin(chunks)))
    }
}

/// The client span of one storage call (`storage upload`, `storage download`, ...): kind
/// client, the gRPC method, the object and, once known, the bytes moved.
pub(super) fn call_span(
    what: &'static str,
    method: &'static str,
    id: Option<ObjectId>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "storage call",
        otel.name = %format_args!("storage {what}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "wpsmesh.storage.v1.StorageService",
        rpc.method = method,
        storage.object_id = Empty,
        storage.bytes = Empty,
    );
    if let Some(id) = id {
        span.record("storage.object_id", id.to_string());
    }
    span
}

/// `message` as a request carrying `span`'s trace context in its metadata.
pub(super) fn traced<T>(span: &tracing::Span, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    propagate::inject_span(span, request.metadata_mut().as_mut());
    request
}

/// `result`, its error (if any) set as `span`'s error status.
pub(super) fn ended<T>(
    span: &tracing::Span,
    result: Result<T, StorageError>,
) -> Result<T, StorageError> {
    if let Err(e) = &result {
        propagate::fail(span, e.to_string());
    }
    result
}

/// Object metadata from an answer, checked.
pub(super) fn checked(object: Option<wire::ObjectInfo>) -> Result<ObjectInfo, StorageError> {
    let object = object.ok_or(Violation::NoObject)?;
    Ok(ObjectInfo::try_from(object).map_err(Violation::Invalid)?)
}

/// `call` given `deadline` to finish; [`deadline_missed`] when it does not.
pub async fn within<T, E: From<Status>>(
    deadline: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|elapsed| Err(deadline_missed(elapsed).into()))
}

/// The status of a storage deadline missed: `DEADLINE_EXCEEDED` with the elapsed timer as its
/// source, which the runtime's `Failure::of_status` reads as timed out.
pub fn deadline_missed(elapsed: tokio::time::error::Elapsed) -> Status {
    let mut status = Status::deadline_exceeded("storage did not answer in time");
    status.set_source(Arc::new(elapsed));
    status
}
