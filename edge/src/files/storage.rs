//! The edge's storage client, shared by the file API and WPS raw outputs: the typed
//! [`StorageClient`] of `wpsmesh-proto` with the edge's deadlines (see there: the short calls
//! the storage timeout, the streams at most the idle timeout between two chunks and no total; a
//! deadline missed is a DEADLINE_EXCEEDED status that [`Failure`] reads as `timed out`), and
//! the edge's reading of its failures.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::warn;
use wpsmesh_proto::storage::client::{StorageClient, StorageError, Violation};
use wpsmesh_proto::storage::{InvalidMessage, ObjectId, ObjectInfo};
use wpsmesh_proto::text;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_runtime::failure::Failure;

use crate::encoding::Identity;
use crate::ows::OwsError;

pub use wpsmesh_proto::storage::client::{DEFAULT_IDLE_TIMEOUT, DEFAULT_TIMEOUT};

/// A storage client with its deadlines; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    client: StorageClient,
}

impl From<StorageServiceClient<Channel>> for Storage {
    /// A client with the default deadlines.
    fn from(client: StorageServiceClient<Channel>) -> Self {
        Self::from(StorageClient::from(client))
    }
}

impl From<StorageClient> for Storage {
    fn from(client: StorageClient) -> Self {
        Self { client }
    }
}

impl Storage {
    /// `client` (its message limit raised for 1 MiB chunks) with a `timeout` for short calls
    /// and an `idle` timeout between the chunks of a stream.
    pub fn new(client: StorageServiceClient<Channel>, timeout: Duration, idle: Duration) -> Self {
        StorageClient::from(client)
            .with_timeouts(timeout, idle)
            .into()
    }

    /// The typed client (uploads, stat, delete).
    pub(crate) fn client(&self) -> &StorageClient {
        &self.client
    }

    /// Opens a download: the object's metadata (the stream's first message, within the short
    /// deadline) and its bytes as a stream for an HTTP body, each chunk within the idle timeout.
    pub(crate) async fn download(
        &self,
        id: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<
        (
            ObjectInfo,
            impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>,
        ),
        Status,
    > {
        let id: ObjectId = id.parse().map_err(|e: InvalidMessage| Status::from(e))?;
        let (info, chunks) = self.client.download(id, offset, length).await?;
        let body = chunks.map(move |chunk| {
            chunk.map_err(|e| {
                let reason = match &e {
                    StorageError::Status(status) => Failure::of_status(status).map_or_else(
                        || text::one_line(&text::shown(status.message())),
                        |f| f.reason().to_owned(),
                    ),
                    StorageError::Violation(Violation::NotAChunk) => {
                        return std::io::Error::other("storage sent a second metadata message");
                    }
                    StorageError::Violation(v) => v.to_string(),
                };
                warn!(object = %id, error = %reason, "download broke off");
                std::io::Error::other(format!("file storage failed: {reason}"))
            })
        });
        Ok((info, body))
    }

    /// 200 with stored object `id` streamed as storage sends it (a raw output): `media` as its
    /// Content-Type (storage's own when empty), and its Content-Length.
    pub(crate) async fn object_response(
        &self,
        id: &str,
        media: &str,
    ) -> Result<Response, OwsError> {
        let (info, body) = self
            .download(id, 0, None)
            .await
            .map_err(|s| OwsError::from_storage_status(&s))?;
        let media = if media.is_empty() {
            info.content_type.as_str()
        } else {
            media
        };
        let mut response = typed(media, Body::from_stream(body));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(info.length));
        Ok(response)
    }
}

/// 200 with `body` as `media` (`application/octet-stream` when that is empty or no valid
/// header value): content itself (a file, a raw output), never compressed.
pub(crate) fn typed(media: &str, body: impl Into<Body>) -> Response {
    let mut response = (StatusCode::OK, body.into()).into_response();
    let media = HeaderValue::from_str(media)
        .ok()
        .filter(|_| !media.is_empty())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, media);
    Identity::mark(response)
}

/// The one-line text of an edge's storage call that failed for want of storage, e.g. `file
/// storage is unavailable: connection refused`: it could not be reached or kept silent (a
/// transport failure), or it said it is unavailable (its own backend down). `None` for its
/// other answers (not found, invalid).
pub fn storage_unavailable(status: &Status) -> Option<String> {
    let reason = match Failure::of_status(status) {
        Some(failure) => failure.reason().to_owned(),
        None if status.code() == Code::Unavailable => {
            text::one_line(&text::shown(status.message()))
        }
        None => return None,
    };
    Some(format!("file storage is unavailable: {reason}"))
}
