//! The OGC API execute body (`inputs`, `outputs`, `response`, `subscriber`) read into the
//! domain request and checked against the process description: unknown, missing and surplus
//! inputs, and each value's kind (literal of the right type, complex data or reference, bbox),
//! are refused naming the input before any node runs anything.

use std::collections::HashMap;

use serde_json::{Map, Value};
use wpsmesh_proto::process::{
    ComplexValue, DataType, ExecuteRequest, Format, Input, InputValue, LiteralValue, OutputRequest,
    Reference, Source, Subscriber,
};
use wpsmesh_proto::text::shown;
use wpsmesh_proto::wire::process::v1::{
    self as wire, LiteralInputDescription, ProcessDescription, input_description::Kind,
};

use super::values::{inline_data, parse_bbox};
use crate::ows::{OwsCode, OwsError};

/// How a synchronous execution answers (`response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResponseKind {
    /// The results document (the default).
    Document,
    /// The output itself (one output), or its parts.
    Raw,
}

/// A checked execute body.
#[derive(Debug)]
pub(super) struct Execute {
    pub request: ExecuteRequest,
    pub response: ResponseKind,
}

/// GeoJSON `type`s that make a bare object a GeoJSON value.
const GEOJSON_TYPES: [&str; 9] = [
    "FeatureCollection",
    "Feature",
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

/// Reads `body` as an execute request for the process `desc` describes. Callbacks are given
/// `public_url` as their base.
pub(super) fn read(
    body: Value,
    desc: &ProcessDescription,
    process_id: &str,
    public_url: &str,
) -> Result<Execute, OwsError> {
    let Value::Object(mut body) = body else {
        return Err(OwsError::invalid("body", "expected a json object"));
    };
    let response = match body.remove("response") {
        None | Some(Value::Null) => ResponseKind::Document,
        Some(Value::String(r)) if r == "document" => ResponseKind::Document,
        Some(Value::String(r)) if r == "raw" => ResponseKind::Raw,
        Some(other) => {
            return Err(OwsError::invalid(
                "response",
                format!(
                    "response must be \"raw\" or \"document\", got {}",
                    shown(&other.to_string())
                ),
            ));
        }
    };
    let inputs = inputs(body.remove("inputs"), desc)?;
    let outputs = outputs(body.remove("outputs"), desc)?;
    let subscriber = subscriber(body.remove("subscriber"), public_url)?;
    Ok(Execute {
        request: ExecuteRequest {
            process_id: process_id.to_owned(),
            inputs,
            outputs,
            timeout: None,
            subscriber,
        },
        response,
    })
}

/// `inputs`: each id known, each required one given, no more values than allowed.
fn inputs(inputs: Option<Value>, desc: &ProcessDescription) -> Result<Vec<Input>, OwsError> {
    let map = match inputs {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(OwsError::invalid("inputs", "expected an object of inputs")),
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut read = Vec::new();
    for (id, value) in map {
        let Some(d) = desc.inputs.iter().find(|d| d.id == id) else {
            return Err(OwsError::invalid(
                &id,
                format!("unknown input {}", shown(&id)),
            ));
        };
        let values = match value {
            Value::Array(values) => values,
            v => vec![v],
        };
        let most = d.max_occurs.max(1) as usize;
        if values.len() > most {
            return Err(OwsError::invalid(
                &id,
                format!(
                    "input {id} takes at most {most} value(s), got {}",
                    values.len()
                ),
            ));
        }
        counts.insert(d.id.as_str(), values.len());
        for v in values {
            read.push(Input {
                value: value_of(&id, d.kind.as_ref(), v)?,
                id: id.clone(),
            });
        }
    }
    if let Some(d) = desc
        .inputs
        .iter()
        .find(|d| counts.get(d.id.as_str()).copied().unwrap_or(0) < d.min_occurs as usize)
    {
        return Err(OwsError::new(
            OwsCode::MissingParameterValue,
            Some(&d.id),
            format!("missing required input {}", d.id),
        ));
    }
    Ok(read)
}

/// What a JSON value is, for error messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// InvalidParameterValue naming input `id`: it wants `want`, got `got`.
fn wrong(id: &str, want: &str, got: &Value) -> OwsError {
    OwsError::invalid(
        id,
        format!("input {id} expects {want}, got {}", kind_of(got)),
    )
}

/// One value of input `id` of the described kind.
fn value_of(id: &str, kind: Option<&Kind>, v: Value) -> Result<InputValue, OwsError> {
    match kind {
        Some(Kind::Literal(l)) => literal(id, l, v),
        Some(Kind::Complex(_)) => complex(id, v),
        Some(Kind::BoundingBox(_)) => bbox(id, v),
        None => Err(OwsError::internal(format!(
            "process description of input {id} has no kind"
        ))),
    }
}

/// A plain value, or a qualified one (`{"value": ..., "uom": ...}`), of the literal's type.
fn literal(id: &str, d: &LiteralInputDescription, v: Value) -> Result<InputValue, OwsError> {
    let (value, uom) = match v {
        Value::Object(mut map) if map.contains_key("value") => {
            let uom = match map.remove("uom") {
                Some(Value::String(u)) => u,
                _ => String::new(),
            };
            (map.remove("value").unwrap_or_default(), uom)
        }
        v => (v, String::new()),
    };
    let want = "a literal value (a number, a string or a boolean)";
    let text = match &value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(wrong(id, want, other)),
    };
    let data_type = DataType::from_wire(d.data_type);
    let text = match data_type {
        Some(DataType::Double) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|_| text.trim().to_owned()),
        Some(DataType::Integer) => match value.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some((f as i64).to_string()),
            Some(_) => None,
            None => text.trim().parse::<i64>().ok().map(|i| i.to_string()),
        },
        Some(DataType::Boolean) => match text.trim().to_ascii_lowercase().as_str() {
            t @ ("true" | "false") => Some(t.to_owned()),
            _ => None,
        },
        Some(DataType::String) | None => Some(text.clone()),
    };
    let Some(text) = text else {
        let name = data_type.map_or("string", DataType::name);
        return Err(OwsError::invalid(
            id,
            format!(
                "input {id} expects a {name} value, got {}",
                shown(&value.to_string())
            ),
        ));
    };
    Ok(InputValue::Literal(LiteralValue {
        value: text,
        data_type,
        uom,
    }))
}

