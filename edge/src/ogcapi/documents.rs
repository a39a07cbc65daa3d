//! The JSON bodies of execution and jobs as types for the OpenAPI document: the execute
//! request, statusInfo, the job list and results. The answers are written by
//! `wpsmesh_proto::ogcapi` and read by `execute_body.rs`; these types only describe them.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::model::Link;

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
    /// `document` (the results document) when absent; `raw` answers the output itself.
    pub response: Option<ResponseKind>,
    pub subscriber: Option<Subscriber>,
}
