//! End to end: job callbacks (OGC API - Processes `subscriber`) over real processes (redis-server,
//! storage, a node with one QGIS worker, an edge) and a receiver on loopback written here: over
//! gRPC straight to the node, and through the edge's `POST /processes/{id}/execution`. The node
//! admits 127.0.0.1 by `[node.fetch] allow` and nothing else on loopback (or, in one mesh, not
//! even that); nothing here sends traffic to a non-loopback address: those URIs must be refused
//! before any connection.

#[path = "callbacks_common/mod.rs"]
mod common;
#[path = "ogcapi_common/mod.rs"]
mod ogcapi;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    ASYNC, CALLBACK_TIMEOUT, METADATA, POINTS, Receiver, WAIT, buffered, created, listed, mesh,
    metrics, ogc_buffer, refusals, refused_by_edge, refused_through_edge, running_then_results,
    sample, store_size,
};
use ogcapi::{execute, follow};
use serde_json::{Value, json};
use tonic::Code;
use wpsmesh_proto::metadata::LOCATOR_KEY;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, JobState, StoredObject, SubmitRequest, Subscriber, reference,
};
use wpsmesh_tests::Launch;
use wpsmesh_tests::mesh::{Mesh, buffer_execute, object_of};

// ---------------------------------------------------------------------------------------------
// Requests over gRPC, straight to the node.

fn subscriber(
    m: &Mesh,
    success: Option<String>,
    progress: Option<String>,
    failed: Option<String>,
) -> Subscriber {
    Subscriber {
        success_uri: success.unwrap_or_default(),
        in_progress_uri: progress.unwrap_or_default(),
        failed_uri: failed.unwrap_or_default(),
        base_url: m.edges[0].uri(),
    }
}

/// native:buffer (0.5) of `source`, with `subscriber`.
fn buffer(source: reference::Source, subscriber: Option<Subscriber>) -> SubmitRequest {
    let execute = ExecuteRequest {
        subscriber,
        ..buffer_execute(source, "0.5")
    };
    SubmitRequest {
        execute: Some(execute),
    }
}

/// The stored points, uploaded through the edge.
async fn points(m: &Mesh) -> reference::Source {
    let href = m.upload(&POINTS).await;
    reference::Source::Object(StoredObject {
        id: object_of(&href),
        extension: "geojson".into(),
    })
}

async fn submit(m: &Mesh, request: SubmitRequest) -> Result<String, tonic::Status> {
    let answer = m.node_client(0).submit(request).await?;
    Ok(answer.into_inner().job.expect("job").job_id)
}