/// The format members of a qualified value or reference: `mediaType` (or a link's `type`),
/// `encoding`, `schema`, at the top or under `format`.
fn format_of(map: &Map<String, Value>) -> Format {
    let nested = map.get("format").and_then(Value::as_object);
    let get = |keys: &[&str]| -> String {
        let found = |m: &Map<String, Value>| {
            keys.iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str).map(str::to_owned))
        };
        nested
            .and_then(found)
            .or_else(|| found(map))
            .unwrap_or_default()
    };
    Format {
        mime_type: get(&["mediaType", "type"]),
        encoding: get(&["encoding", "contentEncoding"]),
        schema: get(&["schema"]),
        extension: String::new(),
    }
}

/// A reference (`{"href", "type"}`), a qualified value (`{"value", "mediaType", "encoding"}`),
/// a bare GeoJSON object, or text.
fn complex(id: &str, v: Value) -> Result<InputValue, OwsError> {
    let bad = |msg: String| OwsError::invalid(id, format!("input {id}: {msg}"));
    let want = "complex data: a qualified value {\"value\", \"mediaType\"}, a reference {\"href\"} or GeoJSON";
    let map = match v {
        Value::Object(map) => map,
        Value::String(text) => {
            return Ok(InputValue::Complex(ComplexValue {
                format: None,
                data: text.into_bytes().into(),
            }));
        }
        other => return Err(wrong(id, want, &other)),
    };
    if let Some(href) = map.get("href") {
        let Some(href) = href.as_str().filter(|h| !h.trim().is_empty()) else {
            return Err(bad("href must be a url".into()));
        };
        let format = format_of(&map);
        return Ok(InputValue::Reference(Reference {
            source: Source::Href(href.trim().to_owned()),
            format: (format != Format::default()).then_some(format),
        }));
    }
    if let Some(value) = map.get("value") {
        let mut format = format_of(&map);
        let base64 = format.encoding.eq_ignore_ascii_case("base64");
        if base64 {
            format.encoding.clear();
        }
        if format.mime_type.is_empty() && value.is_object() {
            format.mime_type = json_media(value).into();
        }
        let data = inline_data(value, base64)
            .ok_or_else(|| wrong(id, want, value))?
            .map_err(bad)?;
        return Ok(InputValue::Complex(ComplexValue {
            format: (format != Format::default()).then_some(format),
            data,
        }));
    }
    let value = Value::Object(map);
    if json_media(&value) != "application/geo+json" {
        return Err(wrong(id, want, &value));
    }
    Ok(InputValue::Complex(ComplexValue {
        format: Some(Format::of("application/geo+json")),
        data: value.to_string().into_bytes().into(),
    }))
}

