//! The edge's calls to nodes for every protocol (WPS 1.0.0, WPS 2.0 and the JSON job API):
//! requests go out with this edge's own file hrefs turned into storage references
//! ([`OwnFiles`]), answers come back as domain types (a node answer that fails its checks is an
//! internal error); job ids are checked before any node is asked. Execute and Submit run on one
//! balanced node (never retried); GetStatus and GetResult are retried on another node when one
//! is unavailable (any node answers for any job); Dismiss. The protocols' job documents live in
//! [`api`] (JSON), [`wps1`] (statusLocation) and [`wps2`] (StatusInfo, Result).

pub mod api;
mod api_request;
mod own_files;
mod raw;
pub mod wps1;
pub mod wps2;

use std::time::Duration;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use tracing::info;
use wpsmesh_proto::process::{
    ExecuteRequest, Invalid, JOB_ID, JobId, JobPage, JobResult, JobState, JobStatus, ListJobs,
    required_status,
};
use wpsmesh_proto::wire::process::v1 as wire;

pub use api_request::parse_request;
pub use own_files::OwnFiles;
pub use raw::RawOutput;

use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};

/// When a client should ask again about a pending job (WPS 2.0 NextPoll).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The job id in a request path (`/jobs/{job_id}`); InvalidParameterValue with locator JobID
/// when it is no UTF-8 once percent-decoded.
pub fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, OwsError> {
    path.map(|Path(id)| id).map_err(|e| {
        OwsError::invalid(
            JOB_ID,
            format!("invalid job id: {}", e.body_text().to_lowercase()),
        )
    })
}

/// `id` as a job id the nodes issue (32 lowercase hex digits), so a malformed one never reaches
/// a node: InvalidParameterValue with locator JobID.
fn job_id(id: &str) -> Result<JobId, OwsError> {
    id.parse::<JobId>()
        .map_err(|e| OwsError::invalid(&e.locator, e.message))
}

/// A node answer that failed its checks: an internal error naming what was wrong.
fn bad_answer(what: &str) -> impl FnOnce(Invalid) -> OwsError + '_ {
    move |e| OwsError::internal(format!("invalid {what} answer from a node: {e}"))
}

/// Runs `request` on one balanced node (never retried) and waits for its result; references to
/// this edge's files go as storage references.
pub async fn execute(
    nodes: &Nodes,
    files: &OwnFiles,
    mut request: ExecuteRequest,
) -> Result<JobResult, OwsError> {
    files.resolve(&mut request)?;
    let answer = nodes.execute(request.into()).await?;
    JobResult::from_wire(answer.job, answer.outputs, answer.log).map_err(bad_answer("Execute"))
}

/// [`execute`] with the file output `output` streamed from the node as it is read (a raw
/// output: never stored); `None` when the process gave no file for it (a literal, a bounding
/// box: in the result).
pub async fn execute_raw(
    nodes: &Nodes,
    files: &OwnFiles,
    mut request: ExecuteRequest,
    output: &str,
) -> Result<(JobResult, Option<RawOutput>), OwsError> {
    files.resolve(&mut request)?;
    let (answer, streamed) = nodes
        .execute_streamed(request.into(), output.to_owned())
        .await?;
    let result = JobResult::from_wire(answer.job, answer.outputs, answer.log)
        .map_err(bad_answer("ExecuteStreamed"))?;
    Ok((result, streamed.map(RawOutput::from)))
}

/// Queues `request` on one balanced node; the accepted job's status.
pub async fn submit(
    nodes: &Nodes,
    files: &OwnFiles,
    mut request: ExecuteRequest,
) -> Result<JobStatus, OwsError> {
    files.resolve(&mut request)?;
    let process = request.process_id.clone();
    let execute = wire::ExecuteRequest::from(request);
    let submitted = nodes
        .call(|mut c| async move {
            c.submit(wire::SubmitRequest {
                execute: Some(execute),
            })
            .await
        })
        .await?;
    let job = required_status(submitted.job).map_err(bad_answer("Submit"))?;
    info!(process = %process, job = %job.job_id, node = %job.node, attempt = job.attempt, "job submitted");
    Ok(job)
}

