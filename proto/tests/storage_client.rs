//! The typed storage client against a scripted storage service: deadlines, checks on receipt,
//! re-chunking and aborted uploads.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status, Streaming};
use wpsmesh_proto::storage::client::{StorageClient, StorageError, UploadError, Violation};
use wpsmesh_proto::storage::{Durability, MAX_CHUNK, ObjectId};
use wpsmesh_proto::wire::storage::v1 as wire;
use wpsmesh_proto::wire::storage::v1::storage_service_server::{
    StorageService, StorageServiceServer,
};
use wpsmesh_proto::wire::storage::v1::{download_response, upload_request};

/// Stat and download answer slowly.
const SLOW: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Download sends a chunk first.
const DATA_FIRST: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// Download sends fewer bytes than the object has.
const SHORT: &str = "cccccccccccccccccccccccccccccccc";
/// A well-behaved object of `CONTENT_LEN` bytes.
const GOOD: &str = "dddddddddddddddddddddddddddddddd";
/// Download stalls after its first chunk.
const STALL: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
/// Missing: NOT_FOUND.
const MISSING: &str = "ffffffffffffffffffffffffffffffff";
/// Stat answers without the object; download metadata carries an invalid id.
const NO_OBJECT: &str = "11111111111111111111111111111111";

const CONTENT_LEN: usize = 2 * MAX_CHUNK + 12345;
const SLOW_TIME: Duration = Duration::from_secs(3);

