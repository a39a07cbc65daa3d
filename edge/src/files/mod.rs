//! The file API of the original service over the storage service: upload (multipart, streamed
//! into `Storage.Upload`), find, delete and retrieve (streamed from `Storage.Download`, with
//! Range). Answers and errors are the original JSON shapes, error messages one bounded line.

mod range;
mod retrieve;
pub(crate) mod storage;
mod upload;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde_json::{Value, json};
use tonic::Code;
use tracing::{info, warn};
use wpsmesh_proto::storage::client::{StorageError, Violation};
use wpsmesh_proto::storage::{ObjectId, ObjectInfo};
use wpsmesh_proto::text;

pub(crate) use storage::typed;
pub use storage::{DEFAULT_IDLE_TIMEOUT, DEFAULT_TIMEOUT, Storage};

/// What the file handlers share.
#[derive(Debug, Clone)]
pub struct FilesState {
    pub storage: Storage,
    /// Largest file accepted by an upload, in bytes; larger ones get 413 and nothing is stored.
    pub max_upload: u64,
    /// The URL clients reach the edge at; upload answers give the file's retrieve URL under it.
    pub public_url: String,
}

impl FilesState {
    /// State over a storage client (a bare client gets the default deadlines), for an edge
    /// reachable at `public_url`.
    pub fn new(storage: impl Into<Storage>, max_upload: u64, public_url: &str) -> Self {
        Self {
            storage: storage.into(),
            max_upload,
            public_url: public_url.to_owned(),
        }
    }
}

pub use wpsmesh_proto::storage::retrieve_url;

/// `PUT /api/file/upload` (POST too), `GET /api/file/find/{id}`, `DELETE /api/file/delete/{id}`
/// and `GET /api/file/retrieve/{id}.{ext}`.
pub fn router(state: FilesState) -> Router {
    Router::new()
        .route(
            "/api/file/upload",
            put(upload::upload)
                .post(upload::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/file/find/{id}", get(find))
        .route("/api/file/delete/{id}", delete(remove))
        .route("/api/file/retrieve/{file}", get(retrieve::retrieve))
        .with_state(Arc::new(state))
}

type Shared = State<Arc<FilesState>>;

/// An error of the file API: `{"success": false, "message": ...}` with its HTTP status.
#[derive(Debug)]
pub(crate) struct FileError {
    status: StatusCode,
    message: String,
    close: bool,
}

impl FileError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: text::one_line(&message.into()),
            close: false,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An upload over `limit` bytes; the connection is closed after the answer.
    pub(crate) fn too_large(limit: u64) -> Self {
        Self {
            close: true,
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("file exceeds the maximum upload size of {limit} bytes"),
            )
        }
    }

    /// Maps a storage status. Storage out of reach, silent past its deadline or saying it is
    /// unavailable is 503 with one line (`file storage is unavailable: connection refused`).
    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        if let Some(message) = crate::files::storage::storage_unavailable(status) {
            warn!(error = %message, "storage call failed");
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, message);
        }
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = text::one_line(&text::shown(status.message()));
        if http.is_server_error() {
            warn!(code = ?status.code(), error = %message, "storage call failed");
        }
        match http {
            StatusCode::INTERNAL_SERVER_ERROR => {
                Self::new(http, format!("file storage failed: {message}"))
            }
            _ => Self::new(http, message),
        }
    }

    /// Maps a storage failure: a status as [`FileError::from_status`]; storage answering
    /// without the object's metadata (or with metadata that does not check) is 502, another
    /// breach of the contract a 500.
    pub(crate) fn from_storage(e: &StorageError) -> Self {
        match e {
            StorageError::Status(status) => Self::from_status(status),
            StorageError::Violation(Violation::NoObject) => {
                Self::new(StatusCode::BAD_GATEWAY, "storage answered without metadata")
            }
            StorageError::Violation(Violation::Invalid(invalid)) => {
                warn!(error = %invalid, "storage answered with invalid metadata");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    format!("storage answered with invalid metadata: {invalid}"),
                )
            }
            StorageError::Violation(v) => {
                warn!(error = %v, "storage call failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("file storage failed: {v}"),
                )
            }
        }
    }
}

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"success": false, "message": self.message})),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A successful answer: `{"message": ..., "success": true, "data": ...}`.
pub(crate) fn success(message: &str, data: Value) -> Json<Value> {
    Json(json!({"message": message, "success": true, "data": data}))
}

/// An object's metadata in the original `data` shape.
pub(crate) fn object_data(o: &ObjectInfo) -> Value {
    json!({
        "name": o.id.as_str(),
        "format": o.format,
        "length": o.length,
        "objectName": o.object_name,
        "etag": o.etag,
    })
}

/// The file named in the path; a JSON 400 when it is no UTF-8 once percent-decoded.
pub(crate) fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, FileError> {
    path.map(|Path(param)| param).map_err(|e| {
        FileError::bad_request(format!("invalid path: {}", e.body_text().to_lowercase()))
    })
}

pub(crate) fn parse_id(text: &str) -> Result<ObjectId, FileError> {
    text.parse()
        .map_err(|e: wpsmesh_proto::storage::InvalidMessage| FileError::bad_request(e.0))
}

/// `GET /api/file/find/{id}`: the object's metadata.
async fn find(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, FileError> {
    let id = parse_id(&path_param(path)?)?;
    let object = state
        .storage
        .client()
        .stat(id)
        .await
        .map_err(|e| FileError::from_storage(&e))?;
    Ok(success("file found", object_data(&object)))
}

/// `DELETE /api/file/delete/{id}`.
async fn remove(
    State(state): Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, FileError> {
    let id = parse_id(&path_param(path)?)?;
    state
        .storage
        .client()
        .delete(id)
        .await
        .map_err(|e| FileError::from_storage(&e))?;
    info!(object = %id, "file deleted");
    Ok(success("file deleted", Value::Null))
}
