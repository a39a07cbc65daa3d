//! Unit tests of the execute body reader against a buffer-like description.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use wpsmesh_proto::wire::process::v1::{
    BoundingBoxDescription, ComplexDescription, InputDescription, LiteralType, OutputDescription,
    ProcessSummary,
};

use super::*;

const BASE: &str = "http://edge.test";

fn input(id: &str, min: u32, max: u32, kind: Kind) -> InputDescription {
    InputDescription {
        id: id.into(),
        min_occurs: min,
        max_occurs: max,
        kind: Some(kind),
        ..Default::default()
    }
}

fn literal(t: LiteralType) -> Kind {
    Kind::Literal(LiteralInputDescription {
        data_type: t as i32,
        ..Default::default()
    })
}

fn desc() -> ProcessDescription {
    ProcessDescription {
        summary: Some(ProcessSummary {
            id: "native:buffer".into(),
            ..Default::default()
        }),
        inputs: vec![
            input("INPUT", 1, 1, Kind::Complex(ComplexDescription::default())),
            input("DISTANCE", 1, 1, literal(LiteralType::Double)),
            input("SEGMENTS", 0, 1, literal(LiteralType::Integer)),
            input("DISSOLVE", 0, 1, literal(LiteralType::Boolean)),
            input("NAME", 0, 1, literal(LiteralType::String)),
            input(
                "EXTENT",
                0,
                1,
                Kind::BoundingBox(BoundingBoxDescription::default()),
            ),
            input("LAYERS", 0, 3, Kind::Complex(ComplexDescription::default())),
        ],
        outputs: vec![OutputDescription {
            id: "OUTPUT".into(),
            ..Default::default()
        }],
    }
}

fn read_ok(body: Value) -> Execute {
    read(body, &desc(), "native:buffer", BASE).unwrap()
}

fn refused(body: Value) -> OwsError {
    read(body, &desc(), "native:buffer", BASE).unwrap_err()
}

fn find<'a>(e: &'a Execute, id: &str) -> Vec<&'a InputValue> {
    e.request
        .inputs
        .iter()
        .filter(|i| i.id == id)
        .map(|i| &i.value)
        .collect()
}

