//! The Redis job index: a sorted set of job ids scored by creation time, written in the same
//! scripts that create records (submit, begin) and cleared by `forget`. A page is read newest
//! first in batches, each one script that answers the entries and their records' fields;
//! entries whose record is gone are dropped as they are met, and old ones by [`prune`]
//! (records that outlived their key's expiry unfinished, never forgotten).
//!
//! [`prune`]: RedisStore::prune_index

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use fred::types::Value;
use tracing::{debug, warn};
use wpsmesh_proto::process::{JobId, JobPage, ListJobs};

use super::{RedisStore, ms, text};
use crate::list::{Pager, Position, Step};
use crate::{JobRecord, StoreError};

/// The record fields a listed job's status is read from (`state` first: no state, no record).
const FIELDS: [&str; 11] = [
    "state", "process", "percent", "message", "created", "started", "finished", "expires", "node",
    "worker", "attempt",
];

/// Index entries past their unfinished records' horizon that one prune reads.
const PRUNE_BATCH: i64 = 100;

/// How long after its creation an unfinished job's key lives (the scripts' safety net).
const KEY_GRACE: Duration = Duration::from_secs(3600);

impl RedisStore {
    pub(super) async fn list_jobs(&self, query: &ListJobs) -> Result<JobPage, StoreError> {
        let (mut pager, mut after) = Pager::new(query)?;
        loop {
            let wanted = pager.wanted();
            let batch = self.index_batch(after, wanted).await?;
            let full = batch.len() == wanted;
            for (at, record) in batch {
                after = Some(at);
                if pager.offer(at, record.as_ref().map(|r| &r.status)) == Step::Done {
                    return Ok(pager.page());
                }
            }
            if !full {
                return Ok(pager.page());
            }
        }
    }

    /// Up to `count` index entries after `after`, with their records (`None`: gone).
    async fn index_batch(
        &self,
        after: Option<Position>,
        count: usize,
    ) -> Result<Vec<(Position, Option<JobRecord>)>, StoreError> {
        let (created, id) = match after {
            Some(p) => (p.created_ms.to_string(), p.id.to_string()),
            None => (String::new(), String::new()),
        };
        let mut args = vec![
            text(&self.keys.job_prefix),
            text(&created),
            text(&id),
            Value::Integer(count as i64),
        ];
        args.extend(FIELDS.iter().map(|f| text(f)));
        let entries: Vec<Value> = self
            .eval(&self.scripts.page, vec![self.keys.index.clone()], args)
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut values = entry.into_array().into_iter();
            let id = values
                .next()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let created_ms = values.next().and_then(|v| v.as_u64()).unwrap_or(0);
            let Ok(job_id) = id.parse::<JobId>() else {
                // Never written by this store: dropped, or every list would meet it again.
                warn!(id, "dropping an index entry with a malformed job id");
                self.forget_key(&id).await?;
                continue;
            };
            let at = Position {
                created_ms,
                id: job_id,
            };
            let fields: HashMap<String, Bytes> = FIELDS
                .iter()
                .zip(values)
                .filter_map(|(f, v)| Some(((*f).to_owned(), Bytes::copy_from_slice(v.as_bytes()?))))
                .collect();
            if fields.is_empty() {
                debug!(job = %job_id, "dropped the index entry of a job whose record is gone");
                out.push((at, None));
                continue;
            }
            out.push((at, Some(JobRecord::from_hash(&job_id, fields)?)));
        }
        Ok(out)
    }

    /// Drops index entries of records gone unforgotten: older than any unfinished record's key
    /// lives, at most [`PRUNE_BATCH`] of the oldest looked at.
    pub(super) async fn prune_index(&self) -> Result<(), StoreError> {
        let dropped: i64 = self
            .eval(
                &self.scripts.prune,
                vec![self.keys.index.clone()],
                vec![
                    text(&self.keys.job_prefix),
                    ms(self.limits.ttl + KEY_GRACE),
                    Value::Integer(PRUNE_BATCH),
                ],
            )
            .await?;
        if dropped > 0 {
            debug!(dropped, "dropped index entries of records gone unforgotten");
        }
        Ok(())
    }
}
