//! Storage service over real gRPC on loopback, for both backends: the local directory and S3
//! (a real s3s-fs server standing in for MinIO).

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{
    DeleteRequest, DownloadRequest, ObjectInfo, StatRequest, UploadMetadata, UploadRequest,
    download_response, upload_request,
};
use wpsmesh_storage::{BackendKind, Config};
use wpsmesh_tests::{S3sFs, content, eventually, files_under};

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "wpsmesh-test";

/// A running storage service and whatever backs it.
struct Harness {
    client: StorageServiceClient<Channel>,
    s3: Option<S3sFs>,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(kind: BackendKind, tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or("wpsmesh=debug,info".into()))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            backend: kind,
            ..Config::default()
        };
        config.local.root = dir.path().join("storage");
        let s3 = (kind == BackendKind::S3).then(|| S3sFs::start().expect("s3s-fs starts"));
        if let Some(s3) = &s3 {
            config.s3.endpoint = s3.endpoint.clone();
            config.s3.access_key = s3.access_key.clone();
            config.s3.secret_key = s3.secret_key.clone();
            config.s3.bucket = BUCKET.into();
            config.s3.part_size = 5 * MIB;
        }
        tweak(&mut config);
        let client = serve(config).await;
        Self { client, s3, dir }
    }

    /// Every file the backend holds: object data, metadata, staging, open multipart uploads.
    fn stored_files(&self) -> Vec<std::path::PathBuf> {
        let mut files = match &self.s3 {
            Some(s3) => files_under(s3.root()),
            None => files_under(self.dir.path()),
        };
        files.sort();
        files
    }
}

async fn serve(config: Config) -> StorageServiceClient<Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        wpsmesh_storage::run(config, listener, std::future::pending())
            .await
            .expect("storage runs");
    });
    let channel = wpsmesh_runtime::grpc::channel(&format!("http://{addr}")).expect("channel");
    StorageServiceClient::new(channel).max_decoding_message_size(wpsmesh_runtime::grpc::MAX_MESSAGE)
}

fn sha256_of(len: usize, seed: u64) -> Vec<u8> {
    let mut h = Sha256::new();
    content(len, seed).for_each(|c| h.update(&c));
    h.finalize().to_vec()
}

fn metadata(name: &str, length: Option<u64>) -> UploadRequest {
    UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            name: name.into(),
            length,
            ..Default::default()
        })),
    }
}

fn chunk(b: Bytes) -> UploadRequest {
    UploadRequest {
        part: Some(upload_request::Part::Chunk(b)),
    }
}

async fn upload(
    client: &mut StorageServiceClient<Channel>,
    name: &str,
    len: usize,
    seed: u64,
) -> Result<ObjectInfo, tonic::Status> {
    upload_as(client, name, len, seed, true).await
}

/// Uploads generated content; `declared` sends the length up front (on S3: one streaming
/// PutObject), otherwise the service finds it out (on S3: multipart above one part).
async fn upload_as(
    client: &mut StorageServiceClient<Channel>,
    name: &str,
    len: usize,
    seed: u64,
    declared: bool,
) -> Result<ObjectInfo, tonic::Status> {
    let length = declared.then_some(len as u64);
    let messages = std::iter::once(metadata(name, length)).chain(content(len, seed).map(chunk));
    let resp = client.upload(futures::stream::iter(messages)).await?;
    Ok(resp.into_inner().object.expect("object info"))
}

/// What a download brought: the first message's info, the sha256 of the bytes, their count,
/// and the first 64 KiB of them.
struct Downloaded {
    info: ObjectInfo,
    sha256: Vec<u8>,
    len: u64,
    head: Vec<u8>,
}

