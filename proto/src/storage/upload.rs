//! Uploads through the typed storage client: a body of any chunking re-cut into chunks of at
//! most [`MAX_CHUNK`], each taken by storage within the idle timeout, and an upload given up
//! (failed body, dropped future) ending with the empty message that makes storage abort it.

use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument;

use super::client::{
    StorageClient, StorageError, call_span, checked, deadline_missed, ended, traced, within,
};
use super::{Durability, MAX_CHUNK, ObjectInfo};
use crate::wire::storage::v1 as wire;
use crate::wire::storage::v1::upload_request;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError<E> {
    /// The bytes to upload could not be read (or their reader gave up, e.g. over a size
    /// limit); the upload was aborted and nothing is stored.
    #[error("{0}")]
    Source(E),
    /// Storage failed or refused the upload.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl StorageClient {
    /// Uploads `body` as a file called `name` (metadata only, never a path), of `length` bytes
    /// when declared (storage refuses a body of another length), in chunks of at most
    /// [`MAX_CHUNK`] however `body` cuts its bytes. Storage gets the idle timeout to take each
    /// chunk and to answer after the last one; no total deadline. The upload stream ends
    /// cleanly only after the last byte: when `body` fails (or the returned future is dropped)
    /// the stream ends with an empty message instead, which makes storage abort, so nothing
    /// partial is ever stored. Must be called within a Tokio runtime (the call runs on a task).
    /// Acknowledged once on disk ([`Durability::Synced`]).
    pub async fn upload<S, E>(
        &self,
        name: &str,
        length: Option<u64>,
        body: S,
    ) -> Result<ObjectInfo, UploadError<E>>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        self.upload_as(name, length, Durability::Synced, body).await
    }

    /// [`StorageClient::upload`] acknowledged as `durability` says.
    pub async fn upload_as<S, E>(
        &self,
        name: &str,
        length: Option<u64>,
        durability: Durability,
        body: S,
    ) -> Result<ObjectInfo, UploadError<E>>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let (tx, rx) = mpsc::channel::<Option<wire::UploadRequest>>(2);
        let metadata = wire::UploadRequest {
            part: Some(upload_request::Part::Metadata(wire::UploadMetadata {
                name: name.to_owned(),
                length,
                durability: wire::Durability::from(durability).into(),
                ..Default::default()
            })),
        };
        // A fresh channel has room for the first message.
        let _ = tx.try_send(Some(metadata));
        // The call runs on a task of its own, so that it outlives this future: given up or
        // dropped, the sender goes without the end mark and the call still sends the empty
        // message that aborts the upload. (A call merely cancelled resets its stream, which the
        // server side of hyper reads as a clean end: storage would keep what it got.)
        let span = call_span("upload", "Upload", None);
        let mut client = self.client.clone();
        let request = traced(&span, requests(rx));
        let task =
            tokio::spawn(async move { client.upload(request).await }.instrument(span.clone()));
        let call = async {
            task.await
                .unwrap_or_else(|e| Err(Status::internal(format!("upload task failed: {e}"))))
        };
        let pump = pump(body, tx, self.idle()).instrument(span.clone());
        tokio::pin!(call, pump);
        let answer = tokio::select! {
            result = &mut pump => match result {
                // Everything sent, or storage stopped reading (its answer says why): storage
                // has the idle timeout to answer.
                Ok(()) | Err(Stop::Closed) => within(self.idle(), call).await,
                Err(Stop::Source(e)) => return Err(UploadError::Source(e)),
                Err(Stop::Stalled(elapsed)) => {
                    return Err(StorageError::Status(deadline_missed(elapsed)).into());
                }
            },
            result = &mut call => result,
        };
        let answer = ended(&span, answer.map_err(StorageError::Status))?;
        let info = ended(&span, checked(answer.into_inner().object))?;
        span.record("storage.object_id", info.id.to_string());
        span.record("storage.bytes", info.length);
        Ok(info)
    }

    /// Uploads the file at `path` as `name`, its length declared: a file that changes length
    /// while read is refused by storage; acknowledged as `durability` says.
    pub async fn upload_file(
        &self,
        path: &Path,
        name: &str,
        durability: Durability,
    ) -> Result<ObjectInfo, UploadError<std::io::Error>> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(UploadError::Source)?;
        let length = file.metadata().await.map_err(UploadError::Source)?.len();
        let body = async_stream::stream! {
            loop {
                let mut buf = BytesMut::with_capacity(MAX_CHUNK);
                // Whole chunks, so they pass on without a copy.
                let filled = loop {
                    match (&mut file).take((MAX_CHUNK - buf.len()) as u64).read_buf(&mut buf).await {
                        Ok(0) => break Ok(buf.len()),
                        Ok(_) if buf.len() == MAX_CHUNK => break Ok(MAX_CHUNK),
                        Ok(_) => {}
                        Err(e) => break Err(e),
                    }
                };
                match filled {
                    Ok(0) => break,
                    Ok(n) => {
                        yield Ok(buf.freeze());
                        if n < MAX_CHUNK {
                            break;
                        }
                    }
                    Err(e) => {
                        yield Err(e);
                        break;
                    }
                }
            }
        };
        self.upload_as(name, Some(length), durability, body).await
    }
}

/// Why the pump stopped before the end mark.
enum Stop<E> {
    /// The body failed.
    Source(E),
    /// Storage stopped reading the upload stream.
    Closed,
    /// Storage took none of a chunk for the idle timeout.
    Stalled(tokio::time::error::Elapsed),
}

/// The upload messages: what the pump sends, up to its end mark (`None`). A sender dropped
/// before the end mark means the upload was given up: an empty message follows, which storage
/// refuses, aborting the upload.
fn requests(
    mut rx: mpsc::Receiver<Option<wire::UploadRequest>>,
) -> impl Stream<Item = wire::UploadRequest> + Send + 'static {
    async_stream::stream! {
        loop {
            match rx.recv().await {
                Some(Some(message)) => yield message,
                Some(None) => break,
                None => {
                    yield wire::UploadRequest { part: None };
                    break;
                }
            }
        }
    }
}

/// Reads `body` and sends it in chunks of at most [`MAX_CHUNK`], then the end mark.
async fn pump<S, E>(
    body: S,
    tx: mpsc::Sender<Option<wire::UploadRequest>>,
    idle: Duration,
) -> Result<(), Stop<E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    use futures::StreamExt;

    let send = |message: Option<wire::UploadRequest>| {
        let tx = tx.clone();
        async move {
            match tokio::time::timeout(idle, tx.send(message)).await {
                Ok(sent) => sent.map_err(|_| Stop::Closed),
                Err(elapsed) => Err(Stop::Stalled(elapsed)),
            }
        }
    };
    let chunk = |bytes: Bytes| {
        Some(wire::UploadRequest {
            part: Some(upload_request::Part::Chunk(bytes)),
        })
    };
    tokio::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(bytes) = body.next().await {
        let bytes = bytes.map_err(Stop::Source)?;
        if buf.is_empty() && bytes.len() == MAX_CHUNK {
            send(chunk(bytes)).await?;
            continue;
        }
        buf.extend_from_slice(&bytes);
        while buf.len() >= MAX_CHUNK {
            send(chunk(buf.split_to(MAX_CHUNK).freeze())).await?;
        }
    }
    if !buf.is_empty() {
        send(chunk(buf.freeze())).await?;
    }
    send(None).await
}
