//! Errors as `application/problem+json` (RFC 7807) with the OGC API - Processes exception
//! types, made from the edge's one error type ([`OwsError`]).

use axum::response::{IntoResponse, Response};

use crate::ows::OwsError;

/// An OGC API error answer.
#[derive(Debug)]
pub struct Problem(pub OwsError);

impl From<OwsError> for Problem {
    fn from(e: OwsError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.0.code.as_str(),
            "status": status.as_u16(),
            "detail": self.0.text,
        });
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
