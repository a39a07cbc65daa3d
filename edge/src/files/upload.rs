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
use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use tracing::{debug, info};
use wpsmesh_proto::storage::ObjectInfo;
use wpsmesh_proto::storage::client::UploadError;
use wpsmesh_proto::text::shown;

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
        data["url"] = retrieve_url(&state.public_url, object.id.as_str(), &object.format).into();
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
    storage
        .client()
        .upload(name, None, limited(field, max))
        .await
        .map_err(|e| match e {
            UploadError::Source(e) => e,
            UploadError::Storage(e) => FileError::from_storage(&e),
        })
}

/// The field's bytes, failing with a 413 past `max` bytes (which aborts the upload).
fn limited(mut field: Field<'_>, max: u64) -> impl Stream<Item = Result<Bytes, FileError>> + '_ {
    async_stream::stream! {
        let mut total = 0u64;
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => {
                    total += bytes.len() as u64;
                    if total > max {
                        yield Err(FileError::too_large(max));
                        break;
                    }
                    yield Ok(bytes);
                }
                Ok(None) => {
                    debug!(bytes = total, "upload read");
                    break;
                }
                Err(e) => {
                    yield Err(form_error(e));
                    break;
                }
            }
        }
    }
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
