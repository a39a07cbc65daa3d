//! Uploads of unknown length to S3: the incoming chunks held as they are up to the memory budget,
//! so that a body ending within it goes up in one PutObject; a larger one cut into parts and
//! sent as a multipart upload with a few parts in flight that aborts itself on any failure or
//! when dropped.

use std::convert::Infallible;
use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::sdk_error;
use crate::backend::ChunkStream;
use crate::error::StorageError;

/// How long an abort waits for parts in flight to finish before cutting them off.
const PART_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// How many full parts an upload of unknown length holds before it opens a multipart upload:
/// `concurrency + 1`, what a multipart upload holds anyway (parts in flight and the one being
/// filled), so memory stays at `part_size * (concurrency + 1)`; fewer when `single_put_max`
/// asks for multipart sooner (0: after the first part, as a body of one part is always one
/// PutObject).
pub(super) fn held_parts(part_size: usize, concurrency: usize, single_put_max: u64) -> usize {
    let by_limit = single_put_max / part_size.max(1) as u64;
    (by_limit.min(concurrency as u64 + 1) as usize).max(1)
}

/// What the start of a body of unknown length turned out to be.
pub(super) enum Start {
    /// The whole body, in the chunks it came in (no copy), which ended within the held parts:
    /// for one PutObject.
    Whole(Vec<Bytes>),
    /// The held bytes cut into full parts; the body goes on in `rest` (part of a part) and the
    /// stream.
    Multipart { held: Vec<Bytes>, rest: PartBuffer },
}

/// Reads `body`, keeping its chunks as they are, until it ends or more than `held` parts'
/// worth arrived; only then are the chunks copied into parts.
pub(super) async fn start(
    body: &mut ChunkStream,
    part_size: usize,
    held: usize,
) -> Result<Start, StorageError> {
    let limit = part_size.saturating_mul(held);
    let (mut chunks, mut length) = (Vec::new(), 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        length += chunk.len();
        chunks.push(chunk);
        if length > limit {
            let mut parts = PartBuffer::new(part_size);
            let mut full = Vec::new();
            for chunk in chunks {
                full.extend(parts.push(chunk));
            }
            return Ok(Start::Multipart {
                held: full,
                rest: parts,
            });
        }
    }
    Ok(Start::Whole(chunks))
}

/// A body for one request over `parts` as they are (no copy into one buffer), rebuilt from
/// them when the SDK retries.
pub(super) fn body_of(parts: Vec<Bytes>) -> ByteStream {
    if parts.len() <= 1 {
        return ByteStream::from(parts.into_iter().next().unwrap_or_default());
    }
    ByteStream::new(SdkBody::retryable(move || {
        let frames = parts
            .clone()
            .into_iter()
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        SdkBody::from_body_1_x(StreamBody::new(futures::stream::iter(frames)))
    }))
}

/// Cuts incoming chunks into parts of exactly `size` bytes, each in its own allocation, so an
/// in-flight part pins only its own memory.
pub(super) struct PartBuffer {
    size: usize,
    buf: BytesMut,
}

impl PartBuffer {
    pub(super) fn new(size: usize) -> Self {
        Self {
            size,
            buf: BytesMut::with_capacity(size),
        }
    }

    /// Appends a chunk (at most one part long); returns a part once one is full.
    pub(super) fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
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
    pub(super) fn take_rest(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf).freeze())
    }
}

/// An open multipart upload and its in-flight parts. Dropped without completing (an error, or
/// the client going away and the call being dropped), it aborts itself in the background.
pub(super) struct Multipart {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) endpoint: String,
    pub(super) upload_id: Option<String>,
    pub(super) tasks: JoinSet<Result<CompletedPart, StorageError>>,
}

impl Multipart {
    /// Uploads the `held` parts, the rest of `parts` and of `body` as parts, at most
    /// `concurrency` in flight; returns them in order for CompleteMultipartUpload.
    pub(super) async fn upload_parts(
        &mut self,
        held: Vec<Bytes>,
        mut parts: PartBuffer,
        mut body: ChunkStream,
        concurrency: usize,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let mut done = Vec::new();
        let mut next_part = 1i32;
        let mut queue = std::collections::VecDeque::from(held);
        loop {
            while let Some(part) = queue.pop_front() {
                while self.tasks.len() >= concurrency {
                    done.push(self.join_part().await?);
                }
                debug!(part = next_part, "uploading part");
                self.spawn_part(next_part, part);
                next_part += 1;
            }
            match body.next().await {
                Some(chunk) => queue.extend(parts.push(chunk?)),
                None => match parts.take_rest() {
                    Some(rest) => queue.push_back(rest),
                    None => break,
                },
            }
        }
        while !self.tasks.is_empty() {
            done.push(self.join_part().await?);
        }
        done.sort_by_key(|p| p.part_number());
        debug!(parts = done.len(), "all parts uploaded");
        Ok(done)
    }

