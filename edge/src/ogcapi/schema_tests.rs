//! Unit tests of the schema derivation: each QGIS parameter kind the node describes.

use serde_json::json;
use wpsmesh_proto::wire::process::v1::{
    BoundingBoxDescription, ComplexDescription, Format, InputDescription, LiteralInputDescription,
    LiteralOutputDescription, LiteralRole, LiteralType, OutputDescription, input_description,
    output_description,
};

use super::*;

fn input(d: &InputDescription) -> Value {
    serde_json::to_value(super::input(d)).expect("json")
}

fn output(d: &OutputDescription) -> Value {
    serde_json::to_value(super::output(d)).expect("json")
}

fn literal(id: &str, l: LiteralInputDescription) -> InputDescription {
    InputDescription {
        id: id.into(),
        title: id.to_lowercase(),
        description: format!("the {id}"),
        min_occurs: 1,
        max_occurs: 1,
        kind: Some(input_description::Kind::Literal(l)),
    }
}

fn format(mime: &str) -> Format {
    Format {
        mime_type: mime.into(),
        ..Default::default()
    }
}

#[test]
fn numbers_have_range_and_typed_default() {
    let d = literal(
        "DISTANCE",
        LiteralInputDescription {
            data_type: LiteralType::Double as i32,
            role: LiteralRole::Plain as i32,
            default_value: Some("10.0".into()),
            minimum: Some(0.0),
            maximum: Some(1e6),
            ..Default::default()
        },
    );
    let v = input(&d);
    assert_eq!(v["schema"]["type"], "number");
    assert_eq!(v["schema"]["default"], json!(10.0));
    assert_eq!(v["schema"]["minimum"], json!(0.0));
    assert_eq!(v["schema"]["maximum"], json!(1e6));
    assert_eq!(
        (v["minOccurs"].as_u64(), v["maxOccurs"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["title"], "distance");

    let d = literal(
        "SEGMENTS",
        LiteralInputDescription {
            data_type: LiteralType::Integer as i32,
            default_value: Some("5".into()),
            minimum: Some(1.0),
            ..Default::default()
        },
    );
    let s = &input(&d)["schema"];
    assert_eq!(
        (s["type"].as_str(), s["default"].as_i64()),
        (Some("integer"), Some(5))
    );
    assert!(s.get("maximum").is_none(), "no maximum was given: {s}");
}

#[test]
fn enums_by_name_booleans_and_bad_defaults() {
    let d = literal(
        "JOIN_STYLE",
        LiteralInputDescription {
            data_type: LiteralType::String as i32,
            role: LiteralRole::Enum as i32,
            allowed_values: vec!["Round".into(), "Miter".into(), "Bevel".into()],
            default_value: Some("Round".into()),
            ..Default::default()
        },
    );
    let s = &input(&d)["schema"];
    assert_eq!(s["enum"], json!(["Round", "Miter", "Bevel"]));
    assert_eq!(s["default"], "Round");

    // A default outside the enum is left out rather than published wrong.
    let mut odd = d.clone();
    if let Some(input_description::Kind::Literal(l)) = &mut odd.kind {
        l.default_value = Some("Square".into());
    }
    assert!(input(&odd)["schema"].get("default").is_none());

    let d = literal(
        "DISSOLVE",
        LiteralInputDescription {
            data_type: LiteralType::Boolean as i32,
            default_value: Some("false".into()),
            ..Default::default()
        },
    );
    let s = &input(&d)["schema"];
    assert_eq!(
        (s["type"].as_str(), &s["default"]),
        (Some("boolean"), &json!(false))
    );
}

#[test]
fn crs_and_fields_are_strings_with_a_hint() {
    let crs = literal(
        "TARGET_CRS",
        LiteralInputDescription {
            role: LiteralRole::Crs as i32,
            default_value: Some("EPSG:4326".into()),
            ..Default::default()
        },
    );
    let s = &input(&crs)["schema"];
    assert_eq!(
        s,
        &json!({"type": "string", "format": "crs", "default": "EPSG:4326"})
    );
    let mut fields = literal(
        "FIELDS",
        LiteralInputDescription {
            role: LiteralRole::Field as i32,
            ..Default::default()
        },
    );
    fields.min_occurs = 0;
    fields.max_occurs = UNBOUNDED;
    let v = input(&fields);
    assert_eq!(v["maxOccurs"], "unbounded");
    assert_eq!(v["minOccurs"], 0);
    assert_eq!(v["schema"]["type"], "array");
    assert_eq!(v["schema"]["items"]["type"], "string");
    assert!(v["schema"].get("maxItems").is_none());
}

#[test]
fn layers_are_values_of_their_media_types() {
    let d = InputDescription {
        id: "INPUT".into(),
        min_occurs: 1,
        max_occurs: 1,
        kind: Some(input_description::Kind::Complex(ComplexDescription {
            formats: [
                "application/geo+json",
                "application/zip",
                "application/gml+xml",
            ]
            .map(format)
            .to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let s = &input(&d)["schema"];
    let alternatives = s["oneOf"].as_array().expect("oneOf");
    assert_eq!(alternatives.len(), 3);
    assert_eq!(
        alternatives[0],
        json!({"type": "object", "contentMediaType": "application/geo+json"})
    );
    assert_eq!(alternatives[1]["contentEncoding"], "binary");
    assert_eq!(
        alternatives[2],
        json!({"type": "string", "contentMediaType": "application/gml+xml"})
    );

    // Several layers: an array of such values with its bounds.
    let mut layers = d.clone();
    layers.max_occurs = 1000;
    let s = &input(&layers)["schema"];
    assert_eq!(
        (s["type"].as_str(), s["minItems"].as_u64()),
        (Some("array"), Some(1))
    );
    assert_eq!(s["maxItems"], 1000);
    assert_eq!(s["items"]["oneOf"].as_array().map(Vec::len), Some(3));

    // One format: the value itself, no oneOf.
    let tiff = ComplexDescription {
        formats: vec![format("image/tiff")],
        ..Default::default()
    };
    let v = output(&OutputDescription {
        id: "OUTPUT".into(),
        kind: Some(output_description::Kind::Complex(tiff)),
        ..Default::default()
    });
    assert_eq!(
        v["schema"],
        json!({"type": "string", "contentEncoding": "binary", "contentMediaType": "image/tiff"})
    );
}

#[test]
fn extents_are_bbox_objects_and_literal_outputs_typed() {
    let d = InputDescription {
        id: "EXTENT".into(),
        min_occurs: 1,
        max_occurs: 1,
        kind: Some(input_description::Kind::BoundingBox(
            BoundingBoxDescription {
                crs: vec!["EPSG:4326".into(), "EPSG:3857".into()],
            },
        )),
        ..Default::default()
    };
    let s = &input(&d)["schema"];
    assert_eq!(s["format"], "ogc-bbox");
    assert_eq!(s["required"], json!(["bbox"]));
    assert_eq!(s["properties"]["bbox"]["minItems"], 4);
    assert_eq!(s["properties"]["crs"]["default"], "EPSG:4326");

    let v = output(&OutputDescription {
        id: "COUNT".into(),
        kind: Some(output_description::Kind::Literal(
            LiteralOutputDescription {
                data_type: LiteralType::Integer as i32,
                uom: String::new(),
            },
        )),
        ..Default::default()
    });
    assert_eq!(v["schema"], json!({"type": "integer"}));
}
