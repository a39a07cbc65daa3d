//! The answers and parameters many OGC API operations share, described once for the OpenAPI
//! document: each error as a problem document of its status, and the `f` parameter.

#![allow(dead_code)]

use utoipa::{IntoParams, IntoResponses};

use super::problem::ProblemBody;

/// A missing or invalid parameter or input, named in `parameter` and the detail.
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct BadRequest(ProblemBody);

/// No such process (`no-such-process`).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NoSuchProcess(ProblemBody);

/// No such job (`no-such-job`), or its results are not ready (`result-not-ready`).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NoSuchJob(ProblemBody);

/// The request accepts no representation the edge gives (JSON).
#[derive(IntoResponses)]
#[response(status = 406, content_type = "application/problem+json")]
pub struct NotAcceptable(ProblemBody);

/// The body is over the limit.
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct TooLarge(ProblemBody);

/// The body is not JSON.
#[derive(IntoResponses)]
#[response(status = 415, content_type = "application/problem+json")]
pub struct UnsupportedMediaType(ProblemBody);

/// The process or job failed: its exception.
#[derive(IntoResponses)]
#[response(status = 500, content_type = "application/problem+json")]
pub struct Failed(ProblemBody);

/// The nodes are busy, none is reachable, or a dependency (job store, storage) is down;
/// `Retry-After` says when to try again.
#[derive(IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(ProblemBody);

/// The representation asked for with `f`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Format {
    /// The representation: JSON only.
    #[param(pattern = "^json$")]
    f: Option<String>,
}

/// The process named in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProcessId {
    /// The process id, e.g. `native:buffer`.
    #[param(rename = "processID", example = "native:buffer")]
    process_id: String,
}

/// The job named in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobId {
    /// The job id.
    #[param(rename = "jobID")]
    job_id: String,
}
