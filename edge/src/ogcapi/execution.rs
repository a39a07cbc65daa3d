//! `POST /processes/{id}/execution`: the execute request read into the domain request,
//! run synchronously (results document or raw output) or, with `Prefer: respond-async`,
//! submitted as a job (201, Location, statusInfo).
//!
//! Refused before any node runs anything: a Content-Type other than JSON (415; none is taken
//! as JSON), a body over the limit (413), malformed JSON (400 naming line and column), an
//! unknown process (404), and inputs that do not fit the description (400 naming the input).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::info;
use wpsmesh_proto::ogcapi::{JSON, job_url, results, status_info};
use wpsmesh_proto::process::{JobState, JobStatus, OutputRequest};

use super::execute_body::{self, ResponseKind, read};
// Named only in the OpenAPI annotation, which refers to schemas by name.
#[allow(unused_imports)]
use super::documents::{Execute, Results, StatusInfo};
use super::responses::{
    BadRequest, Failed, NoSuchProcess, ProcessId, TooLarge, Unavailable, UnsupportedMediaType,
};
use super::{Problem, Shared, raw};
use crate::jobs;
use crate::metrics::job_call;
use crate::ows::OwsError;

/// Runs a process: synchronously (the results document, or for `response: raw` the outputs
/// themselves) or, with `Prefer: respond-async`, as a job (201 with `Location`).
#[utoipa::path(
    post,
    path = "/processes/{processID}/execution",
    tag = "Processes",
    operation_id = "execute",
    params(
        ProcessId,
        ("Prefer" = Option<String>, Header, description = "`respond-async` to run as a job"),
    ),
    request_body(content = Execute, content_type = "application/json"),
    responses(
        (status = 200, description = "`response: document` (the default): the results document. \
            `response: raw`: one output by value is the output itself with its media type (a \
            file streamed from storage with its Content-Length); several outputs with any by \
            value are one multipart/related body, a part per output named by Content-ID \
            (by-reference parts carry Content-Location)",
            content(
                ("application/json" = Results),
                ("multipart/related" = [u8]),
                ("*/*" = [u8]),
            )),
        (status = 201, description = "The job, submitted; `Location` is its status", body = StatusInfo, content_type = "application/json",
            headers(
                ("Location" = String, description = "The job's URL"),
                ("Preference-Applied" = String, description = "`respond-async`"),
            )),
        (status = 204, description = "`response: raw` with every output by reference: no body, one `Link` header (rel enclosure, with type and title) per output file",
            headers(("Link" = String, description = "An output file: `<url>; rel=\"http://www.opengis.net/def/rel/iana/1.0/enclosure\"; type=...; title=...`"))),
        BadRequest,
        NoSuchProcess,
        TooLarge,
        UnsupportedMediaType,
        Failed,
        Unavailable,
    )
)]
pub(super) async fn execute(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(&state, path, &headers, body).await {
        Ok(response) => response,
        Err(e) => Problem(e).into_response(),
    }
}

