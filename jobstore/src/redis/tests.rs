//! The Redis store against a real `redis-server`: answers parsed, the contract kept, and an
//! outage told at once, naming what happened; stored fields the domain types refuse are corrupt;
//! the job index written with the records and cleared of entries whose record is gone.

use std::time::Instant;

use wpsmesh_tests::RedisServer;

use super::*;
use crate::StoreKind;
use crate::record::millis;

#[test]
fn queue_entries_are_read_from_xreadgroup_answers() {
    let entry = Value::Array(vec![
        Value::String("1-0".into()),
        Value::Array(vec![Value::String("id".into()), Value::String("j1".into())]),
    ]);
    let answer = Value::Array(vec![Value::Array(vec![
        Value::String("{wpsmesh}:queue".into()),
        Value::Array(vec![entry]),
    ])]);
    assert_eq!(first_entry(answer), Some(("1-0".into(), "j1".into())));
    assert_eq!(first_entry(Value::Null), None);
}

#[tokio::test]
async fn the_redis_store_keeps_the_contract() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    crate::contract::run(|limits| {
        let url = url.clone();
        async move {
            let config = JobsConfig {
                store: StoreKind::Redis,
                redis_url: url,
                prefix: JobId::random().to_string(),
                ttl: limits.ttl,
                max_queued: limits.max_queued,
                max_attempts: limits.max_attempts,
                ..JobsConfig::default()
            };
            RedisStore::connect(&config).await.expect("connect")
        }
    })
    .await;
}
/// A store of its own (a fresh prefix) on the Redis at `url`, with the default command timeout.
async fn store(url: &str) -> RedisStore {
    let config = JobsConfig {
        store: StoreKind::Redis,
        redis_url: url.to_owned(),
        prefix: JobId::random().to_string(),
        ..JobsConfig::default()
    };
    RedisStore::connect(&config).await.expect("connect")
}

fn job() -> NewJob {
    NewJob {
        id: JobId::random(),
        request: ExecuteRequest {
            process_id: "native:buffer".into(),
            inputs: vec![],
            outputs: vec![],
            timeout: None,
            subscriber: None,
        },
        trace: String::new(),
    }
}

/// Far under the command timeout (2 s): the call did not wait for it.
const FAST: Duration = Duration::from_millis(500);

/// Checks that a call made while Redis is away failed at once, naming the job store and saying
/// that the connection was refused.
fn refused<T: std::fmt::Debug>(
    redis: &RedisServer,
    started: Instant,
    result: Result<T, StoreError>,
) {
    let took = started.elapsed();
    let message = result.expect_err("no answer without redis").to_string();
    assert!(took < FAST, "took {took:?}: {message}");
    let expected = format!(
        "job store unavailable: redis at {}: connection refused",
        redis.url()
    );
    assert_eq!(message, expected);
}

