//! The S3 backend (MinIO, AWS, any S3 API): small files in one PutObject, larger ones as a
//! multipart upload with a few parts in flight, so memory stays bounded by
//! `part_size * (upload_concurrency + 1)` whatever the file size. Any failure, or the upload
//! being dropped, aborts the multipart upload.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use wpsmesh_proto::storage::{ByteRange, NewObject, ObjectId, ObjectInfo};

use super::ChunkStream;
use crate::config::S3Config;
use crate::error::StorageError;

const MIN_PART: usize = 5 * 1024 * 1024;
/// S3's limit for one PutObject.
const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// User metadata goes into HTTP headers, so the file name is percent-encoded.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');

/// An S3 client configured as the backend uses it (endpoint, path style, credentials from the
/// config or `AWS_*` variables, checksums only where required, bounded retries).
pub fn client(c: &S3Config) -> anyhow::Result<Client> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let (access, secret) = if c.access_key.is_empty() {
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    } else {
        (c.access_key.clone(), c.secret_key.clone())
    };
    anyhow::ensure!(
        !access.is_empty() && !secret.is_empty(),
        "s3 credentials missing: set storage.s3.access_key/secret_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    );
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(c.region.clone()))
        .credentials_provider(Credentials::new(
            access,
            secret,
            None,
            None,
            "wpsmesh-config",
        ))
        .force_path_style(c.path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(c.max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if !c.endpoint.is_empty() {
        b = b.endpoint_url(&c.endpoint);
    }
    Ok(Client::from_conf(b.build()))
}

pub struct S3 {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    part_size: usize,
    concurrency: usize,
    single_put_max: u64,
    bucket_ready: OnceCell<()>,
}

impl S3 {
    pub fn new(c: &S3Config) -> anyhow::Result<Self> {
        anyhow::ensure!(
            c.part_size >= MIN_PART,
            "storage.s3.part_size must be at least {MIN_PART} bytes"
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

    /// No usable declared length: read up to one part; a file that fits goes up in a single
    /// PutObject, a larger one as a multipart upload.
    async fn put_buffered(
        &self,
        id: ObjectId,
        meta: &NewObject,
        mut body: ChunkStream,
    ) -> Result<(), StorageError> {
        let mut parts = PartBuffer::new(self.part_size);
        let first = loop {
            match body.next().await {
                Some(chunk) => {
                    if let Some(full) = parts.push(chunk?) {
                        break full;
                    }
                }
                None => {
                    let rest = parts.take_rest().unwrap_or_default();
                    return self
                        .put_object(id, meta, rest.len() as u64, ByteStream::from(rest))
                        .await;
                }
            }
        };
        let key = self.key(id);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(&meta.content_type)
            .set_metadata(Some(user_metadata(meta)))
            .send()
            .await
            .map_err(|e| self.error(e, None))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::Backend("s3 returned no upload id".into()))?;
        let mut upload = Multipart {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.clone(),
            upload_id: Some(upload_id.to_owned()),
            tasks: JoinSet::new(),
        };
        let result = match self.upload_parts(&mut upload, first, parts, body).await {
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

    /// Uploads `first`, the rest of `parts` and of `body` as parts, at most `concurrency` in
    /// flight.
    async fn upload_parts(
        &self,
        upload: &mut Multipart,
        first: Bytes,
        mut parts: PartBuffer,
        mut body: ChunkStream,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let mut done = Vec::new();
        let mut next_part = 1i32;
        let mut pending = Some(first);
        loop {
            if let Some(part) = pending.take() {
                while upload.tasks.len() >= self.concurrency {
                    done.push(self.join_part(upload).await?);
                }
                debug!(part = next_part, "uploading part");
                upload.spawn_part(next_part, part, self.endpoint.clone());
                next_part += 1;
            }
            match body.next().await {
                Some(chunk) => pending = parts.push(chunk?),
                None => match parts.take_rest() {
                    Some(rest) => pending = Some(rest),
                    None => break,
                },
            }
        }
        while !upload.tasks.is_empty() {
            done.push(self.join_part(upload).await?);
        }
        done.sort_by_key(|p| p.part_number());
        debug!(parts = done.len(), "all parts uploaded");
        Ok(done)
    }

    async fn join_part(&self, upload: &mut Multipart) -> Result<CompletedPart, StorageError> {
        match upload.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(StorageError::Backend(format!(
                "part upload task failed: {e}"
            ))),
            None => Err(StorageError::Backend("no part upload in flight".into())),
        }
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

/// Cuts incoming chunks into parts of exactly `size` bytes, each in its own allocation, so an
/// in-flight part pins only its own memory.
struct PartBuffer {
    size: usize,
    buf: BytesMut,
}

impl PartBuffer {
    fn new(size: usize) -> Self {
        Self {
            size,
            buf: BytesMut::with_capacity(size),
        }
    }

    /// Appends a chunk (at most one part long); returns a part once one is full.
    fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        let room = self.size - self.buf.len();
        if chunk.len() < room {
            self.buf.extend_from_slice(&chunk);
            return None;
        }
        self.buf.extend_from_slice(&chunk[..room]);
        let full = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.size));
        self.buf.extend_from_slice(&chunk[room..]);
        Some(full.freeze())
    }

    /// What is left once the stream ended, if anything.
    fn take_rest(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf).freeze())
    }
}

