//! The Redis job store (fred): a hash per job, a stream as the queue (read by a consumer group,
//! so an entry a node took but never claimed is recovered), a sorted set of lease deadlines and
//! one of expiries, a sorted set indexing jobs by creation time (the job list, see [`index`]), a
//! pub/sub channel announcing dismissals. Every state change is one Lua
//! script, atomic on the server and timed by the server's clock.
//!
//! Keys share the hash tag `{prefix}`, so they live in one slot and the scripts may touch keys
//! they compute. Commands time out after `command_timeout`; while Redis is away every call fails
//! at once with [`StoreError::Unavailable`] saying why (see [`link`]) and the client reconnects
//! on its own.

mod index;
mod link;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fred::prelude::{
    ClientLike, Config, EventInterface, HashesInterface, KeysInterface, PubsubInterface,
    ReconnectPolicy, SortedSetsInterface, StreamsInterface,
};
use fred::types::config::{Options, ServerConfig};
use fred::types::scripts::Script;
use fred::types::{Builder, Value};
use prost::Message;
use tokio::sync::broadcast;
use tracing::{debug, warn};
use wpsmesh_proto::process::{ExecuteRequest, JobId, JobPage, JobState, JobStatus, ListJobs};
use wpsmesh_proto::wire::process::v1 as wire;

use self::link::{Link, Probe};
use super::record::{millis, state_code};
use super::{
    Claim, Heartbeat, JobRecord, JobStore, JobsConfig, Lease, Limits, NewJob, Outcome, Reaped,
    StoreError, begun,
};
use crate::list::MAX_INDEXED;

macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("lua/now.lua"), include_str!($file))
    };
}

const GROUP: &str = "nodes";

struct Scripts {
    submit: Script,
    begin: Script,
    claim: Script,
    heartbeat: Script,
    finish: Script,
    dismiss: Script,
    reap: Script,
    release: Script,
    page: Script,
    prune: Script,
}

/// Job state in Redis.
pub struct RedisStore {
    client: Link,
    /// A connection of its own for the blocking queue read.
    blocking: Link,
    scripts: Scripts,
    keys: Keys,
    limits: Limits,
    /// How long a queue entry may sit read but unclaimed before the reaper puts it back.
    unclaimed_after: Duration,
    command_timeout: Duration,
    dismissed: broadcast::Sender<JobId>,
    _subscriber: fred::clients::SubscriberClient,
}

/// Key and channel names under one hash tag.
struct Keys {
    job_prefix: String,
    queue: String,
    leases: String,
    expiry: String,
    index: String,
    dismissed: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        Self {
            job_prefix: format!("{tag}:job:"),
            queue: format!("{tag}:queue"),
            leases: format!("{tag}:leases"),
            expiry: format!("{tag}:expiry"),
            index: format!("{tag}:index"),
            dismissed: format!("{tag}:dismissed"),
        }
    }

    fn job(&self, id: &str) -> String {
        format!("{}{id}", self.job_prefix)
    }
}

impl RedisStore {
    /// Connects (in the background: the node starts, and answers "unavailable", while Redis is
    /// away) and subscribes to dismissals.
    pub async fn connect(config: &JobsConfig) -> Result<Self, StoreError> {
        let display = config.redis_display();
        let bad = |e: fred::error::Error| {
            StoreError::Unavailable(format!("redis at {display}: {}", e.details()))
        };
        let mut redis = Config::from_url(&config.redis_url).map_err(bad)?;
        let probe = match &redis.server {
            ServerConfig::Centralized { server } => Some(Probe {
                host: server.host.to_string(),
                port: server.port,
                timeout: config.command_timeout,
            }),
            _ => None,
        };
        // Not connecting at first is retried like any lost connection.
        redis.fail_fast = false;
        let mut builder = Builder::from_config(redis);
        builder
            .with_performance_config(|p| p.default_command_timeout = config.command_timeout)
            .with_connection_config(|c| {
                c.connection_timeout = config.command_timeout;
                c.internal_command_timeout = config.command_timeout;
                // A command caught by a lost connection fails with it, not after the timeout.
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 250));
        let display = format!("redis at {display}");
        let link = |client| Link::new(client, display.clone(), probe.clone());
        let client = link(builder.build().map_err(bad)?);
        let blocking = link(builder.build().map_err(bad)?);
        let subscriber = builder.build_subscriber_client().map_err(bad)?;
        client.client().connect();
        blocking.client().connect();
        subscriber.connect();
        // Calls made while not connected fail at once: give the first connection its chance.
        let _ = tokio::time::timeout(config.command_timeout, async {
            let _ = client.client().wait_for_connect().await;
            let _ = blocking.client().wait_for_connect().await;
        })
        .await;
        let keys = Keys::new(&config.prefix);
        let (dismissed, _) = broadcast::channel(1024);
        listen_for_dismissals(
            &subscriber,
            keys.dismissed.clone(),
            dismissed.clone(),
            config.command_timeout,
        )
        .await;
        let scripts = Scripts {
            submit: Script::from_lua(script!("lua/submit.lua")),
            begin: Script::from_lua(script!("lua/begin.lua")),
            claim: Script::from_lua(script!("lua/claim.lua")),
            heartbeat: Script::from_lua(script!("lua/heartbeat.lua")),
            finish: Script::from_lua(script!("lua/finish.lua")),
            dismiss: Script::from_lua(script!("lua/dismiss.lua")),
            reap: Script::from_lua(script!("lua/reap.lua")),
            release: Script::from_lua(script!("lua/release.lua")),
            page: Script::from_lua(include_str!("lua/page.lua")),
            prune: Script::from_lua(script!("lua/prune.lua")),
        };
        Ok(Self {
            client,
            blocking,
            scripts,
            keys,
            limits: config.limits(),
            unclaimed_after: config.lease.max(Duration::from_secs(5)),
            command_timeout: config.command_timeout,
            dismissed,
            _subscriber: subscriber,
        })
    }

