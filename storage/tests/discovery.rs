//! Storage in discovery: the service registers in a fake Consul agent as `wps-file-storage` with
//! a gRPC health check, and a channel balanced over discovered storage members (static or
//! Consul) reaches real storage servers and follows membership changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use wpsmesh_discovery::{
    ConsulConfig, Discovery, DiscoveryError, DiscoveryKind, STORAGE_SERVICE, balanced_channel,
};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{
    StatRequest, UploadMetadata, UploadRequest, upload_request,
};
use wpsmesh_tests::consul::{FakeConsul, Instance, instance};
use wpsmesh_tests::{eventually, grpc_serving, until_serving};

const GRPC_SERVICE: &str = "wpsmesh.storage.v1.StorageService";

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("wpsmesh_discovery=debug,wpsmesh_storage=debug")
        .try_init();
}

/// A storage server (local backend) on a free loopback port, once it serves; its URI.
async fn storage(dir: &tempfile::TempDir, name: &str) -> String {
    let uri = wpsmesh_storage::spawn_local(dir.path().join(name))
        .await
        .unwrap();
    until_serving(&uri, GRPC_SERVICE, Duration::from_secs(10))
        .await
        .unwrap();
    uri
}

/// Stores a small object through `channel`; its id.
async fn upload(channel: Channel) -> String {
    let messages = [
        UploadRequest {
            part: Some(upload_request::Part::Metadata(UploadMetadata {
                name: "a.txt".into(),
                length: Some(5),
                ..UploadMetadata::default()
            })),
        },
        UploadRequest {
            part: Some(upload_request::Part::Chunk(b"hello"[..].into())),
        },
    ];
    let response = StorageServiceClient::new(channel)
        .upload(futures::stream::iter(messages))
        .await
        .unwrap();
    response.into_inner().object.unwrap().id
}

/// Stats `id` `n` times through `channel`: how many calls found it, how many got NOT_FOUND.
async fn stats(channel: &Channel, id: &str, n: usize) -> (usize, usize) {
    let mut client = StorageServiceClient::new(channel.clone());
    let (mut found, mut missing) = (0, 0);
    for _ in 0..n {
        let call = client.stat(StatRequest { id: id.into() });
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(_)) => found += 1,
            Ok(Err(status)) if status.code() == Code::NotFound => missing += 1,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    (found, missing)
}

fn storage_instance(id: &str, uri: &str) -> Instance {
    let port = uri.rsplit(':').next().unwrap().parse().unwrap();
    Instance {
        service: STORAGE_SERVICE.into(),
        ..instance(id, "127.0.0.1", "127.0.0.1", port)
    }
}

#[tokio::test]
async fn storage_registers_as_wps_file_storage_with_a_grpc_check() {
    init_logs();
    let consul = FakeConsul::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Off by default: nothing to register with.
    assert!(!wpsmesh_storage::Config::default().consul.is_enabled());
    assert_eq!(
        wpsmesh_storage::Config::default().consul.service,
        STORAGE_SERVICE
    );

    let mut config = wpsmesh_storage::Config::default();
    config.local.root = dir.path().join("storage");
    config.consul = ConsulConfig {
        address: consul.address(),
        advertise: "127.0.0.1".into(),
        ..ConsulConfig::for_service(STORAGE_SERVICE)
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(wpsmesh_storage::run(config, listener, async move {
        let _ = stopped.await;
    }));

    let id = format!("wps-file-storage-127.0.0.1-{port}");
    eventually("registration", Duration::from_secs(10), || {
        consul.has_service(&id)
    })
    .await
    .unwrap();
    let body = consul.service(&id).unwrap();
    assert_eq!(body["Name"], "wps-file-storage");
    assert_eq!(body["ID"], id.as_str());
    assert_eq!(body["Address"], "127.0.0.1");
    assert_eq!(body["Port"], port);
    let target = format!("127.0.0.1:{port}");
    assert_eq!(body["Check"]["GRPC"], target.as_str());
    assert_eq!(body["Check"]["GRPCUseTLS"], false);
    assert_eq!(body["Check"]["Interval"], "10s");
    // What Consul's check dials answers the standard health check.
    assert!(grpc_serving(&format!("http://{target}"), "").await);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(!consul.has_service(&id), "deregistered at shutdown");
    assert_eq!(
        consul.calls().last().unwrap().1,
        format!("/v1/agent/service/deregister/{id}")
    );
}

#[tokio::test]
async fn static_storage_discovery_refuses_an_invalid_uri_by_name_and_uses_a_valid_one() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let uri = storage(&dir, "a").await;

    let bad = "http://stor age:8800";
    let refused = balanced_channel(
        &Discovery::fixed([uri.as_str(), bad]),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(
        matches!(&refused, DiscoveryError::InvalidUri { uri, .. } if uri == bad),
        "{refused:?}"
    );
    assert!(refused.to_string().contains(bad), "{refused}");

    // The configured `storage` URI is the static member when none is listed.
    let balanced = balanced_channel(
        &Discovery::storage().or_member(&uri),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(*balanced.members.borrow(), BTreeSet::from([uri.clone()]));
    let id = upload(balanced.channel.clone()).await;
    assert_eq!(stats(&balanced.channel, &id, 3).await, (3, 0));
}

#[tokio::test]
async fn a_consul_balanced_storage_channel_follows_membership() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (storage(&dir, "a").await, storage(&dir, "b").await);
    // The object exists on b only: a answers NOT_FOUND, which tells who served a call.
    let id = upload(wpsmesh_runtime::grpc::channel(&b).unwrap()).await;

    let consul = FakeConsul::start().await;
    consul.set_instances(vec![storage_instance("a", &a), storage_instance("b", &b)]);
    let source = Discovery {
        kind: DiscoveryKind::Consul,
        consul: ConsulConfig {
            address: consul.address(),
            ..ConsulConfig::for_service(STORAGE_SERVICE)
        },
        ..Discovery::storage()
    };
    let stop = CancellationToken::new();
    let mut balanced = balanced_channel(&source, stop.clone()).unwrap();
    let both = BTreeSet::from([a.clone(), b.clone()]);
    tokio::time::timeout(
        Duration::from_secs(10),
        balanced.members.wait_for(|m| *m == both),
    )
    .await
    .expect("both members from consul")
    .unwrap();
    let health = consul.requests()[0].clone();
    assert_eq!(health.path, "/v1/health/service/wps-file-storage");

    let (found, missing) = stats(&balanced.channel, &id, 40).await;
    assert!(
        found > 0 && missing > 0,
        "calls reach both: {found} on b, {missing} on a"
    );

    // a leaves Consul: once the balancer has taken the change, every call goes to b.
    consul.update(|list| list.retain(|i| i.id != "a"));
    let only_b = BTreeSet::from([b.clone()]);
    tokio::time::timeout(
        Duration::from_secs(10),
        balanced.members.wait_for(|m| *m == only_b),
    )
    .await
    .expect("a removed")
    .unwrap();
    assert_eq!(stats(&balanced.channel, &id, 20).await, (20, 0));

    // Stopping ends discovery: the members receiver sees its sender gone.
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), balanced.members.changed()).await;
    assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
}
