//! OpenAPI descriptions of the execution and job routes (served by `execution.rs` and
//! `jobs.rs`): their parameters, bodies and answers as types and annotated signatures, so the
//! document at `/api` covers every OGC API path. The bodies are written by
//! `wpsmesh_proto::ogcapi` (statusInfo, results); these types describe them.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::model::Link;
use super::responses::{
    BadRequest, Failed, JobId, NoSuchJob, NoSuchProcess, ProcessId, TooLarge, Unavailable,
    UnsupportedMediaType,
};

/// The state of a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    Accepted,
    Running,
    Successful,
    Failed,
    Dismissed,
}

/// What a job is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Process,
}

/// A job's status (statusInfo).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusInfo {
    #[serde(rename = "jobID")]
    pub job_id: String,
    #[serde(rename = "processID")]
    pub process_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: JobType,
    pub status: StatusCode,
    pub message: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<u8>,
    #[schema(format = DateTime)]
    pub created: Option<String>,
    #[schema(format = DateTime)]
    pub started: Option<String>,
    #[schema(format = DateTime)]
    pub finished: Option<String>,
    #[schema(format = DateTime)]
    pub updated: Option<String>,
    pub links: Option<Vec<Link>>,
}

/// A page of jobs, newest first, with a `next` link when there are more.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<StatusInfo>,
    pub links: Vec<Link>,
}

/// A job's outputs by id: literals as plain values, files as links (`href`, `type`), inline
/// data as qualified values (`value`, `mediaType`), extents as bbox objects.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Results(pub serde_json::Map<String, Value>);

/// Callback URIs the node POSTs to as the job progresses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    pub success_uri: String,
    pub in_progress_uri: Option<String>,
    pub failed_uri: Option<String>,
}

/// How a synchronous execution answers: the results document or the output itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseKind {
    Raw,
    Document,
}

/// An execute request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Execute {
    /// Inputs by id: plain values, bbox objects, qualified values (`value`, `mediaType`),
    /// references (`href`, `type`), or arrays of them.
    #[schema(value_type = Object)]
    pub inputs: Option<Value>,
    /// Outputs wanted by id, each with an optional `format` and `transmissionMode`.
    #[schema(value_type = Object)]
    pub outputs: Option<Value>,
    pub response: Option<ResponseKind>,
    pub subscriber: Option<Subscriber>,
}

/// Filters and pages of the job list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct JobListParams {
    /// Job types: `process` only.
    #[param(rename = "type")]
    kind: Option<Vec<String>>,
    /// Jobs of these processes.
    #[param(rename = "processID")]
    process_id: Option<Vec<String>>,
    /// Jobs in these states.
    #[param(inline)]
    status: Option<Vec<StatusCode>>,
    /// An instant or interval (RFC 3339, `..` for open ends) the job was created in.
    datetime: Option<String>,
    /// Jobs that ran at least this many seconds.
    #[param(minimum = 0)]
    min_duration: Option<u64>,
    /// Jobs that ran at most this many seconds.
    #[param(minimum = 0)]
    max_duration: Option<u64>,
    /// Jobs per page.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Runs a process: synchronously (results document, or the raw output for `response: raw`)
/// or, with `Prefer: respond-async`, as a job (201 with `Location`).
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
        (status = 200, description = "The results document; for `response: raw`, the one output itself with its media type (several: multipart/related)", body = Results, content_type = "application/json"),
        (status = 201, description = "The job, submitted; `Location` is its status", body = StatusInfo, content_type = "application/json",
            headers(("Location" = String, description = "The job's URL"))),
        (status = 204, description = "Raw, every output by reference: one `Link` header (rel enclosure) each",
            headers(("Link" = String, description = "An output file"))),
        (status = 303, description = "Raw, one output by value too large to inline: its file",
            headers(("Location" = String, description = "The output file's URL"))),
        BadRequest,
        NoSuchProcess,
        TooLarge,
        UnsupportedMediaType,
        Failed,
        Unavailable,
    )
)]
fn execute() {}

/// The jobs, newest first, whatever protocol started them.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "Jobs",
    operation_id = "getJobs",
    params(JobListParams),
    responses(
        (status = 200, description = "A page of jobs", body = JobList, content_type = "application/json"),
        BadRequest,
        Unavailable,
    )
)]
fn jobs() {}

/// A job's status.
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
fn status() {}

/// Dismisses a job: cancels it where it runs and deletes its outputs.
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
fn dismiss() {}

/// A finished job's results; a failed job's exception.
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
fn results() {}