fn content() -> Vec<u8> {
    (0..CONTENT_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

fn info(id: &str, length: u64) -> wire::ObjectInfo {
    wire::ObjectInfo {
        id: id.to_owned(),
        name: "x.bin".into(),
        format: "bin".into(),
        length,
        ..Default::default()
    }
}

fn object(info: wire::ObjectInfo) -> Result<wire::DownloadResponse, Status> {
    Ok(wire::DownloadResponse {
        part: Some(download_response::Part::Object(info)),
    })
}

fn chunk(bytes: &[u8]) -> Result<wire::DownloadResponse, Status> {
    Ok(wire::DownloadResponse {
        part: Some(download_response::Part::Chunk(Bytes::copy_from_slice(
            bytes,
        ))),
    })
}

/// What the fake saw of one upload.
#[derive(Debug, Default, Clone)]
struct Seen {
    metadata: Option<wire::UploadMetadata>,
    chunks: Vec<usize>,
    bytes: Vec<u8>,
    /// The stream ended cleanly after its last chunk.
    completed: bool,
}

#[derive(Default)]
struct Fake {
    uploads: Arc<Mutex<Vec<Seen>>>,
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<wire::DownloadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for Fake {
    async fn upload(
        &self,
        request: Request<Streaming<wire::UploadRequest>>,
    ) -> Result<Response<wire::UploadResponse>, Status> {
        let mut stream = request.into_inner();
        let mut seen = Seen::default();
        let result = loop {
            match stream.message().await {
                Ok(Some(wire::UploadRequest {
                    part: Some(upload_request::Part::Metadata(m)),
                })) if seen.metadata.is_none() && seen.chunks.is_empty() => seen.metadata = Some(m),
                Ok(Some(wire::UploadRequest {
                    part: Some(upload_request::Part::Chunk(c)),
                })) if seen.metadata.is_some() => {
                    seen.chunks.push(c.len());
                    seen.bytes.extend_from_slice(&c);
                }
                Ok(Some(_)) => break Err(Status::invalid_argument("aborted")),
                Ok(None) => {
                    seen.completed = true;
                    break Ok(());
                }
                Err(status) => break Err(status),
            }
        };
        let length = seen.bytes.len() as u64;
        let name = seen.metadata.as_ref().map(|m| m.name.clone());
        self.uploads.lock().expect("lock").push(seen);
        result?;
        let mut object = info(GOOD, length);
        object.name = name.unwrap_or_default();
        Ok(Response::new(wire::UploadResponse {
            object: Some(object),
        }))
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        request: Request<wire::DownloadRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let r = request.into_inner();
        let stream: DownloadStream = match r.id.as_str() {
            SLOW => Box::pin(async_stream::stream! {
                tokio::time::sleep(SLOW_TIME).await;
                yield object(info(SLOW, 0));
            }),
            DATA_FIRST => Box::pin(futures::stream::iter([
                chunk(b"abc"),
                object(info(DATA_FIRST, 3)),
            ])),
            SHORT => Box::pin(futures::stream::iter([
                object(info(SHORT, 10)),
                chunk(b"12345"),
            ])),
            NO_OBJECT => Box::pin(futures::stream::iter([object(info("../etc", 0))])),
            STALL => Box::pin(async_stream::stream! {
                yield object(info(STALL, 6));
                yield chunk(b"abc");
                tokio::time::sleep(SLOW_TIME).await;
                yield chunk(b"def");
            }),
            GOOD => {
                let all = content();
                let start = r.offset as usize;
                let end = r
                    .length
                    .map_or(all.len(), |l| (start + l as usize).min(all.len()));
                let mut messages = vec![object(info(GOOD, all.len() as u64))];
                messages.extend(all[start..end].chunks(MAX_CHUNK).map(chunk));
                Box::pin(futures::stream::iter(messages))
            }
            _ => return Err(Status::not_found(format!("object {} not found", r.id))),
        };
        Ok(Response::new(stream))
    }

    async fn stat(
        &self,
        request: Request<wire::StatRequest>,
    ) -> Result<Response<wire::StatResponse>, Status> {
        let id = request.into_inner().id;
        let object = match id.as_str() {
            SLOW => {
                tokio::time::sleep(SLOW_TIME).await;
                Some(info(SLOW, 0))
            }
            NO_OBJECT => None,
            GOOD => Some(info(GOOD, CONTENT_LEN as u64)),
            _ => return Err(Status::not_found(format!("object {id} not found"))),
        };
        Ok(Response::new(wire::StatResponse { object }))
    }

    async fn delete(
        &self,
        request: Request<wire::DeleteRequest>,
    ) -> Result<Response<wire::DeleteResponse>, Status> {
        match request.into_inner().id.as_str() {
            GOOD => Ok(Response::new(wire::DeleteResponse {})),
            id => Err(Status::not_found(format!("object {id} not found"))),
        }
    }
}

/// A fake storage on a free port; a client to it with short deadlines, and what it saw.
async fn start() -> (StorageClient, Arc<Mutex<Vec<Seen>>>) {
    let fake = Fake::default();
    let uploads = fake.uploads.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_service(StorageServiceServer::new(fake))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    let client = StorageClient::new(channel)
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(500));
    (client, uploads)
}

fn id(text: &str) -> ObjectId {
    text.parse().expect("id")
}

/// A missed deadline as the runtime's `Failure::of_status` reads it: DEADLINE_EXCEEDED with
/// the elapsed timer as its source.
fn assert_deadline_missed(e: &StorageError) {
    let StorageError::Status(status) = e else {
        panic!("expected a status, got {e:?}");
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let source = std::error::Error::source(status).expect("the timer as source");
    assert!(
        source.is::<tokio::time::error::Elapsed>(),
        "source: {source:?}"
    );
}

#[tokio::test]
async fn short_calls_get_the_short_deadline() {
    let (client, _) = start().await;
    let started = tokio::time::Instant::now();
    let e = client.stat(id(SLOW)).await.expect_err("too slow");
    assert_deadline_missed(&e);
    assert!(started.elapsed() < SLOW_TIME, "{:?}", started.elapsed());
    let e = client
        .download(id(SLOW), 0, None)
        .await
        .err()
        .expect("too slow");
    assert_deadline_missed(&e);
    // The status converts as it is.
    assert_eq!(tonic::Status::from(e).code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn answers_are_typed_and_checked() {
    let (client, _) = start().await;
    let info = client.stat(id(GOOD)).await.expect("stat");
    assert_eq!(info.id, id(GOOD));
    assert_eq!(info.length, CONTENT_LEN as u64);

    let e = client.stat(id(MISSING)).await.expect_err("missing");
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("not found"), "{e}");
    let e = client.stat(id(NO_OBJECT)).await.expect_err("no object");
    assert!(
        matches!(e, StorageError::Violation(Violation::NoObject)),
        "{e:?}"
    );
    assert_eq!(e.code(), Code::Internal);

    client.delete(id(GOOD)).await.expect("deleted");
    let e = client.delete(id(MISSING)).await.expect_err("missing");
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn downloads_start_with_checked_metadata() {
    let (client, _) = start().await;
    let e = client
        .download(id(DATA_FIRST), 0, None)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(e, StorageError::Violation(Violation::DataBeforeMetadata)),
        "{e:?}"
    );
    assert_eq!(
        tonic::Status::from(e).message(),
        "storage sent data before metadata"
    );
    let e = client
        .download(id(NO_OBJECT), 0, None)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&e, StorageError::Violation(Violation::Invalid(m)) if m.0.contains("invalid object id")),
        "{e:?}"
    );
    let e = client
        .download(id(MISSING), 0, None)
        .await
        .err()
        .expect("missing");
    assert!(e.is_not_found(), "{e:?}");
}

async fn collect(
    mut chunks: wpsmesh_proto::storage::client::Chunks,
) -> (Vec<u8>, Option<StorageError>) {
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => bytes.extend_from_slice(&c),
            Err(e) => {
                assert!(chunks.next().await.is_none(), "nothing after an error");
                return (bytes, Some(e));
            }
        }
    }
    (bytes, None)
}

