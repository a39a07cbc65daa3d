//! `PUT /api/file/upload`: the multipart field `file` streamed into `Storage.Upload` in chunks
//! of at most 1 MiB as it arrives. The upload stream ends cleanly only after the last byte; if
//! the edge gives up (too large, client gone) it ends with an empty message instead, which makes
//! storage abort, so nothing partial is ever stored. Storage gets the idle timeout to take each
//! chunk and to answer after the last one (a slow client is not storage's fault, and a large
//! file has no total deadline). The answer's `data.url` is the file's absolute retrieve URL,
//! usable as-is as an input href.

use std::time::Duration;

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info};
use wpsmesh_proto::storage::MAX_CHUNK;
use wpsmesh_proto::text::shown;
use wpsmesh_proto::wire::storage::v1::{ObjectInfo, UploadMetadata, UploadRequest, upload_request};

use super::storage::{deadline_missed, within};
use super::{FileError, Shared, Storage, object_data, retrieve_url, success};

/// Room for the multipart boundaries and part headers around the file.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// Bytes of form fields other than `file` accepted (and ignored).
const OTHER_FIELDS_MAX: u64 = 1024 * 1024;
/// After a 413 the rest of the request is read (and dropped) this long, so the client, still
/// sending, gets to read the answer instead of a reset connection.
const DRAIN_TIME: Duration = Duration::from_secs(5);

pub(super) async fn upload(
    State(state): Shared,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, FileError> {
    let max = state.max_upload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max.saturating_add(FORM_OVERHEAD + OTHER_FIELDS_MAX)) {
        return Err(FileError::too_large(max));
    }
    let mut multipart = multipart.map_err(|e| {
        FileError::bad_request(format!(
            "expected a multipart/form-data body with a field named file: {}",
            e.body_text().to_lowercase()
        ))
    })?;
    let mut other_bytes = 0u64;
    loop {
        let Some(mut field) = multipart.next_field().await.map_err(form_error)? else {
            return Err(FileError::bad_request("missing multipart field file"));
        };
        if field.name() != Some("file") {
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                other_bytes += chunk.len() as u64;
                if other_bytes > OTHER_FIELDS_MAX {
                    return Err(FileError::bad_request(
                        "form fields other than file are too large",
                    ));
                }
            }
            continue;
        }
        let name = field
            .file_name()
            .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned())
            .unwrap_or_default();
        let result = store(&state.storage, field, &name, max).await;
        if let Err(e) = &result
            && e.status == StatusCode::PAYLOAD_TOO_LARGE
        {
            // Read on so the client sees the 413 rather than a reset.
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Ok(Some(_)) = multipart.next_field().await {}
            })
            .await;
        }
        let object = result?;
        info!(object = %object.id, name = %shown(&name), length = object.length, "file uploaded");
        let mut data = object_data(&object);
        data["url"] = retrieve_url(&state.public_url, &object.id, &object.format).into();
        return Ok(success("file uploaded", data));
    }
}

/// Streams one field into storage; the stored object's metadata.
async fn store(
    storage: &Storage,
    field: Field<'_>,
    name: &str,
    max: u64,
) -> Result<ObjectInfo, FileError> {
    let (tx, rx) = mpsc::channel::<Option<UploadRequest>>(2);
    let metadata = UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            name: name.to_owned(),
            ..Default::default()
        })),
    };
    tx.send(Some(metadata))
        .await
        .map_err(|_| FileError::new(StatusCode::INTERNAL_SERVER_ERROR, "upload channel closed"))?;
    let mut client = storage.client();
    let call = client.upload(requests(rx));
    let pump = pump(field, tx, max, storage.idle());
    tokio::pin!(call, pump);
    let answer = tokio::select! {
        result = &mut pump => match result {
            Ok(total) => {
                debug!(name = %shown(name), bytes = total, "upload sent to storage");
                // Everything sent: storage has the idle timeout to answer.
                within(storage.idle(), call).await
            }
            // Storage stopped reading: its answer says why.
            Err(None) => within(storage.idle(), call).await,
            // Dropping `call` and the sender without the end mark aborts the upload.
            Err(Some(e)) => return Err(e),
        },
        result = &mut call => result,
    };
    let object = answer
        .map_err(|s| FileError::from_status(&s))?
        .into_inner()
        .object;
    object
        .ok_or_else(|| FileError::new(StatusCode::BAD_GATEWAY, "storage answered without metadata"))
}

/// The upload messages: what the pump sends, up to its end mark (`None`). A sender dropped
/// before the end mark means the edge gave up: an empty message follows, which storage refuses,
/// aborting the upload.
fn requests(
    mut rx: mpsc::Receiver<Option<UploadRequest>>,
) -> impl Stream<Item = UploadRequest> + Send + 'static {
    async_stream::stream! {
        loop {
            match rx.recv().await {
                Some(Some(message)) => yield message,
                Some(None) => break,
                None => {
                    yield UploadRequest { part: None };
                    break;
                }
            }
        }
    }
}

/// Reads the field and sends it in chunks of up to 1 MiB, then the end mark. `Err(None)` when
/// storage stopped reading; a 503 when it took none of a chunk for `idle`.
async fn pump(
    mut field: Field<'_>,
    tx: mpsc::Sender<Option<UploadRequest>>,
    max: u64,
    idle: Duration,
) -> Result<u64, Option<FileError>> {
    let send = |message: Option<UploadRequest>| {
        let tx = tx.clone();
        async move {
            match tokio::time::timeout(idle, tx.send(message)).await {
                Ok(sent) => sent.map_err(|_| None::<FileError>),
                Err(elapsed) => Err(Some(FileError::from_status(&deadline_missed(elapsed)))),
            }
        }
    };
    let chunk = |bytes: Bytes| {
        Some(UploadRequest {
            part: Some(upload_request::Part::Chunk(bytes)),
        })
    };
    let mut total = 0u64;
    let mut buf = BytesMut::new();
    while let Some(bytes) = field.chunk().await.map_err(|e| Some(form_error(e)))? {
        total += bytes.len() as u64;
        if total > max {
            return Err(Some(FileError::too_large(max)));
        }
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
    send(None).await?;
    Ok(total)
}

/// A broken or malformed form.
fn form_error(e: MultipartError) -> FileError {
    let status = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    FileError::new(
        status,
        format!("invalid multipart form: {}", e.body_text().to_lowercase()),
    )
}