/// The media type of a JSON object given inline: GeoJSON when its `type` is one.
fn json_media(value: &Value) -> &'static str {
    match value.get("type").and_then(Value::as_str) {
        Some(t) if GEOJSON_TYPES.contains(&t) => "application/geo+json",
        _ => "application/json",
    }
}

/// `{"bbox": [...], "crs": ...}`, also as a qualified value's `value`.
fn bbox(id: &str, v: Value) -> Result<InputValue, OwsError> {
    let want = "a bounding box {\"bbox\": [minx, miny, maxx, maxy], \"crs\"}";
    let map = match v {
        Value::Object(mut map) if !map.contains_key("bbox") && map.contains_key("value") => {
            match map.remove("value") {
                Some(Value::Object(inner)) => inner,
                other => return Err(wrong(id, want, &other.unwrap_or_default())),
            }
        }
        Value::Object(map) => map,
        other => return Err(wrong(id, want, &other)),
    };
    if !map.contains_key("bbox") {
        return Err(wrong(id, want, &Value::Object(map)));
    }
    parse_bbox(&map)
        .map(InputValue::BoundingBox)
        .map_err(|e| OwsError::invalid(id, format!("input {id}: {e}")))
}

/// `outputs`: `{id: {"format": {"mediaType"}, "transmissionMode": "value"|"reference"}}`; an
/// output named without a mode is sent by value (the standard's default).
fn outputs(
    outputs: Option<Value>,
    desc: &ProcessDescription,
) -> Result<Vec<OutputRequest>, OwsError> {
    let map = match outputs {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(OwsError::invalid(
                "outputs",
                "expected an object of outputs",
            ));
        }
    };
    map.into_iter()
        .map(|(id, spec)| {
            if !desc.outputs.iter().any(|d| d.id == id) {
                return Err(OwsError::invalid(
                    &id,
                    format!("unknown output {}", shown(&id)),
                ));
            }
            let spec = match spec {
                Value::Object(spec) => spec,
                Value::Null => Map::new(),
                _ => return Err(OwsError::invalid(&id, format!("output {id}: expected an object"))),
            };
            let as_reference = match spec.get("transmissionMode") {
                None | Some(Value::Null) => false,
                Some(Value::String(m)) if m == "value" => false,
                Some(Value::String(m)) if m == "reference" => true,
                Some(other) => {
                    return Err(OwsError::invalid(
                        &id,
                        format!(
                            "output {id}: transmissionMode must be \"value\" or \"reference\", got {}",
                            shown(&other.to_string())
                        ),
                    ));
                }
            };
            let format = format_of(&spec);
            Ok(OutputRequest {
                format: (format != Format::default()).then_some(format),
                id,
                as_reference,
            })
        })
        .collect()
}

/// `subscriber`: the callback URIs, with this edge's public URL as their base.
fn subscriber(value: Option<Value>, public_url: &str) -> Result<Option<Subscriber>, OwsError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(OwsError::invalid(
                "subscriber",
                "expected an object of uris",
            ));
        }
    };
    let uri = |name: &str| -> Result<String, OwsError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(u)) => Ok(u.clone()),
            Some(_) => Err(OwsError::invalid(
                &format!("subscriber.{name}"),
                format!("subscriber.{name} must be a uri"),
            )),
        }
    };
    let wire = wire::Subscriber {
        success_uri: uri("successUri")?,
        in_progress_uri: uri("inProgressUri")?,
        failed_uri: uri("failedUri")?,
        base_url: public_url.to_owned(),
    };
    Option::<Subscriber>::try_from(wire)
        .map_err(|e| OwsError::invalid(&e.locator, format!("{}: {}", e.locator, e.message)))
}

#[cfg(test)]
#[path = "execute_body_tests.rs"]
mod tests;
