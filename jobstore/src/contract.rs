//! The behaviour every job store engine must have, run against each of them (in-process, and
//! Redis against a real redis-server).

use std::future::Future;
use std::time::{Duration, Instant};

use wpsmesh_proto::process::{
    ExecuteRequest, Format, Input, InputValue, JobState, LiteralValue, Output, OutputValue,
    StoredFile,
};
use wpsmesh_proto::storage::ObjectId;

use super::*;

mod list;

/// The trace context jobs are submitted with: handed back unchanged in their claims.
const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 vendor=x";

fn request(process: &str) -> ExecuteRequest {
    ExecuteRequest {
        process_id: process.into(),
        inputs: vec![Input {
            id: "DISTANCE".into(),
            value: InputValue::Literal(LiteralValue::plain("2")),
        }],
        outputs: vec![],
        timeout: None,
        subscriber: None,
    }
}

/// A successful outcome with one stored output file.
fn stored_output(object: ObjectId) -> Outcome {
    Outcome::Succeeded {
        outputs: vec![Output {
            id: "OUTPUT".into(),
            value: OutputValue::Stored(StoredFile {
                id: object,
                format: Format::of("application/geo+json"),
                size: 0,
            }),
        }],
        log: vec!["done".into()],
    }
}

async fn submit(store: &dyn JobStore, process: &str) -> JobId {
    let id = JobId::random();
    let status = store
        .submit(NewJob {
            id,
            request: request(process),
            trace: TRACE.into(),
        })
        .await
        .expect("submit");
    assert_eq!(
        (status.state, status.attempt, status.job_id),
        (JobState::Accepted, 0, id)
    );
    assert_eq!(status.message, "accepted");
    assert!(status.created_at.is_some() && status.expires_at.is_some());
    id
}

async fn state(store: &dyn JobStore, id: &JobId) -> JobStatus {
    store.get(id).await.unwrap().expect("record").status
}

