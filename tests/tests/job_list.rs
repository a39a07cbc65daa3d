//! End to end: ListJobs over real gRPC through real nodes sharing a real redis-server job store:
//! jobs submitted through several nodes are all listed by any node, newest first; a limit and
//! the next token page through them; filters apply; a bad token or limit is refused naming the
//! parameter.

use std::collections::HashSet;

use bytes::Bytes;
use tonic::Code;
use wpsmesh_proto::metadata::LOCATOR_KEY;
use wpsmesh_proto::process::{ComplexValue, ExecuteRequest, Format, Input, InputValue, MAX_LIMIT};
use wpsmesh_proto::wire::process::v1::{self as wire, ListJobsRequest, SubmitRequest};
use wpsmesh_tests::mesh::{Mesh, MeshSpec};

const NODES: usize = 3;
const PER_NODE: usize = 4;

/// native:buffer of one inline point: a job any node's worker finishes at once.
fn buffer_one_point() -> wire::ExecuteRequest {
    let point = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[2.35,48.85]}}]}"#;
    ExecuteRequest {
        process_id: "native:buffer".into(),
        inputs: vec![
            Input {
                id: "INPUT".into(),
                value: InputValue::Complex(ComplexValue {
                    format: Some(Format::of("application/geo+json")),
                    data: Bytes::from_static(point.as_bytes()),
                }),
            },
            Input {
                id: "DISTANCE".into(),
                value: InputValue::Literal(wpsmesh_proto::process::LiteralValue::plain("0.5")),
            },
        ],
        outputs: vec![],
        timeout: None,
        subscriber: None,
    }
    .into()
}

/// Every job node `i` lists, following pages of `limit`; also checks each page's size.
async fn all_pages(mesh: &Mesh, i: usize, mut request: ListJobsRequest) -> Vec<wire::JobStatus> {
    let mut client = mesh.node_client(i);
    let mut jobs = Vec::new();
    for _ in 0..1000 {
        let page = client
            .list_jobs(request.clone())
            .await
            .expect("list jobs")
            .into_inner();
        assert!(
            page.jobs.len() <= request.limit as usize,
            "page of {}",
            page.jobs.len()
        );
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return jobs;
        }
        request.page_token = page.next_page_token;
    }
    panic!("the job list never ended");
}

fn ids(jobs: &[wire::JobStatus]) -> Vec<String> {
    jobs.iter().map(|j| j.job_id.clone()).collect()
}

fn created_ms(job: &wire::JobStatus) -> i64 {
    let t = job.created_at.as_ref().expect("created_at");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

#[tokio::test]
async fn jobs_submitted_through_several_nodes_are_listed_and_paged_by_any() {
    let mesh = Mesh::start(MeshSpec::new(NODES))
        .await
        .expect("mesh starts");
    let mut submitted = HashSet::new();
    for i in 0..NODES {
        let mut client = mesh.node_client(i);
        for _ in 0..PER_NODE {
            let job = client
                .submit(SubmitRequest {
                    execute: Some(buffer_one_point()),
                })
                .await
                .expect("submit")
                .into_inner()
                .job
                .expect("job");
            submitted.insert(job.job_id);
        }
    }
    assert_eq!(submitted.len(), NODES * PER_NODE);

    // Any node lists every job, newest first (creation time, then id, descending).
    let whole = |limit| ListJobsRequest {
        limit,
        ..Default::default()
    };
    let listed = all_pages(&mesh, NODES - 1, whole(MAX_LIMIT)).await;
    assert_eq!(ids(&listed).into_iter().collect::<HashSet<_>>(), submitted);
    assert_eq!(listed.len(), submitted.len(), "a job listed twice");
    assert!(
        listed
            .windows(2)
            .all(|w| (created_ms(&w[0]), &w[0].job_id) > (created_ms(&w[1]), &w[1].job_id)),
        "not newest first"
    );

    // Pages of 5 through another node: the same jobs in the same order, the last page short.
    let mut client = mesh.node_client(0);
    let first = client
        .list_jobs(whole(5))
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first.jobs.len(), 5);
    assert!(
        !first.next_page_token.is_empty(),
        "a first page of 5 of 12 names the next"
    );
    let paged = all_pages(&mesh, 0, whole(5)).await;
    assert_eq!(ids(&paged), ids(&listed));

    // Filters travel: another process matches none; native:buffer every job.
    let by_process = |p: &str| ListJobsRequest {
        process_ids: vec![p.into()],
        ..whole(100)
    };
    assert!(
        all_pages(&mesh, 1, by_process("native:dissolve"))
            .await
            .is_empty()
    );
    assert_eq!(
        all_pages(&mesh, 1, by_process("native:buffer")).await.len(),
        submitted.len()
    );

    // Refusals name the parameter (the store's own tokens were taken above).
    for (request, locator, says) in [
        (
            ListJobsRequest {
                page_token: "not-a-position".into(),
                ..whole(5)
            },
            "next",
            "page token",
        ),
        (whole(MAX_LIMIT + 1), "limit", "largest page"),
    ] {
        let refused = client.list_jobs(request).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(says), "{}", refused.message());
        let named = refused.metadata().get(LOCATOR_KEY).map(|v| v.to_str().ok());
        assert_eq!(named, Some(Some(locator)), "{refused:?}");
    }
}
