//! The job list every engine must answer alike: newest first, pages without duplicates or gaps
//! while jobs keep coming, each filter, dismissed and forgotten jobs, a bounded scan, and page
//! tokens it never wrote refused naming `next`.

use std::collections::HashSet;

use wpsmesh_proto::process::{JobFilter, ListJobs};

use super::*;
use crate::SCAN_LIMIT;

fn query(filter: JobFilter, limit: u32, page_token: Option<String>) -> ListJobs {
    ListJobs {
        filter,
        limit,
        page_token,
    }
}

/// Every job `filter` matches, following pages of `limit`.
async fn all(store: &dyn JobStore, filter: &JobFilter, limit: u32) -> Vec<JobId> {
    let mut ids = Vec::new();
    let mut token = None;
    for _ in 0..10_000 {
        let page = store
            .list(&query(filter.clone(), limit, token))
            .await
            .unwrap();
        assert!(
            page.jobs.len() <= limit as usize,
            "{} jobs",
            page.jobs.len()
        );
        ids.extend(page.jobs.iter().map(|j| j.job_id));
        match page.next {
            Some(next) => token = Some(next),
            None => return ids,
        }
    }
    panic!("the list never ended");
}

fn set(ids: &[JobId]) -> HashSet<JobId> {
    ids.iter().copied().collect()
}

/// `ids` in list order, from their records: creation time, then id, both descending.
async fn newest_first(store: &dyn JobStore, ids: impl IntoIterator<Item = &JobId>) -> Vec<JobId> {
    let mut keyed = Vec::new();
    for id in ids {
        let created = state(store, id).await.created_at.unwrap();
        keyed.push((crate::record::millis(created), *id));
    }
    keyed.sort_by(|a, b| b.cmp(a));
    keyed.into_iter().map(|(_, id)| id).collect()
}

async fn begin(store: &dyn JobStore, process: &str) -> Lease {
    let id = JobId::random();
    store.begin(&id, process, "n1", LONG).await.unwrap().0
}

/// Runs the list contract, each part on a fresh store `make` builds.
pub async fn run<S, F, Fut>(make: &F, limits: &Limits)
where
    S: JobStore,
    F: Fn(Limits) -> Fut,
    Fut: Future<Output = S>,
{
    newest_first_and_pages_without_gaps(&make(limits.clone()).await).await;
    filters(&make(limits.clone()).await).await;
    refused_tokens(&make(limits.clone()).await).await;
    bounded_scan(&make(limits.clone()).await).await;
}

async fn newest_first_and_pages_without_gaps(store: &dyn JobStore) {
    let mut made = Vec::new();
    for i in 0..12 {
        made.push(submit(store, if i % 2 == 0 { "p:a" } else { "p:b" }).await);
    }
    for _ in 0..8 {
        made.push(begin(store, "p:c").await.job_id);
    }
    let expected = newest_first(store, &made).await;
    let whole = store
        .list(&query(JobFilter::default(), 1000, None))
        .await
        .unwrap();
    assert_eq!(whole.next, None);
    let listed: Vec<JobId> = whole.jobs.iter().map(|j| j.job_id).collect();
    assert_eq!(listed, expected);
    assert!(
        whole
            .jobs
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "creation times go back in time"
    );
    let newest = state(store, made.last().unwrap()).await;
    assert_eq!(whole.jobs[0].created_at, newest.created_at);
    assert_eq!(whole.jobs[0].job_id, expected[0]);

    // Pages of 3 while two jobs are submitted between pages: every job there was, once.
    let mut paged = Vec::new();
    let mut newer = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(&query(JobFilter::default(), 3, token))
            .await
            .unwrap();
        assert!(page.jobs.len() <= 3);
        paged.extend(page.jobs.iter().map(|j| j.job_id));
        newer.push(submit(store, "p:new").await);
        newer.push(submit(store, "p:new").await);
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    // A newcomer created in the very millisecond a page ended, with a smaller id, sorts after
    // that page and is listed too; every job there was is listed once, in order.
    assert_eq!(set(&paged).len(), paged.len(), "a job listed twice");
    let old: Vec<JobId> = paged
        .iter()
        .filter(|id| !newer.contains(id))
        .copied()
        .collect();
    assert_eq!(old, expected, "pages skipped or reordered jobs");
    // The newcomers are listed in their place: newest first among all.
    let everything = newest_first(store, made.iter().chain(&newer)).await;
    assert_eq!(all(store, &JobFilter::default(), 1000).await, everything);

    // A page whose last job is forgotten before the next page is asked: no gap either.
    let page = store
        .list(&query(JobFilter::default(), 5, None))
        .await
        .unwrap();
    let last = page.jobs[4].job_id;
    store.forget(&last).await.unwrap();
    let next = store
        .list(&query(JobFilter::default(), 5, page.next))
        .await
        .unwrap();
    let everything = all(store, &JobFilter::default(), 1000).await;
    assert!(!everything.contains(&last), "a forgotten job is listed");
    let at = everything
        .iter()
        .position(|id| *id == page.jobs[3].job_id)
        .unwrap();
    let following: Vec<JobId> = next.jobs.iter().map(|j| j.job_id).collect();
    assert_eq!(following, everything[at + 1..at + 6]);
}