/// Maps an SDK error: unreachable endpoint → `Unavailable` naming it, 404 on an object →
/// `NotFound`, anything else → `Backend` with the SDK's full context.
fn sdk_error<E>(e: SdkError<E, HttpResponse>, endpoint: &str, id: Option<ObjectId>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let (Some(id), Some(raw)) = (id, e.raw_response())
        && raw.status().as_u16() == 404
    {
        return StorageError::NotFound(id);
    }
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StorageError::Unavailable {
            endpoint: endpoint.to_owned(),
            reason: DisplayErrorContext(&e).to_string(),
        },
        _ => StorageError::Backend(DisplayErrorContext(&e).to_string()),
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

/// An open multipart upload and its in-flight parts. Dropped without completing (an error, or
/// the client going away and the call being dropped), it aborts itself in the background.
struct Multipart {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
    tasks: JoinSet<Result<CompletedPart, StorageError>>,
}

impl Multipart {
    fn spawn_part(&mut self, number: i32, data: Bytes, endpoint: String) {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data));
        self.tasks.spawn(async move {
            let out = req
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| sdk_error(e, &endpoint, None))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build())
        });
    }

    /// Stops in-flight parts and aborts the upload, waiting for it to finish. The abort runs
    /// as its own task, so it completes even if the caller is dropped half way (the client
    /// went away and the server dropped the call).
    async fn abort(&mut self) {
        if let Some(task) = self.spawn_abort() {
            let _ = task.await;
        }
    }

    fn spawn_abort(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let upload_id = self.upload_id.take()?;
        let tasks = std::mem::take(&mut self.tasks);
        let rt = tokio::runtime::Handle::try_current().ok()?;
        Some(rt.spawn(abort_upload(
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            upload_id,
            tasks,
        )))
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        if self.upload_id.is_some() {
            debug!(key = %self.key, "multipart upload dropped unfinished");
            self.spawn_abort();
        }
    }
}

async fn abort_upload(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    mut tasks: JoinSet<Result<CompletedPart, StorageError>>,
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    match client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
    {
        Ok(_) => info!(%key, %upload_id, "multipart upload aborted"),
        Err(e) => {
            warn!(%key, %upload_id, error = %DisplayErrorContext(&e), "cannot abort multipart upload")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_exactly_in_their_own_allocations() {
        let mut parts = PartBuffer::new(10);
        assert_eq!(parts.push(Bytes::from_static(b"abcdef")), None);
        let full = parts
            .push(Bytes::from_static(b"ghijklm"))
            .expect("full part");
        assert_eq!(&full[..], b"abcdefghij");
        assert_eq!(parts.buf.capacity(), 10, "next part gets a fresh buffer");
        let exact = parts
            .push(Bytes::from_static(b"nopqrst"))
            .expect("exactly full");
        assert_eq!(&exact[..], b"klmnopqrst");
        assert_eq!(parts.take_rest(), None);
        assert_eq!(parts.push(Bytes::from_static(b"uv")), None);
        assert_eq!(parts.take_rest().as_deref(), Some(&b"uv"[..]));
    }
}
