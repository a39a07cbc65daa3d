//! WPS 1.0.0 Execute in KVP (§10.2.2.1): `DataInputs`, `ResponseDocument` and `RawDataOutput`
//! lists (`ID=value@attr=value;ID2=...`, optionally in `[...]`), `storeExecuteResponse`,
//! `status` and `lineage`.
//!
//! Splitting and escaping: when the list arrives with its separators (`;`, `@`, `=`) unencoded,
//! as in the standard's examples, it is split as sent and each piece percent-decoded once, so a
//! value may carry `%3B`, `%40` or `%3D`. When the whole list was percent-encoded (no separator
//! visible as sent), it is decoded, split, and each piece decoded once more, so separators inside
//! values must then be encoded twice (`%253B`). A `+` inside a list is a plus (as in
//! `application/geo+json`), not a space: write spaces as `%20`.
//!
//! Value kinds, without the process description: `@xlink:href` makes a reference; `@mimeType`,
//! `@encoding` or `@schema` without href make a complex value (base64 decoded); anything else is
//! a literal (`@uom`, `@dataType` kept). Bounding boxes are literals here (see `resolve_bboxes`).

use bytes::Bytes;
use wpsmesh_proto::process;

use super::MAX_INPUTS;
use super::kvp::{Param, Params, decode};
use super::values::{
    at_most, boolean, complex, format, get_method, identifier, input, literal, quote, reference,
};
use crate::ows::OwsError;
use crate::wps::model::{Execute, Mode, ResponseForm, Version, WpsRequest};

/// One list entry: `id[=value][@name=value]*`, names lowercased.
#[derive(Debug, PartialEq)]
struct Entry {
    id: String,
    value: String,
    attrs: Vec<(String, String)>,
}

impl Entry {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails on an attribute not in `known`.
    fn only(&self, known: &[&str], locator: &str) -> Result<(), OwsError> {
        match self
            .attrs
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((name, _)) => Err(OwsError::invalid(
                locator,
                format!("{}: unknown attribute @{name}", self.id),
            )),
            None => Ok(()),
        }
    }
}

/// Parses a WPS 1.0.0 KVP Execute.
pub(super) fn execute(params: &Params<'_>) -> Result<WpsRequest, OwsError> {
    let process_id = identifier(params.required("identifier", "identifier")?, "identifier")?;
    let inputs = match params.param("datainputs") {
        Some(p) => entries(p, "DataInputs")?
            .into_iter()
            .map(data_input)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let flag = |name: &str, locator: &str| -> Result<bool, OwsError> {
        params.get(name).map_or(Ok(false), |v| boolean(v, locator))
    };
    let store = flag("storeexecuteresponse", "storeExecuteResponse")?;
    let status = flag("status", "status")?;
    let lineage = flag("lineage", "lineage")?;
    let document = params.param("responsedocument");
    let raw = params.param("rawdataoutput");
    let (outputs, response) = match (document, raw) {
        (Some(_), Some(_)) => {
            return Err(OwsError::invalid(
                "RawDataOutput",
                "ResponseDocument and RawDataOutput cannot be given together",
            ));
        }
        (None, Some(raw)) => {
            if store || status {
                return Err(OwsError::invalid(
                    "RawDataOutput",
                    "storeExecuteResponse and status apply to a ResponseDocument, not to RawDataOutput",
                ));
            }
            let output = raw_output(raw)?;
            let response = ResponseForm::Raw {
                output: output.id.clone(),
            };
            (vec![output], response)
        }
        (document, None) => {
            if status && !store {
                return Err(OwsError::invalid(
                    "status",
                    "status=true requires storeExecuteResponse=true",
                ));
            }
            let outputs = match document {
                Some(p) => entries(p, "ResponseDocument")?
                    .into_iter()
                    .map(document_output)
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let response = ResponseForm::Document {
                lineage,
                status,
                store,
            };
            (outputs, response)
        }
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
        mode: if store && status {
            Mode::Async
        } else {
            Mode::Sync
        },
        response,
    })))
}

fn data_input(mut entry: Entry) -> Result<process::Input, OwsError> {
    let id = identifier(&entry.id, "DataInputs")?;
    let value = std::mem::take(&mut entry.value);
    entry.only(
        &[
            "xlink:href",
            "href",
            "mimetype",
            "encoding",
            "schema",
            "uom",
            "datatype",
            "method",
        ],
        &id,
    )?;
    let mime_type = entry.attr("mimetype");
    let encoding = entry.attr("encoding");
    let schema = entry.attr("schema");
    if let Some(href) = entry.attr("xlink:href").or_else(|| entry.attr("href")) {
        if !value.is_empty() {
            return Err(OwsError::invalid(
                &id,
                format!("{id}: give either a value or @xlink:href, not both"),
            ));
        }
        get_method(entry.attr("method"), &id)?;
        let format = format(mime_type, encoding, schema);
        let reference = reference(href, format, &id)?;
        return Ok(input(id, process::InputValue::Reference(reference)));
    }
    if mime_type.is_some() || encoding.is_some() || schema.is_some() {
        let data = Bytes::from(value.into_bytes());
        let value = complex(data, mime_type, encoding, schema, &id)?;
        return Ok(input(id, process::InputValue::Complex(value)));
    }
    let value = literal(value, entry.attr("datatype"), entry.attr("uom"));
    Ok(input(id, process::InputValue::Literal(value)))
}

