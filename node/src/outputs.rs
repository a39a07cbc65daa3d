//! Job outputs: files written by a worker are streamed to the storage service and returned as
//! references (or inline when asked and small); literals pass through.

use std::path::Path;

use wpsmesh_proto::process::{ComplexValue, LiteralValue, Output, OutputValue, StoredFile};
use wpsmesh_proto::storage::client::{StorageClient, StorageError, UploadError, Violation};
use wpsmesh_proto::storage::{Durability, ObjectId, ObjectInfo};

use crate::dependency::{self, Failure};
use crate::error::NodeError;
use crate::pool::{JobOutput, OutputValue as WorkerOutput};

/// The node's storage client (typed, with deadlines; cheap to clone).
pub type Storage = StorageClient;

/// Streams a file to storage in chunks of at most 1 MiB, its length declared; returns the
/// stored object. Outputs can be computed again, so storage acknowledges them once committed,
/// before they reach the disk ([`Durability::Buffered`]): no flush on the request's path.
pub async fn store_file(
    storage: &Storage,
    path: &Path,
    name: &str,
) -> Result<ObjectInfo, NodeError> {
    storage
        .upload_file(path, name, Durability::Buffered)
        .await
        .map_err(|e| match e {
            UploadError::Source(e) => NodeError::from(e),
            UploadError::Storage(StorageError::Violation(Violation::NoObject)) => {
                NodeError::storage(&tonic::Status::internal("storage returned no object"))
            }
            UploadError::Storage(e) => NodeError::storage(&e.into()),
        })
}

/// Turns a worker's outputs into results: files stored (or inlined when `inline` names them and
/// they are at most `max_inline` bytes), literals as they are.
pub async fn publish(
    storage: &Storage,
    outputs: Vec<JobOutput>,
    inline: &[String],
    max_inline: u64,
) -> Result<Vec<Output>, NodeError> {
    let mut published = Vec::with_capacity(outputs.len());
    for out in outputs {
        let value = match out.value {
            WorkerOutput::Literal(text) => OutputValue::Literal(LiteralValue::plain(text)),
            WorkerOutput::File { path, format } => {
                let size = tokio::fs::metadata(&path).await?.len();
                if inline.contains(&out.id) && size <= max_inline {
                    OutputValue::Inline(ComplexValue {
                        format: Some(format),
                        data: tokio::fs::read(&path).await?.into(),
                    })
                } else {
                    let ext = path
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format.extension.clone());
                    let info = store_file(storage, &path, &format!("{}.{ext}", out.id)).await?;
                    OutputValue::Stored(StoredFile {
                        id: info.id,
                        format,
                        size: info.length,
                    })
                }
            }
        };
        published.push(Output { id: out.id, value });
    }
    Ok(published)
}

/// Deletes stored objects (best effort: failures are logged, missing objects ignored).
pub async fn delete(storage: &Storage, ids: Vec<ObjectId>) {
    for id in ids {
        if let Err(e) = storage.delete(id).await
            && !e.is_not_found()
        {
            let error = Failure::of(&e.into()).message(dependency::STORAGE);
            tracing::warn!(object = %id, %error, "cannot delete job output");
        }
    }
}
