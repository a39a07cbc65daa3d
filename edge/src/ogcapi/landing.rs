//! `GET /` (landing page with its links) and `GET /conformance` (exactly the classes
//! implemented: JSON, not HTML yet).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;

use super::model::{Conformance, LandingPage, Link};
use super::negotiate::{self, JSON};
use super::openapi::OPENAPI_JSON;
use super::responses::{Format, NotAcceptable};
use super::{Problem, Shared};

/// The conformance classes of OGC API - Processes - Part 1: Core 1.0 the edge implements.
pub const CONFORMANCE: [&str; 7] = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/callback",
];

/// The landing page: links to the API definition, the conformance classes, the processes and
/// the jobs.
#[utoipa::path(
    get,
    path = "/",
    tag = "Capabilities",
    operation_id = "getLandingPage",
    params(Format),
    responses(
        (status = 200, description = "The landing page", body = LandingPage, content_type = "application/json"),
        NotAcceptable,
    )
)]
pub async fn landing(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<LandingPage>, Problem> {
    negotiate::json_only(&headers, raw.as_deref())?;
    let base = &state.public_url;
    let conformance = format!("{base}/conformance");
    Ok(Json(LandingPage {
        title: "wpsmesh".into(),
        description: "QGIS Processing algorithms as OGC API - Processes (and WPS at /api/wps)"
            .into(),
        links: vec![
            Link::new(format!("{base}/"), "self", JSON, "this document"),
            Link::new(
                format!("{base}/api"),
                "service-desc",
                OPENAPI_JSON,
                "the API definition (OpenAPI 3.0)",
            ),
            Link::new(
                format!("{base}/api"),
                "service-doc",
                OPENAPI_JSON,
                "the API documentation (OpenAPI 3.0, for any OpenAPI viewer)",
            ),
            Link::new(
                conformance.clone(),
                "conformance",
                JSON,
                "the conformance classes implemented",
            ),
            Link::new(
                conformance,
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                JSON,
                "the conformance classes implemented",
            ),
            Link::new(
                format!("{base}/processes"),
                "http://www.opengis.net/def/rel/ogc/1.0/processes",
                JSON,
                "the processes",
            ),
            Link::new(
                format!("{base}/jobs"),
                "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                JSON,
                "the jobs",
            ),
        ],
    }))
}

/// The conformance classes implemented.
#[utoipa::path(
    get,
    path = "/conformance",
    tag = "Capabilities",
    operation_id = "getConformanceClasses",
    params(Format),
    responses(
        (status = 200, description = "The conformance classes", body = Conformance, content_type = "application/json"),
        NotAcceptable,
    )
)]
pub async fn conformance(
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Conformance>, Problem> {
    negotiate::json_only(&headers, raw.as_deref())?;
    Ok(Json(Conformance {
        conforms_to: CONFORMANCE.iter().map(|c| (*c).to_owned()).collect(),
    }))
}
