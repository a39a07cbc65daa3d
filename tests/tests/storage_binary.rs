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