async fn filters(store: &dyn JobStore) {
    let queued = submit(store, "f:a").await;
    let running = submit(store, "f:b").await;
    let dismissed = submit(store, "f:a").await;
    let claim = store.claim("n1", LONG, NONE).await.unwrap().unwrap();
    assert_eq!(claim.lease.job_id, queued);
    // `queued` runs; it is the next one that waits.
    let (running, queued) = (queued, running);
    let succeeded = begin(store, "f:a").await;
    assert!(
        store
            .finish(&succeeded, "w", &stored_output(ObjectId::random()))
            .await
            .unwrap()
    );
    let failed = begin(store, "f:b").await;
    let boom = Outcome::Failed {
        code: tonic::Code::Aborted,
        message: "boom".into(),
        log: vec![],
    };
    assert!(store.finish(&failed, "w", &boom).await.unwrap());
    store.dismiss(&dismissed).await.unwrap().unwrap();
    let (succeeded, failed) = (succeeded.job_id, failed.job_id);
    let ours = [queued, running, dismissed, succeeded, failed];
    let only = |f: JobFilter| async move {
        let listed = all(store, &f, 2).await;
        listed
            .into_iter()
            .filter(|id| ours.contains(id))
            .collect::<HashSet<_>>()
    };

    let everything = only(JobFilter::default()).await;
    assert_eq!(everything, set(&ours));
    let listed = store
        .list(&query(JobFilter::default(), 1000, None))
        .await
        .unwrap();
    let shown = listed.jobs.iter().find(|j| j.job_id == dismissed).unwrap();
    assert_eq!(
        shown.state,
        JobState::Dismissed,
        "a dismissed job is listed as such"
    );

    let process = |p: &[&str]| JobFilter {
        process_ids: p.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    assert_eq!(
        only(process(&["f:a"])).await,
        set(&[running, dismissed, succeeded])
    );
    assert_eq!(only(process(&["f:b", "f:a"])).await, everything);
    assert!(only(process(&["f:none"])).await.is_empty());

    let states = |s: &[JobState]| JobFilter {
        states: s.to_vec(),
        ..Default::default()
    };
    assert_eq!(only(states(&[JobState::Accepted])).await, set(&[queued]));
    assert_eq!(only(states(&[JobState::Running])).await, set(&[running]));
    assert_eq!(
        only(states(&[JobState::Dismissed])).await,
        set(&[dismissed])
    );
    assert_eq!(
        only(states(&[JobState::Succeeded, JobState::Failed])).await,
        set(&[succeeded, failed])
    );
    let both = JobFilter {
        states: vec![JobState::Succeeded],
        ..process(&["f:a"])
    };
    assert_eq!(only(both).await, set(&[succeeded]));

    // Created between two jobs' creation times, bounds included.
    let mut created = Vec::new();
    for id in ours {
        created.push((id, state(store, &id).await.created_at.unwrap()));
    }
    let (from, until) = (created[1].1, created[3].1);
    let inside: HashSet<JobId> = created
        .iter()
        .filter(|(_, c)| *c >= from && *c <= until)
        .map(|(id, _)| *id)
        .collect();
    assert!(inside.contains(&running) && inside.contains(&succeeded));
    let interval = JobFilter {
        created_from: Some(from),
        created_until: Some(until),
        ..Default::default()
    };
    assert_eq!(only(interval).await, inside);
    let after_all = JobFilter {
        created_from: Some(created[4].1 + Duration::from_secs(3600)),
        ..Default::default()
    };
    assert!(only(after_all).await.is_empty());

    // Durations: only started jobs have one (the dismissed one never started).
    let ran = |min: Option<u64>, max: Option<u64>| JobFilter {
        min_duration: min.map(Duration::from_secs),
        max_duration: max.map(Duration::from_secs),
        ..Default::default()
    };
    let started = set(&[running, succeeded, failed]);
    assert_eq!(only(ran(None, Some(3600))).await, started);
    assert_eq!(only(ran(Some(0), None)).await, started);
    assert!(only(ran(Some(3600), None)).await.is_empty());

    // Forgotten: gone from every page.
    store.forget(&failed).await.unwrap();
    assert_eq!(
        only(JobFilter::default()).await,
        set(&[queued, running, dismissed, succeeded])
    );
}

async fn refused_tokens(store: &dyn JobStore) {
    submit(store, "t").await;
    submit(store, "t").await;
    let first = store
        .list(&query(JobFilter::default(), 1, None))
        .await
        .unwrap();
    // Positive control: the store's own token is taken.
    let next = first.next.clone().expect("a second page");
    let second = store
        .list(&query(JobFilter::default(), 1, Some(next)))
        .await
        .unwrap();
    assert_eq!(second.jobs.len(), 1);
    assert_ne!(second.jobs[0].job_id, first.jobs[0].job_id);
    for token in ["garbage", "12-nojob", "x-0123456789abcdef0123456789abcdef"] {
        match store
            .list(&query(JobFilter::default(), 1, Some(token.into())))
            .await
        {
            Err(StoreError::Invalid(e)) => {
                assert_eq!(e.locator, "next", "{token}");
                assert!(
                    e.message.starts_with("page token"),
                    "{token}: {}",
                    e.message
                );
            }
            other => panic!("{token}: {other:?}"),
        }
    }
}

/// A filter matching only the oldest job: a page reads at most [`SCAN_LIMIT`] entries, so the
/// first answers nothing with a next token, and following it finds the job.
async fn bounded_scan(store: &dyn JobStore) {
    // The smallest id: the oldest even when every job shares one millisecond.
    let rare: JobId = "0".repeat(32).parse().unwrap();
    store.begin(&rare, "s:rare", "n1", LONG).await.unwrap();
    for _ in 0..SCAN_LIMIT + 10 {
        begin(store, "s:common").await;
    }
    let filter = JobFilter {
        process_ids: vec!["s:rare".into()],
        ..Default::default()
    };
    let first = store.list(&query(filter.clone(), 10, None)).await.unwrap();
    assert!(first.jobs.is_empty(), "{} jobs", first.jobs.len());
    let next = first.next.expect("the scan stops with a next token");
    let second = store
        .list(&query(filter.clone(), 10, Some(next)))
        .await
        .unwrap();
    let found: Vec<JobId> = second.jobs.iter().map(|j| j.job_id).collect();
    assert_eq!(found, [rare]);
    assert_eq!(second.next, None);
    // Positive control: a filter every job matches fills the page at once.
    let page = store
        .list(&query(JobFilter::default(), 10, None))
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 10);
    assert!(page.next.is_some());
}
