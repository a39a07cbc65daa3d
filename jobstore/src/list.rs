//! The job index both engines keep beside their records, and the paging rule they share: jobs
//! newest first by creation time (ties by id), a page token naming the last position a page
//! covered (`{created_ms}-{id}`, the next page starts strictly after it), at most
//! [`SCAN_LIMIT`] index entries read per call so a sparse filter never makes one call unbounded.

use std::time::SystemTime;

use wpsmesh_proto::process::{Invalid, JobFilter, JobId, JobPage, JobStatus, ListJobs};

use crate::StoreError;
use crate::record::millis;

/// Most index entries one list call reads: past it the call answers what matched so far with a
/// next token, however few jobs that is.
pub const SCAN_LIMIT: usize = 1000;

/// Most entries the Redis index keeps: the oldest are dropped past it, a safety net for records
/// that vanish without being forgotten (see [`crate::RedisStore`]).
pub const MAX_INDEXED: u64 = 1_000_000;

/// A place in the index: newest first means `(created_ms, id)` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Position {
    pub created_ms: u64,
    pub id: JobId,
}

impl Position {
    /// Where a job sits in the index.
    pub fn of(status: &JobStatus) -> Self {
        Self {
            created_ms: status.created_at.map_or(0, millis),
            id: status.job_id,
        }
    }

    pub fn token(&self) -> String {
        format!("{}-{}", self.created_ms, self.id)
    }

    /// The position a page token names; a token this store never wrote is invalid `next`.
    pub fn parse(token: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| {
            StoreError::Invalid(Invalid::new(
                "next",
                format!(
                    "page token {:?} {why}",
                    wpsmesh_proto::text::bounded(token, 64)
                ),
            ))
        };
        let (ms, id) = token
            .split_once('-')
            .ok_or_else(|| bad("is no position in the job list"))?;
        let created_ms = ms
            .parse::<u64>()
            .ok()
            .filter(|_| ms.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("names no creation time"))?;
        let id = id.parse().map_err(|_| bad("names no job id"))?;
        Ok(Self { created_ms, id })
    }
}

/// What a page needs of the next index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    More,
    Done,
}

/// Builds one page from index entries offered newest first: filters with
/// [`JobFilter::matches`], stops at the limit or the scan bound, and names the next page only
/// when an entry is left after it.
pub(crate) struct Pager<'a> {
    filter: &'a JobFilter,
    limit: usize,
    now: SystemTime,
    jobs: Vec<JobStatus>,
    scanned: usize,
    last: Option<Position>,
    next: Option<Position>,
}

impl<'a> Pager<'a> {
    /// A pager for `query`, and the position its page starts after.
    pub fn new(query: &'a ListJobs) -> Result<(Self, Option<Position>), StoreError> {
        let after = query
            .page_token
            .as_deref()
            .map(Position::parse)
            .transpose()?;
        let pager = Self {
            filter: &query.filter,
            limit: query.limit.max(1) as usize,
            now: SystemTime::now(),
            jobs: Vec::new(),
            scanned: 0,
            last: after,
            next: None,
        };
        Ok((pager, after))
    }

    /// Index entries worth reading in one go: the rest of the page and one to tell whether a
    /// next page exists, more once a filter has skipped some, never past the scan bound.
    pub fn wanted(&self) -> usize {
        let left = SCAN_LIMIT + 1 - self.scanned.min(SCAN_LIMIT);
        let page = self.limit - self.jobs.len() + 1;
        if self.scanned == 0 {
            page.min(left)
        } else {
            (page * 4).clamp(64, 500).min(left)
        }
    }

    /// Takes the entry at `at` (its record's status, `None` when the record is gone).
    pub fn offer(&mut self, at: Position, job: Option<&JobStatus>) -> Step {
        if self.jobs.len() >= self.limit || self.scanned >= SCAN_LIMIT {
            // Something is left after the last position covered: that is the next page.
            self.next = self.last;
            return Step::Done;
        }
        self.scanned += 1;
        self.last = Some(at);
        if let Some(job) = job
            && self.filter.matches(job, self.now)
        {
            self.jobs.push(job.clone());
        }
        Step::More
    }

    pub fn page(self) -> JobPage {
        JobPage {
            jobs: self.jobs,
            next: self.next.map(|p| p.token()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wpsmesh_proto::process::JobState;

    #[test]
    fn tokens_round_trip_and_strangers_are_refused_naming_next() {
        let at = Position {
            created_ms: 1_700_000_000_123,
            id: JobId::random(),
        };
        assert_eq!(Position::parse(&at.token()).unwrap(), at);
        for (token, why) in [
            ("garbage", "is no position in the job list"),
            ("+12-x", "names no creation time"),
            ("99999999999999999999999-x", "names no creation time"),
            ("12-abc", "names no job id"),
        ] {
            match Position::parse(token) {
                Err(StoreError::Invalid(e)) => {
                    assert_eq!(e.locator, "next");
                    assert!(e.message.ends_with(why), "{token}: {}", e.message);
                }
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_page_stops_at_its_limit_and_names_a_next_page_only_when_one_is_left() {
        let query = ListJobs {
            filter: JobFilter::default(),
            limit: 2,
            page_token: None,
        };
        let job = |ms| {
            let status = JobStatus {
                created_at: Some(crate::record::from_millis(ms)),
                ..JobStatus::new(JobId::random(), "p", JobState::Accepted)
            };
            (Position::of(&status), Some(status))
        };
        let (mut pager, after) = Pager::new(&query).unwrap();
        assert_eq!((after, pager.wanted()), (None, 3));
        let (a, b, c) = (job(3), job(2), job(1));
        assert_eq!(pager.offer(a.0, a.1.as_ref()), Step::More);
        assert_eq!(pager.offer(b.0, b.1.as_ref()), Step::More);
        assert_eq!(pager.offer(c.0, c.1.as_ref()), Step::Done);
        let page = pager.page();
        assert_eq!(page.jobs.len(), 2);
        assert_eq!(page.next, Some(b.0.token()));
        // Exactly a page left: no next.
        let (mut pager, _) = Pager::new(&query).unwrap();
        let (a, b) = (job(3), job(2));
        pager.offer(a.0, a.1.as_ref());
        pager.offer(b.0, b.1.as_ref());
        assert_eq!(pager.page().next, None);
    }
}
