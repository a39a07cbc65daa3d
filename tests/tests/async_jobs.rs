//! End to end: asynchronous jobs in Redis over real processes (redis-server, storage, nodes with
//! one QGIS worker each, edges): jobs shared across edges and nodes, a killed node, a stopped node
//! fenced out, a stopping node handing its job back, dismiss, Redis restarted under the mesh,
//! expiry of records and files.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use tonic::Code;
use wpsmesh_proto::wire::process::v1::{GetResultRequest, JobState, JobStatus};
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{
    CANCEL_GRACE, LEASE, Mesh, MeshSpec, buffer_job as buffer, feature_count, object_of,
};

/// Copies of France in the medium input: buffering it takes a few seconds (about 45 ms each).
const MEDIUM_COPIES: usize = 50;
/// Copies in the long input: about half a minute, far longer than a cancel grace.
const LONG_COPIES: usize = 600;

struct Data {
    points: PathBuf,
    medium: PathBuf,
    long: PathBuf,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("async-jobs");
    std::fs::create_dir_all(&dir).expect("data dir");
    Data {
        points: data::derive(&dir, "points.geojson", data::POINTS_SQL),
        medium: data::derive(
            &dir,
            "medium.geojson",
            &data::slow_sql(MEDIUM_COPIES as u32),
        ),
        long: data::derive(&dir, "long.geojson", &data::slow_sql(LONG_COPIES as u32)),
    }
});

/// One mesh at a time: the deadlines of these tests (lease + 10 s) are about one mesh's jobs,
/// not two meshes' QGIS workers fighting over the same two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn mesh(spec: MeshSpec) -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    let turn = ONE_AT_A_TIME.lock().await;
    LazyLock::force(&DATA);
    (turn, Mesh::start(spec).await.expect("mesh starts"))
}

/// A WPS 2.0 asynchronous Execute of native:buffer of `href`.
fn execute_async(href: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="2.0.0" mode="async" response="document" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>native:buffer</ows:Identifier>
<wps:Input id="INPUT"><wps:Reference xlink:href="{href}" mimeType="application/geo+json"/></wps:Input>
<wps:Input id="DISTANCE"><wps:Data><wps:LiteralValue>0.5</wps:LiteralValue></wps:Data></wps:Input>
<wps:Output id="OUTPUT" transmission="reference"/>
</wps:Execute>"#
    )
}

/// The text between `start` and `end` in `doc`.
fn between<'a>(doc: &'a str, start: &str, end: &str) -> &'a str {
    let from = doc
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {doc}"))
        + start.len();
    let len = doc[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} in {doc}"));
    &doc[from..from + len]
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
    })
}

