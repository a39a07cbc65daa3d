//! The JSON documents of the OGC API core (landing page, conformance, process list and
//! description), typed once: the handlers serialise them and the OpenAPI document describes
//! them from the same definitions.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Schema, SchemaType};

/// A link to a related resource.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Link {
    pub href: String,
    pub rel: String,
    /// The media type of the resource linked to.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Link {
    pub fn new(href: impl Into<String>, rel: &str, media_type: &str, title: &str) -> Self {
        Self {
            href: href.into(),
            rel: rel.to_owned(),
            media_type: Some(media_type.to_owned()),
            title: Some(title.to_owned()),
        }
    }
}

/// The landing page: what the service is and links to its resources.
#[derive(Debug, Serialize, ToSchema)]
pub struct LandingPage {
    pub title: String,
    pub description: String,
    pub links: Vec<Link>,
}

/// The conformance classes implemented.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conformance {
    pub conforms_to: Vec<String>,
}

/// How a process may be executed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobControl {
    SyncExecute,
    AsyncExecute,
    Dismiss,
}

/// How outputs may be returned.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transmission {
    Value,
    Reference,
}

/// A process in the list: its id, title, version, how it runs and a link to its description.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSummary {
    /// The QGIS algorithm id, e.g. `native:buffer`.
    pub id: String,
    pub title: String,
    pub description: String,
    pub version: String,
    pub job_control_options: Vec<JobControl>,
    pub output_transmission: Vec<Transmission>,
    pub links: Vec<Link>,
}

/// A page of the process list, with `next`/`prev` links when there are more.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessList {
    pub processes: Vec<ProcessSummary>,
    pub links: Vec<Link>,
}

/// A process input: occurrences and the JSON Schema of one value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InputDescription {
    pub title: String,
    pub description: String,
    pub min_occurs: u32,
    /// A count, or `unbounded`.
    #[schema(schema_with = max_occurs_schema)]
    pub max_occurs: Value,
    /// The JSON Schema of the input's value.
    #[schema(value_type = Object)]
    pub schema: Value,
}

/// A process output and the JSON Schema of its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputDescription {
    pub title: String,
    pub description: String,
    /// The JSON Schema of the output's value.
    #[schema(value_type = Object)]
    pub schema: Value,
}

/// A process description (ogc-process-description): the summary, inputs and outputs by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct Process {
    #[serde(flatten)]
    pub summary: ProcessSummary,
    pub inputs: BTreeMap<String, InputDescription>,
    pub outputs: BTreeMap<String, OutputDescription>,
}

fn max_occurs_schema() -> RefOr<Schema> {
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Integer))
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::String)
                .enum_values(Some(["unbounded"])),
        )
        .build();
    RefOr::T(Schema::OneOf(one_of))
}
