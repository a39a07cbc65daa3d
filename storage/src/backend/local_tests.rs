//! Unit tests of the local backend's durability: what is flushed when, and what a crash that
//! cut an object short reads as.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use wpsmesh_proto::storage::{ByteRange, Durability, NewObject, ObjectId, ObjectInfo};

use super::Local;
use crate::config::LocalConfig;
use crate::error::StorageError;

async fn open(dir: &std::path::Path, sync_interval: Duration) -> Local {
    Local::open(&LocalConfig {
        root: dir.to_owned(),
        sync_interval,
    })
    .await
    .expect("open")
}

async fn put(local: &Local, durability: Durability, bytes: &[u8]) -> ObjectInfo {
    let meta = NewObject {
        name: "OUTPUT.geojson".into(),
        format: "geojson".into(),
        content_type: "application/geo+json".into(),
        length: None,
        durability,
    };
    let body = futures::stream::iter([Ok(Bytes::copy_from_slice(bytes))]).boxed();
    let id = ObjectId::random();
    local.put(id, &meta, body).await.expect("put")
}

async fn read(local: &Local, id: ObjectId) -> Result<Vec<u8>, StorageError> {
    let (_, mut chunks) = local.get(id, ByteRange::default()).await?;
    let mut all = Vec::new();
    while let Some(chunk) = chunks.next().await {
        all.extend_from_slice(&chunk?);
    }
    Ok(all)
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_buffered_object_is_readable_at_once_and_flushed_afterwards() {
    let dir = tempfile::tempdir().expect("dir");
    let local = open(dir.path(), HOUR).await;
    let info = put(
        &local,
        Durability::Buffered,
        b"{\"type\":\"FeatureCollection\"}",
    )
    .await;
    assert_eq!(
        read(&local, info.id).await.expect("read"),
        b"{\"type\":\"FeatureCollection\"}"
    );
    // Its data and metadata files, its directory and the new `objects/xx` entry.
    let waiting = local.unflushed();
    assert_eq!(waiting, 4, "files and directories waiting for the flush");
    assert_eq!(local.flush().await.expect("flush"), waiting);
    assert_eq!(local.unflushed(), 0);
}

#[tokio::test]
async fn a_synced_object_is_flushed_before_the_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let local = open(dir.path(), HOUR).await;
    let info = put(&local, Durability::Synced, b"upload").await;
    assert_eq!(
        local.unflushed(),
        0,
        "nothing left for the background flush"
    );
    assert_eq!(read(&local, info.id).await.expect("read"), b"upload");
}

#[tokio::test]
async fn the_background_flush_runs_on_its_interval() {
    let dir = tempfile::tempdir().expect("dir");
    let local = open(dir.path(), Duration::from_millis(20)).await;
    put(&local, Durability::Buffered, b"output").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while local.unflushed() > 0 {
        assert!(Instant::now() < deadline, "never flushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_object_a_crash_cut_short_reads_as_missing_not_partial() {
    let dir = tempfile::tempdir().expect("dir");
    let local = open(dir.path(), HOUR).await;
    let intact = put(&local, Durability::Buffered, b"0123456789").await;
    let short = put(&local, Durability::Buffered, b"0123456789").await;
    let no_meta = put(&local, Durability::Buffered, b"0123456789").await;
    // What a machine crash before the flush can leave: a data file shorter than committed, a
    // metadata file with nothing in it.
    std::fs::write(local.data_path(short.id), b"01234").expect("truncate");
    std::fs::write(local.meta_path(no_meta.id), b"").expect("empty");

    for lost in [short.id, no_meta.id] {
        let e = local.stat(lost).await.expect_err("lost object");
        assert!(
            matches!(e, StorageError::NotFound(id) if id == lost),
            "{e:?}"
        );
        let e = read(&local, lost).await.expect_err("lost object");
        assert!(matches!(e, StorageError::NotFound(_)), "{e:?}");
    }
    // The control, written the same way and left alone, reads whole.
    assert_eq!(read(&local, intact.id).await.expect("read"), b"0123456789");
}