#[tokio::test]
async fn downloads_stream_exactly_the_range() {
    let (client, _) = start().await;
    let all = content();
    let (info, chunks) = client.download(id(GOOD), 0, None).await.expect("open");
    assert_eq!(info.length, all.len() as u64);
    let (bytes, error) = collect(chunks).await;
    assert!(error.is_none(), "{error:?}");
    assert!(bytes == all, "the object's bytes");

    let (_, chunks) = client
        .download(id(GOOD), 1000, Some(MAX_CHUNK as u64))
        .await
        .expect("open");
    let (bytes, error) = collect(chunks).await;
    assert!(error.is_none(), "{error:?}");
    assert!(bytes == all[1000..1000 + MAX_CHUNK], "the range's bytes");

    let (_, chunks) = client.download(id(SHORT), 0, None).await.expect("open");
    let (bytes, error) = collect(chunks).await;
    assert_eq!(bytes, b"12345");
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("the stream ended after 5 of 10 bytes")
    );
}

#[tokio::test]
async fn a_stalled_download_misses_the_idle_deadline() {
    let (client, _) = start().await;
    let started = tokio::time::Instant::now();
    let (_, chunks) = client.download(id(STALL), 0, None).await.expect("open");
    let (bytes, error) = collect(chunks).await;
    assert_eq!(bytes, b"abc");
    assert_deadline_missed(&error.expect("an error"));
    assert!(started.elapsed() < SLOW_TIME, "{:?}", started.elapsed());
}

/// Polls the fake until it has seen `n` uploads.
async fn uploads_seen(uploads: &Mutex<Vec<Seen>>, n: usize) -> Vec<Seen> {
    for _ in 0..200 {
        let seen = uploads.lock().expect("lock").clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("storage saw fewer than {n} uploads");
}

#[tokio::test]
async fn uploads_are_rechunked_to_at_most_one_mib() {
    let (client, uploads) = start().await;
    let all = content();
    // Odd pieces, and one whole chunk, as a multipart form hands them over.
    let pieces: Vec<Result<Bytes, std::io::Error>> = all
        .chunks(700 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let info = client
        .upload("Some File.bin", None, futures::stream::iter(pieces))
        .await
        .expect("uploaded");
    assert_eq!(info.length, all.len() as u64);
    assert_eq!(info.name, "Some File.bin");
    let seen = uploads_seen(&uploads, 1).await.remove(0);
    assert!(seen.completed);
    let metadata = seen.metadata.expect("metadata first");
    assert_eq!(metadata.length, None);
    assert_eq!(metadata.durability(), wire::Durability::Synced);
    assert_eq!(
        seen.chunks,
        [MAX_CHUNK, MAX_CHUNK, all.len() - 2 * MAX_CHUNK]
    );
    assert!(seen.bytes == all, "the bytes sent");
}

#[tokio::test]
async fn files_upload_with_their_length_declared() {
    let (client, uploads) = start().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("out.bin");
    let all = content();
    std::fs::write(&path, &all).expect("write");
    let info = client
        .upload_file(&path, "OUTPUT.bin", Durability::Buffered)
        .await
        .expect("uploaded");
    assert_eq!(info.length, all.len() as u64);
    let seen = uploads_seen(&uploads, 1).await.remove(0);
    assert!(seen.completed);
    let metadata = seen.metadata.expect("metadata");
    assert_eq!(metadata.length, Some(all.len() as u64));
    assert_eq!(metadata.durability(), wire::Durability::Buffered);
    assert_eq!(
        seen.chunks,
        [MAX_CHUNK, MAX_CHUNK, all.len() - 2 * MAX_CHUNK]
    );
    assert!(seen.bytes == all, "the file's bytes");

    let e = client
        .upload_file(&dir.path().join("missing"), "x", Durability::Synced)
        .await
        .expect_err("no file");
    assert!(
        matches!(&e, UploadError::Source(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_failing_body_aborts_the_upload() {
    let (client, uploads) = start().await;
    // The reader gives up after storage has the first chunk (e.g. a form over the size limit).
    let body = async_stream::stream! {
        yield Ok(Bytes::from(vec![1u8; MAX_CHUNK]));
        tokio::time::sleep(Duration::from_millis(200)).await;
        yield Err("too large");
    };
    let e = client.upload("x", None, body).await.expect_err("given up");
    assert!(matches!(e, UploadError::Source("too large")), "{e:?}");
    // Storage never sees the stream end cleanly: nothing is stored.
    let seen = uploads_seen(&uploads, 1).await.remove(0);
    assert!(!seen.completed, "{seen:?}");
}

#[tokio::test]
async fn an_upload_dropped_midway_is_aborted() {
    let (client, uploads) = start().await;
    // The caller goes away (an HTTP client disconnecting) while the body waits for more.
    let body = async_stream::stream! {
        yield Ok::<_, std::io::Error>(Bytes::from(vec![1u8; MAX_CHUNK]));
        std::future::pending::<()>().await;
    };
    let dropped =
        tokio::time::timeout(Duration::from_millis(300), client.upload("x", None, body)).await;
    assert!(dropped.is_err(), "the upload was still running");
    let seen = uploads_seen(&uploads, 1).await.remove(0);
    assert_eq!(seen.chunks, [MAX_CHUNK]);
    assert!(!seen.completed, "{seen:?}");
}
