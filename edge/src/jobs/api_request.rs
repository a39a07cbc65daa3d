//! The job request body of the JSON job API read into an ExecuteRequest: typed inputs
//! (reference, literal, complex, bbox), requested outputs and the mode; errors name the member.
//! Identifiers are checked as WPS ones are (at most 256 characters, no control characters).

use serde_json::{Map, Value, json};
use wpsmesh_proto::process::{
    ComplexValue, ExecuteRequest, Format, Input, InputValue, LiteralValue, OutputRequest,
    Reference, Source,
};

use wpsmesh_proto::text::shown;

use crate::ogcapi::values::{inline_data, parse_bbox};
use crate::ows::OwsError;
use crate::wps::model::Mode;
use crate::wps::request::identifier;

/// The locators of a bad input or output identifier.
const INPUT_ID: &str = "input identifier";
const OUTPUT_ID: &str = "output identifier";

/// Reads the request body into an ExecuteRequest and its mode (`"mode"`, sync when absent);
/// errors name the offending member.
pub fn parse_request(body: Value) -> Result<(ExecuteRequest, Mode), OwsError> {
    let Value::Object(mut body) = body else {
        return Err(OwsError::invalid("body", "expected a json object"));
    };
    let process_id = match body.remove("identifier") {
        Some(Value::String(id)) if !id.trim().is_empty() => identifier(&id, "identifier")?,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(OwsError::missing("identifier"));
        }
        Some(_) => return Err(OwsError::invalid("identifier", "expected a string")),
    };
    let mode = match body.remove("mode") {
        None | Some(Value::Null) => Mode::Sync,
        Some(Value::String(m)) if m.eq_ignore_ascii_case("sync") => Mode::Sync,
        Some(Value::String(m)) if m.eq_ignore_ascii_case("async") => Mode::Async,
        Some(other) => {
            return Err(OwsError::invalid(
                "mode",
                format!(
                    "expected \"sync\" or \"async\", got {}",
                    shown(&other.to_string())
                ),
            ));
        }
    };
    let mut inputs = Vec::new();
    match body.remove("inputs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (id, value) in map {
                let id = identifier(&id, INPUT_ID)?;
                match value {
                    Value::Array(values) => {
                        for v in values {
                            inputs.push(parse_input(&id, v)?);
                        }
                    }
                    v => inputs.push(parse_input(&id, v)?),
                }
            }
        }
        Some(_) => return Err(OwsError::invalid("inputs", "expected an object of inputs")),
    }
    let outputs = match body.remove("outputs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .into_iter()
            .map(|id| match id {
                Value::String(id) => Ok(OutputRequest {
                    id: identifier(&id, OUTPUT_ID)?,
                    format: None,
                    as_reference: true,
                }),
                _ => Err(OwsError::invalid("outputs", "expected output identifiers")),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(id, spec)| parse_output(id, spec))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(OwsError::invalid("outputs", "expected an object or a list")),
    };
    let request = ExecuteRequest {
        process_id,
        inputs,
        outputs,
        timeout: None,
        subscriber: None,
    };
    Ok((request, mode))
}

fn text(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn format_of(map: &Map<String, Value>) -> Option<Format> {
    let format = Format {
        mime_type: text(map, "mimeType"),
        encoding: text(map, "encoding"),
        schema: text(map, "schema"),
        extension: String::new(),
    };
    (format != Format::default()).then_some(format)
}

/// One input value: `{"type": "reference"|"literal"|"complex"|"bbox", ...}`; without a type it
/// is guessed from the members present.
fn parse_input(id: &str, value: Value) -> Result<Input, OwsError> {
    let bad = |msg: &str| OwsError::invalid(id, format!("invalid input {id}: {msg}"));
    let map = match value {
        Value::Object(map) => map,
        // A bare literal (`"DISTANCE": 0.5`) is accepted as well.
        v @ (Value::Number(_) | Value::String(_) | Value::Bool(_)) => Map::from_iter([
            ("type".to_owned(), json!("literal")),
            ("value".to_owned(), v),
        ]),
        _ => return Err(bad("expected an object with a type")),
    };
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(_) => return Err(bad("type must be a string")),
        None if map.contains_key("href") => "reference".into(),
        None if map.contains_key("bbox") || map.contains_key("lowerCorner") => "bbox".into(),
        None if map.contains_key("mimeType") => "complex".into(),
        None => "literal".into(),
    };
    let value = match kind.as_str() {
        "reference" => {
            let href = text(&map, "href");
            if href.is_empty() {
                return Err(bad("a reference needs an href"));
            }
            InputValue::Reference(Reference {
                source: Source::Href(href),
                format: format_of(&map),
            })
        }
        "literal" => {
            let value = match map.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                None | Some(Value::Null) => return Err(bad("a literal needs a value")),
                Some(_) => return Err(bad("a literal value is a number, a string or a boolean")),
            };
            InputValue::Literal(LiteralValue {
                value,
                data_type: None,
                uom: text(&map, "uom"),
            })
        }
        "complex" => {
            let base64 = text(&map, "encoding").eq_ignore_ascii_case("base64");
            let data = map
                .get("value")
                .and_then(|v| inline_data(v, base64))
                .ok_or_else(|| bad("a complex input needs a value (text or json)"))?
                .map_err(|e| bad(&e))?;
            InputValue::Complex(ComplexValue {
                format: format_of(&map),
                data,
            })
        }
        "bbox" | "boundingbox" | "bounding_box" => {
            InputValue::BoundingBox(parse_bbox(&map).map_err(|m| bad(&m))?)
        }
        other => {
            return Err(bad(&format!(
                "unknown type {other:?}: expected reference, literal, complex or bbox"
            )));
        }
    };
    Ok(Input {
        id: id.to_owned(),
        value,
    })
}