    /// The command client, when connected.
    fn client(&self) -> Result<&fred::clients::Client, StoreError> {
        self.client.ready()
    }

    async fn eval<R: fred::types::FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, StoreError> {
        let client = self.client()?;
        let result = script.evalsha_with_reload(client, keys, args).await;
        self.client.answer(result).await
    }

    /// Deletes the record of job `id`, its expiry entry and its index entry.
    async fn forget_key(&self, id: &str) -> Result<(), StoreError> {
        let deleted = self.client()?.del(self.keys.job(id)).await;
        let _: i64 = self.client.answer(deleted).await?;
        for set in [&self.keys.expiry, &self.keys.index] {
            let removed = self.client()?.zrem(set.as_str(), id).await;
            let _: i64 = self.client.answer(removed).await?;
        }
        Ok(())
    }

    /// Reads one queue entry (blocking up to `wait`): its entry id and job id.
    async fn read_queue(
        &self,
        consumer: &str,
        wait: Duration,
    ) -> Result<Option<(String, String)>, StoreError> {
        let options = Options {
            timeout: Some(wait + self.command_timeout),
            ..Default::default()
        };
        let read = self
            .blocking
            .ready()?
            .with_options(&options)
            .xreadgroup::<Value, _, _, _, _>(
                GROUP,
                consumer,
                Some(1),
                Some(wait.as_millis() as u64),
                false,
                self.keys.queue.as_str(),
                ">",
            )
            .await;
        match read {
            Ok(value) => Ok(first_entry(value)),
            Err(e) if e.details().contains("NOGROUP") => {
                // A new (or wiped) Redis: create the group, from the start so nothing queued
                // before is missed.
                let created = self
                    .client()?
                    .xgroup_create::<Value, _, _, _>(self.keys.queue.as_str(), GROUP, "0", true)
                    .await;
                match created {
                    Err(e) if !e.details().contains("BUSYGROUP") => {
                        Err(self.client.failed(&e).await)
                    }
                    _ => Ok(None),
                }
            }
            Err(e) => Err(self.blocking.failed(&e).await),
        }
    }
}

