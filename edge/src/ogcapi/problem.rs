//! Errors as `application/problem+json` (RFC 7807) with the OGC API - Processes exception
//! types, made from the edge's one error type ([`OwsError`]): the one error answer of every
//! OGC API route. Every body has `type`, `title`, `status` and `detail`; an invalid or missing
//! parameter is named in the detail and in the `parameter` member.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ows::{OwsCode, OwsError};

/// Media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

pub const NO_SUCH_PROCESS: &str =
    "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process";
pub const NO_SUCH_JOB: &str =
    "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job";
pub const RESULT_NOT_READY: &str =
    "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready";
/// A parameter (query parameter, header, body member or process input) is missing or invalid.
pub const INVALID_PARAMETER: &str =
    "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/invalid-parameter";

/// An OGC API error answer.
#[derive(Debug)]
pub struct Problem(pub OwsError);

/// The body of every OGC API error (RFC 7807 problem details).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// The exception type URI, e.g. `.../ogcapi-processes-1/1.0/no-such-process`, or
    /// `about:blank` when the HTTP status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The parameter or input the problem is about (invalid or missing parameters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl From<OwsError> for Problem {
    fn from(e: OwsError) -> Self {
        Self(e)
    }
}

impl Problem {
    pub fn no_such_process(id: &str) -> Self {
        Self(OwsError::new(
            OwsCode::NoSuchProcess,
            Some("processID"),
            format!("no process {id:?}"),
        ))
    }

    pub fn no_such_job(id: &str) -> Self {
        Self(OwsError::new(
            OwsCode::NoSuchJob,
            Some("jobID"),
            format!("no job {id:?}"),
        ))
    }

    pub fn result_not_ready(id: &str) -> Self {
        Self(OwsError::new(
            OwsCode::ResultNotReady,
            Some("jobID"),
            format!("job {id:?} has not finished"),
        ))
    }

    /// `parameter` (a query parameter, body member or process input) is invalid; `detail`
    /// says why and should name it.
    pub fn invalid(parameter: &str, detail: impl Into<String>) -> Self {
        Self(OwsError::invalid(parameter, detail))
    }

    pub fn missing(parameter: &str) -> Self {
        Self(OwsError::missing(parameter))
    }

