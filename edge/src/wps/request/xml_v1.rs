//! WPS 1.0.0 Execute documents: `wps:DataInputs` (reference, literal, complex and bounding-box
//! data) and `wps:ResponseForm` (ResponseDocument or RawDataOutput).

use wpsmesh_proto::process;

use super::MAX_INPUTS;
use super::tree::Node;
use super::values::{at_most, boolean, format, input, literal};
use super::xml::{WPS1, bbox_input, complex_input, ows_identifier, reference_input};
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::{Execute, Mode, ResponseForm, Version, WpsRequest};

pub(super) fn execute(root: &Node) -> Result<WpsRequest, OwsError> {
    let process_id = ows_identifier(root, "identifier")?;
    let mut inputs = Vec::new();
    if let Some(list) = root.child(WPS1, "DataInputs") {
        at_most(
            list.children_named(WPS1, "Input").count(),
            MAX_INPUTS,
            "DataInputs",
        )?;
        for node in list.children_named(WPS1, "Input") {
            inputs.push(data_input(node)?);
        }
    }
    let (outputs, response) = response_form(root.child(WPS1, "ResponseForm"))?;
    let mode = match response {
        ResponseForm::Document {
            store: true,
            status: true,
            ..
        } => Mode::Async,
        _ => Mode::Sync,
    };
    Ok(WpsRequest::Execute(Box::new(Execute {
        version: Version::V100,
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

fn data_input(node: &Node) -> Result<process::Input, OwsError> {
    let id = ows_identifier(node, "DataInputs")?;
    if let Some(reference) = node.child(WPS1, "Reference") {
        let value = reference_input(reference, WPS1, &id)?;
        return Ok(input(id, process::InputValue::Reference(value)));
    }
    let Some(data) = node.child(WPS1, "Data") else {
        return Err(missing(&id, "an input needs wps:Data or wps:Reference"));
    };
    if let Some(literal_data) = data.child(WPS1, "LiteralData") {
        let value = literal(
            literal_data.text.clone(),
            literal_data.attr("dataType"),
            literal_data.attr("uom"),
        );
        return Ok(input(id, process::InputValue::Literal(value)));
    }
    if let Some(complex) = data.child(WPS1, "ComplexData") {
        let content = complex
            .content
            .as_ref()
            .ok_or_else(|| OwsError::internal("complex data was not captured as content"))?;
        let value = complex_input(complex, content, &id)?;
        return Ok(input(id, process::InputValue::Complex(value)));
    }
    if let Some(bbox) = data.child(WPS1, "BoundingBoxData") {
        let value = bbox_input(bbox, &id)?;
        return Ok(input(id, process::InputValue::BoundingBox(value)));
    }
    Err(missing(
        &id,
        "wps:Data needs wps:LiteralData, wps:ComplexData or wps:BoundingBoxData",
    ))
}

fn missing(id: &str, what: &str) -> OwsError {
    OwsError::new(
        OwsCode::MissingParameterValue,
        Some(id),
        format!("{id}: {what}"),
    )
}

/// Outputs and response form; a document of every output when no form is given.
fn response_form(
    form: Option<&Node>,
) -> Result<(Vec<process::OutputRequest>, ResponseForm), OwsError> {
    let Some(form) = form else {
        let response = ResponseForm::Document {
            lineage: false,
            status: false,
            store: false,
        };
        return Ok((Vec::new(), response));
    };
    if let Some(raw) = form.child(WPS1, "RawDataOutput") {
        let output = output(raw, "RawDataOutput", false)?;
        let response = ResponseForm::Raw {
            output: output.id.clone(),
        };
        return Ok((vec![output], response));
    }
    let Some(document) = form.child(WPS1, "ResponseDocument") else {
        return Err(OwsError::new(
            OwsCode::MissingParameterValue,
            Some("ResponseForm"),
            "wps:ResponseForm needs wps:ResponseDocument or wps:RawDataOutput",
        ));
    };
    let flag = |name: &str| document.attr(name).map_or(Ok(false), |v| boolean(v, name));
    let store = flag("storeExecuteResponse")?;
    let status = flag("status")?;
    let lineage = flag("lineage")?;
    if status && !store {
        return Err(OwsError::invalid(
            "status",
            "status=true requires storeExecuteResponse=true",
        ));
    }
    let nodes: Vec<&Node> = document.children_named(WPS1, "Output").collect();
    at_most(nodes.len(), MAX_INPUTS, "ResponseDocument")?;
    let outputs = nodes
        .into_iter()
        .map(|node| {
            let as_reference = node
                .attr("asReference")
                .map_or(Ok(false), |v| boolean(v, "asReference"))?;
            output(node, "ResponseDocument", as_reference)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let response = ResponseForm::Document {
        lineage,
        status,
        store,
    };
    Ok((outputs, response))
}

fn output(
    node: &Node,
    locator: &str,
    as_reference: bool,
) -> Result<process::OutputRequest, OwsError> {
    Ok(process::OutputRequest {
        id: ows_identifier(node, locator)?,
        format: format(
            node.attr("mimeType"),
            node.attr("encoding"),
            node.attr("schema"),
        ),
        as_reference,
    })
}