/// `{"mimeType": ..., "transmission": "reference"|"value"}` (or `asReference`).
fn parse_output(id: String, spec: Value) -> Result<OutputRequest, OwsError> {
    let id = identifier(&id, OUTPUT_ID)?;
    let map = match spec {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => {
            return Err(OwsError::invalid(
                &id,
                format!("invalid output {id}: expected an object"),
            ));
        }
    };
    let as_reference = match (map.get("transmission"), map.get("asReference")) {
        (Some(Value::String(t)), _) => !t.eq_ignore_ascii_case("value"),
        (_, Some(Value::Bool(b))) => *b,
        _ => true,
    };
    Ok(OutputRequest {
        format: format_of(&map),
        id,
        as_reference,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ows::OwsCode;

    fn literal(input: &Input) -> &str {
        match &input.value {
            InputValue::Literal(l) => &l.value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_every_input_kind_and_the_outputs() {
        let (request, mode) = parse_request(json!({
            "identifier": " native:buffer ",
            "inputs": {
                "DISTANCE": {"type": "literal", "value": 10},
                "BARE": 2.5,
                "LAYERS": [{"href": "http://a/x.zip"}, {"type": "reference", "href": "http://a/y.zip"}],
                "B64": {"type": "complex", "value": "aGVsbG8=", "encoding": "base64", "mimeType": "text/plain"},
                "BOX": {"type": "bbox", "lowerCorner": [1, 2], "upperCorner": [3, 4]},
            },
            "outputs": {"OUTPUT": {"transmission": "value"}, "OTHER": null},
        }))
        .unwrap();
        assert_eq!(
            (request.process_id.as_str(), mode),
            ("native:buffer", Mode::Sync)
        );
        let find = |id: &'static str| request.inputs.iter().filter(move |i| i.id == id);
        assert_eq!(literal(find("DISTANCE").next().unwrap()), "10");
        assert_eq!(literal(find("BARE").next().unwrap()), "2.5");
        assert_eq!(find("LAYERS").count(), 2);
        match &find("B64").next().unwrap().value {
            InputValue::Complex(c) => assert_eq!(&c.data[..], b"hello"),
            other => panic!("{other:?}"),
        }
        let outputs: Vec<(&str, bool)> = request
            .outputs
            .iter()
            .map(|o| (o.id.as_str(), o.as_reference))
            .collect();
        assert_eq!(outputs, [("OTHER", true), ("OUTPUT", false)]);
        let (listed, mode) =
            parse_request(json!({"identifier": "a:b", "outputs": ["OUTPUT"], "mode": "ASYNC"}))
                .unwrap();
        assert_eq!(
            (listed.outputs[0].id.as_str(), mode),
            ("OUTPUT", Mode::Async)
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let locator = |body: Value| parse_request(body).unwrap_err().locator.unwrap();
        assert_eq!(locator(json!({})), "identifier");
        assert_eq!(locator(json!({"identifier": 3})), "identifier");
        assert_eq!(
            locator(json!({"identifier": "a:b", "inputs": {"D": {"type": "literal"}}})),
            "D"
        );
        assert_eq!(
            locator(json!({"identifier": "a:b", "inputs": {"D": null}})),
            "D"
        );
        assert_eq!(
            locator(
                json!({"identifier": "a:b", "inputs": {"E": {"type": "bbox", "bbox": [1, 2, 3]}}})
            ),
            "E"
        );
        assert_eq!(
            locator(
                json!({"identifier": "a:b", "inputs": {"C": {"type": "complex", "value": "!", "encoding": "base64"}}})
            ),
            "C"
        );
        assert_eq!(
            locator(json!({"identifier": "a:b", "mode": "later"})),
            "mode"
        );
        let bad_mode = parse_request(json!({"identifier": "a:b", "mode": 1})).unwrap_err();
        assert_eq!(bad_mode.code, OwsCode::InvalidParameterValue);
    }
}
