//! WPS 2.0 Execute documents: `mode`, `response`, `wps:Input` (data or reference) and
//! `wps:Output` (transmission and format).
//!
//! What `wps:Data` holds decides the value kind: a `wps:LiteralValue` element is a literal, an
//! `ows:BoundingBox` a bounding box, other elements inline XML (complex); text alone is complex
//! when base64-encoded, given a schema or a mimeType other than text/plain, else a literal.

use wpsmesh_proto::process;

use super::MAX_INPUTS;
use super::content::Content;
use super::tree::{self, Node};
use super::values::{at_most, format, identifier, input, is_base64, literal, quote};
use super::xml::{OWS, WPS2, bbox_input, complex_input, ows_identifier, reference_input};
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::{Execute, Mode, ResponseForm, Version, WpsRequest};

pub(super) fn execute(root: &Node) -> Result<WpsRequest, OwsError> {
    let mode = match required_attr(root, "mode")? {
        "sync" | "auto" => Mode::Sync,
        "async" => Mode::Async,
        other => {
            return Err(OwsError::invalid(
                "mode",
                format!("mode must be sync, async or auto, not {}", quote(other)),
            ));
        }
    };
    let raw = match required_attr(root, "response")? {
        "document" => false,
        "raw" => true,
        other => {
            return Err(OwsError::invalid(
                "response",
                format!("response must be document or raw, not {}", quote(other)),
            ));
        }
    };
    let process_id = ows_identifier(root, "identifier")?;
    at_most(
        root.children_named(WPS2, "Input").count(),
        MAX_INPUTS,
        "Input",
    )?;
    let inputs = root
        .children_named(WPS2, "Input")
        .map(data_input)
        .collect::<Result<Vec<_>, _>>()?;
    at_most(
        root.children_named(WPS2, "Output").count(),
        MAX_INPUTS,
        "Output",
    )?;
    let outputs = root
        .children_named(WPS2, "Output")
        .map(output)
        .collect::<Result<Vec<_>, _>>()?;
    let response = if raw {
        let [only] = outputs.as_slice() else {
            return Err(OwsError::invalid(
                "response",
                format!(
                    "response=raw needs exactly one wps:Output, got {}",
                    outputs.len()
                ),
            ));
        };
        ResponseForm::Raw {
            output: only.id.clone(),
        }
    } else {
        ResponseForm::Document {
            lineage: false,
            status: false,
            store: false,
        }
    };
    Ok(WpsRequest::Execute(Box::new(Execute {
        version: Version::V200,
        request: process::ExecuteRequest {
            process_id,
            inputs,
            outputs,
            timeout: None,
            subscriber: None,
        },
        mode,
        response,
    })))
}

fn required_attr<'n>(node: &'n Node, name: &str) -> Result<&'n str, OwsError> {
    match node.attr(name).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OwsError::missing(name)),
    }
}

fn data_input(node: &Node) -> Result<process::Input, OwsError> {
    let id = identifier(node.attr("id").unwrap_or_default(), "Input")?;
    if node.child(WPS2, "Input").is_some() {
        return Err(OwsError::not_supported(
            &id,
            format!("{id}: nested inputs are not supported"),
        ));
    }
    if let Some(reference) = node.child(WPS2, "Reference") {
        let value = reference_input(reference, WPS2, &id)?;
        return Ok(input(id, process::InputValue::Reference(value)));
    }
    let Some(data) = node.child(WPS2, "Data") else {
        return Err(OwsError::new(
            OwsCode::MissingParameterValue,
            Some(&id),
            format!("{id}: an input needs wps:Data or wps:Reference"),
        ));
    };
    let empty = Content::default();
    let content = data.content.as_ref().unwrap_or(&empty);
    let value = data_value(data, content, &id)?;
    Ok(input(id, value))
}

fn data_value(data: &Node, content: &Content, id: &str) -> Result<process::InputValue, OwsError> {
    let only_root = match content.roots.as_slice() {
        [(ns, local)] => Some((ns.as_str(), local.as_str())),
        _ => None,
    };
    match only_root {
        Some((WPS2, "LiteralValue")) => {
            let node = tree::parse(&content.xml, &[])?;
            let value = literal(node.text.clone(), node.attr("dataType"), node.attr("uom"));
            return Ok(process::InputValue::Literal(value));
        }
        Some((ns, "BoundingBox")) if OWS.contains(&ns) => {
            let node = tree::parse(&content.xml, &[])?;
            return Ok(process::InputValue::BoundingBox(bbox_input(&node, id)?));
        }
        _ => {}
    }
    let mime_type = data.attr("mimeType").map(str::trim).unwrap_or_default();
    let text_is_complex = is_base64(data.attr("encoding"))
        || data.attr("schema").is_some_and(|s| !s.trim().is_empty())
        || !(mime_type.is_empty() || mime_type.eq_ignore_ascii_case("text/plain"));
    if content.roots.is_empty() && !text_is_complex {
        let value = literal(content.text.clone(), None, None);
        return Ok(process::InputValue::Literal(value));
    }
    Ok(process::InputValue::Complex(complex_input(
        data, content, id,
    )?))
}

fn output(node: &Node) -> Result<process::OutputRequest, OwsError> {
    let id = identifier(node.attr("id").unwrap_or_default(), "Output")?;
    if node.child(WPS2, "Output").is_some() {
        return Err(OwsError::not_supported(
            &id,
            format!("{id}: nested outputs are not supported"),
        ));
    }
    let as_reference = match node.attr("transmission").map(str::trim) {
        None | Some("value") => false,
        Some("reference") => true,
        Some(other) => {
            return Err(OwsError::invalid(
                &id,
                format!(
                    "{id}: transmission must be value or reference, not {}",
                    quote(other)
                ),
            ));
        }
    };
    Ok(process::OutputRequest {
        format: format(
            node.attr("mimeType"),
            node.attr("encoding"),
            node.attr("schema"),
        ),
        id,
        as_reference,
    })
}
