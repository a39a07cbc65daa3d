//! The S3 backend (MinIO, AWS, any S3 API): a declared length streams through one PutObject;
//! a body of unknown length that ends within `upload_concurrency + 1` parts goes up in one
//! PutObject too, a larger one as a multipart upload with a few parts in flight, so memory
//! stays bounded by `part_size * (upload_concurrency + 1)` whatever the file size. Any failure,
//! or the upload being dropped, aborts the multipart upload.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use tracing::{debug, info};
use wpsmesh_proto::storage::{ByteRange, NewObject, ObjectId, ObjectInfo};

use self::multipart::Multipart;
pub use self::sdk::client;
use self::sdk::sdk_error;
use super::ChunkStream;
use crate::config::S3Config;
use crate::error::StorageError;

mod multipart;
mod sdk;
#[cfg(test)]
mod tests;

const MIN_PART: usize = 5 * 1024 * 1024;
/// S3's limit for one part.
const MAX_PART: usize = 5 * 1024 * 1024 * 1024;
/// S3's limit for one PutObject.
const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// User metadata goes into HTTP headers, so the file name is percent-encoded.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');

pub struct S3 {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    part_size: usize,
    concurrency: usize,
    single_put_max: u64,
    /// Full parts a body of unknown length holds before it goes multipart.
    held_parts: usize,
    bucket_ready: OnceCell<()>,
}

