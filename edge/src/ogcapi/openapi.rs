//! `GET /api`: the OpenAPI 3.0 document, generated once from the handlers' and types'
//! annotations (utoipa 4, which writes 3.0.3).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use utoipa::OpenApi;

use super::negotiate::{self, JSON};
use super::problem::ProblemBody;
use super::responses::{Format, NotAcceptable};
use super::{Problem, Shared, jobs_doc, landing, model, processes};

/// Media type of the OpenAPI 3.0 document in JSON.
pub const OPENAPI_JSON: &str = "application/vnd.oai.openapi+json;version=3.0";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wpsmesh: OGC API - Processes",
        version = "1.0.0",
        description = "QGIS Processing algorithms as OGC API - Processes - Part 1: Core 1.0 \
            (core, ogc-process-description, json, oas30, job-list, dismiss, callback). \
            Errors are application/problem+json."
    ),
    paths(
        landing::landing,
        landing::conformance,
        api,
        processes::list,
        processes::describe,
        jobs_doc::execute,
        jobs_doc::jobs,
        jobs_doc::status,
        jobs_doc::dismiss,
        jobs_doc::results,
    ),
    components(schemas(
        model::Link,
        model::LandingPage,
        model::Conformance,
        model::JobControl,
        model::Transmission,
        model::ProcessSummary,
        model::ProcessList,
        model::InputDescription,
        model::OutputDescription,
        model::Process,
        ProblemBody,
        jobs_doc::StatusCode,
        jobs_doc::JobType,
        jobs_doc::StatusInfo,
        jobs_doc::JobList,
        jobs_doc::Results,
        jobs_doc::Subscriber,
        jobs_doc::ResponseKind,
        jobs_doc::Execute,
    )),
    tags(
        (name = "Capabilities", description = "The landing page, conformance and this document"),
        (name = "Processes", description = "The processes and their execution"),
        (name = "Jobs", description = "Jobs, whatever protocol started them"),
    )
)]
struct ApiDoc;

/// The document, rendered once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(
        serde_json::to_vec(&ApiDoc::openapi()).expect("an openapi document serialises to json"),
    )
});

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/api", get(api))
}

/// The OpenAPI document, for the type and the bytes served.
pub fn document() -> Bytes {
    DOCUMENT.clone()
}

/// This API's definition (OpenAPI 3.0, JSON).
#[utoipa::path(
    get,
    path = "/api",
    tag = "Capabilities",
    operation_id = "getAPIDefinition",
    params(Format),
    responses(
        (status = 200, description = "The OpenAPI 3.0 document", body = Object, content_type = "application/vnd.oai.openapi+json;version=3.0"),
        NotAcceptable,
    )
)]
pub async fn api(headers: HeaderMap, RawQuery(raw): RawQuery) -> Result<Response, Problem> {
    let params = negotiate::query(raw.as_deref());
    negotiate::accepts(
        &headers,
        negotiate::param(&params, "f"),
        &[OPENAPI_JSON, JSON],
    )?;
    Ok(([(header::CONTENT_TYPE, OPENAPI_JSON)], document()).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(&document()).expect("json")
    }

    #[test]
    fn is_openapi_3_0_with_every_path_and_operation() {
        let doc = doc();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.0.")),
            "{}",
            doc["openapi"]
        );
        let paths = &doc["paths"];
        for (path, method) in [
            ("/", "get"),
            ("/conformance", "get"),
            ("/api", "get"),
            ("/processes", "get"),
            ("/processes/{processID}", "get"),
            ("/processes/{processID}/execution", "post"),
            ("/jobs", "get"),
            ("/jobs/{jobID}", "get"),
            ("/jobs/{jobID}", "delete"),
            ("/jobs/{jobID}/results", "get"),
        ] {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} missing");
            assert!(op["responses"]["200"].is_object() || op["responses"]["201"].is_object());
        }
        // Errors are problem documents.
        let not_found = &paths["/processes/{processID}"]["get"]["responses"]["404"];
        assert_eq!(
            not_found["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/ProblemBody"
        );
        let limit = paths["/processes"]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["schema"]["maximum"], 10000.0);
    }

    #[test]
    fn schemas_describe_the_documents() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let summary = &schemas["ProcessSummary"];
        for field in [
            "id",
            "version",
            "jobControlOptions",
            "outputTransmission",
            "links",
        ] {
            assert!(
                summary["properties"][field].is_object(),
                "ProcessSummary.{field}"
            );
        }
        assert_eq!(
            schemas["JobControl"]["enum"],
            serde_json::json!(["sync-execute", "async-execute", "dismiss"])
        );
        let problem = &schemas["ProblemBody"]["required"];
        for field in ["type", "title", "status", "detail"] {
            assert!(
                problem
                    .as_array()
                    .is_some_and(|r| r.contains(&field.into())),
                "{field}"
            );
        }
    }
}