#[test]
fn reads_every_kind_of_value() {
    let e = read_ok(json!({
        "inputs": {
            "INPUT": {"value": {"type": "FeatureCollection", "features": []}},
            "DISTANCE": {"value": 0.5, "uom": "degrees"},
            "SEGMENTS": 8.0,
            "DISSOLVE": true,
            "NAME": 3,
            "EXTENT": {"bbox": [0, 1, 2, 3], "crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
            "LAYERS": [
                {"href": "http://a.test/x.zip", "type": "application/zip"},
                {"value": "aGVsbG8=", "format": {"mediaType": "text/plain", "encoding": "base64"}},
                {"type": "Point", "coordinates": [1, 2]},
            ],
        },
        "outputs": {"OUTPUT": {"format": {"mediaType": "application/geo+json"}, "transmissionMode": "reference"}},
        "response": "raw",
        "subscriber": {"successUri": "http://cb.test/ok"},
    }));
    assert_eq!(e.response, ResponseKind::Raw);
    match find(&e, "INPUT")[0] {
        InputValue::Complex(c) => {
            assert_eq!(c.format.as_ref().unwrap().mime_type, "application/geo+json");
            assert!(
                std::str::from_utf8(&c.data)
                    .unwrap()
                    .contains("FeatureCollection")
            );
        }
        other => panic!("{other:?}"),
    }
    let lit = |id| match find(&e, id)[0] {
        InputValue::Literal(l) => (l.value.clone(), l.uom.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(lit("DISTANCE"), ("0.5".into(), "degrees".into()));
    assert_eq!(lit("SEGMENTS").0, "8");
    assert_eq!(lit("DISSOLVE").0, "true");
    assert_eq!(lit("NAME").0, "3");
    match find(&e, "EXTENT")[0] {
        InputValue::BoundingBox(b) => {
            assert_eq!((b.crs.as_str(), b.upper), ("EPSG:4326", [2.0, 3.0]))
        }
        other => panic!("{other:?}"),
    }
    let layers = find(&e, "LAYERS");
    assert_eq!(layers.len(), 3);
    match layers[0] {
        InputValue::Reference(r) => {
            assert_eq!(r.source, Source::Href("http://a.test/x.zip".into()));
            assert_eq!(r.format.as_ref().unwrap().mime_type, "application/zip");
        }
        other => panic!("{other:?}"),
    }
    match layers[1] {
        InputValue::Complex(c) => {
            assert_eq!(&c.data[..], b"hello");
            assert_eq!(c.format.as_ref().unwrap().encoding, "");
        }
        other => panic!("{other:?}"),
    }
    match layers[2] {
        InputValue::Complex(c) => {
            assert_eq!(c.format.as_ref().unwrap().mime_type, "application/geo+json")
        }
        other => panic!("{other:?}"),
    }
    let out = &e.request.outputs[0];
    assert_eq!((out.id.as_str(), out.as_reference), ("OUTPUT", true));
    assert_eq!(
        out.format.as_ref().unwrap().mime_type,
        "application/geo+json"
    );
    let sub = e.request.subscriber.unwrap();
    assert_eq!(
        (sub.success_uri.as_deref(), sub.base_url.as_str()),
        (Some("http://cb.test/ok"), BASE)
    );
}

#[test]
fn defaults_are_document_and_value() {
    let e = read_ok(json!({
        "inputs": {"INPUT": {"href": "http://a.test/x.zip"}, "DISTANCE": 1},
        "outputs": {"OUTPUT": {}},
    }));
    assert_eq!(e.response, ResponseKind::Document);
    assert!(!e.request.outputs[0].as_reference);
    assert!(e.request.subscriber.is_none());
    let e = read_ok(json!({"inputs": {"INPUT": "text", "DISTANCE": "2.5"}}));
    assert!(e.request.outputs.is_empty());
}

#[test]
fn refusals_name_the_input_and_the_reason() {
    let good = json!({"INPUT": {"href": "http://a.test/x.zip"}, "DISTANCE": 1});
    let with = |id: &str, v: Value| {
        let mut inputs = good.clone();
        inputs[id] = v;
        json!({"inputs": inputs})
    };
    for (body, locator, reason) in [
        (
            with("DISTANCE", json!({"a": 1})),
            "DISTANCE",
            "expects a literal value",
        ),
        (
            with("DISTANCE", json!("far")),
            "DISTANCE",
            "expects a double value",
        ),
        (
            with("SEGMENTS", json!(1.5)),
            "SEGMENTS",
            "expects a integer value",
        ),
        (
            with("DISSOLVE", json!("maybe")),
            "DISSOLVE",
            "expects a boolean value",
        ),
        (with("INPUT", json!(5)), "INPUT", "expects complex data"),
        (with("INPUT", json!({"foo": 1})), "INPUT", "got an object"),
        (
            with("INPUT", json!({"value": "!", "encoding": "base64"})),
            "INPUT",
            "invalid base64",
        ),
        (
            with("EXTENT", json!([1, 2, 3, 4])),
            "EXTENT",
            "takes at most 1 value(s)",
        ),
        (
            with("EXTENT", json!({"bbox": [1, 2, 3]})),
            "EXTENT",
            "even number",
        ),
        (
            with("LAYERS", json!(["a", "b", "c", "d"])),
            "LAYERS",
            "at most 3",
        ),
        (with("NOPE", json!(1)), "NOPE", "unknown input NOPE"),
        (
            json!({"inputs": {"INPUT": "x"}}),
            "DISTANCE",
            "missing required input DISTANCE",
        ),
        (
            json!({"inputs": good.clone(), "outputs": {"X": {}}}),
            "X",
            "unknown output X",
        ),
        (
            json!({"inputs": good.clone(), "outputs": {"OUTPUT": {"transmissionMode": "later"}}}),
            "OUTPUT",
            "transmissionMode",
        ),
        (
            json!({"inputs": good.clone(), "response": "all"}),
            "response",
            "raw",
        ),
        (
            json!({"inputs": good.clone(), "subscriber": {"successUri": "ftp://x"}}),
            "subscriber.successUri",
            "http(s)",
        ),
        (json!([1]), "body", "json object"),
        (json!({"inputs": [1]}), "inputs", "object of inputs"),
    ] {
        let e = refused(body.clone());
        assert_eq!(e.locator.as_deref(), Some(locator), "{body}: {e}");
        assert!(e.text.contains(reason), "{body}: {e}");
    }
    assert_eq!(
        refused(json!({"inputs": {"INPUT": "x"}})).code,
        OwsCode::MissingParameterValue
    );
    // The positive control: the same body without the fault passes.
    assert_eq!(read_ok(json!({"inputs": good})).request.inputs.len(), 2);
}
