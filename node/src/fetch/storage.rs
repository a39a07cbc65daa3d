//! Stored objects given as inputs (the edge turned hrefs to its own file API into them), read
//! from the storage service over gRPC and never over HTTP.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use wpsmesh_proto::storage::client::{StorageClient, StorageError, Violation};
use wpsmesh_proto::storage::{ObjectId, ObjectInfo};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;

use super::FetchError;
use super::sink::{Sink, SinkError};
use crate::dependency::{Failure, STORAGE};

/// What [`download`] needs besides the object id.
pub(crate) struct Target<'a> {
    pub input: &'a str,
    pub href: &'a str,
    pub dest_dir: &'a Path,
    /// The extension to use; the object's own format when `None`.
    pub ext: Option<String>,
    pub max_bytes: u64,
}

/// Streams object `id` into a fresh file in `t.dest_dir` with the typed storage client (its
/// default deadlines, within the caller's total): the first message must be the object's
/// metadata (its length is checked against the limit at once), then exactly its bytes.
pub(crate) async fn download(
    client: StorageServiceClient<Channel>,
    id: ObjectId,
    t: Target<'_>,
) -> Result<(PathBuf, ObjectInfo), FetchError> {
    let storage_error = |e: StorageError| match e {
        StorageError::Status(status) => match Failure::of(&status) {
            Failure::Answered(Code::NotFound, _) => FetchError::NotFound {
                input: t.input.to_owned(),
                id: id.to_string(),
            },
            failure => FetchError::Storage {
                input: t.input.to_owned(),
                id: id.to_string(),
                code: failure.code(),
                message: failure.message(STORAGE),
            },
        },
        StorageError::Violation(v) => FetchError::Storage {
            input: t.input.to_owned(),
            id: id.to_string(),
            code: Code::Internal,
            message: match v {
                Violation::NoMetadata | Violation::DataBeforeMetadata => {
                    "the download stream did not start with the object's metadata".to_owned()
                }
                Violation::Invalid(e) => e.0,
                v => v.to_string(),
            },
        },
    };
    let too_large = || FetchError::TooLarge {
        input: t.input.to_owned(),
        url: t.href.to_owned(),
        limit: t.max_bytes,
    };
    let (info, mut chunks) = StorageClient::from(client)
        .download(id, 0, None)
        .await
        .map_err(storage_error)?;
    if info.length > t.max_bytes {
        return Err(too_large());
    }
    let ext = t
        .ext
        .clone()
        .or_else(|| super::valid_ext(&info.format))
        .unwrap_or_else(|| super::DEFAULT_EXT.to_owned());
    let path = t.dest_dir.join(super::file_name(&ext));
    let mut sink = Sink::create(path, t.max_bytes)
        .await
        .map_err(|e| FetchError::io(t.input, "creating the input file failed", e))?;
    // The client ends the chunks with an error unless they are exactly the object's bytes.
    while let Some(chunk) = chunks.next().await {
        sink.write(&chunk.map_err(storage_error)?)
            .await
            .map_err(|e| match e {
                SinkError::TooLarge => too_large(),
                SinkError::Io(e) => FetchError::io(t.input, "writing the input file failed", e),
            })?;
    }
    let (path, _) = sink
        .finish()
        .await
        .map_err(|e| FetchError::io(t.input, "writing the input file failed", e))?;
    Ok((path, info))
}
