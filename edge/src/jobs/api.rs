//! The JSON job API of the original service: `POST /api/wps/jobs` with an identifier and a map
//! of typed inputs, run synchronously with Execute on one balanced node (never retried), answered
//! with the job status and the outputs (file outputs as storage references); with
//! `"mode": "async"` submitted as a job instead (201 and its Location), followed with
//! `GET /api/wps/jobs/{id}` (the outputs once it succeeded) and dismissed with `DELETE`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tracing::{Instrument, info};
use wpsmesh_proto::process::{ExecuteRequest, JobResult, JobState, JobStatus, Output, OutputValue};
use wpsmesh_proto::time::rfc3339_millis;

use super::{OwnFiles, parse_request};
use crate::jobs;
use crate::metrics::job_call;
use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::Mode;

/// What the job API handler needs.
#[derive(Debug, Clone)]
pub struct JobsState {
    pub nodes: Nodes,
    /// This edge's own file hrefs (made storage references) and the public URL of outputs.
    pub files: OwnFiles,
    /// Largest request body accepted, in bytes (inline complex inputs count).
    pub max_body: usize,
}

/// `POST /api/wps/jobs`, `GET` and `DELETE /api/wps/jobs/{job_id}`.
pub fn router(state: JobsState) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/api/wps/jobs", post(execute))
        .route("/api/wps/jobs/{job_id}", get(status).delete(dismiss))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(state))
}

async fn execute(
    State(state): State<Arc<JobsState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (request, mode) = match read(&state, body) {
        Ok(read) => read,
        Err(e) => return error_response(&e),
    };
    match mode {
        Mode::Sync => {
            let span = operation_span("execute");
            match run(&state, request).instrument(span.clone()).await {
                Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
                Err(e) => {
                    failed(&span, &e);
                    error_response(&e)
                }
            }
        }
        Mode::Async => {
            let span = operation_span("submit");
            job_call(submit(&state, request).instrument(span).await, "submit")
        }
    }
}

/// The span of one JSON API operation.
fn operation_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!("json operation", otel.name = %format_args!("json {operation}"), json.operation = operation)
}

/// Marks an operation's span failed with the OWS error.
fn failed(span: &tracing::Span, e: &OwsError) {
    wpsmesh_telemetry::propagate::fail(span, format!("{}: {}", e.code.as_str(), e.text));
}

/// `"mode": "async"`: 201 with the accepted job and its Location.
async fn submit(state: &JobsState, request: ExecuteRequest) -> Response {
    let job = match jobs::submit(&state.nodes, &state.files, request).await {
        Ok(job) => job,
        Err(e) => {
            failed(&tracing::Span::current(), &e);
            return error_response(&e);
        }
    };
    let body = job_json(&state.files, &job, None);
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/wps/jobs/{}", job.job_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /api/wps/jobs/{job_id}`: the job's status, with its outputs once it succeeded.
async fn status(
    State(state): State<Arc<JobsState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let followed = async { jobs::follow(&state.nodes, &jobs::path_id(path)?).await };
    let answer = match followed.instrument(operation_span("status")).await {
        Ok(JobResult {
            status: job,
            outputs,
            ..
        }) => {
            let outputs = (job.state == JobState::Succeeded).then_some(outputs);
            let body = job_json(&state.files, &job, outputs);
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => error_response(&e),
    };
    job_call(answer, "status")
}

/// `DELETE /api/wps/jobs/{job_id}`: the job dismissed (cancelled if running, outputs deleted).
async fn dismiss(
    State(state): State<Arc<JobsState>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let dismissed = async { jobs::dismiss(&state.nodes, &jobs::path_id(path)?).await };
    let answer = match dismissed.instrument(operation_span("dismiss")).await {
        Ok(job) => (
            StatusCode::OK,
            axum::Json(job_json(&state.files, &job, None)),
        )
            .into_response(),
        Err(e) => error_response(&e),
    };
    job_call(answer, "dismiss")
}

/// The request body read into an ExecuteRequest and its mode.
fn read(
    state: &JobsState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(ExecuteRequest, Mode), OwsError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OwsError::new(
            OwsCode::FileSizeExceeded,
            None,
            format!("request body exceeds {} bytes", state.max_body),
        ),
        _ => OwsError::invalid("body", e.body_text().to_lowercase()),
    })?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| OwsError::invalid("body", format!("invalid json: {e}")))?;
    parse_request(value)
}

