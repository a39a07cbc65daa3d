//! WPS 2.0 DescribeProcess response: `wps:ProcessOfferings`. `LiteralDataDomain` is unqualified,
//! as the schema (dataTypes.xsd) declares it.

use wire::{input_description::Kind as InputKind, output_description::Kind as OutputKind};
use wpsmesh_proto::wire::process::v1 as wire;

use super::{process_properties, root};
use crate::wps::xml::{self, Xml};

const TYPE_REFERENCE: &str = "http://www.w3.org/2001/XMLSchema#";

/// The DescribeProcess response for `processes` (at least one; each with at least one output,
/// as the schema wants).
pub fn process_offerings(processes: &[wire::ProcessDescription]) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:ProcessOfferings").open();
    for process in processes {
        offering(&mut x, process);
    }
    x.end("wps:ProcessOfferings");
    x.finish()
}

fn offering(x: &mut Xml, process: &wire::ProcessDescription) {
    let default_summary = wire::ProcessSummary::default();
    let summary = process.summary.as_ref().unwrap_or(&default_summary);
    process_properties(x.start("wps:ProcessOffering"), summary).open();
    x.open("wps:Process");
    identification(x, &summary.id, &summary.title, &summary.description);
    for input in &process.inputs {
        let max = match input.max_occurs {
            xml::UNBOUNDED => "unbounded".to_owned(),
            n => n.max(1).to_string(),
        };
        x.start("wps:Input")
            .attr("minOccurs", &input.min_occurs.to_string())
            .attr("maxOccurs", &max)
            .open();
        identification(x, &input.id, &input.title, &input.description);
        match &input.kind {
            Some(InputKind::Complex(complex)) => complex_data(x, complex),
            Some(InputKind::BoundingBox(bbox)) => bounding_box_data(x, bbox),
            Some(InputKind::Literal(literal)) => literal_data(x, literal),
            None => literal_data(x, &wire::LiteralInputDescription::default()),
        }
        x.end("wps:Input");
    }
    for output in &process.outputs {
        x.open("wps:Output");
        identification(x, &output.id, &output.title, &output.description);
        match &output.kind {
            Some(OutputKind::Complex(complex)) => complex_data(x, complex),
            Some(OutputKind::BoundingBox(bbox)) => bounding_box_data(x, bbox),
            Some(OutputKind::Literal(literal)) => literal_data(
                x,
                &wire::LiteralInputDescription {
                    data_type: literal.data_type,
                    uom: literal.uom.clone(),
                    ..Default::default()
                },
            ),
            None => literal_data(x, &wire::LiteralInputDescription::default()),
        }
        x.end("wps:Output");
    }
    x.end("wps:Process");
    x.end("wps:ProcessOffering");
}

/// `ows:Title` (the identifier when empty), `ows:Abstract` and `ows:Identifier`, in the order
/// of WPS 2.0's DescriptionType.
fn identification(x: &mut Xml, id: &str, title: &str, description: &str) {
    x.elem("ows:Title", xml::or(title, id));
    x.elem_if("ows:Abstract", description);
    x.elem("ows:Identifier", id);
}

fn literal_data(x: &mut Xml, literal: &wire::LiteralInputDescription) {
    x.open("wps:LiteralData");
    x.start("wps:Format")
        .attr("mimeType", "text/plain")
        .attr("default", "true")
        .empty();
    x.start("LiteralDataDomain").attr("default", "true").open();
    xml::ows::allowed_values(x, literal);
    let name = xml::type_name(literal.data_type);
    x.start("ows:DataType")
        .attr("ows:reference", &format!("{TYPE_REFERENCE}{name}"))
        .text(name);
    x.elem_if("ows:UOM", &literal.uom);
    if let Some(default) = &literal.default_value {
        x.elem("ows:DefaultValue", default);
    }
    x.end("LiteralDataDomain");
    x.end("wps:LiteralData");
}

fn complex_data(x: &mut Xml, complex: &wire::ComplexDescription) {
    let megabytes = complex.maximum_megabytes.to_string();
    let megabytes = if complex.maximum_megabytes > 0 {
        megabytes.as_str()
    } else {
        ""
    };
    x.open("wps:ComplexData");
    for (i, format) in xml::formats(complex).into_iter().enumerate() {
        x.start("wps:Format")
            .attr("mimeType", xml::described_mime(format))
            .attr_if("encoding", &format.encoding)
            .attr_if("schema", &format.schema)
            .attr_if("maximumMegabytes", megabytes)
            .attr_if("default", if i == 0 { "true" } else { "" })
            .empty();
    }
    x.end("wps:ComplexData");
}

/// Bounding boxes are given as `ows:BoundingBox` XML (the default) or as KVP-style text.
fn bounding_box_data(x: &mut Xml, bbox: &wire::BoundingBoxDescription) {
    x.open("wps:BoundingBoxData");
    x.start("wps:Format")
        .attr("mimeType", "text/xml")
        .attr("default", "true")
        .empty();
    x.start("wps:Format").attr("mimeType", "text/plain").empty();
    for (i, crs) in xml::crs_list(bbox).into_iter().enumerate() {
        x.start("wps:SupportedCRS")
            .attr_if("default", if i == 0 { "true" } else { "" })
            .text(crs);
    }
    x.end("wps:BoundingBoxData");
}
