//! `/api/wps`: KVP (GET) and XML (POST) requests of both versions, parsed, answered from the
//! catalog cache or by calling a node, and written in the request's version; every error an
//! OWS ExceptionReport with its HTTP status; asynchronous jobs in `jobs::wps1`/`jobs::wps2`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::{Instrument, info};
use wpsmesh_proto::process::{Output, OutputValue};

use super::model::{Execute, ResponseForm, Version, WpsRequest};
use super::request::{parse_kvp, parse_xml, resolve_bboxes};
use super::{Service, v1, v2};
use crate::catalog::{Catalog, Described};
use crate::files::{Storage, typed};
use crate::jobs::wps1::{job_operation, status_location, submit, v1_document, v1_status};
use crate::jobs::wps2::status_response;
use crate::jobs::{self, OwnFiles};
use crate::metrics::job_call;
use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};

/// What the WPS handler needs.
pub struct WpsState {
    pub nodes: Nodes,
    pub storage: Storage,
    pub service: Service,
    pub catalog: Arc<Catalog>,
    /// This edge's own file hrefs (made storage references) and the public URL of outputs.
    pub files: OwnFiles,
    pub max_body: usize,
}

/// `GET` and `POST /api/wps`.
pub fn router(state: Arc<WpsState>) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/api/wps", get(kvp).post(xml))
        .route("/api/wps/status/{job_id}", get(status_location))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn kvp(State(state): State<Arc<WpsState>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let hint = if query.to_ascii_lowercase().contains("version=2.0.0") {
        Version::V200
    } else {
        Version::V100
    };
    answer(&state, parse_kvp(&query), hint).await
}

async fn xml(State(state): State<Arc<WpsState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let error = OwsError::new(
                OwsCode::FileSizeExceeded,
                None,
                format!("request body exceeds {} bytes", state.max_body),
            );
            return exception(Version::V100, &error);
        }
        Err(e) => return exception(Version::V100, &OwsError::invalid("body", e.body_text())),
    };
    let hint = if memchr_ns(&body, b"http://www.opengis.net/wps/2.0") {
        Version::V200
    } else {
        Version::V100
    };
    answer(&state, parse_xml(&body), hint).await
}

fn memchr_ns(body: &[u8], ns: &[u8]) -> bool {
    body.windows(ns.len()).any(|w| w == ns)
}

async fn answer(state: &WpsState, parsed: Result<WpsRequest, OwsError>, hint: Version) -> Response {
    let request = match parsed {
        Ok(r) => r,
        Err(e) => {
            info!(code = e.code.as_str(), locator = ?e.locator, error = %e.text, "wps request unreadable");
            return exception(hint, &e);
        }
    };
    let operation = operation_name(&request);
    let job_operation = job_operation(&request);
    let span = tracing::info_span!("wps operation", otel.name = %format_args!("wps {operation}"), wps.operation = operation);
    let response = match dispatch(state, request).instrument(span.clone()).await {
        Ok(response) => response,
        Err((version, e)) => {
            wpsmesh_telemetry::propagate::fail(&span, format!("{}: {}", e.code.as_str(), e.text));
            info!(operation, code = e.code.as_str(), locator = ?e.locator, error = %e.text, "wps request refused");
            exception(version, &e)
        }
    };
    match job_operation {
        Some(job_operation) => job_call(response, job_operation),
        None => response,
    }
}

fn operation_name(request: &WpsRequest) -> &'static str {
    match request {
        WpsRequest::GetCapabilities { .. } => "GetCapabilities",
        WpsRequest::DescribeProcess { .. } => "DescribeProcess",
        WpsRequest::Execute(_) => "Execute",
        WpsRequest::GetStatus { .. } => "GetStatus",
        WpsRequest::GetResult { .. } => "GetResult",
        WpsRequest::Dismiss { .. } => "Dismiss",
    }
}

type Answer = Result<Response, (Version, OwsError)>;