impl S3 {
    pub fn new(c: &S3Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (MIN_PART..=MAX_PART).contains(&c.part_size),
            "storage.s3.part_size must be from {MIN_PART} to {MAX_PART} bytes (S3's part limits)"
        );
        anyhow::ensure!(!c.bucket.is_empty(), "storage.s3.bucket is empty");
        Ok(Self {
            client: client(c)?,
            bucket: c.bucket.clone(),
            prefix: c.prefix.clone(),
            endpoint: if c.endpoint.is_empty() {
                format!("s3.{}.amazonaws.com", c.region)
            } else {
                c.endpoint.clone()
            },
            part_size: c.part_size,
            concurrency: c.upload_concurrency.max(1),
            single_put_max: c.single_put_max.min(MAX_SINGLE_PUT),
            held_parts: multipart::held_parts(
                c.part_size,
                c.upload_concurrency.max(1),
                c.single_put_max.min(MAX_SINGLE_PUT),
            ),
            bucket_ready: OnceCell::new(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, id: ObjectId) -> String {
        format!("{}{id}", self.prefix)
    }

    fn error<E>(&self, e: SdkError<E, HttpResponse>, id: Option<ObjectId>) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        sdk_error(e, &self.endpoint, id)
    }

    /// Makes sure the bucket exists, creating it if missing; remembered once it succeeded.
    pub async fn ready(&self) -> Result<(), StorageError> {
        self.bucket_ready
            .get_or_try_init(|| async {
                match self.client.head_bucket().bucket(&self.bucket).send().await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
                    Err(e) => return Err(self.error(e, None)),
                }
                let mut create = self.client.create_bucket().bucket(&self.bucket);
                let region = self.client.config().region().map(|r| r.to_string());
                if let Some(region) = region.filter(|r| r != "us-east-1") {
                    create = create.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(region.as_str().into())
                            .build(),
                    );
                }
                match create.send().await {
                    Ok(_) => {
                        info!(bucket = %self.bucket, "bucket created");
                        Ok(())
                    }
                    Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                    Err(e) => Err(self.error(e, None)),
                }
            })
            .await
            .map(|_| ())
    }

    pub async fn put(
        &self,
        id: ObjectId,
        meta: &NewObject,
        body: ChunkStream,
    ) -> Result<ObjectInfo, StorageError> {
        self.ready().await?;
        match meta.length {
            Some(length) if length <= self.single_put_max => {
                self.put_streaming(id, meta, length, body).await?
            }
            _ => self.put_buffered(id, meta, body).await?,
        }
        self.stat(id).await
    }

    /// One PutObject.
    async fn put_object(
        &self,
        id: ObjectId,
        meta: &NewObject,
        length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .content_type(&meta.content_type)
            .content_length(length as i64)
            .set_metadata(Some(user_metadata(meta)))
            .body(body)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.error(e, None))?;
        Ok(())
    }

    /// A declared length up to `single_put_max` streams through one PutObject as the chunks
    /// arrive: constant memory, no server-side reassembly. If the stream fails, the request is
    /// cut short and S3 keeps nothing (an incomplete PUT never becomes an object).
    async fn put_streaming(
        &self,
        id: ObjectId,
        meta: &NewObject,
        length: u64,
        mut body: ChunkStream,
    ) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let forward = async move {
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(bytes) => {
                        if tx.send(Ok(Frame::data(bytes))).await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other("upload aborted"))).await;
                        return Some(e);
                    }
                }
            }
            None
        };
        let stream_body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let put = self.put_object(
            id,
            meta,
            length,
            ByteStream::new(SdkBody::from_body_1_x(stream_body)),
        );
        let (stream_error, put) = tokio::join!(forward, put);
        // The client's error (too large, length mismatch, disconnect) explains a failed PUT.
        match (stream_error, put) {
            (Some(e), _) => Err(e),
            (None, r) => r,
        }
    }

    /// No usable declared length: hold up to `held_parts` parts (the memory a multipart upload
    /// takes anyway). A body that ends within them goes up in one PutObject: no extra requests
    /// and no server-side assembly, which on a file-backed server (s3s-fs, moto) costs as much
    /// as a second upload. A larger one goes up as a multipart upload, the held parts first.
    async fn put_buffered(
        &self,
        id: ObjectId,
        meta: &NewObject,
        mut body: ChunkStream,
    ) -> Result<(), StorageError> {
        let (held, rest) =
            match multipart::start(&mut body, self.part_size, self.held_parts).await? {
                multipart::Start::Whole(parts) => {
                    let length = parts.iter().map(|p| p.len() as u64).sum();
                    debug!(
                        length,
                        "body of unknown length ended within the held parts: one put"
                    );
                    return self
                        .put_object(id, meta, length, multipart::body_of(parts))
                        .await;
                }
                multipart::Start::Multipart { held, rest } => (held, rest),
            };
        let key = self.key(id);
        // Its own task, so that the upload it opens is aborted even when this call is dropped
        // while the request is under way.
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(&meta.content_type)
            .set_metadata(Some(user_metadata(meta)))
            .send();
        let mut pending = multipart::PendingCreate::spawn(
            request,
            self.client.clone(),
            self.bucket.clone(),
            key.clone(),
        );
        let created = pending.answer().await?.map_err(|e| self.error(e, None))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::Backend("s3 returned no upload id".into()))?;
        let mut upload = Multipart {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.clone(),
            endpoint: self.endpoint.clone(),
            upload_id: Some(upload_id.to_owned()),
            tasks: JoinSet::new(),
        };
        let result = match upload
            .upload_parts(held, rest, body, self.concurrency)
            .await
        {
            Ok(done) => {
                let started = std::time::Instant::now();
                let completed = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&key)
                    .upload_id(upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(done))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| self.error(e, None));
                debug!(%key, elapsed = ?started.elapsed(), "multipart upload completed");
                completed.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => upload.upload_id = None,
            Err(_) => upload.abort().await,
        }
        result
    }

    pub async fn stat(&self, id: ObjectId) -> Result<ObjectInfo, StorageError> {
        let key = self.key(id);
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.error(e, Some(id)))?;
        let meta = head.metadata();
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned().unwrap_or_default();
        let created_at = head
            .last_modified()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(ObjectInfo {
            id,
            name: percent_decode_str(&get("name"))
                .decode_utf8_lossy()
                .into_owned(),
            format: get("format"),
            length: head.content_length().unwrap_or_default().max(0) as u64,
            object_name: key,
            etag: head
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
            content_type: head.content_type().unwrap_or_default().to_owned(),
            created_at,
        })
    }

    pub async fn get(
        &self,
        id: ObjectId,
        range: ByteRange,
    ) -> Result<(ObjectInfo, ChunkStream), StorageError> {
        let info = self.stat(id).await?;
        let (start, len) = range.resolve(info.length)?;
        if len == 0 {
            return Ok((info, futures::stream::empty().boxed()));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| self.error(e, Some(id)))?;
        let endpoint = self.endpoint.clone();
        let stream = futures::stream::try_unfold(out.body, move |mut body| {
            let endpoint = endpoint.clone();
            async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, body))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(StorageError::Unavailable {
                        endpoint,
                        reason: format!("download broke off: {e}"),
                    }),
                }
            }
        });
        Ok((info, stream.boxed()))
    }

    pub async fn delete(&self, id: ObjectId) -> Result<(), StorageError> {
        // S3 deletes missing keys silently; Stat first so a wrong id is NOT_FOUND.
        self.stat(id).await?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .send()
            .await
            .map_err(|e| self.error(e, Some(id)))?;
        Ok(())
    }
}

fn user_metadata(meta: &NewObject) -> HashMap<String, String> {
    HashMap::from([
        (
            "name".to_owned(),
            utf8_percent_encode(&meta.name, NAME_ENCODE).to_string(),
        ),
        ("format".to_owned(), meta.format.clone()),
    ])
}
