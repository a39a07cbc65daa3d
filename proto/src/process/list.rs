//! Job list domain types: the filter and page of ListJobs (OGC API - Processes' `/jobs`),
//! checked when converted from `wire::ListJobsRequest`, and the filter's own matching rule so
//! every job store engine filters alike.

use std::time::{Duration, SystemTime};

use super::{Invalid, JobState, JobStatus};
use crate::time::system_time;
use crate::wire::process::v1 as wire;

/// Jobs in a page when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 10;
/// Most jobs in one page.
pub const MAX_LIMIT: u32 = 1000;
/// Most process ids one filter names.
pub const MAX_PROCESS_IDS: usize = 100;
/// Longest page token accepted (tokens are written by the job store).
pub const MAX_PAGE_TOKEN: usize = 128;

/// Which jobs to list; empty parts match every job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobFilter {
    pub process_ids: Vec<String>,
    pub states: Vec<JobState>,
    /// Created at or after.
    pub created_from: Option<SystemTime>,
    /// Created at or before.
    pub created_until: Option<SystemTime>,
    /// Has run at least this long (see [`JobFilter::matches`]).
    pub min_duration: Option<Duration>,
    /// Has run at most this long.
    pub max_duration: Option<Duration>,
}

/// One ListJobs call: a filter, a page size and where the page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ListJobs {
    pub filter: JobFilter,
    /// 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// A previous page's [`JobPage::next`]; `None` for the newest jobs.
    pub page_token: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobPage {
    pub jobs: Vec<JobStatus>,
    /// Token of the next page; `None` on the last one.
    pub next: Option<String>,
}

impl JobFilter {
    /// How long `job` has run at `now`: finished - started, or now - started while it runs;
    /// `None` before it started.
    pub fn duration(job: &JobStatus, now: SystemTime) -> Option<Duration> {
        let started = job.started_at?;
        let end = job.finished_at.unwrap_or(now);
        Some(end.duration_since(started).unwrap_or_default())
    }

    /// Whether `job` passes every part of the filter at `now`. A job without a duration (not
    /// started) fails a duration bound.
    pub fn matches(&self, job: &JobStatus, now: SystemTime) -> bool {
        if !self.process_ids.is_empty() && !self.process_ids.contains(&job.process_id) {
            return false;
        }
        if !self.states.is_empty() && !self.states.contains(&job.state) {
            return false;
        }
        let created = job.created_at;
        if self
            .created_from
            .is_some_and(|from| created.is_none_or(|c| c < from))
        {
            return false;
        }
        if self
            .created_until
            .is_some_and(|until| created.is_none_or(|c| c > until))
        {
            return false;
        }
        if self.min_duration.is_none() && self.max_duration.is_none() {
            return true;
        }
        let Some(ran) = Self::duration(job, now) else {
            return false;
        };
        self.min_duration.is_none_or(|min| ran >= min)
            && self.max_duration.is_none_or(|max| ran <= max)
    }
}

impl TryFrom<wire::ListJobsRequest> for ListJobs {
    type Error = Invalid;

    fn try_from(w: wire::ListJobsRequest) -> Result<Self, Invalid> {
        let limit = match w.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(Invalid::new(
                    "limit",
                    format!("{n} is over the largest page, {MAX_LIMIT}"),
                ));
            }
            n => n,
        };
        if w.process_ids.len() > MAX_PROCESS_IDS {
            return Err(Invalid::new(
                "processID",
                format!("more than {MAX_PROCESS_IDS} process ids"),
            ));
        }
        if w.process_ids.iter().any(String::is_empty) {
            return Err(Invalid::new("processID", "empty process id"));
        }
        let states = w
            .states
            .into_iter()
            .map(JobState::try_from)
            .collect::<Result<_, _>>()
            .map_err(|e| Invalid::new("status", e.message))?;
        let duration = |locator: &str, d: Option<prost_types::Duration>| {
            d.map(|d| {
                Duration::try_from(d)
                    .map_err(|_| Invalid::new(locator, "a duration cannot be negative"))
            })
            .transpose()
        };
        let filter = JobFilter {
            process_ids: w.process_ids,
            states,
            created_from: w.created_from.as_ref().map(system_time),
            created_until: w.created_until.as_ref().map(system_time),
            min_duration: duration("minDuration", w.min_duration)?,
            max_duration: duration("maxDuration", w.max_duration)?,
        };
        if let (Some(from), Some(until)) = (filter.created_from, filter.created_until)
            && from > until
        {
            return Err(Invalid::new(
                "datetime",
                "the interval ends before it starts",
            ));
        }
        let page_token = match w.page_token {
            t if t.is_empty() => None,
            t if t.len() > MAX_PAGE_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(Invalid::new("next", "malformed page token"));
            }
            t => Some(t),
        };
        Ok(Self {
            filter,
            limit,
            page_token,
        })
    }
}