/// The status of job `id`.
pub async fn status(nodes: &Nodes, id: &str) -> Result<JobStatus, OwsError> {
    let request = wire::GetStatusRequest {
        job_id: job_id(id)?.to_string(),
    };
    let answer = nodes
        .call_idempotent(|mut c| {
            let request = request.clone();
            async move { c.get_status(request).await }
        })
        .await?;
    required_status(answer.job).map_err(bad_answer("GetStatus"))
}

/// The outputs of finished job `id`. A failed job answers with its failure; one still pending
/// is ResultNotReady; a dismissed one is NoSuchJob (its results are gone).
pub async fn result(nodes: &Nodes, id: &str) -> Result<JobResult, OwsError> {
    let request = wire::GetResultRequest {
        job_id: job_id(id)?.to_string(),
    };
    let error = match nodes
        .call_idempotent(|mut c| {
            let request = request.clone();
            async move { c.get_result(request).await }
        })
        .await
    {
        Ok(r) => {
            return JobResult::from_wire(r.job, r.outputs, r.log).map_err(bad_answer("GetResult"));
        }
        Err(e) if e.code == OwsCode::NoSuchJob || e.status() == StatusCode::SERVICE_UNAVAILABLE => {
            return Err(e);
        }
        Err(e) => e,
    };
    // Not ready, dismissed or failed: the status tells which.
    let job = status(nodes, id).await?;
    Err(match job.state {
        JobState::Dismissed => OwsError::new(
            OwsCode::NoSuchJob,
            Some(JOB_ID),
            format!("job {id} was dismissed: its results are gone"),
        ),
        JobState::Accepted | JobState::Running => OwsError::new(
            OwsCode::ResultNotReady,
            Some(JOB_ID),
            format!(
                "job {id} has not finished: {} ({}% done)",
                job.state, job.percent_done
            ),
        ),
        JobState::Failed | JobState::Succeeded => error,
    })
}

/// Job `id` as it stands, with its outputs once it succeeded (GetStatus, then GetResult).
pub async fn follow(nodes: &Nodes, id: &str) -> Result<JobResult, OwsError> {
    let job = status(nodes, id).await?;
    if job.state != JobState::Succeeded {
        return Ok(JobResult {
            status: job,
            outputs: Vec::new(),
            log: Vec::new(),
        });
    }
    result(nodes, id).await
}

/// Dismisses job `id` (cancelled if it runs, its outputs deleted); its dismissed status.
pub async fn dismiss(nodes: &Nodes, id: &str) -> Result<JobStatus, OwsError> {
    let request = wire::DismissRequest {
        job_id: job_id(id)?.to_string(),
    };
    let dismissed = nodes
        .call(|mut c| async move { c.dismiss(request).await })
        .await?;
    info!(job = %id, "job dismissed");
    required_status(dismissed.job).map_err(bad_answer("Dismiss"))
}

/// One page of jobs, newest first, from the job store's index (any node answers; retried on
/// another when one is unavailable).
pub async fn list(nodes: &Nodes, query: ListJobs) -> Result<JobPage, OwsError> {
    let request = wire::ListJobsRequest::from(query);
    let answer = nodes
        .call_idempotent(|mut c| {
            let request = request.clone();
            async move { c.list_jobs(request).await }
        })
        .await?;
    JobPage::try_from(answer).map_err(bad_answer("ListJobs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_32_lowercase_hex_digits() {
        assert!(job_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "nope",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef-123456789abcdef",
            "../../../../etc/passwd0123456789",
        ] {
            let e = job_id(bad).expect_err(bad);
            assert_eq!(
                (e.code, e.locator.as_deref()),
                (OwsCode::InvalidParameterValue, Some(JOB_ID))
            );
            assert!(e.text.contains("32 lowercase hexadecimal digits"), "{e}");
        }
    }
}