#[tokio::test]
async fn while_redis_is_away_calls_fail_at_once_saying_why() {
    let mut redis = RedisServer::start().expect("redis-server");
    let store = store(&redis.url()).await;
    assert_eq!(
        JobsConfig::default().command_timeout,
        Duration::from_secs(2)
    );
    // Positive control: with Redis up, the same calls succeed.
    let submitted = job();
    store.submit(submitted.clone()).await.expect("submit");
    assert!(store.get(&submitted.id).await.expect("get").is_some());
    let wait = Duration::from_secs(1);
    let claimed = store.claim("n1", wait, wait).await.expect("claim");
    assert_eq!(claimed.map(|c| c.lease.job_id), Some(submitted.id));

    redis.stop().expect("redis stops");
    // Plain commands, scripts and the blocking queue read (a connection of its own).
    refused(&redis, Instant::now(), store.get(&submitted.id).await);
    refused(&redis, Instant::now(), store.submit(job()).await);
    let started = Instant::now();
    refused(&redis, started, store.claim("n1", wait, wait).await);

    redis.start_again().expect("redis starts again");
    // fred reconnects on its own; the job is still there (append-only file).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.get(&submitted.id).await {
            Ok(Some(record)) => {
                assert_eq!(record.status.job_id, submitted.id);
                break;
            }
            other => assert!(Instant::now() < deadline, "not back after 10 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.submit(job()).await.expect("submit after the restart");
}

#[tokio::test]
async fn stored_fields_the_domain_types_refuse_are_corrupt() {
    let redis = RedisServer::start().expect("redis-server");
    let store = store(&redis.url()).await;
    let submitted = job();
    store.submit(submitted.clone()).await.expect("submit");
    let key = store.keys.job(submitted.id.as_str());
    // A request with no process id decodes as protobuf but is no valid request.
    let bad_request = wire::ExecuteRequest::default().encode_to_vec();
    let _: i64 = store
        .client()
        .expect("connected")
        .hset(&key, ("request", Value::Bytes(bad_request.into())))
        .await
        .expect("hset");
    let wait = Duration::from_secs(1);
    match store.claim("n1", wait, wait).await {
        Err(StoreError::Corrupt { id, message }) => {
            assert_eq!(id, submitted.id.to_string());
            assert_eq!(message, "request: Identifier: empty identifier");
        }
        other => panic!("{other:?}"),
    }
    // An outcome whose output names no valid object.
    let bad_outcome = wire::Output {
        id: "OUTPUT".into(),
        value: Some(wire::output::Value::Reference(wire::FileReference {
            object_id: "obj1".into(),
            ..Default::default()
        })),
    };
    let outcome = crate::record::tests::stored_success(vec![bad_outcome]);
    let _: i64 = store
        .client()
        .expect("connected")
        .hset(&key, ("outcome", Value::Bytes(outcome.into())))
        .await
        .expect("hset");
    match store.get(&submitted.id).await {
        Err(StoreError::Corrupt { message, .. }) => {
            assert!(
                message.starts_with("outcome: OUTPUT: invalid object id"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_index_follows_the_records() {
    let redis = RedisServer::start().expect("redis-server");
    let store = store(&redis.url()).await;
    let (kept, gone) = (job(), job());
    store.submit(kept.clone()).await.expect("submit");
    store.submit(gone.clone()).await.expect("submit");
    let client = store.client().expect("connected").clone();
    let index = store.keys.index.clone();
    let score = |id: JobId| {
        let (client, index) = (client.clone(), index.clone());
        async move {
            let score: Option<f64> = client.zscore(&index, id.as_str()).await.expect("zscore");
            score
        }
    };
    // Written by the script that made the record, scored by its creation time.
    let created = store
        .get(&kept.id)
        .await
        .expect("get")
        .expect("get")
        .status
        .created_at;
    assert_eq!(score(kept.id).await, created.map(|c| millis(c) as f64));
    let all = ListJobs {
        filter: Default::default(),
        limit: 10,
        page_token: None,
    };
    let listed = |page: JobPage| page.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>();
    assert_eq!(listed(store.list(&all).await.expect("list")).len(), 2);

    // A record gone without being forgotten (its key expired): skipped, its entry dropped.
    let _: i64 = client
        .del(store.keys.job(gone.id.as_str()))
        .await
        .expect("del");
    assert!(score(gone.id).await.is_some());
    assert_eq!(listed(store.list(&all).await.expect("list")), [kept.id]);
    assert_eq!(score(gone.id).await, None);

    // The sweep drops old entries whose record is gone, and keeps old ones whose record is
    // there (positive control).
    let vanished = JobId::random();
    let _: i64 = client
        .zadd(
            &index,
            None,
            None,
            false,
            false,
            (1000.0, vanished.as_str()),
        )
        .await
        .expect("zadd");
    let _: i64 = client
        .zadd(&index, None, None, false, false, (1000.0, kept.id.as_str()))
        .await
        .expect("zadd");
    store.expired(10).await.expect("expired");
    assert_eq!(score(vanished).await, None);
    assert_eq!(score(kept.id).await, Some(1000.0));

    // Forgetting a job takes its entry out.
    store.forget(&kept.id).await.expect("forget");
    assert_eq!(score(kept.id).await, None);
    assert!(store.list(&all).await.expect("list").jobs.is_empty());
}