/// The href of output OUTPUT in a succeeded JSON job.
fn output_href(job: &Value) -> String {
    job["outputs"]["OUTPUT"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no OUTPUT href in {job}"))
        .to_owned()
}

/// Submits a medium job on a two-node mesh and waits until its first attempt runs: the job id,
/// its status, the node running it and the other node.
async fn medium_job_running(m: &Mesh) -> (String, JobStatus, usize, usize) {
    let input = m.upload(&DATA.medium).await;
    let (id, _) = m.submit(0, &buffer(&input)).await;
    let running = m
        .wait_status(
            0,
            &id,
            Duration::from_secs(60),
            "running on a worker",
            |s| s.state() == JobState::Running && !s.worker.is_empty(),
        )
        .await;
    assert_eq!(running.attempt, 1, "{running:?}");
    let x = m.node_index(&running.node);
    (id, running, x, 1 - x)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_through_one_edge_is_followed_through_another_edge_and_node() {
    // Edge 0 knows only node 0, edge 1 only node 1.
    let (_turn, m) = mesh(MeshSpec::new(2).edges(vec![vec![0], vec![1]])).await;
    let points = m.upload(&DATA.points).await;

    // JSON: submitted through edge 0 (so by node 0), followed through edge 1 and node 1.
    let (id, accepted) = m.submit(0, &buffer(&points)).await;
    assert_eq!(accepted["status"]["status"], "accepted", "{accepted}");
    let seen = m.grpc_status(1, &id).await;
    assert!(
        seen.is_ok(),
        "node 1 knows the job node 0 accepted: {seen:?}"
    );
    let done = m
        .wait_status(1, &id, Duration::from_secs(60), "successful", |s| {
            s.state() == JobState::Successful
        })
        .await;
    assert_eq!(done.attempt, 1, "{done:?}");
    m.node_index(&done.node);
    assert!(!done.worker.is_empty(), "worker recorded: {done:?}");
    let job = m
        .wait_job(1, &id, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(job["jobID"], id.as_str());
    assert_eq!(job["node"], done.node.as_str(), "{job}");
    assert_eq!(job["attempt"], 1, "{job}");
    let href = output_href(&job);
    let (status, bytes) = m.fetch(1, &href).await;
    assert_eq!(status, 200, "output through edge 1");
    assert_eq!(feature_count(&bytes), 240);
    // Node 0 tells the same.
    let same = m.grpc_status(0, &id).await.expect("node 0 knows the job");
    assert_eq!(
        (same.state(), same.node, same.attempt),
        (JobState::Successful, done.node, 1)
    );

    // WPS 2.0 the other way round: Execute through edge 1, GetStatus/GetResult through edge 0.
    let (status, info) = m.wps(1, "", Some(execute_async(&points))).await;
    assert_eq!(status, 200, "{info}");
    assert!(info.contains("<wps:Status>Accepted</wps:Status>"), "{info}");
    let job = between(&info, "<wps:JobID>", "</wps:JobID>")
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, info) = m.wps_job(0, "GetStatus", &job).await;
        assert_eq!(status, 200, "{info}");
        assert!(info.contains(&job), "{info}");
        let state = between(&info, "<wps:Status>", "</wps:Status>");
        if state == "Succeeded" {
            break;
        }
        assert!(matches!(state, "Accepted" | "Running"), "{info}");
        assert!(Instant::now() < deadline, "WPS job {job} not done: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, result) = m.wps_job(0, "GetResult", &job).await;
    assert_eq!(status, 200, "{result}");
    assert!(result.contains("<wps:Result"), "{result}");
    let href = between(&result, "xlink:href=\"", "\"").replace("&amp;", "&");
    let (status, bytes) = m.fetch(1, &href).await;
    assert_eq!(status, 200, "{href}");
    assert_eq!(feature_count(&bytes), 240);

    // A synchronous Execute through edge 0 (node 0) is a job record like any other: node 1 and
    // edge 1 answer for it once it has answered, with the same node and outputs.
    let sync = m
        .http
        .post(format!("{}/api/wps/jobs", m.edges[0].uri()))
        .json(&buffer(&points))
        .send()
        .await
        .expect("sync execute");
    assert_eq!(sync.status(), 200);
    let sync: Value = sync.json().await.expect("sync answer");
    assert_eq!(sync["status"]["status"], "succeeded", "{sync}");
    let id = sync["jobID"].as_str().expect("jobID").to_owned();
    let seen = m
        .grpc_status(1, &id)
        .await
        .expect("node 1 knows the sync job");
    assert_eq!(
        (seen.state(), seen.node.as_str(), seen.attempt),
        (JobState::Successful, sync["node"].as_str().unwrap_or(""), 1),
        "{seen:?}"
    );
    let (status, _, job) = m.job(1, &id).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"]["status"], "succeeded", "{job}");
    // The same stored output, as a URL of the edge that answers.
    assert_eq!(
        object_of(&output_href(&job)),
        object_of(&output_href(&sync))
    );
    assert!(output_href(&job).starts_with(&m.edges[1].uri()), "{job}");

    // An id nobody issued: 404 NoSuchJob, through either edge.
    let (status, _, body) = m.job(1, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NoSuchJob", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_its_job_to_another_node_or_fails_it_within_the_lease() {
    let (_turn, mut m) = mesh(MeshSpec::new(2)).await;
    let (id, running, x, y) = medium_job_running(&m).await;
    let worker: u32 = running
        .worker
        .parse()
        .unwrap_or_else(|_| panic!("worker is a pid: {running:?}"));

    m.nodes[x].kill();
    let killed = Instant::now();
    let end = m
        .wait_status(
            y,
            &id,
            LEASE + Duration::from_secs(10),
            "successful on the other node or failed (never stuck running on the dead one)",
            |s| matches!(s.state(), JobState::Successful | JobState::Failed),
        )
        .await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE + Duration::from_secs(10),
        "ended {took:?} after the kill"
    );
    assert!(
        exited(worker),
        "worker {worker} of the killed node still runs"
    );
    match end.state() {
        JobState::Successful => {
            assert_eq!(end.node, m.nodes[y].addr(), "{end:?}");
            assert_eq!(end.attempt, 2, "{end:?}");
            let job = m
                .wait_job(0, &id, "succeeded", Duration::from_secs(30))
                .await;
            let (status, bytes) = m.fetch(0, &output_href(&job)).await;
            assert_eq!(status, 200);
            assert_eq!(feature_count(&bytes), MEDIUM_COPIES);
        }
        _ => {
            assert!(
                !end.message.trim().is_empty(),
                "failed without a message: {end:?}"
            );
            let job = m.wait_job(0, &id, "failed", Duration::from_secs(30)).await;
            assert!(
                !job["status"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{job}"
            );
        }
    }
    eprintln!(
        "job ended {:?} {took:?} after the kill: {}",
        end.state(),
        end.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_fenced_out_and_the_second_attempt_stands() {
    let (_turn, m) = mesh(MeshSpec::new(2)).await;
    let (id, _, x, y) = medium_job_running(&m).await;

    // Frozen past its lease: the other node takes the job over.
    m.nodes[x].signal(Signal::SIGSTOP).expect("SIGSTOP");
    let second = m
        .wait_status(y, &id, LEASE + Duration::from_secs(10), "taken over", |s| {
            s.attempt >= 2 || matches!(s.state(), JobState::Failed | JobState::Dismissed)
        })
        .await;
    assert_eq!(
        (second.attempt, second.node.as_str()),
        (2, m.nodes[y].addr().as_str()),
        "{second:?}"
    );
    let done = m
        .wait_status(
            y,
            &id,
            Duration::from_secs(60),
            "finished by the second attempt",
            |s| !matches!(s.state(), JobState::Accepted | JobState::Running),
        )
        .await;
    assert_eq!(done.state(), JobState::Successful, "{done:?}");
    // The frozen node's worker was not frozen: by now attempt 1 has a result waiting too.

    m.nodes[x].signal(Signal::SIGCONT).expect("SIGCONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m.nodes[x].log().contains("fenced out") {
        assert!(
            Instant::now() < deadline,
            "the resumed node never said its attempt was fenced out:\n{}",
            m.nodes[x].log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fenced = m.nodes[x].log();
    let fenced: Vec<&str> = fenced
        .lines()
        .filter(|l| l.contains("fenced out"))
        .collect();
    eprintln!("node {x} said:\n{}", fenced.join("\n"));
    // The late completion changed nothing, whichever node is asked.
    for i in [x, y] {
        let s = m.grpc_status(i, &id).await.expect("status");
        assert_eq!(
            (s.state(), s.attempt, s.node.as_str()),
            (JobState::Successful, 2, m.nodes[y].addr().as_str()),
            "record as node {i} tells it: {s:?}"
        );
    }
    let result = m
        .node_client(y)
        .get_result(GetResultRequest { job_id: id.clone() })
        .await
        .expect("result")
        .into_inner();
    assert_eq!(result.job.map(|j| j.attempt), Some(2));
    let job = m
        .wait_job(0, &id, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(job["attempt"], 2, "{job}");
    let href = output_href(&job);
    let (status, bytes) = m.fetch(0, &href).await;
    assert_eq!(status, 200);
    assert_eq!(feature_count(&bytes), MEDIUM_COPIES);
    // Storage holds the input and the second attempt's output: the rejected attempt left none.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored = m.objects();
        if stored.len() == 2 && stored.contains(&object_of(&href)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "storage should hold the input and {href} only: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopping_hands_its_running_job_back_to_another_node() {
    let (_turn, mut m) = mesh(MeshSpec::new(2)).await;
    let long = m.upload(&DATA.long).await;
    let (id, _) = m.submit(0, &buffer(&long)).await;
    let running = m
        .wait_status(0, &id, Duration::from_secs(60), "running", |s| {
            s.state() == JobState::Running && !s.worker.is_empty()
        })
        .await;
    let x = m.node_index(&running.node);
    let y = 1 - x;

    m.nodes[x].signal(Signal::SIGTERM).expect("SIGTERM");
    let stopped = Instant::now();
    // The stopping node drains for one lease, then hands the job back at once: the other node
    // runs it as attempt 2 (a release, not a lost lease: the job keeps its retry).
    let moved = m
        .wait_status(
            y,
            &id,
            LEASE + Duration::from_secs(20),
            "running on the other node",
            |s| s.state() == JobState::Running && s.node == m.nodes[y].addr(),
        )
        .await;
    assert_eq!(moved.attempt, 2, "{moved:?}");
    let node = &mut m.nodes[x];
    wpsmesh_tests::eventually("the stopped node exits", Duration::from_secs(30), || {
        !node.is_running()
    })
    .await
    .expect("node exits after SIGTERM");
    let log = m.nodes[x].log();
    assert!(
        log.contains("job handed back to the queue"),
        "{}",
        m.nodes[x].log_tail(30)
    );
    assert!(log.contains("node stopped"), "{}", m.nodes[x].log_tail(30));
    eprintln!("job moved {:?} after SIGTERM", stopped.elapsed());
    let (status, body) = m.dismiss(0, &id).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dismiss_stops_a_running_job_within_the_grace_and_keeps_no_outputs() {
    let (_turn, m) = mesh(MeshSpec::new(1)).await;
    let points = m.upload(&DATA.points).await;
    let long = m.upload(&DATA.long).await;
    let (id, _) = m.submit(0, &buffer(&long)).await;
    m.wait_status(
        0,
        &id,
        Duration::from_secs(90),
        "running with progress",
        |s| s.state() == JobState::Running && s.percent_done > 0,
    )
    .await;
    let before = m.objects();

    let (status, body) = m.dismiss(0, &id).await;
    let dismissed = Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["status"], "dismissed", "{body}");
    let s = m.grpc_status(0, &id).await.expect("status");
    assert_eq!(s.state(), JobState::Dismissed, "{s:?}");
    // The only worker is free again within the grace: a short job runs at once.
    let (short, _) = m.submit(0, &buffer(&points)).await;
    let job = m
        .wait_job(
            0,
            &short,
            "succeeded",
            CANCEL_GRACE + Duration::from_secs(30),
        )
        .await;
    assert!(
        dismissed.elapsed() < CANCEL_GRACE + Duration::from_secs(10),
        "the next job ended {:?} after the dismiss",
        dismissed.elapsed()
    );
    eprintln!(
        "the next job ended {:?} after the dismiss",
        dismissed.elapsed()
    );
    let output = object_of(&output_href(&job));
    let added: Vec<String> = m.objects().difference(&before).cloned().collect();
    assert_eq!(added, [output], "only the short job's output was stored");

    // Still dismissed: the cancelled run did not report over it.
    let (status, _, body) = m.job(0, &id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["status"], "dismissed", "{body}");
    assert_eq!(m.objects().difference(&before).count(), 1);
    // No result for it: its outputs are gone, as for WPS 2.0 NoSuchJob (NOT_FOUND, locator
    // JobID, naming the dismissal).
    let err = m
        .node_client(0)
        .get_result(GetResultRequest { job_id: id.clone() })
        .await
        .expect_err("no result for a dismissed job");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        err.metadata()
            .get("wpsmesh-locator")
            .and_then(|v| v.to_str().ok()),
        Some("JobID")
    );
    assert!(err.message().contains("dismissed"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_job_calls_fail_and_they_work_again_when_it_is_back() {
    let (_turn, mut m) = mesh(MeshSpec::new(2)).await;
    let points = m.upload(&DATA.points).await;
    let (id, _) = m.submit(0, &buffer(&points)).await;
    m.wait_job(0, &id, "succeeded", Duration::from_secs(60))
        .await;
    let pids = m.pids();

    m.redis.stop().expect("redis stops");
    let asked = Instant::now();
    let (status, retry_after, body) = m.job(0, &id).await;
    // Fails fast (well under the 2 s command timeout), saying what happened.
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "a job call took {:?} while redis refused connections",
        asked.elapsed()
    );
    assert_eq!(status, 503, "status while redis is away: {body}");
    assert_eq!(body["error"]["code"], "NoApplicableCode", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("job store"), "names the job store: {body}");
    assert!(
        message.contains("refused"),
        "says the connection was refused: {body}"
    );
    assert!(retry_after.is_some(), "Retry-After on 503");
    let (status, _, body) = m.try_submit(0, &buffer(&points)).await;
    assert_eq!(status, 503, "submit while redis is away: {body}");
    assert_eq!(body["error"]["code"], "NoApplicableCode", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("job store"),
        "{body}"
    );
    let (status, report) = m.wps_job(0, "GetStatus", &id).await;
    assert_eq!(status, 503, "{report}");
    assert!(
        report.contains("exceptionCode=\"NoApplicableCode\""),
        "{report}"
    );
    assert!(report.contains("job store"), "{report}");

    m.redis.start_again().expect("redis starts again");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, body) = m.job(0, &id).await;
        if status == 200 {
            assert_eq!(
                body["status"]["status"], "succeeded",
                "kept across the restart: {body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer 30 s after redis came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each node reconnects on its own: until both have, a submit balanced to the other may still
    // be refused, with the reason; it is accepted before the deadline.
    let again = loop {
        let (status, _, body) = m.try_submit(0, &buffer(&points)).await;
        if status == 201 {
            break body["jobID"].as_str().expect("jobID").to_owned();
        }
        assert_eq!(status, 503, "submit after redis came back: {body}");
        assert!(body.to_string().contains("job store"), "{body}");
        assert!(
            Instant::now() < deadline,
            "no submit accepted 30 s after redis came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let job = m
        .wait_job(0, &again, "succeeded", Duration::from_secs(60))
        .await;
    let (status, bytes) = m.fetch(0, &output_href(&job)).await;
    assert_eq!(status, 200);
    assert_eq!(feature_count(&bytes), 240);
    // Nothing of ours was restarted.
    assert_eq!(m.pids(), pids);
    assert_eq!(m.exited(), Vec::<String>::new(), "services that exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_jobs_and_their_files_are_gone() {
    let ttl = Duration::from_secs(3);
    let (_turn, m) = mesh(MeshSpec::new(1).node_env("WPSMESH_NODE__JOBS__TTL", "3s")).await;
    let points = m.upload(&DATA.points).await;
    let (id, _) = m.submit(0, &buffer(&points)).await;
    let job = m
        .wait_job(0, &id, "succeeded", Duration::from_secs(60))
        .await;
    let href = output_href(&job);
    let object = object_of(&href);
    assert!(m.objects().contains(&object), "output {object} stored");
    let s = m.grpc_status(0, &id).await.expect("status");
    let (finished, expires) = (
        s.finished_at.expect("finished_at"),
        s.expires_at.expect("expires_at"),
    );
    assert!(
        (expires.seconds - finished.seconds - 3).abs() <= 1,
        "expires {ttl:?} after finishing: {s:?}"
    );
    let keys = m.redis.command(&["KEYS", &format!("*{id}*")]);
    assert!(!keys.is_empty(), "the job is in redis");

    let deadline = Instant::now() + ttl + Duration::from_secs(10);
    loop {
        match m.grpc_status(0, &id).await {
            Err(e) if e.code() == Code::NotFound => break,
            answer => assert!(
                Instant::now() < deadline,
                "job {id} still there: {answer:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, body) = m.job(0, &id).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NoSuchJob", "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.objects().contains(&object) {
        assert!(
            Instant::now() < deadline,
            "output {object} of the expired job is still stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = m.fetch(0, &href).await;
    assert_eq!(status, 404, "expired output {href}");
    assert_eq!(
        m.redis.command(&["KEYS", &format!("*{id}*")]),
        "",
        "no key of the job left"
    );
}
