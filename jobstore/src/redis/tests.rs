//! The Redis store against a real `redis-server`: answers parsed, the contract kept, and an
//! outage told at once, naming what happened.

use std::time::Instant;

use wpsmesh_tests::RedisServer;

use super::*;
use crate::{StoreKind, new_job_id};

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
                prefix: new_job_id(),
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
        prefix: new_job_id(),
        ..JobsConfig::default()
    };
    RedisStore::connect(&config).await.expect("connect")
}

fn job() -> NewJob {
    NewJob {
        id: new_job_id(),
        request: wire::ExecuteRequest {
            process_id: "native:buffer".into(),
            ..Default::default()
        },
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
    assert_eq!(claimed.map(|c| c.lease.job_id), Some(submitted.id.clone()));

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
