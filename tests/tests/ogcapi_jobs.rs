//! End to end: OGC API - Processes jobs over a real mesh (storage, a node with a QGIS worker,
//! an edge) are the same jobs as WPS ones: a job submitted through WPS 2.0 is listed in `/jobs`
//! (filtered, paged, newest first) and followed through `/jobs/{id}`, its results fetched;
//! one dismissed through `DELETE /jobs/{id}` is Dismissed for WPS 2.0 GetStatus too; results
//! of a running job are result-not-ready, of a failed job its failure; unknown and malformed
//! ids are no-such-job; bad list parameters are refused by name.

#[path = "ogcapi_common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::{DATA, execute, follow, get, job_ids, link, mesh, wps2_execute_async};
use serde_json::{Value, json};
use wpsmesh_tests::mesh::{Mesh, buffer_job, feature_count};

/// Submits native:buffer of `href` through WPS 2.0 (XML, mode=async); the job id.
async fn wps2_submit(m: &Mesh, href: &str) -> String {
    let (status, info) = m.wps(0, "", Some(wps2_execute_async(href))).await;
    assert_eq!(status, 200, "{info}");
    let id = info
        .split("<wps:JobID>")
        .nth(1)
        .and_then(|r| r.split("</wps:JobID>").next());
    id.unwrap_or_else(|| panic!("no JobID in {info}"))
        .trim()
        .to_owned()
}

