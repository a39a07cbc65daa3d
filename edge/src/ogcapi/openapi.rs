//! `GET /api`: the OpenAPI 3.0 document, generated once from the handlers' and types'
//! annotations (utoipa 4, which writes 3.0.3), and compressed once.

use std::sync::{Arc, LazyLock};

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use utoipa::OpenApi;

use super::negotiate::{self, JSON};
use super::problem::ProblemBody;
use super::responses::{Format, NotAcceptable};
use super::{Problem, documents, execution, jobs, landing, model, processes};
use crate::encoding::Document;

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
        execution::execute,
        jobs::list,
        jobs::status,
        jobs::dismiss,
        jobs::job_results,
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
        documents::StatusCode,
        documents::JobType,
        documents::StatusInfo,
        documents::JobList,
        documents::Results,
        documents::Subscriber,
        documents::ResponseKind,
        documents::Execute,
    )),
    tags(
        (name = "Capabilities", description = "The landing page, conformance and this document"),
        (name = "Processes", description = "The processes and their execution"),
        (name = "Jobs", description = "Jobs, whatever protocol started them"),
    )
)]
struct ApiDoc;

/// The document, rendered and compressed once.
static DOCUMENT: LazyLock<Arc<Document>> = LazyLock::new(|| {
    Arc::new(Document::new(
        OPENAPI_JSON,
        Bytes::from(
            serde_json::to_vec(&ApiDoc::openapi()).expect("an openapi document serialises to json"),
        ),
    ))
});

/// The OpenAPI document's bytes, as served without compression.
#[cfg(test)]
pub fn document() -> Bytes {
    DOCUMENT.identity().clone()
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
    Ok(DOCUMENT.response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use wpsmesh_proto::process::{DEFAULT_LIMIT, MAX_LIMIT};

    use super::super::job_query::MAX_TOKEN;
    use super::super::routes::ROUTES;
    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(&document()).expect("json")
    }

    /// The parameter `name` of the operation `method path`.
    fn param(doc: &Value, path: &str, method: &str, name: &str) -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))
    }

    #[test]
    fn documents_exactly_the_routes_the_router_registers() {
        let doc = doc();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| matches!(k.as_str(), "get" | "post" | "put" | "delete" | "patch"))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(_, verb, path)| (verb.openapi().to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(routed.len(), ROUTES.len(), "a route listed twice");
        assert_eq!(documented, routed);
    }

    #[test]
    fn parameter_bounds_are_the_parsers() {
        let doc = doc();
        let limit = param(&doc, "/jobs", "get", "limit");
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["schema"]["minimum"], 1.0);
        assert_eq!(limit["schema"]["maximum"], f64::from(MAX_LIMIT));
        assert_eq!(limit["schema"]["default"], DEFAULT_LIMIT);
        let next = param(&doc, "/jobs", "get", "next");
        assert_eq!(next["schema"]["maxLength"], MAX_TOKEN);
        for name in ["minDuration", "maxDuration"] {
            let p = param(&doc, "/jobs", "get", name);
            assert_eq!(p["schema"]["type"], "number", "{name}: fractional seconds");
            assert_eq!(p["schema"]["minimum"], 0.0, "{name}");
        }
        let limit = param(&doc, "/processes", "get", "limit");
        assert_eq!(limit["schema"]["maximum"], processes::MAX_LIMIT as f64);
    }

    /// Every `$ref` under `value`.
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    found.push(r);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_component() {
        let doc = doc();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 10, "{found:?}");
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
    }

    #[test]
    fn raw_answers_are_described() {
        let doc = doc();
        let responses = &doc["paths"]["/processes/{processID}/execution"]["post"]["responses"];
        let ok = responses["200"]["content"]
            .as_object()
            .expect("200 content");
        for media in ["application/json", "multipart/related", "*/*"] {
            assert!(ok.contains_key(media), "200 as {media}");
        }
        assert!(responses["204"]["headers"]["Link"].is_object(), "204 Link");
        assert!(
            responses["201"]["headers"]["Location"].is_object(),
            "201 Location"
        );
        assert!(responses["303"].is_null(), "no redirect any more");
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