/// Reaps until something comes back (leases run out in real time), at most 5 s.
async fn reap_some(store: &dyn JobStore) -> Vec<Reaped> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reaped = store.reap().await.unwrap();
        if !reaped.is_empty() || Instant::now() > deadline {
            return reaped;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LONG: Duration = Duration::from_secs(30);
const NONE: Duration = Duration::from_millis(50);

/// Runs the contract; `make` builds a fresh, empty store with the given limits.
pub async fn run<S, F, Fut>(make: F)
where
    S: JobStore,
    F: Fn(Limits) -> Fut,
    Fut: Future<Output = S>,
{
    let limits = Limits {
        ttl: Duration::from_secs(3600),
        max_queued: 100,
        max_attempts: 2,
    };
    life_of_a_job(&make(limits.clone()).await).await;
    the_queue_is_bounded(
        &make(Limits {
            max_queued: 2,
            ..limits.clone()
        })
        .await,
    )
    .await;
    lost_leases_requeue_then_fail(&make(limits.clone()).await).await;
    begun_jobs_are_recorded_and_never_rerun(&make(limits.clone()).await).await;
    released_attempts_do_not_count(&make(limits.clone()).await).await;
    dismissal(&make(limits.clone()).await).await;
    expiry(
        &make(Limits {
            ttl: Duration::from_millis(200),
            ..limits.clone()
        })
        .await,
    )
    .await;
    claims_wake_on_submit(&make(limits.clone()).await).await;
    list::run(&make, &limits).await;
}

async fn life_of_a_job(store: &dyn JobStore) {
    let id = submit(store, "native:buffer").await;
    assert!(store.get(&JobId::random()).await.unwrap().is_none());
    let claim = store.claim("n1", LONG, NONE).await.unwrap().expect("claim");
    assert_eq!(claim.lease.job_id, id);
    assert_eq!((claim.lease.attempt, claim.lease.node.as_str()), (1, "n1"));
    assert_eq!(claim.request, request("native:buffer"));
    assert_eq!(
        claim.trace, TRACE,
        "the claim carries the submit's trace context"
    );
    assert_eq!(claim.status.state, JobState::Running);
    assert_eq!(claim.status.job_id, id);
    assert!(store.claim("n2", LONG, NONE).await.unwrap().is_none());

    let beat = Heartbeat {
        percent: 40,
        message: "buffering".into(),
        worker: "4242".into(),
    };
    assert!(store.heartbeat(&claim.lease, LONG, &beat).await.unwrap());
    let s = state(store, &id).await;
    assert_eq!(
        (s.state, s.percent_done, s.worker.as_str(), s.node.as_str()),
        (JobState::Running, 40, "4242", "n1")
    );
    assert!(s.started_at.is_some() && s.finished_at.is_none());

    let object = ObjectId::random();
    let outcome = stored_output(object);
    assert!(store.finish(&claim.lease, "4243", &outcome).await.unwrap());
    let r = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (r.state(), r.status.percent_done, r.status.worker.as_str()),
        (JobState::Succeeded, 100, "4243")
    );
    assert_eq!(r.outcome, Some(outcome.clone()));
    assert_eq!(outcome.object_ids(), [object]);
    assert!(r.status.finished_at.is_some());
    // A second finish, or a heartbeat after the end, is refused.
    assert!(!store.finish(&claim.lease, "", &outcome).await.unwrap());
    assert!(!store.heartbeat(&claim.lease, LONG, &beat).await.unwrap());
    assert_eq!(state(store, &id).await.state, JobState::Succeeded);

    // A failure keeps its code and message.
    let id = submit(store, "native:buffer").await;
    let claim = store.claim("n1", LONG, NONE).await.unwrap().unwrap();
    let failed = Outcome::Failed {
        code: tonic::Code::InvalidArgument,
        message: "invalid parameter DISTANCE".into(),
        log: vec![],
    };
    assert!(store.finish(&claim.lease, "", &failed).await.unwrap());
    let r = store.get(&id).await.unwrap().unwrap();
    assert_eq!(r.state(), JobState::Failed);
    assert_eq!(r.status.message, "invalid parameter DISTANCE");
    assert_eq!(r.outcome, Some(failed));
}

async fn the_queue_is_bounded(store: &dyn JobStore) {
    assert_eq!(store.queued().await.unwrap(), 0);
    submit(store, "p").await;
    submit(store, "p").await;
    assert_eq!(store.queued().await.unwrap(), 2, "queue depth");
    let third = store
        .submit(NewJob {
            id: JobId::random(),
            request: request("p"),
            trace: String::new(),
        })
        .await;
    assert!(
        matches!(third, Err(StoreError::QueueFull { waiting: 2 })),
        "{third:?}"
    );
    // A claim frees a place.
    assert!(store.claim("n", LONG, NONE).await.unwrap().is_some());
    assert_eq!(
        store.queued().await.unwrap(),
        1,
        "queue depth after a claim"
    );
    submit(store, "p").await;
}

