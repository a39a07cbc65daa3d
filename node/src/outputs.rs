//! Job outputs: files written by a worker are streamed to the storage service and returned as
//! references (or inline when asked and small); literals pass through.

use std::path::Path;

use wpsmesh_proto::process::{ComplexValue, Format, LiteralValue, Output, OutputValue, StoredFile};
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

/// A job's results: the published outputs, and the one file output to stream, when asked.
#[derive(Debug, Default)]
pub struct Published {
    pub outputs: Vec<Output>,
    pub streamed: Option<Streamed>,
}

/// A file output handed to its client as a stream: opened before the job's directory goes
/// (an open file outlives its name), neither stored nor read into memory.
#[derive(Debug)]
pub struct Streamed {
    pub id: String,
    pub format: Format,
    pub size: u64,
    pub file: tokio::fs::File,
}

/// How the outputs of a run are to be returned.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Outputs asked for inline (stored instead when over `max_inline` bytes).
    pub inline: Vec<String>,
    pub max_inline: u64,
    /// The output to stream (a file output is opened, not stored).
    pub stream: Option<String>,
}

/// Turns a worker's outputs into results: the streamed output opened, files stored (or
/// inlined when asked and at most `max_inline` bytes), literals as they are.
pub async fn publish(
    storage: &Storage,
    outputs: Vec<JobOutput>,
    delivery: &Delivery,
) -> Result<Published, NodeError> {
    let mut published = Published {
        outputs: Vec::with_capacity(outputs.len()),
        streamed: None,
    };
    for out in outputs {
        let value = match out.value {
            WorkerOutput::Literal(text) => OutputValue::Literal(LiteralValue::plain(text)),
            WorkerOutput::File { path, format } if delivery.stream.as_ref() == Some(&out.id) => {
                let file = tokio::fs::File::open(&path).await?;
                let size = file.metadata().await?.len();
                published.streamed = Some(Streamed {
                    id: out.id,
                    format,
                    size,
                    file,
                });
                continue;
            }
            WorkerOutput::File { path, format } => {
                // A stat of the job's own file: in place, like the job folder's entries.
                let size = std::fs::metadata(&path)?.len();
                if delivery.inline.contains(&out.id) && size <= delivery.max_inline {
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
        published.outputs.push(Output { id: out.id, value });
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
