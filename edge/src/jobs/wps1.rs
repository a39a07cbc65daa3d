//! WPS asynchronous jobs: Execute submitted as a job (WPS 2.0 `mode="async"`, WPS 1.0.0
//! `storeExecuteResponse`), the WPS 1.0.0 statusLocation `/api/wps/status/{job_id}` (an
//! ExecuteResponse following the job) and the job operation of a request for the metrics.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracing::info;
use wpsmesh_proto::process::{JobResult, JobStatus, Output};
use wpsmesh_proto::wire::process::v1 as wire;

use super::wps2::status_response;
use crate::jobs;
use crate::metrics::job_call;
use crate::ows::{OwsCode, OwsError};
use crate::wps::handler::{WpsState, exception, xml_response};
use crate::wps::model::{Execute, Version, WpsRequest};
use crate::wps::v1;

/// `GET /api/wps/status/{job_id}`: the WPS 1.0.0 statusLocation; an unknown job is a 404.
pub(crate) async fn status_location(
    State(state): State<Arc<WpsState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let status = async { v1_status(&state, &jobs::path_id(path)?).await };
    let response = match status.await {
        Ok(response) => response,
        Err(e) => {
            info!(code = e.code.as_str(), locator = ?e.locator, error = %e.text, "wps status refused");
            let e = if e.code == OwsCode::NoSuchJob {
                e.with_status(StatusCode::NOT_FOUND)
            } else {
                e
            };
            exception(Version::V100, &e)
        }
    };
    job_call(response, "status")
}

/// The job operation (metrics) a request makes, if any.
pub(crate) fn job_operation(request: &WpsRequest) -> Option<&'static str> {
    match request {
        WpsRequest::Execute(e) if e.submits() => Some("submit"),
        WpsRequest::GetStatus { .. } => Some("status"),
        WpsRequest::GetResult { .. } => Some("result"),
        WpsRequest::Dismiss { .. } => Some("dismiss"),
        _ => None,
    }
}

/// The WPS 1.0.0 ExecuteResponse of job `job_id` as it stands (its statusLocation document):
/// outputs once it succeeded, titles from the cached description of its process.
pub(crate) async fn v1_status(state: &WpsState, job_id: &str) -> Result<Response, OwsError> {
    let JobResult {
        status: job,
        outputs,
        ..
    } = jobs::follow(&state.nodes, job_id).await?;
    let description = state
        .catalog
        .describe(&state.nodes, &job.process_id)
        .await
        .ok();
    let location = v1::status_location(&state.service, job.job_id.as_str());
    let doc = v1_document(
        state,
        &job,
        description.as_deref(),
        &outputs,
        None,
        Some(&location),
    );
    Ok(xml_response(StatusCode::OK, doc))
}

/// A WPS 1.0.0 ExecuteResponse of `job`, written now; the process summary comes from
/// `description` (just the job's process id without one).
pub(crate) fn v1_document(
    state: &WpsState,
    job: &JobStatus,
    description: Option<&wire::ProcessDescription>,
    outputs: &[Output],
    lineage: Option<v1::Lineage<'_>>,
    status_location: Option<&str>,
) -> String {
    let summary = description
        .and_then(|d| d.summary.clone())
        .unwrap_or_else(|| wire::ProcessSummary {
            id: job.process_id.clone(),
            ..Default::default()
        });
    v1::execute_response(
        &state.service,
        &v1::ExecuteResponseArgs {
            process: &summary,
            description,
            status: job,
            outputs,
            lineage,
            status_location,
            creation_time: SystemTime::now(),
            public_url: state.files.public_url(),
        },
    )
}

/// Queues `execute` as a job on one node: a WPS 1.0.0 ExecuteResponse with ProcessAccepted and
/// the statusLocation, or a WPS 2.0 StatusInfo (Accepted).
pub(crate) async fn submit(
    state: &WpsState,
    execute: &Execute,
    description: &wire::ProcessDescription,
    lineage: Option<v1::Lineage<'_>>,
) -> Result<Response, OwsError> {
    if !description
        .summary
        .as_ref()
        .is_some_and(|s| s.async_supported)
    {
        let locator = match execute.version {
            Version::V100 => "storeExecuteResponse",
            Version::V200 => "mode",
        };
        return Err(OwsError::not_supported(
            locator,
            format!(
                "process {} runs synchronously only",
                execute.request.process_id
            ),
        ));
    }
    let job = jobs::submit(&state.nodes, &state.files, execute.request.clone()).await?;
    match execute.version {
        Version::V100 => {
            let location = v1::status_location(&state.service, job.job_id.as_str());
            let doc = v1_document(
                state,
                &job,
                Some(description),
                &[],
                lineage,
                Some(&location),
            );
            Ok(xml_response(StatusCode::OK, doc))
        }
        Version::V200 => Ok(status_response(&job)),
    }
}
