//! The tonic `StorageService`: checks every wire message on receipt, then hands typed values to
//! the backend.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};
use wpsmesh_proto::storage::{DownloadSpec, InvalidMessage, MAX_CHUNK, NewObject, ObjectId};
use wpsmesh_proto::wire::storage::v1::{
    self as wire, download_response, storage_service_server, upload_request,
};
use wpsmesh_telemetry::metrics::Registry;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::Counter;

use crate::backend::{Backend, ChunkStream};
use crate::config::Config;
use crate::error::StorageError;

/// Serves `wpsmesh.storage.v1.StorageService` over a backend.
pub struct StorageService {
    backend: Backend,
    max_object_size: u64,
    /// Bytes of objects stored.
    received: Counter,
    /// Bytes of objects sent to readers.
    sent: Counter,
}

impl StorageService {
    pub fn new(backend: Backend, config: &Config) -> Self {
        Self {
            backend,
            max_object_size: config.max_object_size,
            received: Counter::default(),
            sent: Counter::default(),
        }
    }

    /// Registers the byte counts (`wpsmesh_storage_received_bytes_total`, `..._sent_bytes_total`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "wpsmesh_storage_received_bytes",
            "Bytes of objects stored (uploads that completed)",
            self.received.clone(),
        );
        registry.register(
            "wpsmesh_storage_sent_bytes",
            "Bytes of object content sent to readers",
            self.sent.clone(),
        );
    }
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

/// The chunks that follow the metadata message, checked as they arrive: at most `MAX_CHUNK`
/// each, no second metadata message, no more than `limit` bytes in all, and exactly the
/// declared length when one was given.
fn checked_chunks(
    mut messages: Streaming<wire::UploadRequest>,
    limit: u64,
    declared: Option<u64>,
) -> ChunkStream {
    async_stream::try_stream! {
        let mut received = 0u64;
        loop {
            let message = messages.message().await.map_err(|s| {
                tracing::debug!(error = %s.message(), "upload stream broke off");
                StorageError::Stream(s)
            })?;
            let Some(message) = message else { break };
            let chunk = match message.part {
                Some(upload_request::Part::Chunk(chunk)) => chunk,
                Some(upload_request::Part::Metadata(_)) => Err(InvalidMessage(
                    "metadata message after the first message of the upload".into(),
                ))?,
                None => Err(InvalidMessage("upload message with neither metadata nor chunk".into()))?,
            };
            if chunk.len() > MAX_CHUNK {
                Err(InvalidMessage(format!(
                    "chunk of {} bytes exceeds the maximum of {MAX_CHUNK} bytes",
                    chunk.len()
                )))?;
            }
            received += chunk.len() as u64;
            if received > limit {
                Err(StorageError::TooLarge { limit })?;
            }
            if let Some(declared) = declared.filter(|d| received > *d) {
                Err(StorageError::LengthMismatch { declared, received })?;
            }
            yield chunk;
        }
        if let Some(declared) = declared.filter(|d| received != *d) {
            Err(StorageError::LengthMismatch { declared, received })?;
        }
    }
    .boxed()
}

/// Re-cuts a byte stream into messages of at most `MAX_CHUNK` bytes, merging small pieces
/// (S3 bodies arrive in a few KiB at a time) so each gRPC message carries a useful amount.
fn rechunk(body: ChunkStream) -> impl Stream<Item = Result<Bytes, StorageError>> + Send {
    const TARGET: usize = 512 * 1024;
    async_stream::try_stream! {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(piece) = body.next().await {
            let mut piece = piece?;
            if buf.is_empty() && piece.len() >= TARGET {
                while piece.len() > MAX_CHUNK {
                    yield piece.split_to(MAX_CHUNK);
                }
                yield piece;
                continue;
            }
            buf.extend_from_slice(&piece);
            while buf.len() >= TARGET {
                let take = buf.len().min(MAX_CHUNK);
                yield buf.split_to(take).freeze();
            }
        }
        if !buf.is_empty() {
            yield buf.freeze();
        }
    }
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<wire::DownloadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl storage_service_server::StorageService for StorageService {
    async fn upload(
        &self,
        request: Request<Streaming<wire::UploadRequest>>,
    ) -> Result<Response<wire::UploadResponse>, Status> {
        let mut messages = request.into_inner();
        let first = messages
            .message()
            .await?
            .ok_or_else(|| invalid("empty upload: the first message must carry metadata"))?;
        let meta = match first.part {
            Some(upload_request::Part::Metadata(m)) => {
                NewObject::try_from(m).map_err(StorageError::from)?
            }
            Some(upload_request::Part::Chunk(_)) => {
                return Err(invalid(
                    "upload started with a chunk: the first message must carry metadata",
                ));
            }
            None => return Err(invalid("upload started with an empty message")),
        };
        if let Some(len) = meta.length.filter(|l| *l > self.max_object_size) {
            warn!(
                declared = len,
                limit = self.max_object_size,
                "upload refused: too large"
            );
            return Err(StorageError::TooLarge {
                limit: self.max_object_size,
            }
            .into());
        }
        let id = ObjectId::random();
        let chunks = checked_chunks(messages, self.max_object_size, meta.length);
        match self.backend.put(id, &meta, chunks).await {
            Ok(info) => {
                self.received.inc_by(info.length);
                info!(%id, length = info.length, format = %info.format, "object stored");
                Ok(Response::new(wire::UploadResponse {
                    object: Some(info.into()),
                }))
            }
            Err(e) => {
                warn!(%id, error = %e, "upload failed");
                Err(e.into())
            }
        }
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        request: Request<wire::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let spec = DownloadSpec::try_from(request.into_inner()).map_err(StorageError::from)?;
        let (info, body) = self.backend.get(spec.id, spec.range).await?;
        let head = wire::DownloadResponse {
            part: Some(download_response::Part::Object(info.into())),
        };
        let id = spec.id;
        let sent = self.sent.clone();
        let chunks = rechunk(body).map(move |r| match r {
            Ok(chunk) => {
                sent.inc_by(chunk.len() as u64);
                Ok(wire::DownloadResponse {
                    part: Some(download_response::Part::Chunk(chunk)),
                })
            }
            Err(e) => {
                warn!(%id, error = %e, "download failed mid-stream");
                Err(Status::from(e))
            }
        });
        let stream = futures::stream::once(async { Ok(head) }).chain(chunks);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stat(
        &self,
        request: Request<wire::StatRequest>,
    ) -> Result<Response<wire::StatResponse>, Status> {
        let id: ObjectId = request
            .into_inner()
            .id
            .parse()
            .map_err(StorageError::from)?;
        let info = self.backend.stat(id).await?;
        Ok(Response::new(wire::StatResponse {
            object: Some(info.into()),
        }))
    }

    async fn delete(
        &self,
        request: Request<wire::DeleteRequest>,
    ) -> Result<Response<wire::DeleteResponse>, Status> {
        let id: ObjectId = request
            .into_inner()
            .id
            .parse()
            .map_err(StorageError::from)?;
        self.backend.delete(id).await?;
        info!(%id, "object deleted");
        Ok(Response::new(wire::DeleteResponse {}))
    }
}
