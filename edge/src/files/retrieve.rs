//! `GET /api/file/retrieve/{id}.{ext}`: the object streamed from `Storage.Download` with its
//! Content-Type, Content-Length and Range support (206, 416); never held in memory.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wpsmesh_proto::media::content_type_for;
use wpsmesh_proto::storage::ObjectInfo;
use wpsmesh_proto::storage::client::{StorageError, Violation};

use super::range::RangeSpec;
use super::{FileError, Shared, parse_id, path_param};
use crate::encoding::Identity;

pub(super) async fn retrieve(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, FileError> {
    let file = path_param(path)?;
    let (id, ext) = match file.split_once('.') {
        Some((id, ext)) => (id, Some(ext)),
        None => (file.as_str(), None),
    };
    let id = parse_id(id)?;
    let storage = &state.storage;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(RangeSpec::parse);

    // A range needs the length first (suffix ranges, 416); a whole file does not.
    let (offset, length) = match range {
        None => (0, None),
        Some(spec) => {
            let info = storage.client().stat(id).await.map_err(|e| match e {
                StorageError::Violation(Violation::NoObject) => missing_metadata(),
                e => FileError::from_storage(&e),
            })?;
            check_extension(&info, ext)?;
            match spec.resolve(info.length) {
                Some((offset, length)) => (offset, Some(length)),
                None => return Ok(unsatisfiable(info.length)),
            }
        }
    };

    let (info, body) = storage
        .download(&id.to_string(), offset, length)
        .await
        .map_err(|s| FileError::from_status(&s))?;
    check_extension(&info, ext)?;
    let total = info.length;
    let sent = length.unwrap_or(total.saturating_sub(offset));

    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(&info));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let last = (offset + sent).saturating_sub(1);
        let value = format!("bytes {offset}-{last}/{total}");
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    // The file's own bytes: never compressed, so ranges and lengths stay the file's.
    Ok(Identity::mark(response))
}

fn missing_metadata() -> FileError {
    FileError::new(
        StatusCode::BAD_GATEWAY,
        "storage answered without the object's metadata",
    )
}

/// `{id}.{ext}` must name the stored format: another extension is another (missing) file.
fn check_extension(info: &ObjectInfo, ext: Option<&str>) -> Result<(), FileError> {
    match ext {
        Some(ext) if !info.format.is_empty() && !ext.eq_ignore_ascii_case(&info.format) => {
            Err(FileError::new(
                StatusCode::NOT_FOUND,
                format!("object {}.{ext} not found", info.id),
            ))
        }
        _ => Ok(()),
    }
}

/// The MIME type of the object's format; the stored one for formats wpsmesh does not know.
fn content_type(info: &ObjectInfo) -> HeaderValue {
    let known = content_type_for(&info.format);
    let chosen = if known == "application/octet-stream" && !info.content_type.is_empty() {
        info.content_type.as_str()
    } else {
        known
    };
    HeaderValue::from_str(chosen).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// 416 with the object's length, as RFC 9110 asks.
fn unsatisfiable(total: u64) -> Response {
    let mut response = FileError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("range not satisfiable for an object of {total} bytes"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    response
}