impl From<ListJobs> for wire::ListJobsRequest {
    fn from(l: ListJobs) -> Self {
        let time = |t: Option<SystemTime>| t.map(prost_types::Timestamp::from);
        let duration = |d: Option<Duration>| d.and_then(|d| d.try_into().ok());
        Self {
            process_ids: l.filter.process_ids,
            states: l
                .filter
                .states
                .into_iter()
                .map(|s| wire::JobState::from(s) as i32)
                .collect(),
            created_from: time(l.filter.created_from),
            created_until: time(l.filter.created_until),
            min_duration: duration(l.filter.min_duration),
            max_duration: duration(l.filter.max_duration),
            limit: l.limit,
            page_token: l.page_token.unwrap_or_default(),
        }
    }
}

impl TryFrom<wire::ListJobsResponse> for JobPage {
    type Error = Invalid;

    fn try_from(w: wire::ListJobsResponse) -> Result<Self, Invalid> {
        Ok(Self {
            jobs: w
                .jobs
                .into_iter()
                .map(JobStatus::try_from)
                .collect::<Result<_, _>>()?,
            next: Some(w.next_page_token).filter(|t| !t.is_empty()),
        })
    }
}

impl From<JobPage> for wire::ListJobsResponse {
    fn from(p: JobPage) -> Self {
        Self {
            jobs: p.jobs.into_iter().map(Into::into).collect(),
            next_page_token: p.next.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::process::JobId;

    fn job(state: JobState, started: Option<u64>, finished: Option<u64>) -> JobStatus {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        JobStatus {
            created_at: Some(at(100)),
            started_at: started.map(at),
            finished_at: finished.map(at),
            ..JobStatus::new(JobId::random(), "native:buffer", state)
        }
    }

    #[test]
    fn filters_match_process_state_creation_and_duration() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let done = job(JobState::Succeeded, Some(110), Some(140));
        let queued = job(JobState::Accepted, None, None);
        assert!(JobFilter::default().matches(&done, now));
        assert!(JobFilter::default().matches(&queued, now));
        let by_process = |p: &str| JobFilter {
            process_ids: vec![p.into()],
            ..Default::default()
        };
        assert!(by_process("native:buffer").matches(&done, now));
        assert!(!by_process("native:dissolve").matches(&done, now));
        let by_state = JobFilter {
            states: vec![JobState::Failed, JobState::Succeeded],
            ..Default::default()
        };
        assert!(by_state.matches(&done, now));
        assert!(!by_state.matches(&queued, now));
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let created = |from, until| JobFilter {
            created_from: from,
            created_until: until,
            ..Default::default()
        };
        assert!(created(at(100), at(100)).matches(&done, now));
        assert!(!created(at(101), None).matches(&done, now));
        assert!(!created(None, at(99)).matches(&done, now));
        let ran = |min: Option<u64>, max: Option<u64>| JobFilter {
            min_duration: min.map(Duration::from_secs),
            max_duration: max.map(Duration::from_secs),
            ..Default::default()
        };
        assert!(ran(Some(30), Some(30)).matches(&done, now));
        assert!(!ran(Some(31), None).matches(&done, now));
        assert!(!ran(None, Some(29)).matches(&done, now));
        // Not started: no duration, so no duration bound matches.
        assert!(!ran(Some(0), None).matches(&queued, now));
        // Running: now - started.
        let running = job(JobState::Running, Some(900), None);
        assert!(ran(Some(100), Some(100)).matches(&running, now));
    }

    #[test]
    fn requests_are_checked_on_receipt() {
        let ok = ListJobs::try_from(wire::ListJobsRequest::default()).unwrap();
        assert_eq!((ok.limit, ok.page_token), (DEFAULT_LIMIT, None));
        let bad = |w: wire::ListJobsRequest| ListJobs::try_from(w).unwrap_err().locator;
        assert_eq!(
            bad(wire::ListJobsRequest {
                limit: MAX_LIMIT + 1,
                ..Default::default()
            }),
            "limit"
        );
        assert_eq!(
            bad(wire::ListJobsRequest {
                states: vec![0],
                ..Default::default()
            }),
            "status"
        );
        assert_eq!(
            bad(wire::ListJobsRequest {
                page_token: "a b".into(),
                ..Default::default()
            }),
            "next"
        );
        assert_eq!(
            bad(wire::ListJobsRequest {
                created_from: Some(prost_types::Timestamp {
                    seconds: 10,
                    nanos: 0
                }),
                created_until: Some(prost_types::Timestamp {
                    seconds: 5,
                    nanos: 0
                }),
                ..Default::default()
            }),
            "datetime"
        );
        let full = ListJobs {
            filter: JobFilter {
                process_ids: vec!["native:buffer".into()],
                states: vec![JobState::Running],
                min_duration: Some(Duration::from_secs(2)),
                ..Default::default()
            },
            limit: 50,
            page_token: Some("1700000000000-abc".into()),
        };
        assert_eq!(
            ListJobs::try_from(wire::ListJobsRequest::from(full.clone())).unwrap(),
            full
        );
    }
}