fn document_output(entry: Entry) -> Result<process::OutputRequest, OwsError> {
    let id = output_id(&entry, "ResponseDocument")?;
    entry.only(
        &["asreference", "mimetype", "encoding", "schema", "uom"],
        &id,
    )?;
    let as_reference = entry
        .attr("asreference")
        .map_or(Ok(false), |v| boolean(v, &id))?;
    Ok(process::OutputRequest {
        format: format(
            entry.attr("mimetype"),
            entry.attr("encoding"),
            entry.attr("schema"),
        ),
        id,
        as_reference,
    })
}

fn raw_output(param: &Param<'_>) -> Result<process::OutputRequest, OwsError> {
    let mut list = entries(param, "RawDataOutput")?;
    if list.len() != 1 {
        return Err(OwsError::invalid(
            "RawDataOutput",
            format!("RawDataOutput names exactly one output, got {}", list.len()),
        ));
    }
    let entry = list.remove(0);
    let id = output_id(&entry, "RawDataOutput")?;
    entry.only(&["mimetype", "encoding", "schema", "uom"], &id)?;
    Ok(process::OutputRequest {
        format: format(
            entry.attr("mimetype"),
            entry.attr("encoding"),
            entry.attr("schema"),
        ),
        id,
        as_reference: false,
    })
}

fn output_id(entry: &Entry, locator: &str) -> Result<String, OwsError> {
    let id = identifier(&entry.id, locator)?;
    if !entry.value.is_empty() {
        return Err(OwsError::invalid(
            &id,
            format!("{id}: outputs take no value, got {}", quote(&entry.value)),
        ));
    }
    Ok(id)
}

/// Splits a list parameter into entries (see the module doc for the escaping rules).
fn entries(param: &Param<'_>, locator: &str) -> Result<Vec<Entry>, OwsError> {
    let as_sent = param.raw.contains([';', '@', '=']);
    let list = if as_sent {
        param.raw
    } else {
        param.value.as_str()
    };
    let piece = |raw: &str| {
        decode(raw, false)
            .map_err(|()| OwsError::invalid(locator, format!("{locator}: value is not UTF-8")))
    };
    let list = strip_brackets(list.trim());
    let parts: Vec<&str> = list.split(';').filter(|e| !e.trim().is_empty()).collect();
    at_most(parts.len(), MAX_INPUTS, locator)?;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let mut pieces = part.split('@');
        let head = pieces.next().unwrap_or_default();
        let (id, value) = head.split_once('=').unwrap_or((head, ""));
        let mut attrs = Vec::new();
        for attr in pieces {
            let Some((name, value)) = attr.split_once('=') else {
                return Err(OwsError::invalid(
                    locator,
                    format!("{locator}: attribute {} has no value", quote(attr)),
                ));
            };
            attrs.push((
                piece(name)?.trim().to_ascii_lowercase(),
                piece(value)?.trim().to_owned(),
            ));
        }
        out.push(Entry {
            id: piece(id)?.trim().to_owned(),
            value: piece(value)?,
            attrs,
        });
    }
    Ok(out)
}

/// `[...]` or `%5B...%5D` around a list.
fn strip_brackets(list: &str) -> &str {
    if let Some(inner) = list.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return inner;
    }
    let lower = list.to_ascii_lowercase();
    if lower.starts_with("%5b") && lower.ends_with("%5d") && list.len() >= 6 {
        return &list[3..list.len() - 3];
    }
    list
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entries_of(query: &str) -> Vec<Entry> {
        let params = Params::parse(query).unwrap();
        entries(params.param("datainputs").unwrap(), "DataInputs").unwrap()
    }

    fn entry(id: &str, value: &str, attrs: &[(&str, &str)]) -> Entry {
        Entry {
            id: id.into(),
            value: value.into(),
            attrs: attrs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn splits_lists_sent_with_visible_separators() {
        let got = entries_of(
            "DataInputs=[InputPolygon=@xlink:href=http%3A%2F%2Ffoo.bar%2Fa%3Bb%40c;D=400@uom=feet;S=a%20b+c]",
        );
        assert_eq!(
            got,
            vec![
                entry(
                    "InputPolygon",
                    "",
                    &[("xlink:href", "http://foo.bar/a;b@c")]
                ),
                entry("D", "400", &[("uom", "feet")]),
                entry("S", "a b+c", &[]),
            ]
        );
    }

    #[test]
    fn splits_fully_encoded_lists_and_decodes_twice() {
        let got = entries_of("DataInputs=%5BA%3Dx%253By%40mimeType%3Dtext%2Fplain%3BB%3D1%2B1%5D");
        assert_eq!(
            got,
            vec![
                entry("A", "x;y", &[("mimetype", "text/plain")]),
                entry("B", "1+1", &[]),
            ]
        );
    }

    #[test]
    fn attribute_without_value_is_refused() {
        let params = Params::parse("DataInputs=A=1@uom").unwrap();
        let err = entries(params.param("datainputs").unwrap(), "DataInputs").unwrap_err();
        assert_eq!(err.locator.as_deref(), Some("DataInputs"));
    }

    #[test]
    fn brackets() {
        assert_eq!(strip_brackets("[a]"), "a");
        assert_eq!(strip_brackets("%5ba%5D"), "a");
        assert_eq!(strip_brackets("a]"), "a]");
    }
}
