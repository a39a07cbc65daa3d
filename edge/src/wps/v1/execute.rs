//! WPS 1.0.0 Execute response: `wps:ExecuteResponse` for every job state, with lineage and
//! outputs by reference or by value. The same document serves as the statusLocation resource.

use std::time::SystemTime;

use wpsmesh_proto::process::{
    Format, Input, InputValue, JobState, JobStatus, LiteralValue, Output, OutputRequest,
    OutputValue, Source,
};
use wpsmesh_proto::storage::retrieve_url;
use wpsmesh_proto::time;
use wpsmesh_proto::wire::process::v1 as wire;

use super::describe::identification;
use super::{VERSION, process_version, root};
use crate::wps::xml::{self, Service, Xml};

/// Lineage (ResponseDocument `lineage="true"`): the request's inputs and output definitions,
/// echoed back as `wps:DataInputs` and `wps:OutputDefinitions`.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub inputs: &'a [Input],
    /// Every output of the description, by reference, when empty (as the node reads it).
    pub outputs: &'a [OutputRequest],
}

/// Everything an ExecuteResponse shows.
#[derive(Debug, Clone, Copy)]
pub struct ExecuteResponseArgs<'a> {
    pub process: &'a wire::ProcessSummary,
    /// Titles and abstracts of inputs and outputs (the schema wants an output title: the
    /// identifier stands in without a description).
    pub description: Option<&'a wire::ProcessDescription>,
    pub status: &'a JobStatus,
    /// Written when the job succeeded.
    pub outputs: &'a [Output],
    pub lineage: Option<Lineage<'a>>,
    /// Where the stored response can be polled (asynchronous execution).
    pub status_location: Option<&'a str>,
    /// When this document is written (`creationTime`).
    pub creation_time: SystemTime,
    /// Stored outputs (and stored inputs in the lineage) are hrefs under this URL.
    pub public_url: &'a str,
}

/// The ExecuteResponse document: ProcessAccepted, ProcessStarted (percentCompleted, at most
/// 99 as the schema wants), ProcessSucceeded with the outputs, or ProcessFailed with an
/// exception report (a dismissed job fails with "job dismissed").
pub fn execute_response(service: &Service, args: &ExecuteResponseArgs<'_>) -> String {
    let mut x = Xml::new();
    let instance = format!(
        "{}?service=WPS&request=GetCapabilities&version=1.0.0",
        service.url
    );
    root(&mut x, "wps:ExecuteResponse", "wpsExecute_response.xsd")
        .attr("serviceInstance", &instance)
        .attr_if("statusLocation", args.status_location.unwrap_or_default())
        .open();
    x.start("wps:Process")
        .attr("wps:processVersion", process_version(args.process))
        .open();
    identification(
        &mut x,
        &args.process.id,
        &args.process.title,
        &args.process.description,
    );
    x.end("wps:Process");
    status(&mut x, args.status, args.creation_time);
    if let Some(lineage) = args.lineage {
        data_inputs(&mut x, args.description, lineage.inputs, args.public_url);
        output_definitions(&mut x, args.description, lineage.outputs);
    }
    if args.status.state == JobState::Succeeded && !args.outputs.is_empty() {
        x.open("wps:ProcessOutputs");
        for out in args.outputs {
            process_output(&mut x, args.description, out, args.public_url);
        }
        x.end("wps:ProcessOutputs");
    }
    x.end("wps:ExecuteResponse");
    x.finish()
}

fn status(x: &mut Xml, status: &JobStatus, created: SystemTime) {
    x.start("wps:Status")
        .attr("creationTime", &time::rfc3339(created))
        .open();
    let message = status.message.as_str();
    match status.state {
        JobState::Accepted => {
            x.elem("wps:ProcessAccepted", xml::or(message, "process accepted"));
        }
        JobState::Running => x
            .start("wps:ProcessStarted")
            .attr("percentCompleted", &status.percent_done.min(99).to_string())
            .text(xml::or(message, "process running")),
        JobState::Succeeded => {
            x.elem(
                "wps:ProcessSucceeded",
                xml::or(message, "process succeeded"),
            );
        }
        JobState::Failed | JobState::Dismissed => {
            let text = if status.state == JobState::Dismissed {
                "job dismissed"
            } else {
                xml::or(message, "process failed")
            };
            x.open("wps:ProcessFailed");
            xml::exception_report(x, &[], VERSION, "NoApplicableCode", None, text);
            x.end("wps:ProcessFailed");
        }
    }
    x.end("wps:Status");
}

fn input_title<'a>(description: Option<&'a wire::ProcessDescription>, id: &str) -> &'a str {
    description
        .and_then(|d| d.inputs.iter().find(|i| i.id == id))
        .map_or("", |i| i.title.as_str())
}

fn output_description<'a>(
    description: Option<&'a wire::ProcessDescription>,
    id: &str,
) -> Option<&'a wire::OutputDescription> {
    description.and_then(|d| d.outputs.iter().find(|o| o.id == id))
}

