//! Job outputs: files written by a worker are streamed to the storage service and returned as
//! references (or inline when asked and small); literals pass through.

use std::path::Path;

use tokio::io::AsyncReadExt;
use tonic::transport::Channel;
use wpsmesh_proto::storage::{MAX_CHUNK, retrieve_url};
use wpsmesh_proto::wire::process::v1 as wire;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{self as storage, upload_request};

use crate::dependency::{self, Failure};
use crate::error::NodeError;
use crate::pool::{Format, JobOutput, OutputValue};

/// Streams a file to storage in chunks of at most 1 MiB; returns the stored object.
pub async fn upload_file(
    client: &mut StorageServiceClient<Channel>,
    path: &Path,
    name: &str,
) -> Result<storage::ObjectInfo, NodeError> {
    let mut file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let first = storage::UploadRequest {
        part: Some(upload_request::Part::Metadata(storage::UploadMetadata {
            name: name.to_owned(),
            length: Some(length),
            ..Default::default()
        })),
    };
    let chunks = async_stream::stream! {
        yield first;
        loop {
            let mut buf = bytes::BytesMut::with_capacity(MAX_CHUNK);
            match (&mut file).take(MAX_CHUNK as u64).read_buf(&mut buf).await {
                Ok(0) => break,
                Ok(_) => yield storage::UploadRequest {
                    part: Some(upload_request::Part::Chunk(buf.freeze())),
                },
                // Ending early makes the declared length mismatch: storage refuses the upload.
                Err(e) => {
                    tracing::warn!(error = %e, "reading an output file failed");
                    break;
                }
            }
        }
    };
    let info = client
        .upload(chunks)
        .await
        .map_err(|status| NodeError::storage(&status))?
        .into_inner()
        .object
        .ok_or_else(|| {
            NodeError::storage(&tonic::Status::internal("storage returned no object"))
        })?;
    Ok(info)
}

fn wire_format(f: &Format) -> wire::Format {
    wire::Format {
        mime_type: f.mime_type.clone(),
        encoding: f.encoding.clone(),
        schema: f.schema.clone(),
        extension: f.extension.clone(),
    }
}

/// Turns a worker's outputs into wire outputs: files uploaded (or inlined when `inline` names
/// them and they are at most `max_inline` bytes), literals as they are.
pub async fn publish(
    client: &mut StorageServiceClient<Channel>,
    public_url: &str,
    outputs: Vec<JobOutput>,
    inline: &[String],
    max_inline: u64,
) -> Result<Vec<wire::Output>, NodeError> {
    let mut published = Vec::with_capacity(outputs.len());
    for out in outputs {
        let value = match out.value {
            OutputValue::Literal(text) => wire::output::Value::Literal(wire::LiteralValue {
                value: text,
                ..Default::default()
            }),
            OutputValue::File { path, format } => {
                let size = tokio::fs::metadata(&path).await?.len();
                if inline.contains(&out.id) && size <= max_inline {
                    wire::output::Value::Complex(wire::ComplexValue {
                        format: Some(wire_format(&format)),
                        data: tokio::fs::read(&path).await?.into(),
                    })
                } else {
                    let ext = path
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format.extension.clone());
                    let info = upload_file(client, &path, &format!("{}.{ext}", out.id)).await?;
                    wire::output::Value::Reference(wire::FileReference {
                        href: retrieve_url(public_url, info.id.as_str(), &info.format),
                        object_id: info.id,
                        format: Some(wire_format(&format)),
                        size: info.length,
                    })
                }
            }
        };
        published.push(wire::Output {
            id: out.id,
            value: Some(value),
        });
    }
    Ok(published)
}

/// Deletes stored objects (best effort: failures are logged, missing objects ignored).
pub async fn delete(client: &mut StorageServiceClient<Channel>, ids: Vec<String>) {
    for id in ids {
        if let Err(e) = client
            .delete(storage::DeleteRequest { id: id.clone() })
            .await
            && e.code() != tonic::Code::NotFound
        {
            let error = Failure::of(&e).message(dependency::STORAGE);
            tracing::warn!(object = %id, %error, "cannot delete job output");
        }
    }
}