async fn download(
    client: &mut StorageServiceClient<Channel>,
    id: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<Downloaded, tonic::Status> {
    let mut stream = client
        .download(DownloadRequest {
            id: id.into(),
            offset,
            length,
        })
        .await?
        .into_inner();
    let first = stream.message().await?.expect("first message");
    let Some(download_response::Part::Object(info)) = first.part else {
        panic!("first download message must be the object info");
    };
    let (mut h, mut len, mut head) = (Sha256::new(), 0u64, Vec::new());
    while let Some(m) = stream.message().await? {
        let Some(download_response::Part::Chunk(c)) = m.part else {
            panic!("only chunks may follow the object info");
        };
        assert!(c.len() <= MIB, "chunk of {} bytes", c.len());
        h.update(&c);
        len += c.len() as u64;
        if head.len() < 64 * 1024 {
            head.extend_from_slice(&c);
        }
    }
    Ok(Downloaded {
        info,
        sha256: h.finalize().to_vec(),
        len,
        head,
    })
}

async fn round_trips(kind: BackendKind) {
    let mut h = Harness::start(kind, |_| {}).await;
    let sizes = [(0, 1), (1, 2), (5 * MIB + 1, 3), (100 * MIB, 4)];
    for ((len, seed), declared) in sizes.into_iter().flat_map(|s| [(s, true), (s, false)]) {
        let info = upload_as(&mut h.client, "data.GeoJSON", len, seed, declared)
            .await
            .unwrap_or_else(|e| panic!("upload of {len} bytes (declared: {declared}): {e}"));
        assert_eq!(info.length, len as u64);
        assert_eq!(info.id.len(), 32);
        assert!(
            info.id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(info.format, "geojson");
        assert_eq!(info.name, "data.GeoJSON");
        assert_eq!(info.content_type, "application/geo+json");
        assert!(!info.etag.is_empty(), "etag of {len} bytes");
        let got = download(&mut h.client, &info.id, 0, None)
            .await
            .expect("download");
        assert_eq!(got.len, len as u64);
        assert_eq!(got.sha256, sha256_of(len, seed), "content of {len} bytes");
        assert_eq!(got.info, info, "download info equals upload info");
        let stat = h
            .client
            .stat(StatRequest {
                id: info.id.clone(),
            })
            .await
            .expect("stat");
        assert_eq!(stat.into_inner().object, Some(info));
    }
}

async fn ranges_and_delete(kind: BackendKind) {
    let mut h = Harness::start(kind, |_| {}).await;
    let len = 5 * MIB + 1;
    let info = upload(&mut h.client, "raster.tif", len, 9)
        .await
        .expect("upload");
    let whole: Vec<u8> = content(len, 9).flat_map(|b| b.to_vec()).collect();

    let got = download(&mut h.client, &info.id, 4096, Some(10_000))
        .await
        .expect("range");
    assert_eq!(got.len, 10_000);
    assert_eq!(got.head, whole[4096..14_096]);
    // A length past the end is cut at the end; an offset at the end gives no bytes.
    let got = download(&mut h.client, &info.id, len as u64 - 7, Some(100))
        .await
        .expect("tail");
    assert_eq!((got.len, got.head.as_slice()), (7, &whole[len - 7..]));
    let got = download(&mut h.client, &info.id, len as u64, None)
        .await
        .expect("at end");
    assert_eq!(got.len, 0);
    let err = download(&mut h.client, &info.id, len as u64 + 1, None)
        .await
        .err()
        .expect("past end");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("past the end"), "{}", err.message());

    let id = || info.id.clone();
    h.client
        .delete(DeleteRequest { id: id() })
        .await
        .expect("delete");
    let err = h
        .client
        .stat(StatRequest { id: id() })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains(&info.id));
    let err = h
        .client
        .delete(DeleteRequest { id: id() })
        .await
        .expect_err("twice");
    assert_eq!(err.code(), Code::NotFound);
    let err = download(&mut h.client, &info.id, 0, None)
        .await
        .err()
        .expect("download gone");
    assert_eq!(err.code(), Code::NotFound);
}

async fn bad_input_changes_nothing(kind: BackendKind) {
    // Above one 5 MiB part, so the S3 backend has a multipart upload open when the limit hits.
    let mut h = Harness::start(kind, |c| c.max_object_size = 6 * MIB as u64).await;
    let kept = upload(&mut h.client, "kept.txt", 10, 1)
        .await
        .expect("upload");
    let before = h.stored_files();

    // No metadata message first.
    let err = h
        .client
        .upload(futures::stream::iter(content(10, 1).map(chunk)))
        .await
        .expect_err("chunk first");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("first message must carry metadata"),
        "{}",
        err.message()
    );
    let err = h
        .client
        .upload(futures::stream::empty())
        .await
        .expect_err("empty");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Ids that are not 32 lowercase hex characters, path traversal included.
    for id in [
        "../etc/passwd",
        "../../objects/ab/cd",
        "",
        "ABCDEF0123456789ABCDEF0123456789",
    ] {
        let err = h
            .client
            .stat(StatRequest { id: id.into() })
            .await
            .expect_err(id);
        assert_eq!(err.code(), Code::InvalidArgument, "stat {id}");
        assert!(
            err.message().contains("invalid object id"),
            "{}",
            err.message()
        );
        let err = h
            .client
            .delete(DeleteRequest { id: id.into() })
            .await
            .expect_err(id);
        assert_eq!(err.code(), Code::InvalidArgument, "delete {id}");
        let err = download(&mut h.client, id, 0, None).await.err().expect(id);
        assert_eq!(err.code(), Code::InvalidArgument, "download {id}");
    }

    // Over the maximum size: refused at once when declared, aborted when it happens.
    let err = upload(&mut h.client, "big.bin", 8 * MIB, 2)
        .await
        .expect_err("declared too large");
    assert_eq!(err.code(), Code::ResourceExhausted);
    let undeclared =
        std::iter::once(metadata("big.bin", None)).chain(content(8 * MIB, 2).map(chunk));
    let err = h
        .client
        .upload(futures::stream::iter(undeclared))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("maximum size"), "{}", err.message());

    // A declared length that does not match what arrives.
    let short = std::iter::once(metadata("short.bin", Some(100))).chain(content(10, 3).map(chunk));
    let err = h
        .client
        .upload(futures::stream::iter(short))
        .await
        .expect_err("short");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("100 bytes were declared"),
        "{}",
        err.message()
    );

    // A chunk over 1 MiB.
    let huge = [
        metadata("huge.bin", None),
        chunk(Bytes::from(vec![0u8; MIB + 1])),
    ];
    let err = h
        .client
        .upload(futures::stream::iter(huge))
        .await
        .expect_err("huge chunk");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Nothing was written or removed, and the service still serves.
    eventually(
        "no leftovers of refused uploads",
        Duration::from_secs(10),
        || h.stored_files() == before,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: before {before:?}, now {:?}", h.stored_files()));
    let got = download(&mut h.client, &kept.id, 0, None)
        .await
        .expect("still serves");
    assert_eq!(got.sha256, sha256_of(10, 1));
}

