//! The JSON job API of the original service: `POST /api/wps/jobs` with an identifier and a map
//! of typed inputs, run synchronously with Execute on one balanced node (never retried), answered
//! with the job status and the outputs (file outputs as storage references).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tracing::info;
use wpsmesh_proto::wire::process::v1::{self as wire, JobState, output};

use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};

mod request;

pub use request::parse_request;

/// What the job API handler needs.
#[derive(Debug, Clone)]
pub struct JobsState {
    pub nodes: Nodes,
    /// Largest request body accepted, in bytes (inline complex inputs count).
    pub max_body: usize,
}

/// `POST /api/wps/jobs`.
pub fn router(state: JobsState) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/api/wps/jobs", post(execute))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(state))
}

async fn execute(
    State(state): State<Arc<JobsState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(&state, body).await {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn run(state: &JobsState, body: Result<Bytes, BytesRejection>) -> Result<Value, OwsError> {
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
    let request = parse_request(value)?;
    let process = request.process_id.clone();
    let started = Instant::now();
    let response = state
        .nodes
        .call(|mut client| async move { client.execute(request).await })
        .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &response {
        Ok(_) => info!(process = %process, elapsed_ms, "json job finished"),
        Err(e) => {
            info!(process = %process, elapsed_ms, code = e.code.as_str(), error = %e.text, "json job failed")
        }
    }
    answer(response?)
}

/// The answer of the original service: status and outputs.
fn answer(response: wire::ExecuteResponse) -> Result<Value, OwsError> {
    let job = response.job.unwrap_or_default();
    let state = job.state();
    if state != JobState::Successful {
        return Err(OwsError::internal(format!(
            "process {} ended {}: {}",
            job.process_id,
            state
                .as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase(),
            job.message
        )));
    }
    let mut outputs = Map::new();
    for out in response.outputs {
        let value = match out.value {
            Some(output::Value::Reference(r)) => json!({
                "href": r.href,
                "mimeType": r.format.map(|f| f.mime_type).unwrap_or_default(),
            }),
            Some(output::Value::Literal(l)) if l.uom.is_empty() => json!({"value": l.value}),
            Some(output::Value::Literal(l)) => json!({"value": l.value, "uom": l.uom}),
            Some(output::Value::Complex(c)) => {
                let mime = c.format.map(|f| f.mime_type).unwrap_or_default();
                match String::from_utf8(c.data.to_vec()) {
                    Ok(text) => json!({"value": text, "mimeType": mime}),
                    Err(_) => {
                        json!({"value": BASE64.encode(&c.data), "mimeType": mime, "encoding": "base64"})
                    }
                }
            }
            Some(output::Value::BoundingBox(b)) => {
                let mut corners = b.lower_corner;
                corners.extend(b.upper_corner);
                json!({"bbox": corners, "crs": b.crs})
            }
            None => Value::Null,
        };
        match outputs.get_mut(&out.id) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                outputs.insert(out.id, value);
            }
        }
    }
    let time = job
        .finished_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or_else(SystemTime::now);
    Ok(json!({
        "status": {
            "status": "succeeded",
            "time": rfc3339(time),
            "percent_done": "100",
            "message": job.message,
        },
        "jobID": job.job_id,
        "outputs": outputs,
    }))
}

fn rfc3339(t: SystemTime) -> String {
    humantime_serde::re::humantime::format_rfc3339_millis(t).to_string()
}

/// An error as the job API answers it: a failed status plus the OWS code and locator, with the
/// matching HTTP status (404 for an unknown process, 503 and Retry-After when no node is up).
fn error_response(e: &OwsError) -> Response {
    let status = match e.code {
        OwsCode::NoSuchProcess | OwsCode::NoSuchJob => StatusCode::NOT_FOUND,
        _ => e.status(),
    };
    let body = json!({
        "status": {
            "status": "failed",
            "time": rfc3339(SystemTime::now()),
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