/// `GET /jobs?{query}`: status and body.
async fn jobs(m: &Mesh, query: &str) -> (u16, Value) {
    let a = get(m, &format!("{}/jobs?{query}", m.edges[0].uri())).await;
    (a.status, a.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wps2_jobs_are_listed_followed_and_read_through_ogc_api() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    let points = m.upload(&DATA.points).await;

    // Jobs through WPS 2.0, OGC API and the JSON job API; same ids everywhere.
    let first = wps2_submit(&m, &points).await;
    let ogc = execute(
        &m,
        "native:buffer",
        &json!({"inputs": {"INPUT": {"href": points}, "DISTANCE": 0.5}}),
        &[("Prefer", "respond-async")],
    )
    .await;
    assert_eq!(ogc.status, 201, "{}", ogc.json());
    let second = ogc.json()["jobID"].as_str().expect("jobID").to_owned();
    let third = wps2_submit(&m, &points).await;
    // And one through the original JSON job API.
    let (json_api, _) = m.submit(0, &buffer_job(&points)).await;

    // Followed through /jobs/{id} to successful; the WPS job's results read through OGC API.
    let url = format!("{edge}/jobs/{first}");
    let done = follow(&m, &url, "successful").await;
    assert_eq!(done["jobID"], first.as_str());
    assert_eq!(done["processID"], "native:buffer");
    assert_eq!(link(&done, "self"), Some(url.as_str()));
    for job in [&second, &third, &json_api] {
        follow(&m, &format!("{edge}/jobs/{job}"), "successful").await;
    }
    let results = get(&m, &format!("{url}/results")).await;
    assert_eq!(results.status, 200, "{}", results.json());
    let href = results.json()["OUTPUT"]["href"]
        .as_str()
        .expect("href")
        .to_owned();
    let (status, bytes) = m.fetch(0, &href).await;
    assert_eq!(status, 200);
    assert_eq!(feature_count(&bytes), 240);
    // WPS 2.0 says the same of the job OGC API started.
    let (status, info) = m.wps_job(0, "GetStatus", &second).await;
    assert_eq!(status, 200, "{info}");
    assert!(
        info.contains("<wps:Status>Succeeded</wps:Status>"),
        "{info}"
    );

    // The list: all four, newest first, as statusInfo documents with a self link.
    let (status, page) = jobs(&m, "processID=native:buffer&status=successful&type=process").await;
    assert_eq!(status, 200, "{page}");
    let listed = job_ids(&page);
    let newest_first: Vec<String> = [&json_api, &third, &second, &first]
        .map(|s| s.clone())
        .into();
    assert_eq!(
        listed
            .iter()
            .filter(|id| newest_first.contains(id))
            .cloned()
            .collect::<Vec<_>>(),
        newest_first,
        "{page}"
    );
    assert!(
        page["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["status"] == "successful" && j["type"] == "process")
    );
    assert!(
        link(&page, "self").is_some_and(|s| s.starts_with(&format!("{edge}/jobs?"))),
        "{page}"
    );

    // Paged three at a time: the next link leads to the rest, no job twice.
    let (status, one) = jobs(&m, "limit=3").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(job_ids(&one).len(), 3, "{one}");
    let next = link(&one, "next")
        .unwrap_or_else(|| panic!("next link: {one}"))
        .to_owned();
    assert!(next.contains("limit=3"), "{next}");
    let two = get(&m, &next).await.json();
    let all: BTreeSet<String> = job_ids(&one).into_iter().chain(job_ids(&two)).collect();
    assert!(
        [&first, &second, &third, &json_api]
            .iter()
            .all(|j| all.contains(*j)),
        "{one} {two}"
    );
    assert_eq!(
        all.len(),
        job_ids(&one).len() + job_ids(&two).len(),
        "a job twice: {one} {two}"
    );

    // Filters that match none, and bad parameters refused by name.
    let (status, none) = jobs(&m, "processID=native:dissolve").await;
    assert_eq!((status, job_ids(&none).len()), (200, 0), "{none}");
    let (status, none) = jobs(&m, "status=failed,dismissed").await;
    assert_eq!((status, job_ids(&none).len()), (200, 0), "{none}");
    for (query, count) in [
        ("datetime=../1970-01-01T00:00:00Z", 0),
        ("datetime=2000-01-01T00:00:00Z/..", 4),
        ("minDuration=3600", 0),
        ("maxDuration=3600&minDuration=0", 4),
    ] {
        let (status, page) = jobs(&m, query).await;
        assert_eq!(
            (status, job_ids(&page).len()),
            (200, count),
            "{query}: {page}"
        );
    }
    for (query, parameter, reason) in [
        ("status=done", "status", "unknown status"),
        ("type=coverage", "type", "only \"process\""),
        ("limit=0", "limit", "1 to 1000"),
        ("datetime=yesterday", "datetime", "RFC 3339"),
        ("minDuration=-3", "minDuration", "not negative"),
    ] {
        let a = get(&m, &format!("{edge}/jobs?{query}")).await;
        let problem = a.problem(400, reason);
        assert_eq!(problem["parameter"], parameter, "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dismissed_through_ogc_api_is_dismissed_for_wps() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    let long = m.upload(&DATA.long).await;

    let job = wps2_submit(&m, &long).await;
    let url = format!("{edge}/jobs/{job}");
    follow(&m, &url, "running").await;
    // Running: its results are not ready.
    let a = get(&m, &format!("{url}/results")).await;
    let problem = a.problem(404, &job);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/result-not-ready")),
        "{problem}"
    );

    let a = common::Answer::of(m.http.delete(&url).send().await.expect("delete")).await;
    let info = a.json();
    assert_eq!(a.status, 200, "{info}");
    assert_eq!(
        (info["jobID"].as_str(), info["status"].as_str()),
        (Some(job.as_str()), Some("dismissed"))
    );

    // WPS 2.0 GetStatus says Dismissed; OGC API too; its results are gone.
    let (status, wps) = m.wps_job(0, "GetStatus", &job).await;
    assert_eq!(status, 200, "{wps}");
    assert!(wps.contains("<wps:Status>Dismissed</wps:Status>"), "{wps}");
    let again = get(&m, &url).await;
    assert_eq!(
        (again.status, again.json()["status"].as_str()),
        (200, Some("dismissed")),
        "{}",
        again.json()
    );
    let gone = get(&m, &format!("{url}/results")).await;
    let problem = gone.problem(404, &job);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/no-such-job")),
        "{problem}"
    );
    let (status, listed) = jobs(&m, "status=dismissed").await;
    assert_eq!(status, 200, "{listed}");
    assert!(job_ids(&listed).contains(&job), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_failed_jobs_answer_problems() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    // Unknown (well formed) and malformed ids: no-such-job, 404, for every job route.
    for id in ["0123456789abcdef0123456789abcdef", "nope", "..%2F..%2Fetc"] {
        for path in [format!("/jobs/{id}"), format!("/jobs/{id}/results")] {
            let a = get(&m, &format!("{edge}{path}")).await;
            let problem = a.problem(404, "");
            assert!(
                problem["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("/no-such-job")),
                "{path}: {problem}"
            );
        }
        let a = common::Answer::of(
            m.http
                .delete(format!("{edge}/jobs/{id}"))
                .send()
                .await
                .expect("delete"),
        )
        .await;
        a.problem(404, "");
    }

    // A job that fails (its input is no layer): failed, and its results are its failure.
    let text = m.dir().join("broken.geojson");
    std::fs::write(&text, "{\"type\": \"FeatureCollection\", \"features\": [{").expect("write");
    let href = m.upload(&text).await;
    let a = execute(
        &m,
        "native:buffer",
        &json!({"inputs": {"INPUT": {"href": href}, "DISTANCE": 1}}),
        &[("Prefer", "respond-async")],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.json());
    let location = a.header("location").expect("Location").to_owned();
    let failed = follow(&m, &location, "failed").await;
    let message = failed["message"].as_str().expect("message").to_owned();
    assert!(message.contains("INPUT"), "{failed}");
    let results = get(&m, &format!("{location}/results")).await;
    let problem = results.problem(400, &message);
    assert_eq!(problem["detail"], message.as_str(), "{problem}");
    // The same synchronously: the same failure, naming the input.
    let sync = execute(
        &m,
        "native:buffer",
        &json!({"inputs": {"INPUT": {"href": href}, "DISTANCE": 1}}),
        &[],
    )
    .await;
    let problem = sync.problem(400, "not a readable vector dataset");
    assert_eq!(problem["parameter"], "INPUT", "{problem}");
    assert_eq!(problem["detail"], message.as_str(), "{problem}");
}
