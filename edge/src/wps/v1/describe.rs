//! WPS 1.0.0 DescribeProcess response: `wps:ProcessDescriptions`. Its local elements
//! (`ProcessDescription`, `DataInputs`, `Input`, `LiteralData`, ...) are unqualified, as the
//! schema declares them.

use wire::{input_description::Kind as InputKind, output_description::Kind as OutputKind};
use wpsmesh_proto::wire::process::v1 as wire;

use super::{process_version, root};
use crate::wps::xml::{self, Xml};

const TYPE_REFERENCE: &str = "http://www.w3.org/TR/xmlschema-2/#";

/// The DescribeProcess response for `processes` (at least one; each with at least one output,
/// as the schema wants).
pub fn process_descriptions(processes: &[wire::ProcessDescription]) -> String {
    let mut x = Xml::new();
    root(
        &mut x,
        "wps:ProcessDescriptions",
        "wpsDescribeProcess_response.xsd",
    )
    .open();
    for process in processes {
        description(&mut x, process);
    }
    x.end("wps:ProcessDescriptions");
    x.finish()
}

fn description(x: &mut Xml, process: &wire::ProcessDescription) {
    let default_summary = wire::ProcessSummary::default();
    let summary = process.summary.as_ref().unwrap_or(&default_summary);
    let asynchronous = if summary.async_supported {
        "true"
    } else {
        "false"
    };
    x.start("ProcessDescription")
        .attr("wps:processVersion", process_version(summary))
        .attr("storeSupported", asynchronous)
        .attr("statusSupported", asynchronous)
        .open();
    identification(x, &summary.id, &summary.title, &summary.description);
    if !process.inputs.is_empty() {
        x.open("DataInputs");
        for input in &process.inputs {
            x.start("Input")
                .attr("minOccurs", &input.min_occurs.to_string())
                .attr("maxOccurs", &input.max_occurs.max(1).to_string())
                .open();
            identification(x, &input.id, &input.title, &input.description);
            match &input.kind {
                Some(InputKind::Complex(complex)) => complex_data(x, "ComplexData", complex, true),
                Some(InputKind::BoundingBox(bbox)) => crs_data(x, "BoundingBoxData", bbox),
                Some(InputKind::Literal(literal)) => literal_data(x, literal),
                None => literal_data(x, &wire::LiteralInputDescription::default()),
            }
            x.end("Input");
        }
        x.end("DataInputs");
    }
    x.open("ProcessOutputs");
    for output in &process.outputs {
        x.open("Output");
        identification(x, &output.id, &output.title, &output.description);
        match &output.kind {
            Some(OutputKind::Complex(complex)) => complex_data(x, "ComplexOutput", complex, false),
            Some(OutputKind::BoundingBox(bbox)) => crs_data(x, "BoundingBoxOutput", bbox),
            Some(OutputKind::Literal(literal)) => {
                x.open("LiteralOutput");
                data_type(x, literal.data_type);
                uoms(x, &literal.uom);
                x.end("LiteralOutput");
            }
            None => x.start("LiteralOutput").empty(),
        }
        x.end("Output");
    }
    x.end("ProcessOutputs");
    x.end("ProcessDescription");
}

/// `ows:Identifier`, `ows:Title` (the identifier when empty) and `ows:Abstract`.
pub(crate) fn identification(x: &mut Xml, id: &str, title: &str, description: &str) {
    x.elem("ows:Identifier", id);
    x.elem("ows:Title", xml::or(title, id));
    x.elem_if("ows:Abstract", description);
}

fn data_type(x: &mut Xml, data_type: i32) {
    let name = xml::type_name(data_type);
    x.start("ows:DataType")
        .attr("ows:reference", &format!("{TYPE_REFERENCE}{name}"))
        .text(name);
}

fn uoms(x: &mut Xml, uom: &str) {
    if uom.is_empty() {
        return;
    }
    x.open("UOMs");
    x.open("Default");
    x.elem("ows:UOM", uom);
    x.end("Default");
    x.open("Supported");
    x.elem("ows:UOM", uom);
    x.end("Supported");
    x.end("UOMs");
}

fn literal_data(x: &mut Xml, literal: &wire::LiteralInputDescription) {
    x.open("LiteralData");
    data_type(x, literal.data_type);
    uoms(x, &literal.uom);
    xml::ows::allowed_values(x, literal);
    if let Some(default) = &literal.default_value {
        x.elem("DefaultValue", default);
    }
    x.end("LiteralData");
}

fn complex_data(x: &mut Xml, name: &'static str, complex: &wire::ComplexDescription, input: bool) {
    let megabytes = complex.maximum_megabytes.to_string();
    let megabytes = if input && complex.maximum_megabytes > 0 {
        megabytes.as_str()
    } else {
        ""
    };
    x.start(name).attr_if("maximumMegabytes", megabytes).open();
    let formats = xml::formats(complex);
    x.open("Default");
    format(x, formats[0]);
    x.end("Default");
    x.open("Supported");
    for f in formats {
        format(x, f);
    }
    x.end("Supported");
    x.end(name);
}

fn format(x: &mut Xml, format: &wire::Format) {
    x.open("Format");
    x.elem("MimeType", xml::described_mime(format));
    x.elem_if("Encoding", &format.encoding);
    x.elem_if("Schema", &format.schema);
    x.end("Format");
}

fn crs_data(x: &mut Xml, name: &'static str, bbox: &wire::BoundingBoxDescription) {
    let crs = xml::crs_list(bbox);
    x.open(name);
    x.open("Default");
    x.elem("CRS", crs[0]);
    x.end("Default");
    x.open("Supported");
    for c in crs {
        x.elem("CRS", c);
    }
    x.end("Supported");
    x.end(name);
}