async fn succeeded(m: &Mesh, id: &str) {
    m.wait_status(0, id, WAIT, "successful", |s| {
        s.state() == JobState::Successful
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_succeeded_and_failed_jobs_call_back_with_retries_and_no_delay() {
    let (_turn, m) = mesh(true).await;
    let mut rx = Receiver::start().await;
    let source = points(&m).await;

    // In progress, then success: a running statusInfo, then the results under base_url.
    let sub = subscriber(
        &m,
        Some(rx.url("/a/success")),
        Some(rx.url("/a/progress")),
        Some(rx.url("/a/failed")),
    );
    let id = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    running_then_results(&m, &mut rx, "/a", &id).await;
    succeeded(&m, &id).await;

    // A failing job (its input answers 405: the receiver takes only POSTs): the failed statusInfo with the failure message.
    let missing = reference::Source::Href(rx.url("/nothing/here.geojson"));
    let sub = subscriber(
        &m,
        Some(rx.url("/b/success")),
        None,
        Some(rx.url("/b/failed")),
    );
    let failing = submit(&m, buffer(missing, Some(sub)))
        .await
        .expect("submit");
    let failed = rx.wait("/b/failed").await;
    assert_eq!(failed.body["jobID"], failing.as_str(), "{}", failed.body);
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    let message = failed.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("INPUT"), "{}", failed.body);
    m.wait_status(0, &failing, WAIT, "failed", |s| {
        s.state() == JobState::Failed
    })
    .await;

    // A receiver answering 500 then 200 gets the retry.
    let sub = subscriber(&m, Some(rx.url("/flaky/c")), None, None);
    let flaky = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    let first = rx.wait("/flaky/c").await;
    let second = rx.wait("/flaky/c").await;
    assert_eq!(first.body, second.body, "the same document again");
    assert!(second.body["OUTPUT"]["href"].is_string(), "{}", second.body);
    succeeded(&m, &flaky).await;

    // A receiver that hangs on the in-progress POST: the job completes meanwhile (long before
    // that POST times out), and its success callback is not held up behind the hung POST's
    // retries (which would take 3 timeouts): at most one timeout, when the job was so quick
    // that its running status is told only as it ends.
    let sub = subscriber(
        &m,
        Some(rx.url("/d/success")),
        Some(rx.url("/hang/d")),
        None,
    );
    let hung = submit(&m, buffer(source.clone(), Some(sub)))
        .await
        .expect("submit");
    let hanging = rx.wait("/hang/d").await;
    succeeded(&m, &hung).await;
    let completed = hanging.at.elapsed();
    assert!(
        completed < CALLBACK_TIMEOUT,
        "job completed {completed:?} after the hung POST began"
    );
    let done = rx.wait("/d/success").await;
    let held = done.at.duration_since(hanging.at);
    assert!(
        held < CALLBACK_TIMEOUT + Duration::from_secs(3),
        "success came {held:?} after the hung POST began"
    );

    // Nothing was sent where it should not have been; every outcome is counted.
    assert_eq!(rx.pending("/a/failed"), 0);
    assert_eq!(rx.pending("/b/success"), 0);
    let text = metrics(&m.nodes[0]).await;
    let count = |kind: &str, outcome: &str| {
        sample(
            &text,
            &format!(r#"wpsmesh_node_callbacks_total{{kind="{kind}",outcome="{outcome}"}}"#),
        )
    };
    assert!(count("success", "delivered") >= 3.0, "{text}");
    assert!(count("failed", "delivered") >= 1.0, "{text}");
    assert!(count("in_progress", "delivered") >= 1.0, "{text}");
    assert!(
        count("in_progress", "dropped") + count("in_progress", "failed") >= 1.0,
        "the hung in-progress POST is given up or failed: {text}"
    );
}

/// `status` is INVALID_ARGUMENT about `subscriber.successUri`, with `reason` in its message.
fn refused(status: &tonic::Status, reason: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let locator = status
        .metadata()
        .get(LOCATOR_KEY)
        .and_then(|v| v.to_str().ok());
    assert_eq!(locator, Some("subscriber.successUri"), "{status:?}");
    assert!(
        status.message().contains(reason),
        "{reason:?} in {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callback_uris_fail_the_request_at_once_and_queue_nothing() {
    let (_turn, m) = mesh(true).await;
    let mut rx = Receiver::start().await;
    let source = points(&m).await;
    let port = rx.addr.port();
    let with = |uri: String| buffer(source.clone(), Some(subscriber(&m, Some(uri), None, None)));

    let before = store_size(&m);
    for (uri, reason) in [
        (METADATA.0.to_owned(), METADATA.1),
        (
            format!("http://127.0.0.2:{port}/cb"),
            "address 127.0.0.2 is not allowed (loopback)",
        ),
        (
            format!("http://[::1]:{port}/cb"),
            "address ::1 is not allowed (loopback)",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
            "cloud metadata service",
        ),
    ] {
        let err = submit(&m, with(uri.clone())).await.expect_err(&uri);
        refused(&err, reason);
        // A synchronous Execute is refused the same way, before it runs.
        let execute = with(uri.clone()).execute.expect("execute");
        let err = m.node_client(0).execute(execute).await.expect_err(&uri);
        refused(&err, reason);
    }
    assert_eq!(store_size(&m), before, "nothing recorded or queued");

    // The positive control: the same request with an admitted URI is queued and called back.
    let id = submit(&m, with(rx.url("/ok"))).await.expect("admitted");
    assert_ne!(store_size(&m).0, before.0, "the admitted job is recorded");
    let results = rx.wait("/ok").await;
    assert!(
        results.body["OUTPUT"]["href"].is_string(),
        "{}",
        results.body
    );
    succeeded(&m, &id).await;

    // 20 refused and 20 admitted submits at once: each refused one refused, each admitted one
    // run and called back.
    let before = store_size(&m);
    let calls = (0..40).map(|i| {
        let uri = if i % 4 == 0 {
            format!("http://169.254.169.254/{i}")
        } else if i % 4 == 2 {
            format!("http://127.0.0.2:{port}/many/{i}")
        } else {
            rx.url(&format!("/many/{i}"))
        };
        let request = with(uri);
        let m = &m;
        async move { (i, submit(m, request).await) }
    });
    let answers = futures::future::join_all(calls).await;
    let mut admitted = Vec::new();
    for (i, answer) in answers {
        match answer {
            Err(e) if i % 2 == 0 => refused(&e, "is not allowed"),
            Ok(id) if i % 2 == 1 => admitted.push((i, id)),
            other => panic!("submit {i}: {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 20);
    for (i, id) in &admitted {
        let post = rx.wait(&format!("/many/{i}")).await;
        assert!(post.body["OUTPUT"]["href"].is_string(), "{}", post.body);
        succeeded(&m, id).await;
    }
    let jobs: usize = store_size(&m).0.trim().parse().expect("job count");
    let was: usize = before.0.trim().parse().expect("job count");
    assert_eq!(jobs, was + 20, "only the admitted jobs are recorded");
    assert_eq!(refusals(&m).await, 28.0);

    // A node without the allow rule refuses loopback itself, the request being otherwise the
    // same; without a subscriber that node takes it.
    let strict = Launch::node(m.dir(), "strict", &m.storage.uri())
        .start()
        .await
        .expect("strict node");
    let channel = wpsmesh_runtime::grpc::channel(&strict.uri()).expect("channel");
    let mut client =
        wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient::new(
            channel,
        );
    let err = client
        .submit(with(rx.url("/strict")))
        .await
        .expect_err("loopback refused without the allow rule");
    refused(&err, "address 127.0.0.1 is not allowed (loopback)");
    let err = client
        .submit(with(format!("http://localhost:{port}/strict")))
        .await
        .expect_err("loopback by name refused without the allow rule");
    refused(
        &err,
        "host localhost resolves only to addresses that are not allowed",
    );
    client
        .submit(buffer(source.clone(), None))
        .await
        .expect("the same job without callbacks");
    assert_eq!(rx.pending("/strict"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_edge_an_async_execution_calls_back_running_then_results() {
    let (_turn, m) = mesh(true).await;
    let mut rx = Receiver::start().await;
    let href = m.upload(&POINTS).await;
    let subscriber = json!({
        "successUri": rx.url("/e/success"),
        "inProgressUri": rx.url("/e/progress"),
        "failedUri": rx.url("/e/failed"),
    });
    let a = execute(&m, "native:buffer", &ogc_buffer(&href, subscriber), ASYNC).await;
    let id = created(&m, &a);
    let job_url = running_then_results(&m, &mut rx, "/e", &id).await;
    follow(&m, &job_url, "successful").await;
    assert_eq!(rx.pending("/e/failed"), 0, "no failure told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_edge_refused_callback_uris_are_400_problems_and_queue_nothing() {
    let (_turn, m) = mesh(true).await;
    let mut rx = Receiver::start().await;
    let href = m.upload(&POINTS).await;
    let port = rx.addr.port();
    let with = |uri: &str| ogc_buffer(&href, json!({"successUri": uri}));

    let cases = [
        (METADATA.0.to_owned(), METADATA.1),
        (
            format!("http://127.0.0.2:{port}/cb"),
            "address 127.0.0.2 is not allowed (loopback)",
        ),
    ];
    refused_through_edge(&m, &href, &cases).await;
    assert_eq!(refusals(&m).await, 4.0, "the node refused each once");

    // The positive control: the same request with the admitted receiver is taken and called back.
    let a = execute(&m, "native:buffer", &with(&rx.url("/ok")), ASYNC).await;
    let id = created(&m, &a);
    assert!(listed(&m).await.contains(&id), "{id} listed");
    buffered(&m, &rx.wait("/ok").await.body).await;

    // 16 refused and 16 admitted executions at once: each refused one 400, each admitted one
    // 201, listed and called back; no other job listed.
    let before = listed(&m).await;
    let calls = (0..32).map(|i| {
        let uri = match i % 4 {
            0 => format!("http://169.254.169.254/{i}"),
            2 => format!("http://127.0.0.2:{port}/many/{i}"),
            _ => rx.url(&format!("/many/{i}")),
        };
        let (m, body) = (&m, with(&uri));
        async move { (i, execute(m, "native:buffer", &body, ASYNC).await) }
    });
    let mut admitted = Vec::new();
    for (i, a) in futures::future::join_all(calls).await {
        if i % 2 == 0 {
            refused_by_edge(&a, "is not allowed");
        } else {
            admitted.push((i, created(&m, &a)));
        }
    }
    assert_eq!(admitted.len(), 16);
    for (i, _) in &admitted {
        let post = rx.wait(&format!("/many/{i}")).await;
        assert!(post.body["OUTPUT"]["href"].is_string(), "{}", post.body);
    }
    let new: BTreeSet<String> = listed(&m).await.difference(&before).cloned().collect();
    let ids: BTreeSet<String> = admitted.into_iter().map(|(_, id)| id).collect();
    assert_eq!(new, ids, "only the admitted jobs are listed");
    assert_eq!(refusals(&m).await, 20.0);
    for i in (0..32).filter(|i| i % 4 == 2) {
        assert_eq!(
            rx.pending(&format!("/many/{i}")),
            0,
            "refused {i} not called"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_edge_over_a_node_without_the_allow_rule_loopback_callbacks_are_400() {
    let (_turn, m) = mesh(false).await;
    let mut rx = Receiver::start().await;
    let href = m.upload(&POINTS).await;
    let port = rx.addr.port();
    let cases = [
        (
            rx.url("/strict"),
            "address 127.0.0.1 is not allowed (loopback)",
        ),
        (
            format!("http://localhost:{port}/strict"),
            "host localhost resolves only to addresses that are not allowed",
        ),
        (METADATA.0.to_owned(), METADATA.1),
    ];
    refused_through_edge(&m, &href, &cases).await;

    // The same request without a subscriber is taken and runs.
    let a = execute(&m, "native:buffer", &ogc_buffer(&href, Value::Null), ASYNC).await;
    let id = created(&m, &a);
    let done = follow(&m, &format!("{}/jobs/{id}", m.edges[0].uri()), "successful").await;
    assert!(listed(&m).await.contains(&id), "{done}");
    assert_eq!(rx.pending("/strict"), 0, "nothing called back");
}