async fn dispatch(state: &WpsState, request: WpsRequest) -> Answer {
    match request {
        WpsRequest::GetCapabilities { accept_versions } => {
            let version = negotiate(&accept_versions).map_err(|e| (Version::V100, e))?;
            let service = &state.service;
            let doc = state
                .catalog
                .capabilities(&state.nodes, version, XML, |summaries| match version {
                    Version::V100 => v1::capabilities(service, summaries),
                    Version::V200 => v2::capabilities(service, summaries),
                })
                .await
                .map_err(|e| (version, e))?;
            Ok(doc.response())
        }
        WpsRequest::DescribeProcess {
            version,
            identifiers,
        } => describe(state, version, identifiers)
            .await
            .map_err(|e| (version, e)),
        WpsRequest::Execute(execute) => {
            let version = execute.version;
            run(state, *execute).await.map_err(|e| (version, e))
        }
        WpsRequest::GetStatus {
            version: Version::V100,
            job_id,
        } => v1_status(state, &job_id)
            .await
            .map_err(|e| (Version::V100, e)),
        WpsRequest::GetStatus { version, job_id } => {
            let job = jobs::status(&state.nodes, &job_id)
                .await
                .map_err(|e| (version, e))?;
            Ok(status_response(&job))
        }
        WpsRequest::GetResult { version, job_id } => {
            let result = jobs::result(&state.nodes, &job_id)
                .await
                .map_err(|e| (version, e))?;
            let job = &result.status;
            Ok(xml_response(
                StatusCode::OK,
                v2::result(
                    job.job_id.as_str(),
                    job.expires_at,
                    &result.outputs,
                    state.files.public_url(),
                ),
            ))
        }
        WpsRequest::Dismiss { version, job_id } => {
            let job = jobs::dismiss(&state.nodes, &job_id)
                .await
                .map_err(|e| (version, e))?;
            Ok(status_response(&job))
        }
    }
}

/// The highest version both sides speak; all of ours when the client names none.
fn negotiate(accept: &[String]) -> Result<Version, OwsError> {
    if accept.is_empty() {
        return Ok(Version::V200);
    }
    for (text, version) in [("2.0.0", Version::V200), ("1.0.0", Version::V100)] {
        if accept
            .iter()
            .any(|a| a.trim() == text || (text == "2.0.0" && a.trim() == "2.0"))
        {
            return Ok(version);
        }
    }
    Err(OwsError::new(
        OwsCode::VersionNegotiationFailed,
        Some("AcceptVersions"),
        format!(
            "none of {} is supported: this server speaks 2.0.0 and 1.0.0",
            wpsmesh_proto::text::shown(&format!("{accept:?}"))
        ),
    ))
}

async fn describe(
    state: &WpsState,
    version: Version,
    identifiers: Vec<String>,
) -> Result<Response, OwsError> {
    // One process (or ALL) is kept rendered; a list of several is rendered for its request.
    let key = match identifiers.as_slice() {
        [one] => Some(format!("{}|{one}", version.as_str())),
        _ => None,
    };
    let render = async {
        let ids: Vec<String> = if identifiers.iter().any(|i| i.eq_ignore_ascii_case("ALL")) {
            state
                .catalog
                .summaries(&state.nodes)
                .await?
                .iter()
                .map(|s| s.id.clone())
                .collect()
        } else {
            identifiers
        };
        let mut descriptions = Vec::with_capacity(ids.len());
        for id in &ids {
            let d = state
                .catalog
                .describe(&state.nodes, id)
                .await
                .map_err(|e| {
                    if version == Version::V100 && e.code == OwsCode::NoSuchProcess {
                        OwsError::invalid("Identifier", e.text)
                    } else {
                        e
                    }
                })?;
            descriptions.push((*d).clone());
        }
        Ok(match version {
            Version::V100 => v1::process_descriptions(&descriptions),
            Version::V200 => v2::process_offerings(&descriptions),
        })
    };
    Ok(match state.catalog.described(key, XML, render).await? {
        Described::Kept(doc) => doc.response(),
        Described::Once(doc) => xml_response(StatusCode::OK, doc),
    })
}