/// Forwards dismissal announcements, resubscribing after every reconnection. Subscribes before
/// returning when Redis answers within `timeout`, else keeps trying in the background.
async fn listen_for_dismissals(
    subscriber: &fred::clients::SubscriberClient,
    channel: String,
    out: broadcast::Sender<JobId>,
    timeout: Duration,
) {
    let mut messages = subscriber.message_rx();
    subscriber.manage_subscriptions();
    let subscribed = tokio::time::timeout(timeout, async {
        subscriber.wait_for_connect().await?;
        subscriber.subscribe(channel.as_str()).await
    })
    .await;
    if !matches!(subscribed, Ok(Ok(()))) {
        let first = subscriber.clone();
        tokio::spawn(async move {
            while let Err(e) = first.subscribe(channel.as_str()).await {
                debug!(error = %e, "cannot subscribe to dismissals yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    tokio::spawn(async move {
        loop {
            match messages.recv().await {
                Ok(m) => {
                    let Some(text) = m.value.as_string() else {
                        continue;
                    };
                    match text.parse::<JobId>() {
                        Ok(id) => {
                            let _ = out.send(id);
                        }
                        Err(e) => warn!(error = %e, "dismissal announced for a malformed job id"),
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "dismissal announcements lagged");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// The first entry of an XREADGROUP answer: `[[queue, [[entry id, [field, value, ...]]]]]`.
fn first_entry(value: Value) -> Option<(String, String)> {
    let streams = value.into_array();
    let stream = streams.into_iter().next()?.into_array();
    let entries = stream.into_iter().nth(1)?.into_array();
    let entry = entries.into_iter().next()?.into_array();
    let mut entry = entry.into_iter();
    let entry_id = entry.next()?.as_string()?;
    let fields = entry.next()?.into_array();
    let job_id = fields.into_iter().nth(1)?.as_string()?;
    Some((entry_id, job_id))
}

/// A flat `[field, value, ...]` reply as a map.
fn pairs(value: Value) -> HashMap<String, Bytes> {
    let mut out = HashMap::new();
    let mut items = value.into_array().into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        if let (Some(k), Some(v)) = (k.as_string(), v.as_bytes()) {
            out.insert(k, Bytes::copy_from_slice(v));
        }
    }
    out
}

fn ms(d: Duration) -> Value {
    Value::Integer(d.as_millis().min(i64::MAX as u128) as i64)
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

#[tonic::async_trait]
impl JobStore for RedisStore {
    async fn submit(&self, job: NewJob) -> Result<JobStatus, StoreError> {
        let process = job.request.process_id.clone();
        let request = wire::ExecuteRequest::from(job.request).encode_to_vec();
        let answer: Vec<i64> = self
            .eval(
                &self.scripts.submit,
                vec![
                    self.keys.job(job.id.as_str()),
                    self.keys.queue.clone(),
                    self.keys.index.clone(),
                ],
                vec![
                    text(job.id.as_str()),
                    text(&process),
                    Value::Bytes(request.into()),
                    ms(self.limits.ttl),
                    Value::Integer(self.limits.max_queued as i64),
                    text(&job.trace),
                    Value::Integer(MAX_INDEXED as i64),
                ],
            )
            .await?;
        match answer.as_slice() {
            [1, now] => {
                let now = super::record::from_millis(*now as u64);
                Ok(JobStatus {
                    created_at: Some(now),
                    expires_at: Some(now + self.limits.ttl),
                    ..JobStatus::new(job.id, process, JobState::Accepted)
                })
            }
            [0, waiting] => Err(StoreError::QueueFull {
                waiting: *waiting as u64,
            }),
            other => Err(StoreError::Corrupt {
                id: job.id.to_string(),
                message: format!("submit answered {other:?}"),
            }),
        }
    }

    async fn begin(
        &self,
        id: &JobId,
        process_id: &str,
        node: &str,
        lease: Duration,
    ) -> Result<(Lease, JobStatus), StoreError> {
        let now: i64 = self
            .eval(
                &self.scripts.begin,
                vec![
                    self.keys.job(id.as_str()),
                    self.keys.leases.clone(),
                    self.keys.index.clone(),
                ],
                vec![
                    text(id.as_str()),
                    text(process_id),
                    text(node),
                    ms(lease),
                    ms(self.limits.ttl),
                    Value::Integer(MAX_INDEXED as i64),
                ],
            )
            .await?;
        let now = super::record::from_millis(now as u64);
        Ok(begun(id, process_id, node, now, self.limits.ttl))
    }

    async fn claim(
        &self,
        node: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let Some((entry, id)) = self
                .read_queue(node, left.max(Duration::from_millis(1)))
                .await?
            else {
                continue;
            };
            let fields: Value = self
                .eval(
                    &self.scripts.claim,
                    vec![
                        self.keys.queue.clone(),
                        self.keys.leases.clone(),
                        self.keys.job(&id),
                    ],
                    vec![text(&entry), text(GROUP), text(&id), text(node), ms(lease)],
                )
                .await?;
            if fields.is_null() {
                // Dismissed (or gone) while it waited.
                continue;
            }
            let corrupt = |message: String| StoreError::Corrupt {
                id: id.clone(),
                message,
            };
            let job_id: JobId = id
                .parse()
                .map_err(|e| corrupt(format!("queued under a malformed id: {e}")))?;
            let mut fields = pairs(fields);
            let request = fields.remove("request").unwrap_or_default();
            let request = wire::ExecuteRequest::decode(request)
                .map_err(|e| corrupt(format!("request: {e}")))?;
            let request =
                ExecuteRequest::try_from(request).map_err(|e| corrupt(format!("request: {e}")))?;
            let trace = fields
                .remove("trace")
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            let record = JobRecord::from_hash(&job_id, fields)?;
            return Ok(Some(Claim {
                lease: Lease {
                    job_id,
                    attempt: record.status.attempt,
                    node: node.to_owned(),
                },
                status: record.status,
                request,
                trace,
            }));
        }
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        duration: Duration,
        beat: &Heartbeat,
    ) -> Result<bool, StoreError> {
        let kept: i64 = self
            .eval(
                &self.scripts.heartbeat,
                vec![
                    self.keys.job(lease.job_id.as_str()),
                    self.keys.leases.clone(),
                ],
                vec![
                    text(lease.job_id.as_str()),
                    text(&lease.attempt.to_string()),
                    ms(duration),
                    Value::Integer(i64::from(beat.percent.min(100))),
                    text(&beat.message),
                    text(&beat.worker),
                ],
            )
            .await?;
        Ok(kept == 1)
    }

    async fn finish(
        &self,
        lease: &Lease,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        let recorded: i64 = self
            .eval(
                &self.scripts.finish,
                vec![
                    self.keys.job(lease.job_id.as_str()),
                    self.keys.leases.clone(),
                    self.keys.expiry.clone(),
                ],
                vec![
                    text(lease.job_id.as_str()),
                    text(&lease.attempt.to_string()),
                    Value::Integer(state_code(outcome.state())),
                    text(outcome.message()),
                    Value::Bytes(outcome.encode().into()),
                    ms(self.limits.ttl),
                    text(worker),
                ],
            )
            .await?;
        Ok(recorded == 1)
    }

    async fn release(&self, lease: &Lease, reason: &str) -> Result<bool, StoreError> {
        let released: i64 = self
            .eval(
                &self.scripts.release,
                vec![
                    self.keys.job(lease.job_id.as_str()),
                    self.keys.leases.clone(),
                    self.keys.queue.clone(),
                ],
                vec![
                    text(lease.job_id.as_str()),
                    text(&lease.attempt.to_string()),
                    text(reason),
                ],
            )
            .await?;
        Ok(released == 1)
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let fields = self.client()?.hgetall(self.keys.job(id.as_str())).await;
        let mut fields: HashMap<String, Bytes> = self.client.answer(fields).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        fields.remove("request");
        JobRecord::from_hash(id, fields).map(Some)
    }

    async fn dismiss(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let before: Value = self
            .eval(
                &self.scripts.dismiss,
                vec![
                    self.keys.job(id.as_str()),
                    self.keys.leases.clone(),
                    self.keys.expiry.clone(),
                ],
                vec![
                    text(id.as_str()),
                    ms(self.limits.ttl),
                    text(&self.keys.dismissed),
                ],
            )
            .await?;
        if before.is_null() {
            return Ok(None);
        }
        let mut fields = pairs(before);
        fields.remove("request");
        JobRecord::from_hash(id, fields).map(Some)
    }

    fn dismissals(&self) -> broadcast::Receiver<JobId> {
        self.dismissed.subscribe()
    }

    async fn reap(&self) -> Result<Vec<Reaped>, StoreError> {
        let reaped: Vec<Value> = self
            .eval(
                &self.scripts.reap,
                vec![
                    self.keys.leases.clone(),
                    self.keys.queue.clone(),
                    self.keys.expiry.clone(),
                ],
                vec![
                    text(&self.keys.job_prefix),
                    Value::Integer(i64::from(self.limits.max_attempts)),
                    text(GROUP),
                    ms(self.unclaimed_after),
                    ms(self.limits.ttl),
                ],
            )
            .await?;
        Ok(reaped
            .into_iter()
            .filter_map(|r| {
                let mut r = r.into_array().into_iter();
                let id = r.next()?.as_string()?;
                let job_id = id
                    .parse()
                    .map_err(|e| warn!(error = %e, "reaped a job with a malformed id"))
                    .ok()?;
                Some(Reaped {
                    job_id,
                    node: r.next()?.as_string()?,
                    attempt: r.next()?.as_u64()? as u32,
                    requeued: r.next()?.as_u64()? == 1,
                })
            })
            .collect())
    }

    async fn expired(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        // The sweep that forgets expired jobs also drops index entries of vanished records.
        self.prune_index().await?;
        let now = millis(SystemTime::now()) as f64;
        let ids = self
            .client()?
            .zrangebyscore(
                self.keys.expiry.as_str(),
                f64::NEG_INFINITY,
                now,
                false,
                Some((0, limit as i64)),
            )
            .await;
        let ids: Vec<String> = self.client.answer(ids).await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(job_id) = id.parse::<JobId>() else {
                // Never written by this store: dropped, or it would come back every time.
                warn!(id, "dropping an expiry entry with a malformed job id");
                self.forget_key(&id).await?;
                continue;
            };
            match self.get(&job_id).await? {
                Some(record) => records.push(record),
                // The key's own expiry got there first.
                None => self.forget(&job_id).await?,
            }
        }
        Ok(records)
    }

    async fn queued(&self) -> Result<u64, StoreError> {
        let waiting = self.client()?.xlen(self.keys.queue.as_str()).await;
        self.client.answer(waiting).await
    }

    async fn forget(&self, id: &JobId) -> Result<(), StoreError> {
        self.forget_key(id.as_str()).await
    }

    async fn list(&self, query: &ListJobs) -> Result<JobPage, StoreError> {
        self.list_jobs(query).await
    }
}

#[cfg(test)]
mod tests;