/// A client that goes away half way through leaves no object and no open multipart upload.
async fn dropped_upload_leaves_nothing(kind: BackendKind, declared: bool) {
    let h = Harness::start(kind, |_| {}).await;
    let before = h.stored_files();
    let (tx, rx) = mpsc::channel::<UploadRequest>(4);
    let mut client = h.client.clone();
    let call = tokio::spawn(async move { client.upload(ReceiverStream::new(rx)).await });
    tx.send(metadata("half.bin", declared.then_some(64 * MIB as u64)))
        .await
        .expect("send");
    for c in content(20 * MIB, 5) {
        tx.send(chunk(c)).await.expect("send chunk");
    }
    // Data is on its way into the backend: a multipart upload or a staged file exists.
    eventually("upload in progress", Duration::from_secs(20), || {
        h.stored_files().len() > before.len()
    })
    .await
    .expect("upload started");
    call.abort();
    drop(tx);
    eventually(
        "no object, staging or open upload left",
        Duration::from_secs(20),
        || h.stored_files() == before,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", h.stored_files()));
    if let Some(s3) = &h.s3 {
        assert!(s3.open_uploads().is_empty());
        assert!(s3.objects(BUCKET).is_empty());
    }
}

#[tokio::test]
async fn local_round_trips() {
    round_trips(BackendKind::Local).await;
}

#[tokio::test]
async fn s3_round_trips() {
    round_trips(BackendKind::S3).await;
}

#[tokio::test]
async fn local_ranges_and_delete() {
    ranges_and_delete(BackendKind::Local).await;
}

#[tokio::test]
async fn s3_ranges_and_delete() {
    ranges_and_delete(BackendKind::S3).await;
}

#[tokio::test]
async fn local_bad_input_changes_nothing() {
    bad_input_changes_nothing(BackendKind::Local).await;
}

#[tokio::test]
async fn s3_bad_input_changes_nothing() {
    bad_input_changes_nothing(BackendKind::S3).await;
}

#[tokio::test]
async fn local_dropped_upload_leaves_nothing() {
    dropped_upload_leaves_nothing(BackendKind::Local, true).await;
}

#[tokio::test]
async fn s3_dropped_streaming_upload_leaves_nothing() {
    dropped_upload_leaves_nothing(BackendKind::S3, true).await;
}

#[tokio::test]
async fn s3_dropped_multipart_upload_leaves_nothing() {
    dropped_upload_leaves_nothing(BackendKind::S3, false).await;
}

#[tokio::test]
async fn s3_unreachable_is_unavailable_naming_the_endpoint() {
    let port = wpsmesh_tests::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut config = Config {
        backend: BackendKind::S3,
        ..Config::default()
    };
    config.s3.endpoint = endpoint.clone();
    config.s3.access_key = "k".into();
    config.s3.secret_key = "s".into();
    config.s3.max_attempts = 1;
    let mut client = serve(config).await;
    let err = client
        .stat(StatRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
        })
        .await
        .expect_err("unreachable");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&endpoint), "{}", err.message());
    let messages = [metadata("a.txt", Some(1)), chunk(Bytes::from_static(b"x"))];
    let err = client
        .upload(futures::stream::iter(messages))
        .await
        .expect_err("upload");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&endpoint), "{}", err.message());
}