/// A synchronous job: recorded running from its start, finished like any other, visible to
/// every reader, never claimed from the queue; a lost lease fails it rather than requeuing it.
async fn begun_jobs_are_recorded_and_never_rerun(store: &dyn JobStore) {
    let short = Duration::from_millis(300);
    let id = JobId::random();
    let (lease, status) = store.begin(&id, "native:buffer", "n1", LONG).await.unwrap();
    assert_eq!(
        (
            status.state,
            status.attempt,
            status.node.as_str(),
            lease.attempt
        ),
        (JobState::Running, 1, "n1", 1)
    );
    assert_eq!(state(store, &id).await.state, JobState::Running);
    assert!(
        store.claim("n2", short, NONE).await.unwrap().is_none(),
        "never queued"
    );
    let beat = Heartbeat {
        percent: 30,
        message: String::new(),
        worker: "77".into(),
    };
    assert!(store.heartbeat(&lease, LONG, &beat).await.unwrap());
    assert_eq!(state(store, &id).await.percent_done, 30);
    let object = ObjectId::random();
    assert!(
        store
            .finish(&lease, "77", &stored_output(object))
            .await
            .unwrap()
    );
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.state(), JobState::Succeeded);
    assert_eq!(record.outcome.map(|o| o.object_ids()), Some(vec![object]));

    // Its node is lost: the job fails saying why, and no node is handed it.
    let lost = JobId::random();
    store
        .begin(&lost, "native:buffer", "n1", short)
        .await
        .unwrap();
    let reaped = reap_some(store).await;
    assert_eq!(
        reaped,
        [Reaped {
            job_id: lost,
            node: "n1".into(),
            attempt: 1,
            requeued: false
        }]
    );
    let s = state(store, &lost).await;
    assert_eq!(s.state, JobState::Failed);
    assert!(
        s.message.contains("synchronous job is not run again"),
        "{}",
        s.message
    );
    assert!(store.claim("n2", short, NONE).await.unwrap().is_none());
}

async fn lost_leases_requeue_then_fail(store: &dyn JobStore) {
    let id = submit(store, "p").await;
    let short = Duration::from_millis(300);
    let first = store.claim("n1", short, NONE).await.unwrap().unwrap();
    assert!(store.reap().await.unwrap().is_empty(), "lease still live");
    let reaped = reap_some(store).await;
    assert_eq!(
        reaped,
        [Reaped {
            job_id: id,
            node: "n1".into(),
            attempt: 1,
            requeued: true
        }]
    );
    let s = state(store, &id).await;
    assert_eq!(s.state, JobState::Accepted);
    assert!(s.message.contains("n1"), "{}", s.message);
    // The first attempt is fenced out from now on.
    let beat = Heartbeat::default();
    assert!(!store.heartbeat(&first.lease, LONG, &beat).await.unwrap());

    let second = store.claim("n2", short, NONE).await.unwrap().unwrap();
    assert_eq!(second.lease.attempt, 2);
    let late = Outcome::Succeeded {
        outputs: vec![],
        log: vec![],
    };
    assert!(!store.finish(&first.lease, "", &late).await.unwrap());
    assert_eq!(state(store, &id).await.node, "n2");

    // The last attempt's lease runs out too: failed for good, saying why.
    let reaped = reap_some(store).await;
    assert_eq!(reaped.len(), 1);
    assert!(!reaped[0].requeued);
    let s = state(store, &id).await;
    assert_eq!(s.state, JobState::Failed);
    assert!(
        s.message.contains("n2") && s.message.contains("lease"),
        "{}",
        s.message
    );
    assert!(s.finished_at.is_some());
    assert!(!store.finish(&second.lease, "", &late).await.unwrap());
}

async fn released_attempts_do_not_count(store: &dyn JobStore) {
    let id = submit(store, "p").await;
    let first = store.claim("n1", LONG, NONE).await.unwrap().unwrap();
    assert!(
        store
            .release(&first.lease, "node n1 is stopping")
            .await
            .unwrap()
    );
    let s = state(store, &id).await;
    assert_eq!(
        (s.state, s.message.as_str()),
        (JobState::Accepted, "node n1 is stopping")
    );
    // Released: the first attempt may write no more, and cannot release twice.
    assert!(!store.release(&first.lease, "again").await.unwrap());
    let beat = Heartbeat::default();
    assert!(!store.heartbeat(&first.lease, LONG, &beat).await.unwrap());
    // The next attempt's lease runs out: still one retry left, the release did not use it.
    let second = store
        .claim("n2", Duration::from_millis(300), NONE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.lease.attempt, 2);
    let reaped = reap_some(store).await;
    assert_eq!(reaped.len(), 1);
    assert!(reaped[0].requeued, "{reaped:?}");
    let third = store.claim("n3", LONG, NONE).await.unwrap().unwrap();
    assert_eq!(third.lease.attempt, 3);
}