fn data_inputs(
    x: &mut Xml,
    description: Option<&wire::ProcessDescription>,
    inputs: &[Input],
    public_url: &str,
) {
    if inputs.is_empty() {
        return;
    }
    x.open("wps:DataInputs");
    for input in inputs {
        x.open("wps:Input");
        x.elem("ows:Identifier", &input.id);
        x.elem_if("ows:Title", input_title(description, &input.id));
        match &input.value {
            InputValue::Reference(reference) => {
                let format = reference.format.as_ref();
                let href = match &reference.source {
                    Source::Href(href) => href.clone(),
                    Source::Stored(o) => retrieve_url(public_url, o.id.as_str(), &o.extension),
                };
                x.start("wps:Reference")
                    .attr("xlink:href", &href)
                    .attr_if("mimeType", mime(format))
                    .attr_if("encoding", format.map_or("", |f| f.encoding.as_str()))
                    .attr_if("schema", format.map_or("", |f| f.schema.as_str()))
                    .empty();
            }
            InputValue::Literal(literal) => data(x, |x| literal_data(x, literal)),
            InputValue::Complex(complex) => {
                data(x, |x| xml::complex_value(x, "wps:ComplexData", complex))
            }
            InputValue::BoundingBox(bbox) => {
                data(x, |x| xml::bounding_box(x, "wps:BoundingBoxData", bbox))
            }
        }
        x.end("wps:Input");
    }
    x.end("wps:DataInputs");
}

fn output_definitions(
    x: &mut Xml,
    description: Option<&wire::ProcessDescription>,
    requested: &[OutputRequest],
) {
    let every: Vec<OutputRequest>;
    let requested = if requested.is_empty() {
        let outputs = description.map_or(&[][..], |d| d.outputs.as_slice());
        every = outputs
            .iter()
            .map(|o| OutputRequest {
                id: o.id.clone(),
                format: None,
                as_reference: matches!(o.kind, Some(wire::output_description::Kind::Complex(_))),
            })
            .collect();
        every.as_slice()
    } else {
        requested
    };
    if requested.is_empty() {
        return;
    }
    x.open("wps:OutputDefinitions");
    for request in requested {
        let format = request.format.as_ref();
        x.start("wps:Output")
            .attr_if("mimeType", mime(format))
            .attr_if("encoding", format.map_or("", |f| f.encoding.as_str()))
            .attr_if("schema", format.map_or("", |f| f.schema.as_str()))
            .attr(
                "asReference",
                if request.as_reference {
                    "true"
                } else {
                    "false"
                },
            )
            .open();
        x.elem("ows:Identifier", &request.id);
        if let Some(out) = output_description(description, &request.id) {
            x.elem_if("ows:Title", &out.title);
            x.elem_if("ows:Abstract", &out.description);
        }
        x.end("wps:Output");
    }
    x.end("wps:OutputDefinitions");
}

fn process_output(
    x: &mut Xml,
    description: Option<&wire::ProcessDescription>,
    out: &Output,
    public_url: &str,
) {
    x.open("wps:Output");
    let (title, abstract_text) = output_description(description, &out.id)
        .map_or(("", ""), |o| (o.title.as_str(), o.description.as_str()));
    identification(x, &out.id, title, abstract_text);
    match &out.value {
        OutputValue::Stored(file) => {
            let format = Some(&file.format);
            let href = retrieve_url(public_url, file.id.as_str(), &file.format.extension);
            x.start("wps:Reference")
                .attr("href", &href)
                .attr_if("mimeType", mime(format))
                .attr_if("encoding", format.map_or("", |f| f.encoding.as_str()))
                .attr_if("schema", format.map_or("", |f| f.schema.as_str()))
                .empty();
        }
        OutputValue::Literal(literal) => data(x, |x| literal_data(x, literal)),
        OutputValue::Inline(complex) => {
            data(x, |x| xml::complex_value(x, "wps:ComplexData", complex))
        }
        OutputValue::BoundingBox(bbox) => {
            data(x, |x| xml::bounding_box(x, "wps:BoundingBoxData", bbox))
        }
    }
    x.end("wps:Output");
}

/// `wps:Data` around what `content` writes.
fn data(x: &mut Xml, content: impl FnOnce(&mut Xml)) {
    x.open("wps:Data");
    content(x);
    x.end("wps:Data");
}

fn literal_data(x: &mut Xml, literal: &LiteralValue) {
    let data_type = literal.data_type.map_or("", |t| t.name());
    x.start("wps:LiteralData")
        .attr_if("dataType", data_type)
        .attr_if("uom", &literal.uom)
        .text(&literal.value);
}

/// The format's MIME type if it matches OWS's pattern, else nothing.
fn mime(format: Option<&Format>) -> &str {
    format.map_or("", |f| {
        if xml::mime_ok(&f.mime_type) {
            f.mime_type.as_str()
        } else {
            ""
        }
    })
}