async fn run(
    state: &Shared,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OwsError> {
    let process_id = path
        .map(|Path(id)| id)
        .map_err(|e| OwsError::invalid("processID", e.body_text().to_lowercase()))?;
    json_content_type(headers)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::too_large(state.max_body).0,
        _ => OwsError::invalid("body", e.body_text().to_lowercase()),
    })?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| Problem::bad_json(&e).0)?;
    let desc = state.catalog.describe(&state.nodes, &process_id).await?;
    let execute_body::Execute {
        mut request,
        response,
    } = read(body, &desc, &process_id, &state.public_url)?;
    let async_supported = desc.summary.as_ref().is_some_and(|s| s.async_supported);
    if async_supported && prefers_async(headers) {
        let job = jobs::submit(&state.nodes, &state.files, request).await?;
        info!(process = %process_id, job = %job.job_id, "ogc job submitted");
        return Ok(job_call(created(&job, &state.public_url), "submit"));
    }
    if response == ResponseKind::Raw && request.outputs.is_empty() {
        // Raw without named outputs: every output, by value (the standard's default).
        request.outputs = desc
            .outputs
            .iter()
            .map(|o| OutputRequest {
                id: o.id.clone(),
                format: None,
                as_reference: false,
            })
            .collect();
    }
    let wanted = request.outputs.clone();
    // One output by value, raw: the output itself, streamed from the node (never stored).
    let stream = match (response, wanted.as_slice()) {
        (ResponseKind::Raw, [one]) if !one.as_reference => Some(one.id.clone()),
        _ => None,
    };
    let started = Instant::now();
    let result = match &stream {
        Some(output) => jobs::execute_raw(&state.nodes, &state.files, request, output).await,
        None => jobs::execute(&state.nodes, &state.files, request)
            .await
            .map(|result| (result, None)),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (result, streamed) = result.inspect_err(|e| {
        info!(process = %process_id, elapsed_ms, code = e.code.as_str(), error = %e.text, "ogc execution failed");
    })?;
    let job = &result.status;
    if job.state != JobState::Succeeded {
        info!(process = %process_id, job = %job.job_id, elapsed_ms, state = %job.state, "ogc execution failed");
        return Err(OwsError::internal(format!(
            "process {} {}: {}",
            process_id, job.state, job.message
        )));
    }
    info!(process = %process_id, job = %job.job_id, elapsed_ms, "ogc execution finished");
    Ok(match response {
        ResponseKind::Document => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
            results(&result.outputs, &state.public_url).to_string(),
        )
            .into_response(),
        ResponseKind::Raw => match streamed {
            Some(raw) => raw.into_response(),
            None => {
                raw::respond(&result.outputs, &wanted, &state.public_url, &state.storage).await?
            }
        },
    })
}

/// 201 for a submitted job: its statusInfo, `Location` and `Preference-Applied`.
fn created(job: &JobStatus, base: &str) -> Response {
    let mut answer = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(JSON)),
            (
                header::HeaderName::from_static("preference-applied"),
                HeaderValue::from_static("respond-async"),
            ),
        ],
        status_info(job, base).to_string(),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&job_url(base, job.job_id.as_str())) {
        answer.headers_mut().insert(header::LOCATION, location);
    }
    answer
}

/// The body must be JSON: `application/json` or a `+json` type; no Content-Type at all is
/// taken as JSON (clients that send none mean it). Anything else is 415.
fn json_content_type(headers: &HeaderMap) -> Result<(), OwsError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == JSON || (media.starts_with("application/") && media.ends_with("+json")) {
        return Ok(());
    }
    Err(Problem::unsupported_media_type(Some(&wpsmesh_proto::text::shown(&media)), &[JSON]).0)
}

/// Whether a `Prefer` header asks for `respond-async` (RFC 7240).
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn json_content_types_pass_others_are_415() {
        for ok in [
            &[][..],
            &[("content-type", "application/json")],
            &[("content-type", "Application/JSON; charset=utf-8")],
            &[("content-type", "application/problem+json")],
        ] {
            assert!(json_content_type(&headers(ok)).is_ok(), "{ok:?}");
        }
        let e = json_content_type(&headers(&[("content-type", "text/xml")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.text.contains("text/xml"), "{e}");
    }

    #[test]
    fn prefer_respond_async_is_found_among_preferences() {
        assert!(prefers_async(&headers(&[("prefer", "respond-async")])));
        assert!(prefers_async(&headers(&[(
            "prefer",
            "return=minimal, Respond-Async; wait=5"
        )])));
        assert!(prefers_async(&headers(&[
            ("prefer", "wait=5"),
            ("prefer", "respond-async")
        ])));
        assert!(!prefers_async(&headers(&[(
            "prefer",
            "return=representation"
        )])));
        assert!(!prefers_async(&headers(&[])));
    }
}
