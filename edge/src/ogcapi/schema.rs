//! JSON Schemas of process inputs and outputs, derived from the QGIS parameter types the node
//! describes: numbers with their range and default, enums by name, booleans, strings, CRSs,
//! extents as OGC bbox objects, layers and files as values of their media types, several
//! values as arrays. Schemas stay within the OpenAPI 3.0 schema subset OGC API - Processes 1.0
//! uses (`schema.yaml`: no type arrays, no extension keywords).

use serde_json::{Map, Value, json};
use wpsmesh_proto::wire::process::v1::{
    self as wire, InputDescription, LiteralRole, LiteralType, OutputDescription, input_description,
    output_description,
};

use super::model::{InputDescription as InputDoc, OutputDescription as OutputDoc};
use crate::wps::xml::UNBOUNDED;

/// The ogc-process-description input: title, description, minOccurs, maxOccurs and schema.
pub fn input(d: &InputDescription) -> InputDoc {
    let one = match &d.kind {
        Some(input_description::Kind::Literal(l)) => literal_input(l),
        Some(input_description::Kind::Complex(c)) => complex(c),
        Some(input_description::Kind::BoundingBox(b)) => bbox(b),
        None => json!({"type": "string"}),
    };
    let schema = if d.max_occurs > 1 {
        let mut array = json!({
            "type": "array",
            "items": one,
            "minItems": d.min_occurs.max(1),
        });
        if d.max_occurs != UNBOUNDED {
            array["maxItems"] = d.max_occurs.into();
        }
        array
    } else {
        one
    };
    let max_occurs = if d.max_occurs == UNBOUNDED {
        Value::from("unbounded")
    } else {
        Value::from(d.max_occurs.max(1))
    };
    InputDoc {
        title: d.title.clone(),
        description: d.description.clone(),
        min_occurs: d.min_occurs,
        max_occurs,
        schema,
    }
}

/// The ogc-process-description output: title, description and schema.
pub fn output(d: &OutputDescription) -> OutputDoc {
    let schema = match &d.kind {
        Some(output_description::Kind::Literal(l)) => {
            typed(LiteralType::try_from(l.data_type).unwrap_or_default())
        }
        Some(output_description::Kind::Complex(c)) => complex(c),
        Some(output_description::Kind::BoundingBox(b)) => bbox(b),
        None => json!({"type": "string"}),
    };
    OutputDoc {
        title: d.title.clone(),
        description: d.description.clone(),
        schema,
    }
}

/// The schema of one value of a literal type.
fn typed(t: LiteralType) -> Value {
    match t {
        LiteralType::Double => json!({"type": "number", "format": "double"}),
        LiteralType::Integer => json!({"type": "integer"}),
        LiteralType::Boolean => json!({"type": "boolean"}),
        LiteralType::String | LiteralType::Unspecified => json!({"type": "string"}),
    }
}

fn literal_input(l: &wire::LiteralInputDescription) -> Value {
    let data_type = LiteralType::try_from(l.data_type).unwrap_or_default();
    let role = LiteralRole::try_from(l.role).unwrap_or_default();
    let mut schema = match role {
        LiteralRole::Enum if !l.allowed_values.is_empty() => {
            json!({"type": "string", "enum": l.allowed_values})
        }
        LiteralRole::Crs => json!({"type": "string", "format": "crs"}),
        LiteralRole::Field => json!({"type": "string", "format": "field-name"}),
        LiteralRole::Expression => json!({"type": "string", "format": "qgis-expression"}),
        _ => typed(data_type),
    };
    if matches!(data_type, LiteralType::Double | LiteralType::Integer) && role != LiteralRole::Enum
    {
        if let Some(min) = l.minimum {
            schema["minimum"] = min.into();
        }
        if let Some(max) = l.maximum {
            schema["maximum"] = max.into();
        }
    }
    if let Some(default) = l
        .default_value
        .as_deref()
        .and_then(|d| typed_default(&schema, d))
    {
        schema["default"] = default;
    }
    schema
}

/// `text` as a value of `schema`'s type, if it is one (a default the schema would refuse is
/// left out rather than published).
fn typed_default(schema: &Value, text: &str) -> Option<Value> {
    let text = text.trim();
    let value = match schema["type"].as_str()? {
        "number" => text.parse::<f64>().ok().filter(|n| n.is_finite())?.into(),
        "integer" => text
            .parse::<i64>()
            .ok()
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|n| n.fract() == 0.0 && n.abs() < 9e15)
                    .map(|n| n as i64)
            })?
            .into(),
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => true.into(),
            "false" | "0" => false.into(),
            _ => return None,
        },
        _ => text.into(),
    };
    match schema["enum"].as_array() {
        Some(allowed) if !allowed.contains(&value) => None,
        _ => Some(value),
    }
}

/// A layer or file: one value per media type the node lists (`oneOf` when several).
fn complex(c: &wire::ComplexDescription) -> Value {
    let mut seen = Vec::new();
    let mut alternatives: Vec<Value> = Vec::new();
    for f in &c.formats {
        let media = f.mime_type.trim();
        if media.is_empty() || seen.contains(&media) {
            continue;
        }
        seen.push(media);
        alternatives.push(media_value(f));
    }
    match alternatives.len() {
        0 => json!({"type": "string", "contentEncoding": "binary"}),
        1 => alternatives.remove(0),
        _ => json!({"oneOf": alternatives}),
    }
}

/// One value of format `f`: JSON documents as objects, XML and text as strings, anything else
/// (zipped shapefiles, GeoPackages, GeoTIFFs) as binary strings, each with its media type.
fn media_value(f: &wire::Format) -> Value {
    let media = f.mime_type.trim();
    let essence = media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let mut value = Map::new();
    if essence == "application/json" || essence.ends_with("+json") {
        value.insert("type".into(), "object".into());
    } else if essence.starts_with("text/") || essence.ends_with("xml") {
        value.insert("type".into(), "string".into());
    } else {
        value.insert("type".into(), "string".into());
        value.insert("contentEncoding".into(), "binary".into());
    }
    value.insert("contentMediaType".into(), media.into());
    if !f.schema.trim().is_empty() {
        value.insert("contentSchema".into(), f.schema.trim().into());
    }
    Value::Object(value)
}

/// An extent: an OGC bbox object (`bbox` of four numbers, `crs` defaulting to the first the
/// node lists).
fn bbox(b: &wire::BoundingBoxDescription) -> Value {
    let mut crs = json!({"type": "string"});
    if let Some(first) = b.crs.first() {
        crs["default"] = first.clone().into();
    }
    json!({
        "type": "object",
        "format": "ogc-bbox",
        "required": ["bbox"],
        "properties": {
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "crs": crs,
        },
    })
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
