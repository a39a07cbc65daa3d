//! Asynchronous jobs on the nodes, shared by WPS 1.0.0, WPS 2.0 and the JSON job API: job ids
//! checked before any node is asked, Submit on one balanced node (never retried), GetStatus and
//! GetResult (retried on another node when one is unavailable: any node answers for any job),
//! and Dismiss.

use std::time::Duration;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use tracing::info;
use wpsmesh_proto::wire::process::v1::{self as wire, JobState};

use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};

/// The locator of every error about a job id.
pub const JOB_ID: &str = "JobID";

/// When a client should ask again about a pending job (WPS 2.0 NextPoll).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Checks that `id` looks like a job id the nodes issue (32 lowercase hex digits, a simple
/// UUID), so a malformed one never reaches a node: InvalidParameterValue with locator JobID.
pub fn check_id(id: &str) -> Result<(), OwsError> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(());
    }
    Err(OwsError::invalid(
        JOB_ID,
        format!(
            "invalid job id {:?}: job ids are 32 lowercase hexadecimal digits",
            wpsmesh_proto::text::bounded(id, 64)
        ),
    ))
}

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

/// Queues `request` on one balanced node; the accepted job's status.
pub async fn submit(
    nodes: &Nodes,
    request: wire::ExecuteRequest,
) -> Result<wire::JobStatus, OwsError> {
    let process = request.process_id.clone();
    let submitted = nodes
        .call(|mut c| async move {
            c.submit(wire::SubmitRequest {
                execute: Some(request),
            })
            .await
        })
        .await?;
    let job = submitted
        .job
        .ok_or_else(|| OwsError::internal("node accepted the job without a status"))?;
    info!(process = %process, job = %job.job_id, node = %job.node, attempt = job.attempt, "job submitted");
    Ok(job)
}

/// The status of job `id`.
pub async fn status(nodes: &Nodes, id: &str) -> Result<wire::JobStatus, OwsError> {
    check_id(id)?;
    let request = wire::GetStatusRequest { job_id: id.into() };
    let answer = nodes
        .call_idempotent(|mut c| {
            let request = request.clone();
            async move { c.get_status(request).await }
        })
        .await?;
    Ok(answer.job.unwrap_or_default())
}

/// The outputs of finished job `id`. A failed job answers with its failure; one still pending
/// is ResultNotReady; a dismissed one is NoSuchJob (its results are gone).
pub async fn result(nodes: &Nodes, id: &str) -> Result<wire::GetResultResponse, OwsError> {
    check_id(id)?;
    let request = wire::GetResultRequest { job_id: id.into() };
    let error = match nodes
        .call_idempotent(|mut c| {
            let request = request.clone();
            async move { c.get_result(request).await }
        })
        .await
    {
        Ok(result) => return Ok(result),
        Err(e) if e.code == OwsCode::NoSuchJob || e.status() == StatusCode::SERVICE_UNAVAILABLE => {
            return Err(e);
        }
        Err(e) => e,
    };
    // Not ready, dismissed or failed: the status tells which.
    let job = status(nodes, id).await?;
    Err(match job.state() {
        JobState::Dismissed => OwsError::new(
            OwsCode::NoSuchJob,
            Some(JOB_ID),
            format!("job {id} was dismissed: its results are gone"),
        ),
        JobState::Accepted | JobState::Running | JobState::Unspecified => OwsError::new(
            OwsCode::ResultNotReady,
            Some(JOB_ID),
            format!(
                "job {id} has not finished: {} ({}% done)",
                state_name(job.state()),
                job.percent_done
            ),
        ),
        JobState::Failed | JobState::Successful => error,
    })
}

/// Job `id` as it stands, with its outputs once it succeeded (GetStatus, then GetResult).
pub async fn follow(
    nodes: &Nodes,
    id: &str,
) -> Result<(wire::JobStatus, Vec<wire::Output>), OwsError> {
    let job = status(nodes, id).await?;
    if job.state() != JobState::Successful {
        return Ok((job, Vec::new()));
    }
    let result = result(nodes, id).await?;
    Ok((result.job.unwrap_or(job), result.outputs))
}

/// Dismisses job `id` (cancelled if it runs, its outputs deleted); its dismissed status.
pub async fn dismiss(nodes: &Nodes, id: &str) -> Result<wire::JobStatus, OwsError> {
    check_id(id)?;
    let request = wire::DismissRequest { job_id: id.into() };
    let dismissed = nodes
        .call(|mut c| async move { c.dismiss(request).await })
        .await?;
    info!(job = %id, "job dismissed");
    Ok(dismissed.job.unwrap_or_default())
}

/// The lowercase name of a job state: accepted, running, succeeded, failed or dismissed.
pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Unspecified | JobState::Accepted => "accepted",
        JobState::Running => "running",
        JobState::Successful => "succeeded",
        JobState::Failed => "failed",
        JobState::Dismissed => "dismissed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_32_lowercase_hex_digits() {
        assert!(check_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "nope",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef-123456789abcdef",
            "../../../../etc/passwd0123456789",
        ] {
            let e = check_id(bad).expect_err(bad);
            assert_eq!(
                (e.code, e.locator.as_deref()),
                (OwsCode::InvalidParameterValue, Some(JOB_ID))
            );
        }
    }
}