    /// A body whose `Content-Type` is not one of `expected` (415).
    pub fn unsupported_media_type(got: Option<&str>, expected: &[&str]) -> Self {
        let got = got.map_or_else(|| "none".to_owned(), |g| format!("{g:?}"));
        Self(
            OwsError::invalid(
                "Content-Type",
                format!(
                    "content type {got} not supported: send {}",
                    expected.join(" or ")
                ),
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        )
    }

    /// A request whose `Accept` (or `f`) allows none of the representations offered (406).
    pub fn not_acceptable(asked: &str, offered: &[&str]) -> Self {
        Self(
            OwsError::not_supported(
                "Accept",
                format!("cannot answer {asked:?}: only {}", offered.join(", ")),
            )
            .with_status(StatusCode::NOT_ACCEPTABLE),
        )
    }

    /// A body over `limit` bytes (413).
    pub fn too_large(limit: usize) -> Self {
        Self(OwsError::new(
            OwsCode::FileSizeExceeded,
            None,
            format!("request body over the limit of {limit} bytes"),
        ))
    }

    /// A body that is not JSON, or not the JSON expected: names the line and column.
    pub fn bad_json(e: &serde_json::Error) -> Self {
        let what = if e.is_data() {
            "unexpected JSON"
        } else {
            "malformed JSON"
        };
        let message = e.to_string();
        // serde_json ends its message with " at line L column C"; say it once.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        Self::invalid(
            "body",
            format!(
                "{what} at line {} column {}: {message}",
                e.line(),
                e.column()
            ),
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self(OwsError::internal(detail))
    }

    /// The status the problem is answered with.
    pub fn status(&self) -> StatusCode {
        if let Some(status) = self.0.http_status {
            return status;
        }
        match self.0.code {
            OwsCode::NoSuchProcess | OwsCode::NoSuchJob | OwsCode::ResultNotReady => {
                StatusCode::NOT_FOUND
            }
            OwsCode::OptionNotSupported => StatusCode::BAD_REQUEST,
            code => code.http_status(),
        }
    }

    /// The body: type, title, status, detail and the parameter named.
    pub fn body(&self) -> ProblemBody {
        let status = self.status();
        let (kind, title) = match self.0.code {
            OwsCode::NoSuchProcess => (NO_SUCH_PROCESS, "No such process"),
            OwsCode::NoSuchJob => (NO_SUCH_JOB, "No such job"),
            OwsCode::ResultNotReady => (RESULT_NOT_READY, "Result not ready"),
            OwsCode::InvalidParameterValue
            | OwsCode::MissingParameterValue
            | OwsCode::OptionNotSupported
                if status == StatusCode::BAD_REQUEST =>
            {
                (INVALID_PARAMETER, "Invalid parameter")
            }
            _ => ("about:blank", status.canonical_reason().unwrap_or("Error")),
        };
        let parameter = (kind == INVALID_PARAMETER)
            .then(|| self.0.locator.clone())
            .flatten();
        ProblemBody {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.0.text.clone(),
            parameter,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body();
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), detail = %body.detail, "ogc api error");
        }
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], json).into_response();
        if let Some(seconds) = self.0.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(p: Problem) -> (StatusCode, serde_json::Value, Option<String>) {
        let r = p.into_response();
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let status = r.status();
        let bytes = futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 16))
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"), retry)
    }

    #[test]
    fn ogc_types_and_statuses() {
        let (s, b, _) = body(Problem::no_such_process("nope:nope"));
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::NOT_FOUND, Some(NO_SUCH_PROCESS))
        );
        assert!(
            b["detail"]
                .as_str()
                .is_some_and(|d| d.contains("nope:nope"))
        );
        let (s, b, _) = body(Problem::no_such_job("abc"));
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::NOT_FOUND, Some(NO_SUCH_JOB))
        );
        let (s, b, _) = body(Problem::result_not_ready("abc"));
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::NOT_FOUND, Some(RESULT_NOT_READY))
        );
        for b in [&b] {
            for key in ["type", "title", "status", "detail"] {
                assert!(b.get(key).is_some(), "{key} missing in {b}");
            }
        }
    }

    #[test]
    fn invalid_parameter_is_named() {
        let (s, b, _) = body(Problem::invalid("DISTANCE", "DISTANCE must be a number"));
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(b["type"], INVALID_PARAMETER);
        assert_eq!(b["parameter"], "DISTANCE");
        assert_eq!(b["status"], 400);
        let (s, b, _) = body(Problem::missing("INPUT"));
        assert_eq!(
            (s, &b["parameter"]),
            (StatusCode::BAD_REQUEST, &"INPUT".into())
        );
        // A node's InvalidArgument naming the input maps the same way.
        let status = tonic::Status::invalid_argument("bad value");
        let (s, b, _) = body(OwsError::from_status(&status).into());
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::BAD_REQUEST, Some(INVALID_PARAMETER))
        );
    }

    #[test]
    fn http_level_problems() {
        let (s, b, _) = body(Problem::unsupported_media_type(
            Some("text/plain"),
            &["application/json"],
        ));
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(b["type"], "about:blank");
        assert!(
            b["detail"]
                .as_str()
                .is_some_and(|d| d.contains("text/plain"))
        );
        let (s, _, _) = body(Problem::not_acceptable("text/html", &["application/json"]));
        assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
        let (s, b, _) = body(Problem::too_large(10));
        assert_eq!(
            (s, b["title"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("Payload Too Large"))
        );
        let (s, _, _) = body(Problem::internal("boom"));
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn busy_and_dependency_down_say_when_to_retry() {
        let (s, b, retry) = body(OwsError::busy("queue full", 7).into());
        assert_eq!(
            (s, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("7"))
        );
        assert_eq!(b["detail"], "queue full");
        let (s, _, retry) = body(OwsError::dependency_down("job store unavailable").into());
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry.is_some());
        // Positive control: a plain error has no Retry-After.
        let (_, _, retry) = body(Problem::invalid("limit", "bad"));
        assert_eq!(retry, None);
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let e = serde_json::from_str::<serde_json::Value>("{\n  \"inputs\": [1,,]\n}")
            .expect_err("malformed");
        let (s, b, _) = body(Problem::bad_json(&e));
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let detail = b["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("malformed JSON at line 2 column 16"),
            "{detail}"
        );
        assert_eq!(detail.matches("line").count(), 1, "{detail}");
    }
}