async fn dismissal(store: &dyn JobStore) {
    let mut dismissals = store.dismissals();
    // Queued: never handed out.
    let queued = submit(store, "p").await;
    let before = store.dismiss(&queued).await.unwrap().unwrap();
    assert_eq!(before.state(), JobState::Accepted);
    assert_eq!(state(store, &queued).await.state, JobState::Dismissed);
    assert!(store.claim("n", LONG, NONE).await.unwrap().is_none());

    // Running: the running node hears of it and is fenced out.
    let running = submit(store, "p").await;
    let claim = store.claim("n", LONG, NONE).await.unwrap().unwrap();
    store.dismiss(&running).await.unwrap().unwrap();
    let mut heard = Vec::new();
    while heard.len() < 2 {
        heard.push(
            tokio::time::timeout(Duration::from_secs(5), dismissals.recv())
                .await
                .expect("dismissal announced")
                .unwrap(),
        );
    }
    assert_eq!(heard, [queued, running]);
    assert!(
        !store
            .heartbeat(&claim.lease, LONG, &Heartbeat::default())
            .await
            .unwrap()
    );
    let late = Outcome::Succeeded {
        outputs: vec![],
        log: vec![],
    };
    assert!(!store.finish(&claim.lease, "", &late).await.unwrap());
    assert_eq!(state(store, &running).await.state, JobState::Dismissed);

    // Finished: the outcome comes back once, for its outputs to be deleted.
    let done = submit(store, "p").await;
    let claim = store.claim("n", LONG, NONE).await.unwrap().unwrap();
    let object = ObjectId::random();
    let outcome = stored_output(object);
    assert!(store.finish(&claim.lease, "", &outcome).await.unwrap());
    let before = store.dismiss(&done).await.unwrap().unwrap();
    assert_eq!(before.outcome.unwrap().object_ids(), [object]);
    let after = store.get(&done).await.unwrap().unwrap();
    assert_eq!((after.state(), after.outcome), (JobState::Dismissed, None));
    assert!(store.dismiss(&JobId::random()).await.unwrap().is_none());
}

async fn expiry(store: &dyn JobStore) {
    let id = submit(store, "p").await;
    let waiting = submit(store, "p").await;
    let claim = store.claim("n", LONG, NONE).await.unwrap().unwrap();
    assert_eq!(claim.lease.job_id, id);
    let outcome = Outcome::Failed {
        code: tonic::Code::Aborted,
        message: "boom".into(),
        log: vec![],
    };
    assert!(store.finish(&claim.lease, "", &outcome).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    let expired = loop {
        let expired = store.expired(10).await.unwrap();
        if !expired.is_empty() || Instant::now() > deadline {
            break expired;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Only finished jobs expire.
    let ids: Vec<JobId> = expired.iter().map(|r| r.status.job_id).collect();
    assert_eq!(ids, [id]);
    store.forget(&id).await.unwrap();
    assert!(store.get(&id).await.unwrap().is_none());
    assert!(store.expired(10).await.unwrap().is_empty());
    // Forgotten: off the job list; the job still waiting is on it.
    let all = process::ListJobs {
        filter: process::JobFilter::default(),
        limit: 10,
        page_token: None,
    };
    let listed: Vec<JobId> = store
        .list(&all)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(listed, [waiting]);
    assert!(store.get(&waiting).await.unwrap().is_some());
}

async fn claims_wake_on_submit(store: &dyn JobStore) {
    let started = Instant::now();
    let (claim, id) = tokio::join!(store.claim("n", LONG, Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        submit(store, "p").await
    });
    let claim = claim.unwrap().expect("woken by the submit");
    assert_eq!(claim.lease.job_id, id);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "claim waited {:?}",
        started.elapsed()
    );
}
