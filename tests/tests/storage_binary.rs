//! End to end: the `wpsmesh storage` binary against a real s3s-fs, configured through the
//! environment as a deployment would, stopped with SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{
    DownloadRequest, UploadMetadata, UploadRequest, download_response, upload_request,
};
use wpsmesh_tests::{ChildGuard, S3sFs, content, free_port, workspace_binary};

#[tokio::test]
async fn storage_binary_serves_s3_and_stops_on_sigterm() {
    let s3 = S3sFs::start().expect("s3s-fs");
    let port = free_port();
    let child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
        .args(["storage", "--listen", &format!("127.0.0.1:{port}")])
        .env("WPSMESH_STORAGE__BACKEND", "s3")
        .env(
            "WPSMESH_STORAGE__METRICS_LISTEN",
            wpsmesh_tests::free_addr(),
        )
        .env("WPSMESH_STORAGE__S3__ENDPOINT", &s3.endpoint)
        .env("WPSMESH_STORAGE__S3__BUCKET", "e2e")
        .env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wpsmesh storage");
    let mut child = ChildGuard(child);
    let uri = format!("http://127.0.0.1:{port}");

    // Ready when the health service says SERVING (the bucket exists).
    let mut health = HealthClient::new(wpsmesh_runtime::grpc::channel(&uri).expect("channel"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "wpsmesh.storage.v1.StorageService".into(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.as_ref().ok() == Some(&(ServingStatus::Serving as i32)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "storage never became healthy: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s3.root().join("e2e").is_dir(), "bucket created on start");

    let mut client =
        StorageServiceClient::new(wpsmesh_runtime::grpc::channel(&uri).expect("channel"));
    let len = 7 * 1024 * 1024 + 3;
    let messages = std::iter::once(UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            name: "countries.zip".into(),
            ..Default::default()
        })),
    })
    .chain(content(len, 42).map(|c| UploadRequest {
        part: Some(upload_request::Part::Chunk(c)),
    }));
    let info = client
        .upload(futures::stream::iter(messages))
        .await
        .expect("upload")
        .into_inner()
        .object
        .expect("info");
    assert_eq!((info.length, info.format.as_str()), (len as u64, "zip"));
    assert_eq!(info.content_type, "application/zip");

    let mut stream = client
        .download(DownloadRequest {
            id: info.id.clone(),
            ..Default::default()
        })
        .await
        .expect("download")
        .into_inner();
    let mut got = Vec::with_capacity(len);
    while let Some(m) = stream.message().await.expect("message") {
        if let Some(download_response::Part::Chunk(c)) = m.part {
            got.extend_from_slice(&c);
        }
    }
    let want: Vec<u8> = content(len, 42).flat_map(|c: Bytes| c.to_vec()).collect();
    assert!(got == want, "downloaded bytes differ");

    // SIGTERM: a clean, prompt exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("sigterm");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "storage did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// The durability promise of the local backend (README, Storage service): a job output
/// (`Durability::Buffered`) is acknowledged before it reaches the disk yet survives a crash of
/// the storage process at once, like a synced client upload; the background flush is set to an
/// hour here, so nothing but the commit before the answer can have kept it.
#[tokio::test]
async fn local_objects_survive_a_killed_storage_process() {
    use wpsmesh_proto::storage::Durability;
    use wpsmesh_proto::storage::client::StorageClient;
    use wpsmesh_tests::Launch;

    let dir = tempfile::tempdir().expect("dir");
    let launch = || {
        Launch::storage(dir.path(), "storage").env("WPSMESH_STORAGE__LOCAL__SYNC_INTERVAL", "1h")
    };
    let mut storage = launch().start().await.expect("storage starts");
    let port = storage.port();
    let client =
        |uri: &str| StorageClient::new(wpsmesh_runtime::grpc::channel(uri).expect("channel"));
    let c = client(&storage.uri());
    let mut stored = Vec::new();
    for (n, durability) in [Durability::Buffered, Durability::Synced]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = content(3 * 1024 * 1024 + n, n as u64).flatten().collect();
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes.clone()))]);
        let info = c
            .upload_as("out.bin", None, durability, body)
            .await
            .expect("upload");
        stored.push((durability, info.id, bytes));
    }

    storage.kill();
    let storage = launch()
        .port(port)
        .start()
        .await
        .expect("storage starts again");
    let c = client(&storage.uri());
    for (durability, id, bytes) in stored {
        let (info, mut chunks) = c
            .download(id, 0, None)
            .await
            .unwrap_or_else(|e| panic!("{durability:?} object {id} lost with the process: {e}"));
        assert_eq!(info.length, bytes.len() as u64, "{durability:?}");
        let mut got = Vec::new();
        while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
            got.extend_from_slice(&chunk.expect("download"));
        }
        assert!(
            got == bytes,
            "{durability:?} object {id} changed across the kill"
        );
    }
}