/// `"mode": "sync"`: Execute on one node, answered once the process finished.
async fn run(state: &JobsState, request: ExecuteRequest) -> Result<Value, OwsError> {
    let process = request.process_id.clone();
    let started = Instant::now();
    let response = jobs::execute(&state.nodes, &state.files, request).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &response {
        Ok(_) => info!(process = %process, elapsed_ms, "json job finished"),
        Err(e) => {
            info!(process = %process, elapsed_ms, code = e.code.as_str(), error = %e.text, "json job failed")
        }
    }
    answer(&state.files, response?)
}

/// The answer of the original service to a synchronous job: status and outputs.
fn answer(files: &OwnFiles, result: JobResult) -> Result<Value, OwsError> {
    let job = result.status;
    if job.state != JobState::Succeeded {
        return Err(OwsError::internal(format!(
            "process {} ended {}: {}",
            job.process_id, job.state, job.message
        )));
    }
    Ok(job_json(files, &job, Some(result.outputs)))
}

/// A job as the API shows it: id, status, node and attempt, and the outputs when given.
fn job_json(files: &OwnFiles, job: &JobStatus, outputs: Option<Vec<Output>>) -> Value {
    let mut body = json!({
        "jobID": job.job_id.as_str(),
        "status": status_json(job),
        "node": job.node,
        "attempt": job.attempt,
    });
    if let Some(outputs) = outputs {
        body["outputs"] = Value::Object(outputs_json(files, outputs));
    }
    body
}

/// `{"status": accepted|running|succeeded|failed|dismissed, "time", "percent_done", "message"}`;
/// the time is when the job reached its state (created, started, finished).
fn status_json(job: &JobStatus) -> Value {
    let (time, percent) = match job.state {
        JobState::Accepted => (job.created_at, 0),
        JobState::Running => (job.started_at, job.percent_done.min(100)),
        JobState::Succeeded => (job.finished_at, 100),
        JobState::Failed | JobState::Dismissed => (job.finished_at, job.percent_done.min(100)),
    };
    let time = time.unwrap_or_else(SystemTime::now);
    json!({
        "status": job.state.name(),
        "time": rfc3339_millis(time),
        "percent_done": percent.to_string(),
        "message": job.message,
    })
}

/// Outputs by identifier: files as `{"href", "mimeType"}`, values inline; an output given more
/// than once becomes a list.
fn outputs_json(files: &OwnFiles, outputs: Vec<Output>) -> Map<String, Value> {
    let mut map = Map::new();
    for out in outputs {
        let value = match out.value {
            OutputValue::Stored(file) => json!({
                "href": files.url(&file),
                "mimeType": file.format.mime_type,
            }),
            OutputValue::Literal(l) if l.uom.is_empty() => json!({"value": l.value}),
            OutputValue::Literal(l) => json!({"value": l.value, "uom": l.uom}),
            OutputValue::Inline(c) => {
                let mime = c.format.map(|f| f.mime_type).unwrap_or_default();
                match String::from_utf8(c.data.to_vec()) {
                    Ok(text) => json!({"value": text, "mimeType": mime}),
                    Err(_) => {
                        json!({"value": BASE64.encode(&c.data), "mimeType": mime, "encoding": "base64"})
                    }
                }
            }
            OutputValue::BoundingBox(b) => {
                let corners = [b.lower, b.upper].concat();
                json!({"bbox": corners, "crs": b.crs})
            }
        };
        match map.get_mut(&out.id) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(out.id, value);
            }
        }
    }
    map
}

/// An error as the job API answers it: a failed status plus the OWS code and locator, with the
/// matching HTTP status (404 for an unknown process or job, 503 and Retry-After when no node
/// or the job store is up).
fn error_response(e: &OwsError) -> Response {
    let status = match e.code {
        OwsCode::NoSuchProcess | OwsCode::NoSuchJob => StatusCode::NOT_FOUND,
        _ => e.status(),
    };
    let body = json!({
        "status": {
            "status": "failed",
            "time": rfc3339_millis(SystemTime::now()),
            "percent_done": "0",
            "message": e.text,
        },
        "error": {
            "code": e.code.as_str(),
            "locator": e.locator,
            "message": e.text,
        },
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