async fn run(state: &WpsState, mut execute: Execute) -> Result<Response, OwsError> {
    let description = state
        .catalog
        .describe(&state.nodes, &execute.request.process_id)
        .await
        .map_err(|e| match execute.version {
            Version::V100 if e.code == OwsCode::NoSuchProcess => {
                OwsError::invalid("Identifier", e.text)
            }
            _ => e,
        })?;
    resolve_bboxes(&mut execute.request, &description)?;
    let lineage = match execute.response {
        ResponseForm::Document { lineage: true, .. } => Some(v1::Lineage {
            inputs: &execute.request.inputs,
            outputs: &execute.request.outputs,
        }),
        _ => None,
    };
    if execute.submits() {
        return submit(state, &execute, &description, lineage).await;
    }
    let request = execute.request.clone();
    let process = request.process_id.clone();
    // A raw output comes streamed from the node, never through storage.
    let (result, streamed) = match &execute.response {
        ResponseForm::Raw { output } => {
            jobs::execute_raw(&state.nodes, &state.files, request, output).await?
        }
        ResponseForm::Document { .. } => {
            let result = jobs::execute(&state.nodes, &state.files, request).await?;
            (result, None)
        }
    };
    let job = &result.status;
    info!(process = %process, job = %job.job_id, "wps execute done");
    match execute.response {
        ResponseForm::Raw { output } => match streamed {
            Some(raw) => Ok(raw.into_response()),
            None => raw_output(state, &result.outputs, &output).await,
        },
        ResponseForm::Document { .. } => {
            let doc = match execute.version {
                Version::V100 => v1_document(
                    state,
                    job,
                    Some(&description),
                    &result.outputs,
                    lineage,
                    None,
                ),
                Version::V200 => v2::result(
                    job.job_id.as_str(),
                    job.expires_at,
                    &result.outputs,
                    state.files.public_url(),
                ),
            };
            Ok(xml_response(StatusCode::OK, doc))
        }
    }
}

/// The bytes of one output: a stored file streamed from storage, an inline value, a literal.
async fn raw_output(state: &WpsState, outputs: &[Output], id: &str) -> Result<Response, OwsError> {
    let out = outputs
        .iter()
        .find(|o| o.id == id)
        .ok_or_else(|| OwsError::invalid(id, format!("the process gave no output {id}")))?;
    match &out.value {
        OutputValue::Stored(file) => {
            state
                .storage
                .object_response(file.id.as_str(), &file.format.mime_type)
                .await
        }
        OutputValue::Inline(c) => {
            let mime = c
                .format
                .as_ref()
                .map(|f| f.mime_type.as_str())
                .unwrap_or("application/octet-stream");
            Ok(typed(mime, c.data.clone()))
        }
        OutputValue::Literal(l) => Ok(typed(
            "text/plain; charset=utf-8",
            Bytes::from(l.value.clone()),
        )),
        OutputValue::BoundingBox(b) => {
            let text = format!("{:?},{:?},{}", b.lower, b.upper, b.crs);
            Ok(typed("text/plain; charset=utf-8", Bytes::from(text)))
        }
    }
}

/// The media type of every WPS document.
pub(crate) const XML: &str = "text/xml; charset=utf-8";

/// `doc` as a WPS XML document with `status`.
pub(crate) fn xml_response(status: StatusCode, doc: impl Into<Body>) -> Response {
    let mut response = (status, doc.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(XML));
    response
}

/// An OWS ExceptionReport in `version`, with the code's HTTP status (and Retry-After when busy).
pub fn exception(version: Version, error: &OwsError) -> Response {
    let doc = match version {
        Version::V100 => v1::exception_report(error),
        Version::V200 => v2::exception_report(error),
    };
    let mut response = xml_response(error.status(), doc);
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
