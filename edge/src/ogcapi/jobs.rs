//! `GET /jobs` (filtered, paged, newest first), `GET /jobs/{id}` (statusInfo),
//! `GET /jobs/{id}/results` and `DELETE /jobs/{id}` (dismiss). The jobs are the nodes' one set,
//! whatever protocol started them (WPS 1.0.0/2.0, the JSON job API, OGC API).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use url::form_urlencoded;
use wpsmesh_proto::ogcapi::{JSON, results, status_info};
use wpsmesh_proto::process::JOB_ID;

// Named only in the OpenAPI annotations, which refer to schemas by name.
#[allow(unused_imports)]
use super::documents::{JobList, Results, StatusInfo};
use super::job_query::JobListParams;
use super::responses::{BadRequest, Failed, JobId, NoSuchJob, Unavailable};
use super::{Problem, Shared, job_query};
use crate::jobs;
use crate::metrics::job_call;
use crate::ows::{OwsCode, OwsError};

/// 200 with a JSON document.
fn json_answer(doc: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        doc.to_string(),
    )
        .into_response()
}

/// The answer of a job handler: its document, or its error as a problem.
fn answer(doc: Result<Value, OwsError>) -> Response {
    match doc {
        Ok(doc) => json_answer(&doc),
        Err(e) => Problem(e).into_response(),
    }
}

/// A job call's error as OGC API answers it: a malformed job id is no job (no-such-job, 404,
/// like an unknown one).
fn job_error(id: &str) -> impl FnOnce(OwsError) -> OwsError + '_ {
    move |e| match e.code {
        OwsCode::InvalidParameterValue if e.locator.as_deref() == Some(JOB_ID) => OwsError::new(
            OwsCode::NoSuchJob,
            Some(JOB_ID),
            format!("no job {:?}: {}", wpsmesh_proto::text::shown(id), e.text),
        ),
        _ => e,
    }
}

/// The job id in the path; an undecodable one is no job.
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, OwsError> {
    jobs::path_id(path).map_err(job_error(""))
}

/// `GET /jobs`: one page of jobs, newest first, with `self` and (when there are more) `next`,
/// whatever protocol started them.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "Jobs",
    operation_id = "getJobs",
    params(JobListParams),
    responses(
        (status = 200, description = "A page of jobs, newest first; a `next` link when there are more", body = JobList, content_type = "application/json"),
        BadRequest,
        Unavailable,
    )
)]
pub(super) async fn list(State(state): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let page = async {
        let request = job_query::parse(query.as_deref())?;
        let page = jobs::list(&state.nodes, request).await?;
        let jobs: Vec<Value> = page
            .jobs
            .iter()
            .map(|job| status_info(job, &state.public_url))
            .collect();
        let base = format!("{}/jobs", state.public_url);
        let mut links = vec![link(&base, query.as_deref(), None, "self")];
        if let Some(next) = &page.next {
            links.push(link(&base, query.as_deref(), Some(next), "next"));
        }
        Ok(json!({"jobs": jobs, "links": links}))
    };
    answer(page.await)
}

/// A link to a page of the job list: the same query, with `next` set to `token` when given.
fn link(base: &str, query: Option<&str>, token: Option<&str>, rel: &str) -> Value {
    let kept = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| token.is_none() || k != "next");
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(kept);
    if let Some(token) = token {
        query.append_pair("next", token);
    }
    let query = query.finish();
    let href = if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    };
    json!({"href": href, "rel": rel, "type": JSON})
}

/// What is asked of one job.
#[derive(Debug, Clone, Copy)]
enum Call {
    Status,
    Results,
    Dismiss,
}

/// Runs `call` on the job in `path`: its statusInfo or results document, or a problem.
async fn on_job(state: &Shared, path: Result<Path<String>, PathRejection>, call: Call) -> Response {
    let doc = async {
        let id = path_id(path)?;
        let (nodes, base) = (&state.nodes, state.public_url.as_str());
        match call {
            Call::Status => jobs::status(nodes, &id)
                .await
                .map(|j| status_info(&j, base)),
            Call::Results => jobs::result(nodes, &id)
                .await
                .map(|r| results(&r.outputs, base)),
            Call::Dismiss => jobs::dismiss(nodes, &id)
                .await
                .map(|j| status_info(&j, base)),
        }
        .map_err(job_error(&id))
    };
    let operation = match call {
        Call::Status => "status",
        Call::Results => "result",
        Call::Dismiss => "dismiss",
    };
    job_call(answer(doc.await), operation)
}

/// `GET /jobs/{jobID}`: the job's statusInfo.
#[utoipa::path(
    get,
    path = "/jobs/{jobID}",
    tag = "Jobs",
    operation_id = "getStatus",
    params(JobId),
    responses(
        (status = 200, description = "The job's status", body = StatusInfo, content_type = "application/json"),
        NoSuchJob,
        Unavailable,
    )
)]
pub(super) async fn status(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(&state, path, Call::Status).await
}

/// `GET /jobs/{jobID}/results`: the results document once the job succeeded; result-not-ready
/// while it is pending, a failed job's failure, no-such-job once dismissed.
#[utoipa::path(
    get,
    path = "/jobs/{jobID}/results",
    tag = "Jobs",
    operation_id = "getResult",
    params(JobId),
    responses(
        (status = 200, description = "The results", body = Results, content_type = "application/json"),
        NoSuchJob,
        Failed,
        Unavailable,
    )
)]
pub(super) async fn job_results(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(&state, path, Call::Results).await
}

/// `DELETE /jobs/{jobID}`: the job dismissed (cancelled where it runs, its outputs deleted);
/// its statusInfo, now dismissed.
#[utoipa::path(
    delete,
    path = "/jobs/{jobID}",
    tag = "Jobs",
    operation_id = "dismiss",
    params(JobId),
    responses(
        (status = 200, description = "The job, dismissed", body = StatusInfo, content_type = "application/json"),
        NoSuchJob,
        Unavailable,
    )
)]
pub(super) async fn dismiss(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(&state, path, Call::Dismiss).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_query_and_replace_next() {
        let base = "http://e.test/jobs";
        assert_eq!(link(base, None, None, "self")["href"], base);
        let q = Some("status=running&next=old&limit=5");
        assert_eq!(
            link(base, q, None, "self")["href"],
            "http://e.test/jobs?status=running&next=old&limit=5"
        );
        assert_eq!(
            link(base, q, Some("new token"), "next")["href"],
            "http://e.test/jobs?status=running&limit=5&next=new+token"
        );
    }

    #[test]
    fn malformed_and_unknown_job_ids_are_404_no_such_job() {
        let malformed = OwsError::invalid(JOB_ID, "expected 32 lowercase hexadecimal digits");
        let e = job_error("nope")(malformed);
        assert_eq!(e.code, OwsCode::NoSuchJob);
        assert!(e.text.contains("nope"), "{e}");
        assert_eq!(Problem(e).into_response().status(), StatusCode::NOT_FOUND);
        let pending = OwsError::new(OwsCode::ResultNotReady, Some(JOB_ID), "running");
        assert_eq!(job_error("x")(pending.clone()), pending);
    }
}