    async fn join_part(&mut self) -> Result<CompletedPart, StorageError> {
        match self.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(StorageError::Backend(format!(
                "part upload task failed: {e}"
            ))),
            None => Err(StorageError::Backend("no part upload in flight".into())),
        }
    }

    fn spawn_part(&mut self, number: i32, data: Bytes) {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .content_length(data.len() as i64)
            .body(ByteStream::from(data));
        let endpoint = self.endpoint.clone();
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

    /// Lets in-flight parts finish, then aborts the upload, waiting for it to finish. The abort runs
    /// as its own task, so it completes even if the caller is dropped half way (the client
    /// went away and the server dropped the call).
    pub(super) async fn abort(&mut self) {
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

type CreateResult = Result<
    aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
>;

/// A CreateMultipartUpload running as its own task: dropped before its answer was taken (the
/// client went away and the call was dropped), it aborts the upload the request opens.
pub(super) struct PendingCreate {
    task: Option<tokio::task::JoinHandle<CreateResult>>,
    client: Client,
    bucket: String,
    key: String,
}

impl PendingCreate {
    pub(super) fn spawn(
        request: impl Future<Output = CreateResult> + Send + 'static,
        client: Client,
        bucket: String,
        key: String,
    ) -> Self {
        Self {
            task: Some(tokio::spawn(request)),
            client,
            bucket,
            key,
        }
    }

    pub(super) async fn answer(&mut self) -> Result<CreateResult, StorageError> {
        let Some(task) = self.task.as_mut() else {
            return Err(StorageError::Backend(
                "multipart upload already created".into(),
            ));
        };
        let answer = task.await;
        self.task = None;
        answer.map_err(|e| StorageError::Backend(format!("create task failed: {e}")))
    }
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        let (Some(task), Ok(rt)) = (self.task.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        rt.spawn(async move {
            if let Ok(Ok(out)) = task.await
                && let Some(upload_id) = out.upload_id()
            {
                debug!(%key, "multipart upload created for a dropped call");
                abort_upload(client, bucket, key, upload_id.to_owned(), JoinSet::new()).await;
            }
        });
    }
}

async fn abort_upload(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    mut tasks: JoinSet<Result<CompletedPart, StorageError>>,
) {
    // In-flight parts finish (or fail) first: cancelling a request does not stop a server that
    // already has its bytes, and a part it finishes writing after the abort stays behind (S3
    // documents as much). Only parts that hang past `PART_DRAIN` are cut off.
    let drained = tokio::time::timeout(PART_DRAIN, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(%key, "parts still in flight when aborting: cut off");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
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

    #[test]
    fn held_parts_stay_within_the_memory_budget_and_single_put_max() {
        const MIB: usize = 1024 * 1024;
        let gib = 1024 * 1024 * 1024;
        assert_eq!(held_parts(8 * MIB, 2, 5 * gib), 3, "parts in flight + 1");
        assert_eq!(held_parts(8 * MIB, 1, 5 * gib), 2);
        assert_eq!(held_parts(8 * MIB, 2, 0), 1, "0: multipart after one part");
        assert_eq!(held_parts(8 * MIB, 2, 8 * MIB as u64), 1);
        assert_eq!(
            held_parts(8 * MIB, 2, 20 * MIB as u64),
            2,
            "whole parts only"
        );
        assert_eq!(held_parts(8 * MIB, 8, 5 * gib), 9);
    }

    fn chunks(sizes: &[usize]) -> ChunkStream {
        let v: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![7u8; n])))
            .collect();
        futures::stream::iter(v).boxed()
    }

    #[tokio::test]
    async fn a_body_within_the_held_parts_is_whole() {
        // Parts of 4 bytes, 2 held: up to 8 bytes is one PutObject, even when the chunks end
        // exactly on a part boundary.
        for sizes in [&[][..], &[3], &[4], &[4, 4], &[3, 3, 2], &[1, 4, 3]] {
            let mut body = chunks(sizes);
            match start(&mut body, 4, 2).await.expect("start") {
                Start::Whole(parts) => {
                    let len: usize = parts.iter().map(Bytes::len).sum();
                    assert_eq!(len, sizes.iter().sum::<usize>(), "{sizes:?}");
                    assert!(parts.iter().all(|p| p.len() <= 4));
                }
                Start::Multipart { .. } => panic!("{sizes:?} went multipart"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_beyond_the_held_parts_goes_multipart_at_once() {
        let mut body = chunks(&[4, 4, 1, 4, 4]);
        match start(&mut body, 4, 2).await.expect("start") {
            Start::Multipart { held, mut rest } => {
                assert_eq!(held.len(), 2);
                assert_eq!(rest.take_rest().map(|b| b.len()), Some(1));
            }
            Start::Whole(_) => panic!("9 bytes held whole"),
        }
        assert_eq!(body.count().await, 2, "the rest is left in the stream");
        // Chunks ending on part boundaries: one part more than held, never more.
        let mut body = chunks(&[4, 4, 4, 4]);
        match start(&mut body, 4, 2).await.expect("start") {
            Start::Multipart { held, mut rest } => {
                assert_eq!(held.len(), 3);
                assert_eq!(rest.take_rest(), None);
            }
            Start::Whole(_) => panic!("16 bytes held whole"),
        }
    }

    #[tokio::test]
    async fn held_parts_go_up_as_one_retryable_body() {
        let parts = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        let body = body_of(parts).into_inner();
        let again = body.try_clone().expect("retryable");
        for b in [body, again] {
            let bytes = ByteStream::new(b).collect().await.expect("collect");
            assert_eq!(&bytes.into_bytes()[..], b"abcde");
        }
    }
}
