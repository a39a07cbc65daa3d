//! WPS request parsing: every official example request (WPS 1.0.0 and 2.0), the KVP form of
//! each operation, and bad requests answered with the right exception code and locator.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use wpsmesh_edge::ows::{OwsCode, OwsError};
use wpsmesh_edge::wps::model::{Execute, Mode, ResponseForm, Version, WpsRequest};
use wpsmesh_edge::wps::request::{parse_kvp, parse_xml, resolve_bboxes};
use wpsmesh_proto::process::{self, InputValue as Value, Source};
use wpsmesh_proto::wire::process::v1 as wire;

/// `shared/schemas/examples`, beside the repository (`WPSMESH_SHARED` overrides `shared/`).
fn examples() -> PathBuf {
    let shared = std::env::var_os("WPSMESH_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    shared.join("schemas/examples")
}

fn example(name: &str) -> Vec<u8> {
    let path = examples().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn execute(request: WpsRequest) -> Execute {
    match request {
        WpsRequest::Execute(e) => *e,
        other => panic!("not an Execute: {other:?}"),
    }
}

fn value<'a>(e: &'a Execute, id: &str) -> &'a Value {
    let input = e.request.inputs.iter().find(|i| i.id == id);
    input
        .map(|i| &i.value)
        .unwrap_or_else(|| panic!("no input {id}"))
}

fn literal(v: &Value) -> &process::LiteralValue {
    match v {
        Value::Literal(l) => l,
        other => panic!("not a literal: {other:?}"),
    }
}

fn reference(v: &Value) -> &process::Reference {
    match v {
        Value::Reference(r) => r,
        other => panic!("not a reference: {other:?}"),
    }
}

fn href(r: &process::Reference) -> &str {
    match &r.source {
        Source::Href(href) => href,
        other => panic!("not an href: {other:?}"),
    }
}

fn complex(v: &Value) -> &process::ComplexValue {
    match v {
        Value::Complex(c) => c,
        other => panic!("not a complex value: {other:?}"),
    }
}

fn bbox(v: &Value) -> &process::BoundingBox {
    match v {
        Value::BoundingBox(b) => b,
        other => panic!("not a bounding box: {other:?}"),
    }
}

/// Asserts a refusal: its code, locator and reason (`reason` is part of the exception text).
fn fails(
    result: Result<WpsRequest, OwsError>,
    code: OwsCode,
    locator: Option<&str>,
    reason: &str,
) -> OwsError {
    let err = result.expect_err("should fail");
    assert_eq!((err.code, err.locator.as_deref()), (code, locator), "{err}");
    assert!(err.text.contains(reason), "{:?} lacks {reason:?}", err.text);
    err
}

fn document(lineage: bool, status: bool, store: bool) -> ResponseForm {
    ResponseForm::Document {
        lineage,
        status,
        store,
    }
}

/// Every name and namespace of `xml` resolves when it is parsed on its own.
fn standalone_xml(data: &[u8]) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_reader(data);
    let mut names = Vec::new();
    loop {
        match reader.read_resolved_event().unwrap() {
            (ResolveResult::Bound(ns), Event::Start(e) | Event::Empty(e)) => names.push((
                String::from_utf8(ns.as_ref().to_vec()).unwrap(),
                String::from_utf8(e.local_name().as_ref().to_vec()).unwrap(),
            )),
            (ResolveResult::Unknown(p), _) => panic!("unbound prefix {p:?}"),
            (_, Event::Eof) => return names,
            _ => {}
        }
    }
}

// ---- WPS 1.0.0 examples ----

#[test]
fn v1_get_capabilities_example() {
    let request = parse_xml(&example("wps-1.0.0/10_wpsGetCapabilities_request.xml")).unwrap();
    assert_eq!(
        request,
        WpsRequest::GetCapabilities {
            accept_versions: vec!["1.0.0".into()]
        }
    );
}

#[test]
fn v1_describe_process_example() {
    let request = parse_xml(&example("wps-1.0.0/30_wpsDescribeProcess_request.xml")).unwrap();
    assert_eq!(
        request,
        WpsRequest::DescribeProcess {
            version: Version::V100,
            identifiers: vec!["intersection".into(), "union".into()]
        }
    );
}

#[test]
fn v1_execute_raw_data_output_example() {
    let e = execute(
        parse_xml(&example(
            "wps-1.0.0/50_wpsExecute_request_RawDataOutput.xml",
        ))
        .unwrap(),
    );
    assert_eq!(e.version, Version::V100);
    assert_eq!(e.request.process_id, "Buffer");
    assert_eq!(e.request.inputs.len(), 2);
    let r = reference(value(&e, "InputPolygon"));
    assert_eq!(
        (href(r), r.format.as_ref()),
        ("http://foo.bar/some_WFS_request.xml", None)
    );
    assert_eq!(literal(value(&e, "BufferDistance")).value, "400");
    assert_eq!(
        e.response,
        ResponseForm::Raw {
            output: "BufferedPolygon".into()
        }
    );
    assert_eq!(e.request.outputs.len(), 1);
    assert_eq!(e.request.outputs[0].id, "BufferedPolygon");
    assert!(!e.request.outputs[0].as_reference);
    assert_eq!(e.mode, Mode::Sync);
}

#[test]
fn v1_execute_response_document_example() {
    let e = execute(
        parse_xml(&example(
            "wps-1.0.0/51_wpsExecute_request_ResponseDocument.xml",
        ))
        .unwrap(),
    );
    assert_eq!(e.request.process_id, "Buffer");
    assert_eq!(
        href(reference(value(&e, "InputPolygon"))),
        "http://foo.bar/some_WFS_request.xml"
    );
    assert_eq!(literal(value(&e, "BufferDistance")).value, "400");
    assert_eq!(e.response, document(false, false, true));
    assert_eq!(e.mode, Mode::Sync, "store without status stays synchronous");
    let out = &e.request.outputs;
    assert_eq!(
        (out.len(), out[0].id.as_str(), out[0].as_reference),
        (1, "BufferedPolygon", true)
    );
}

#[test]
fn v1_execute_extended_example_keeps_inline_xml_parseable() {
    let body = example("wps-1.0.0/51_wpsExecute_request-extended_ResponseDocument.xml");
    let e = execute(parse_xml(&body).unwrap());
    assert_eq!(e.request.inputs.len(), 3);
    let zones = complex(value(&e, "BufferZoneWidth"));
    let format = zones.format.as_ref().unwrap();
    assert_eq!(
        (
            format.mime_type.as_str(),
            format.encoding.as_str(),
            format.schema.as_str()
        ),
        (
            "text/xml",
            "UTF-8",
            "http://foo.bar/MyComplexValueSchema.xsd"
        )
    );
    let text = std::str::from_utf8(&zones.data).unwrap();
    assert!(text.starts_with("<BufferZones"), "{text}");
    assert!(text.ends_with("</BufferZones>"), "{text}");
    let names = standalone_xml(&zones.data);
    assert!(names.contains(&("http://www.opengis.net/ows/1.1".into(), "Range".into())));
    assert!(text.contains(r#"<ows:MaximumValue>400</ows:MaximumValue>"#));
    assert_eq!(e.response, document(false, false, true));
}

#[test]
fn v1_execute_example_52_post_reference_is_refused_and_the_rest_understood() {
    let body = example("wps-1.0.0/52_wpsExecute_request_ResponseDocument.xml");
    let err = fails(
        parse_xml(&body),
        OwsCode::OptionNotSupported,
        Some("InputPolygon"),
        r#"InputPolygon: reference method "POST" is not supported; inputs are fetched with GET"#,
    );
    assert!(err.text.contains("POST"), "{err}");

    let text = String::from_utf8(body)
        .unwrap()
        .replace(r#" method="POST""#, "");
    let e = execute(parse_xml(text.as_bytes()).unwrap());
    let r = reference(value(&e, "InputPolygon"));
    let format = r.format.as_ref().unwrap();
    assert_eq!(
        (
            format.mime_type.as_str(),
            format.encoding.as_str(),
            format.schema.as_str()
        ),
        ("text/xml", "UTF-8", "http://foo.bar/gml_polygon_schema.xsd")
    );
    let distance = literal(value(&e, "BufferDistance"));
    assert_eq!(
        (distance.value.as_str(), distance.uom.as_str()),
        ("400", "feet")
    );
    assert_eq!(e.response, document(true, true, true));
    assert_eq!(e.mode, Mode::Async);
}

#[test]
fn v1_execute_complex_value_example() {
    let e =
        execute(parse_xml(&example("wps-1.0.0/53_wpsExecute_request_ComplexValue.xml")).unwrap());
    assert_eq!(e.request.process_id, "Reclassification");
    assert_eq!(
        href(reference(value(&e, "InputLayer"))),
        "http://orchestra.pisa.intecs.it/geoserver/test/height.tif"
    );
    let mappings = complex(value(&e, "BufferDistance"));
    assert_eq!(mappings.format, None);
    let text = std::str::from_utf8(&mappings.data).unwrap();
    assert!(text.starts_with("<RangeToValueMappings"), "{text}");
    assert!(
        !text.contains("<!--"),
        "comments around the root are dropped"
    );
    let names = standalone_xml(&mappings.data);
    assert_eq!(
        names[0],
        (
            "http://mas.orchestra.jrc.it".into(),
            "RangeToValueMappings".into()
        )
    );
    assert!(names.contains(&("http://www.opengeospatial.net/ows".into(), "Value".into())));
    assert_eq!(e.response, document(true, true, true));
    assert_eq!(e.mode, Mode::Async);
    assert_eq!(e.request.outputs[0].id, "Outlayer");
    assert!(e.request.outputs[0].as_reference);
}

// ---- WPS 2.0 examples ----

#[test]
fn v2_get_capabilities_example() {
    let request = parse_xml(&example("wps-2.0/wpsGetCapabilitiesRequestExample.xml")).unwrap();
    assert_eq!(
        request,
        WpsRequest::GetCapabilities {
            accept_versions: vec!["2.0.0".into()]
        }
    );
}

#[test]
fn v2_describe_process_example() {
    let request = parse_xml(&example("wps-2.0/wpsDescribeProcessRequestExample.xml")).unwrap();
    assert_eq!(
        request,
        WpsRequest::DescribeProcess {
            version: Version::V200,
            identifiers: vec!["Buffer".into(), "Viewshed".into()]
        }
    );
}

#[test]
fn v2_job_examples() {
    let job_id = "FB6DD4B0-A2BB-11E3-A5E2-0800200C9A66".to_owned();
    let version = Version::V200;
    assert_eq!(
        parse_xml(&example("wps-2.0/wpsGetStatusRequestExample.xml")).unwrap(),
        WpsRequest::GetStatus {
            version,
            job_id: job_id.clone()
        }
    );
    assert_eq!(
        parse_xml(&example("wps-2.0/wpsGetResultRequestExample.xml")).unwrap(),
        WpsRequest::GetResult {
            version,
            job_id: job_id.clone()
        }
    );
    assert_eq!(
        parse_xml(&example("wps-2.0/wpsDismissRequestExample.xml")).unwrap(),
        WpsRequest::Dismiss { version, job_id }
    );
}

#[test]
fn v2_execute_example() {
    let e = execute(parse_xml(&example("wps-2.0/wpsExecuteRequestExample.xml")).unwrap());
    assert_eq!(e.version, Version::V200);
    assert_eq!(
        e.request.process_id,
        "http://my.wps.server/processes/proximity/Planar-Buffer"
    );
    assert_eq!(e.mode, Mode::Async);
    assert_eq!(e.response, document(false, false, false));
    assert_eq!(
        href(reference(value(&e, "INPUT_GEOMETRY"))),
        "http://some.data.server/mygmldata.xml"
    );
    assert_eq!(literal(value(&e, "DISTANCE")).value, "10.0");
    assert_eq!(
        e.request.outputs,
        vec![process::OutputRequest {
            id: "BUFFERED_GEOMETRY".into(),
            format: None,
            as_reference: true
        }]
    );
}

#[test]
fn every_example_request_is_covered() {
    let mut seen = 0;
    for dir in ["wps-1.0.0", "wps-2.0"] {
        for entry in std::fs::read_dir(examples().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.to_ascii_lowercase().contains("request") {
                continue;
            }
            seen += 1;
            let result = parse_xml(&example(&format!("{dir}/{name}")));
            if name.starts_with("52_") {
                fails(
                    result,
                    OwsCode::OptionNotSupported,
                    Some("InputPolygon"),
                    r#"reference method "POST" is not supported"#,
                );
            } else {
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
    assert_eq!(seen, 13, "examples tested one by one above");
}

// ---- more XML ----

const V1: &str = r#"xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" service="WPS" version="1.0.0""#;
const V2: &str = r#"xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink" service="WPS" version="2.0.0""#;

fn v1_execute(inputs: &str) -> String {
    format!(
        r#"<wps:Execute {V1}><ows:Identifier>native:buffer</ows:Identifier><wps:DataInputs>{inputs}</wps:DataInputs></wps:Execute>"#
    )
}

fn v1_input(id: &str, data: &str) -> String {
    format!(
        r#"<wps:Input><ows:Identifier>{id}</ows:Identifier><wps:Data>{data}</wps:Data></wps:Input>"#
    )
}

#[test]
fn v1_literal_bbox_base64_and_text_complex() {
    let body = v1_execute(&[
        v1_input("D", r#"<wps:LiteralData dataType="xs:double" uom="meters">0.5</wps:LiteralData>"#),
        v1_input(
            "B",
            r#"<wps:BoundingBoxData crs="EPSG:4326" dimensions="2"><ows:LowerCorner>-10 40</ows:LowerCorner><ows:UpperCorner>5 52.5</ows:UpperCorner></wps:BoundingBoxData>"#,
        ),
        v1_input("R", r#"<wps:ComplexData mimeType="image/tiff" encoding="base64">SUkq
            AA==</wps:ComplexData>"#),
        v1_input(
            "J",
            "<wps:ComplexData mimeType=\"application/geo+json\">\n  <![CDATA[{\"type\": \"Point\", \"coordinates\": [1, 2]}]]>\n</wps:ComplexData>",
        ),
        v1_input("E", r#"<wps:ComplexData mimeType="application/json">{"a":"&lt;&amp;"}</wps:ComplexData>"#),
    ]
    .concat());
    let e = execute(parse_xml(body.as_bytes()).unwrap());
    let d = literal(value(&e, "D"));
    assert_eq!(
        (d.value.as_str(), d.data_type, d.uom.as_str()),
        ("0.5", Some(process::DataType::Double), "meters")
    );
    let b = bbox(value(&e, "B"));
    assert_eq!(
        (b.crs.as_str(), &b.lower[..], &b.upper[..]),
        ("EPSG:4326", &[-10.0, 40.0][..], &[5.0, 52.5][..])
    );
    let r = complex(value(&e, "R"));
    assert_eq!(&r.data[..], b"II*\0");
    assert_eq!(
        r.format.as_ref().unwrap().encoding,
        "",
        "decoded bytes are no longer base64"
    );
    assert_eq!(
        &complex(value(&e, "J")).data[..],
        br#"{"type": "Point", "coordinates": [1, 2]}"#
    );
    assert_eq!(&complex(value(&e, "E")).data[..], br#"{"a":"<&"}"#);
    assert_eq!(e.request.outputs, vec![]);
    assert_eq!(e.response, document(false, false, false));
}

#[test]
fn v1_inline_gml_in_default_namespace_document() {
    let body = r#"<Execute xmlns="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:gml="http://www.opengis.net/gml" service="WPS" version="1.0.0">
  <ows:Identifier>native:centroids</ows:Identifier>
  <DataInputs><Input><ows:Identifier>INPUT</ows:Identifier><Data><ComplexData mimeType="text/xml">
    <gml:Point srsName="EPSG:4326"><gml:pos>1 2</gml:pos></gml:Point>
  </ComplexData></Data></Input></DataInputs>
  <ResponseForm><RawDataOutput mimeType="application/json"><ows:Identifier>OUTPUT</ows:Identifier></RawDataOutput></ResponseForm>
</Execute>"#;
    let e = execute(parse_xml(body.as_bytes()).unwrap());
    let gml = complex(value(&e, "INPUT"));
    let names = standalone_xml(&gml.data);
    assert_eq!(
        names[0],
        ("http://www.opengis.net/gml".into(), "Point".into())
    );
    assert_eq!(
        e.response,
        ResponseForm::Raw {
            output: "OUTPUT".into()
        }
    );
    assert_eq!(
        e.request.outputs[0].format.as_ref().unwrap().mime_type,
        "application/json"
    );
}

#[test]
fn v2_data_kinds() {
    let body = format!(
        r#"<wps:Execute {V2} mode="auto" response="raw"><ows:Identifier>native:buffer</ows:Identifier>
  <wps:Input id="L"><wps:Data><wps:LiteralValue dataType="integer" uom="m">7</wps:LiteralValue></wps:Data></wps:Input>
  <wps:Input id="T"><wps:Data mimeType="text/plain">plain text</wps:Data></wps:Input>
  <wps:Input id="B"><wps:Data><ows:BoundingBox crs="EPSG:3857"><ows:LowerCorner>0 0</ows:LowerCorner><ows:UpperCorner>1 1</ows:UpperCorner></ows:BoundingBox></wps:Data></wps:Input>
  <wps:Input id="G"><wps:Data mimeType="application/geo+json"><![CDATA[{{"type":"Point"}}]]></wps:Data></wps:Input>
  <wps:Input id="X"><wps:Data mimeType="application/gml+xml" schema="http://schemas.opengis.net/gml/3.2.1/feature.xsd"><gml:Point xmlns:gml="http://www.opengis.net/gml/3.2"><gml:pos>1 2</gml:pos></gml:Point></wps:Data></wps:Input>
  <wps:Input id="Z"><wps:Data encoding="base64">aGk=</wps:Data></wps:Input>
  <wps:Input id="R"><wps:Reference xlink:href="http://example.org/a.gpkg" mimeType="application/geopackage+sqlite3"/></wps:Input>
  <wps:Output id="OUTPUT" transmission="value" mimeType="application/geo+json"/>
</wps:Execute>"#
    );
    let e = execute(parse_xml(body.as_bytes()).unwrap());
    assert_eq!(e.mode, Mode::Sync, "auto is answered synchronously");
    assert_eq!(
        e.response,
        ResponseForm::Raw {
            output: "OUTPUT".into()
        }
    );
    let l = literal(value(&e, "L"));
    assert_eq!(
        (l.value.as_str(), l.data_type, l.uom.as_str()),
        ("7", Some(process::DataType::Integer), "m")
    );
    assert_eq!(literal(value(&e, "T")).value, "plain text");
    assert_eq!(bbox(value(&e, "B")).crs, "EPSG:3857");
    assert_eq!(&complex(value(&e, "G")).data[..], br#"{"type":"Point"}"#);
    let x = complex(value(&e, "X"));
    assert_eq!(x.format.as_ref().unwrap().mime_type, "application/gml+xml");
    assert_eq!(standalone_xml(&x.data)[0].1, "Point");
    assert_eq!(&complex(value(&e, "Z")).data[..], b"hi");
    let r = reference(value(&e, "R"));
    assert_eq!(
        r.format.as_ref().unwrap().mime_type,
        "application/geopackage+sqlite3"
    );
    let out = &e.request.outputs[0];
    assert_eq!(
        (
            out.as_reference,
            out.format.as_ref().unwrap().mime_type.as_str()
        ),
        (false, "application/geo+json")
    );
}

#[test]
fn v2_execute_errors() {
    let exec = |attrs: &str, inner: &str| {
        parse_xml(
            format!(r#"<wps:Execute {V2} {attrs}><ows:Identifier>p</ows:Identifier>{inner}</wps:Execute>"#)
                .as_bytes(),
        )
    };
    let out = r#"<wps:Output id="O"/>"#;
    // The valid forms of what is refused below.
    let sync = r#"mode="sync" response="document""#;
    let valid = [
        (sync, out.to_owned()),
        (r#"mode="async" response="raw""#, out.to_owned()),
        (
            sync,
            r#"<wps:Input id="N"><wps:Data>1</wps:Data></wps:Input>"#.to_owned(),
        ),
        (
            sync,
            r#"<wps:Input id="R"><wps:Reference xlink:href="http://a/b"/></wps:Input>"#.to_owned(),
        ),
        (
            sync,
            r#"<wps:Output id="O" transmission="reference"/>"#.to_owned(),
        ),
        (
            sync,
            r#"<wps:Input id="Z"><wps:Data encoding="base64">aGVsbG8=</wps:Data></wps:Input>"#
                .to_owned(),
        ),
    ];
    for (attrs, inner) in valid {
        let e = execute(exec(attrs, &inner).unwrap_or_else(|e| panic!("{attrs} {inner}: {e}")));
        assert_eq!(e.request.process_id, "p");
    }
    fails(
        exec(r#"response="document""#, out),
        OwsCode::MissingParameterValue,
        Some("mode"),
        "missing parameter mode",
    );
    fails(
        exec(r#"mode="later" response="document""#, out),
        OwsCode::InvalidParameterValue,
        Some("mode"),
        r#"mode must be sync, async or auto, not "later""#,
    );
    fails(
        exec(r#"mode="sync" response="pdf""#, out),
        OwsCode::InvalidParameterValue,
        Some("response"),
        r#"response must be document or raw, not "pdf""#,
    );
    let two = r#"<wps:Output id="A"/><wps:Output id="B"/>"#;
    fails(
        exec(r#"mode="sync" response="raw""#, two),
        OwsCode::InvalidParameterValue,
        Some("response"),
        "response=raw needs exactly one wps:Output, got 2",
    );
    fails(
        exec(r#"mode="sync" response="raw""#, ""),
        OwsCode::InvalidParameterValue,
        Some("response"),
        "response=raw needs exactly one wps:Output, got 0",
    );
    let nested =
        r#"<wps:Input id="N"><wps:Input id="M"><wps:Data>1</wps:Data></wps:Input></wps:Input>"#;
    fails(
        exec(r#"mode="sync" response="document""#, nested),
        OwsCode::OptionNotSupported,
        Some("N"),
        "N: nested inputs are not supported",
    );
    let body = r#"<wps:Input id="R"><wps:Reference xlink:href="http://a/b"><wps:Body>x</wps:Body></wps:Reference></wps:Input>"#;
    fails(
        exec(r#"mode="sync" response="document""#, body),
        OwsCode::OptionNotSupported,
        Some("R"),
        "R: references with a Body are not supported",
    );
    let no_id = r#"<wps:Input><wps:Data>1</wps:Data></wps:Input>"#;
    fails(
        exec(r#"mode="sync" response="document""#, no_id),
        OwsCode::MissingParameterValue,
        Some("Input"),
        "missing parameter Input",
    );
    let bad_transmission = r#"<wps:Output id="O" transmission="pigeon"/>"#;
    fails(
        exec(r#"mode="sync" response="document""#, bad_transmission),
        OwsCode::InvalidParameterValue,
        Some("O"),
        r#"O: transmission must be value or reference, not "pigeon""#,
    );
    let base64_garbage =
        r#"<wps:Input id="Z"><wps:Data encoding="base64">not*base64!</wps:Data></wps:Input>"#;
    fails(
        exec(r#"mode="sync" response="document""#, base64_garbage),
        OwsCode::InvalidParameterValue,
        Some("Z"),
        "Z: the value is not valid base64",
    );
}

#[test]
fn xml_errors_have_codes_and_locators() {
    // The valid forms of what is refused below.
    let good = r#"<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0"><ows:Identifier>a</ows:Identifier></wps:DescribeProcess>"#;
    assert!(matches!(
        parse_xml(good.as_bytes()).unwrap(),
        WpsRequest::DescribeProcess { .. }
    ));
    let status = format!(r#"<wps:GetStatus {V2}><wps:JobID>x</wps:JobID></wps:GetStatus>"#);
    assert!(matches!(
        parse_xml(status.as_bytes()).unwrap(),
        WpsRequest::GetStatus { .. }
    ));
    let longest = "x".repeat(256);
    let body = format!(
        r#"<wps:DescribeProcess {V2}><ows:Identifier>{longest}</ows:Identifier></wps:DescribeProcess>"#
    );
    assert!(parse_xml(body.as_bytes()).is_ok());
    // unknown operation
    let body = format!(r#"<wps:Frobnicate {V2}/>"#);
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::OperationNotSupported,
        Some("request"),
        r#"operation "Frobnicate" is not supported in WPS 2.0.0"#,
    );
    let body = format!(r#"<wps:GetStatus {V1}><wps:JobID>x</wps:JobID></wps:GetStatus>"#);
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::OperationNotSupported,
        Some("request"),
        r#"operation "GetStatus" is not supported in WPS 1.0.0"#,
    );
    // not WPS at all
    fails(
        parse_xml(b"<Execute service=\"WPS\"/>"),
        OwsCode::InvalidParameterValue,
        Some("request"),
        r#"<Execute> in namespace "" is not a WPS request"#,
    );
    // service
    let body = r#"<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" version="1.0.0"><ows:Identifier>a</ows:Identifier></wps:DescribeProcess>"#;
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("service"),
        "missing parameter service",
    );
    fails(
        parse_xml(
            body.replace("version=", "service=\"WMS\" version=")
                .as_bytes(),
        ),
        OwsCode::InvalidParameterValue,
        Some("service"),
        r#"service must be WPS, not "WMS""#,
    );
    // version against namespace, and unknown versions
    let body = body.replace("version=\"1.0.0\"", "service=\"WPS\" version=\"2.0.0\"");
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("version"),
        "version 2.0.0 does not match the namespace http://www.opengis.net/wps/1.0.0",
    );
    fails(
        parse_xml(body.replace("2.0.0", "0.4").as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("version"),
        r#"version "0.4" is not supported; use 1.0.0 or 2.0.0"#,
    );
    // identifiers and job ids
    let body = format!(r#"<wps:DescribeProcess {V2}/>"#);
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("identifier"),
        "missing parameter identifier",
    );
    let body = format!(r#"<wps:Execute {V1}><wps:DataInputs/></wps:Execute>"#);
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("identifier"),
        "missing parameter identifier",
    );
    let body = format!(r#"<wps:GetResult {V2}/>"#);
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("jobId"),
        "missing parameter jobId",
    );
    let long = "x".repeat(300);
    let body = format!(
        r#"<wps:DescribeProcess {V2}><ows:Identifier>{long}</ows:Identifier></wps:DescribeProcess>"#
    );
    fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("identifier"),
        "identifier is longer than 256 characters",
    );
}

#[test]
fn v1_execute_errors() {
    // The valid forms of what is refused below.
    for inputs in [
        r#"<wps:Input><ows:Identifier>IN</ows:Identifier><wps:Reference xlink:href="http://a/b" method="GET"/></wps:Input>"#.to_owned(),
        v1_input("IMG", r#"<wps:ComplexData encoding="base64">aGVsbG8=</wps:ComplexData>"#),
        v1_input("IN", "<wps:LiteralData>1</wps:LiteralData>"),
        v1_input(
            "B",
            r#"<wps:BoundingBoxData><ows:LowerCorner>1 2</ows:LowerCorner><ows:UpperCorner>3 4</ows:UpperCorner></wps:BoundingBoxData>"#,
        ),
        v1_input("A", "<wps:LiteralData>1</wps:LiteralData>").repeat(1000),
    ] {
        let e = execute(parse_xml(v1_execute(&inputs).as_bytes()).unwrap_or_else(|e| panic!("{inputs}: {e}")));
        assert!(!e.request.inputs.is_empty());
    }
    let stored = format!(
        r#"<wps:Execute {V1}><ows:Identifier>p</ows:Identifier><wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true"/></wps:ResponseForm></wps:Execute>"#
    );
    assert_eq!(
        execute(parse_xml(stored.as_bytes()).unwrap()).response,
        document(false, true, true)
    );
    let post = v1_execute(
        r#"<wps:Input><ows:Identifier>IN</ows:Identifier><wps:Reference xlink:href="http://a/b" method="POST"/></wps:Input>"#,
    );
    fails(
        parse_xml(post.as_bytes()),
        OwsCode::OptionNotSupported,
        Some("IN"),
        r#"IN: reference method "POST" is not supported; inputs are fetched with GET"#,
    );
    let body_ref = v1_execute(
        r#"<wps:Input><ows:Identifier>IN</ows:Identifier><wps:Reference xlink:href="http://a/b"><wps:BodyReference xlink:href="http://c"/></wps:Reference></wps:Input>"#,
    );
    fails(
        parse_xml(body_ref.as_bytes()),
        OwsCode::OptionNotSupported,
        Some("IN"),
        "IN: references with a BodyReference are not supported",
    );
    let garbage = v1_execute(&v1_input(
        "IMG",
        r#"<wps:ComplexData encoding="base64">@@not base64@@</wps:ComplexData>"#,
    ));
    let err = fails(
        parse_xml(garbage.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("IMG"),
        "IMG: the value is not valid base64",
    );
    assert!(err.text.contains("base64"));
    let no_href =
        v1_execute(r#"<wps:Input><ows:Identifier>IN</ows:Identifier><wps:Reference/></wps:Input>"#);
    fails(
        parse_xml(no_href.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("IN"),
        "IN: reference without href",
    );
    let empty_data = v1_execute(&v1_input("IN", ""));
    fails(
        parse_xml(empty_data.as_bytes()),
        OwsCode::MissingParameterValue,
        Some("IN"),
        "IN: wps:Data needs wps:LiteralData, wps:ComplexData or wps:BoundingBoxData",
    );
    let bad_bbox = v1_execute(&v1_input(
        "B",
        r#"<wps:BoundingBoxData><ows:LowerCorner>1 2 3</ows:LowerCorner><ows:UpperCorner>1 x</ows:UpperCorner></wps:BoundingBoxData>"#,
    ));
    fails(
        parse_xml(bad_bbox.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("B"),
        r#"B: "x" is not a coordinate"#,
    );
    let status_alone = format!(
        r#"<wps:Execute {V1}><ows:Identifier>p</ows:Identifier><wps:ResponseForm><wps:ResponseDocument status="true"/></wps:ResponseForm></wps:Execute>"#
    );
    fails(
        parse_xml(status_alone.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("status"),
        "status=true requires storeExecuteResponse=true",
    );
    let too_many = v1_execute(&v1_input("A", "<wps:LiteralData>1</wps:LiteralData>").repeat(1001));
    fails(
        parse_xml(too_many.as_bytes()),
        OwsCode::InvalidParameterValue,
        Some("DataInputs"),
        "DataInputs: more than 1000 items",
    );
}

#[test]
fn doctype_xxe_is_refused_before_parsing() {
    let body = format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<wps:Execute {V1}><ows:Identifier>&xxe;</ows:Identifier></wps:Execute>"#
    );
    let err = fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        None,
        "DTDs and entity declarations are not accepted",
    );
    assert!(
        err.text
            .contains("DTDs and entity declarations are not accepted"),
        "{err}"
    );
    assert!(!err.text.contains("root:"), "nothing of /etc/passwd leaks");
    // The same request without the DTD is understood.
    let body = format!(
        r#"<?xml version="1.0"?>
<wps:Execute {V1}><ows:Identifier>native:buffer</ows:Identifier></wps:Execute>"#
    );
    assert_eq!(
        execute(parse_xml(body.as_bytes()).unwrap())
            .request
            .process_id,
        "native:buffer"
    );
}

#[test]
fn billion_laughs_is_refused_before_parsing() {
    let mut body =
        String::from("<?xml version=\"1.0\"?>\n<!doctype lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        body.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    body.push_str("]>\n<lolz>&lol9;</lolz>");
    let err = fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        None,
        "DTDs and entity declarations are not accepted",
    );
    assert!(err.text.contains("DTDs"), "{err}");
    // Without a DTD an entity reference is simply undefined.
    let body = format!(
        r#"<wps:DescribeProcess {V2}><ows:Identifier>&lol9;</ows:Identifier></wps:DescribeProcess>"#
    );
    let err = fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        None,
        "undefined entity &lol9;",
    );
    assert!(err.text.contains("undefined entity"), "{err}");
    // The same request with plain text, and with a predefined entity, is understood.
    for (text, id) in [("lol9", "lol9"), ("lol&amp;9", "lol&9")] {
        let body = format!(
            r#"<?xml version="1.0"?>
<wps:DescribeProcess {V2}><ows:Identifier>{text}</ows:Identifier></wps:DescribeProcess>"#
        );
        match parse_xml(body.as_bytes()).unwrap() {
            WpsRequest::DescribeProcess { identifiers, .. } => assert_eq!(identifiers, [id]),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn malformed_xml_names_the_position() {
    let body = format!(
        "<wps:DescribeProcess {V2}>\n  <ows:Identifier>a</ows:Ident>\n</wps:DescribeProcess>"
    );
    let err = fails(
        parse_xml(body.as_bytes()),
        OwsCode::InvalidParameterValue,
        None,
        "malformed XML at line 2",
    );
    assert!(err.text.starts_with("malformed XML at line 2"), "{err}");
    // Closed properly, the same request is understood.
    let fixed = body.replace("</ows:Ident>", "</ows:Identifier>");
    assert!(matches!(
        parse_xml(fixed.as_bytes()).unwrap(),
        WpsRequest::DescribeProcess { .. }
    ));
    for (body, reason) in [
        ("", "empty XML request body"),
        (
            "not xml",
            "malformed XML at line 1, column 1: text outside the root element",
        ),
        (
            "<a",
            "malformed XML at line 1, column 1: syntax error: tag not closed",
        ),
        (
            "<wps:Execute",
            "malformed XML at line 1, column 1: syntax error: tag not closed",
        ),
        (
            "<a><b></a>",
            "malformed XML at line 1, column 7: ill-formed document: expected `</b>`, but `</a>` was found",
        ),
    ] {
        fails(
            parse_xml(body.as_bytes()),
            OwsCode::InvalidParameterValue,
            None,
            reason,
        );
    }
    let deep = format!(
        "<wps:DescribeProcess {V2}>{}{}</wps:DescribeProcess>",
        "<x>".repeat(200),
        "</x>".repeat(200)
    );
    let err = fails(
        parse_xml(deep.as_bytes()),
        OwsCode::InvalidParameterValue,
        None,
        "elements nested deeper than 100 levels",
    );
    assert!(err.text.contains("deeper"), "{err}");
}

// ---- KVP ----

#[test]
fn kvp_get_capabilities() {
    assert_eq!(
        parse_kvp("service=WPS&request=GetCapabilities").unwrap(),
        WpsRequest::GetCapabilities {
            accept_versions: vec![]
        }
    );
    assert_eq!(
        parse_kvp("?SERVICE=wps&REQUEST=getcapabilities&AcceptVersions=2.0.0,%201.0.0").unwrap(),
        WpsRequest::GetCapabilities {
            accept_versions: vec!["2.0.0".into(), "1.0.0".into()]
        }
    );
    // OWSLib sends version=1.0.0 with GetCapabilities.
    assert_eq!(
        parse_kvp("service=WPS&request=GetCapabilities&version=1.0.0").unwrap(),
        WpsRequest::GetCapabilities {
            accept_versions: vec!["1.0.0".into()]
        }
    );
}

#[test]
fn kvp_describe_process() {
    assert_eq!(
        parse_kvp("service=WPS&version=1.0.0&request=DescribeProcess&identifier=native:buffer,native%3Acentroids").unwrap(),
        WpsRequest::DescribeProcess {
            version: Version::V100,
            identifiers: vec!["native:buffer".into(), "native:centroids".into()]
        }
    );
    assert_eq!(
        parse_kvp("service=WPS&version=1.0.0&request=DescribeProcess&identifier=ALL").unwrap(),
        WpsRequest::DescribeProcess {
            version: Version::V100,
            identifiers: vec!["ALL".into()]
        }
    );
    assert_eq!(
        parse_kvp(
            "service=WPS&version=2.0.0&request=DescribeProcess&Identifier=gdal:warpreproject"
        )
        .unwrap(),
        WpsRequest::DescribeProcess {
            version: Version::V200,
            identifiers: vec!["gdal:warpreproject".into()]
        }
    );
}

#[test]
fn kvp_job_operations() {
    let version = Version::V200;
    let job_id = "FB6DD4B0-A2BB-11E3-A5E2-0800200C9A66".to_owned();
    let q = |op: &str| {
        parse_kvp(&format!(
            "service=WPS&version=2.0.0&request={op}&jobId={job_id}"
        ))
    };
    assert_eq!(
        q("GetStatus").unwrap(),
        WpsRequest::GetStatus {
            version,
            job_id: job_id.clone()
        }
    );
    assert_eq!(
        q("GetResult").unwrap(),
        WpsRequest::GetResult {
            version,
            job_id: job_id.clone()
        }
    );
    assert_eq!(
        q("Dismiss").unwrap(),
        WpsRequest::Dismiss {
            version,
            job_id: job_id.clone()
        }
    );
    // 1.0.0 status locations are served as GetStatus.
    assert_eq!(
        parse_kvp("service=WPS&version=1.0.0&request=GetStatus&JOBID=j1").unwrap(),
        WpsRequest::GetStatus {
            version: Version::V100,
            job_id: "j1".into()
        }
    );
    fails(
        parse_kvp("service=WPS&version=1.0.0&request=Dismiss&jobId=j1"),
        OwsCode::OperationNotSupported,
        Some("request"),
        "Dismiss is a WPS 2.0.0 operation",
    );
    fails(
        parse_kvp("service=WPS&version=2.0.0&request=GetStatus"),
        OwsCode::MissingParameterValue,
        Some("jobId"),
        "missing parameter jobId",
    );
}

#[test]
fn kvp_execute_example_queries() {
    // The GET forms given in the comments of the 1.0.0 examples.
    let e = execute(
        parse_kvp("Service=WPS&Version=1.0.0&Language=en-CA&Request=Execute&Identifier=Buffer&DataInputs=[InputPolygon=@xlink:href=http%3A%2F%2Ffoo.bar%2Fsome_WFS_request.xml;BufferDistance=400]&RawDataOutput=[BufferedPolygon]").unwrap(),
    );
    assert_eq!(e.request.process_id, "Buffer");
    assert_eq!(
        href(reference(value(&e, "InputPolygon"))),
        "http://foo.bar/some_WFS_request.xml"
    );
    assert_eq!(literal(value(&e, "BufferDistance")).value, "400");
    assert_eq!(
        e.response,
        ResponseForm::Raw {
            output: "BufferedPolygon".into()
        }
    );
    assert_eq!(e.mode, Mode::Sync);

    let e = execute(
        parse_kvp("Service=WPS&Version=1.0.0&Request=Execute&Identifier=Buffer&DataInputs=[InputPolygon=@xlink:href=http%3A%2F%2Ffoo.bar%2Fsome_WFS_request.xml@mimeType=text/xml@encoding=UTF-8@schema=http%3A%2F%2Ffoo.bar%2Fgml_polygon_schema.xsd;BufferDistance=400@uom=feet]&ResponseDocument=[BufferedPolygon=@asReference=true]&storeExecuteResponse=true&lineage=true&status=true").unwrap(),
    );
    let r = reference(value(&e, "InputPolygon"));
    assert_eq!(
        r.format.as_ref().unwrap().schema,
        "http://foo.bar/gml_polygon_schema.xsd"
    );
    assert_eq!(literal(value(&e, "BufferDistance")).uom, "feet");
    assert_eq!(e.response, document(true, true, true));
    assert_eq!(e.mode, Mode::Async);
    assert_eq!(
        e.request.outputs,
        vec![process::OutputRequest {
            id: "BufferedPolygon".into(),
            format: None,
            as_reference: true
        }]
    );

    // the same with method=POST, as example 52 has it
    let q = "service=WPS&version=1.0.0&request=Execute&identifier=Buffer&DataInputs=InputPolygon=@xlink:href=http://a/b@method=POST";
    fails(
        parse_kvp(q),
        OwsCode::OptionNotSupported,
        Some("InputPolygon"),
        r#"InputPolygon: reference method "POST" is not supported; inputs are fetched with GET"#,
    );
}

#[test]
fn kvp_execute_value_kinds_and_outputs() {
    let q = "service=WPS&version=1.0.0&request=Execute&identifier=native:buffer\
        &DataInputs=INPUT=@xlink:href=http://localhost:9000/api/file/retrieve/ab.geojson;DISTANCE=0.5@dataType=xs:double;EXTENT=1,2,3,4,EPSG:4326;GEOM={\"type\":\"Point\"}@mimeType=application/geo+json;BIN=aGk%3D@mimeType=application/octet-stream@encoding=base64\
        &ResponseDocument=OUTPUT@asReference=true@mimeType=application/geo+json;OTHER&lineage=true";
    let e = execute(parse_kvp(q).unwrap());
    assert_eq!(e.request.process_id, "native:buffer");
    assert_eq!(e.request.inputs.len(), 5);
    assert_eq!(
        href(reference(value(&e, "INPUT"))),
        "http://localhost:9000/api/file/retrieve/ab.geojson"
    );
    assert_eq!(
        literal(value(&e, "DISTANCE")).data_type,
        Some(process::DataType::Double)
    );
    assert_eq!(literal(value(&e, "EXTENT")).value, "1,2,3,4,EPSG:4326");
    let geom = complex(value(&e, "GEOM"));
    assert_eq!(
        (
            &geom.data[..],
            geom.format.as_ref().unwrap().mime_type.as_str()
        ),
        (&br#"{"type":"Point"}"#[..], "application/geo+json")
    );
    assert_eq!(&complex(value(&e, "BIN")).data[..], b"hi");
    assert_eq!(e.response, document(true, false, false));
    assert_eq!(e.mode, Mode::Sync);
    let outputs: Vec<(&str, bool, Option<&str>)> = e
        .request
        .outputs
        .iter()
        .map(|o| {
            (
                o.id.as_str(),
                o.as_reference,
                o.format.as_ref().map(|f| f.mime_type.as_str()),
            )
        })
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("OUTPUT", true, Some("application/geo+json")),
            ("OTHER", false, None)
        ]
    );

    // the bounding box, once the description is known
    let description = wire::ProcessDescription {
        inputs: vec![wire::InputDescription {
            id: "EXTENT".into(),
            kind: Some(wire::input_description::Kind::BoundingBox(
                Default::default(),
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut request = e.request;
    resolve_bboxes(&mut request, &description).unwrap();
    let extent = request.inputs.iter().find(|i| i.id == "EXTENT").unwrap();
    let b = bbox(&extent.value);
    assert_eq!(
        (b.crs.as_str(), &b.upper[..]),
        ("EPSG:4326", &[3.0, 4.0][..])
    );
}

#[test]
fn kvp_execute_fully_encoded_lists() {
    // a client that percent-encodes the whole DataInputs value (separators included)
    let q = "service=WPS&version=1.0.0&request=Execute&identifier=p&DataInputs=A%3Dx%253By%3BB%3D%40xlink%3Ahref%3Dhttp%3A%2F%2Fh%2Fq%3Fa%3D1";
    let e = execute(parse_kvp(q).unwrap());
    assert_eq!(literal(value(&e, "A")).value, "x;y");
    assert_eq!(href(reference(value(&e, "B"))), "http://h/q?a=1");
}

#[test]
fn kvp_errors_have_codes_and_locators() {
    // The valid forms of what is refused below.
    let ok = |query: &str| {
        parse_kvp(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    };
    ok("service=WPS&request=GetCapabilities");
    ok("service=wps&request=GetCapabilities&version=1.0.0");
    ok("service=WPS&request=DescribeProcess&version=1.0.0&identifier=a,b");
    let base = "service=WPS&request=Execute&version=1.0.0&identifier=p";
    for rest in [
        "DataInputs=IMG=aGVsbG8=@mimeType=image/png@encoding=base64",
        "DataInputs=A=1@uom=m",
        "DataInputs=A=@xlink:href=http://a",
        "status=true&storeExecuteResponse=true",
        "lineage=true",
        "RawDataOutput=A",
        "ResponseDocument=A@asReference=true;B",
    ] {
        ok(&format!("{base}&{rest}"));
    }
    let most = (0..1000)
        .map(|i| format!("I{i}=1"))
        .collect::<Vec<_>>()
        .join(";");
    ok(&format!("{base}&DataInputs={most}"));
    ok(&format!(
        "service=WPS&request=Execute&version=1.0.0&identifier={}",
        "x".repeat(256)
    ));
    fails(
        parse_kvp("request=GetCapabilities"),
        OwsCode::MissingParameterValue,
        Some("service"),
        "missing parameter service",
    );
    fails(
        parse_kvp("service=WMS&request=GetCapabilities"),
        OwsCode::InvalidParameterValue,
        Some("service"),
        r#"service must be WPS, not "WMS""#,
    );
    fails(
        parse_kvp("service=WPS"),
        OwsCode::MissingParameterValue,
        Some("request"),
        "missing parameter request",
    );
    fails(
        parse_kvp("service=WPS&request="),
        OwsCode::MissingParameterValue,
        Some("request"),
        "missing parameter request",
    );
    fails(
        parse_kvp("service=WPS&request=Frobnicate&version=1.0.0"),
        OwsCode::OperationNotSupported,
        Some("request"),
        r#"unknown operation "Frobnicate""#,
    );
    fails(
        parse_kvp("service=WPS&request=DescribeProcess&identifier=a"),
        OwsCode::MissingParameterValue,
        Some("version"),
        "missing parameter version",
    );
    fails(
        parse_kvp("service=WPS&request=DescribeProcess&version=3.0.0&identifier=a"),
        OwsCode::InvalidParameterValue,
        Some("version"),
        r#"version "3.0.0" is not supported; use 1.0.0 or 2.0.0"#,
    );
    fails(
        parse_kvp("service=WPS&request=DescribeProcess&version=1.0.0"),
        OwsCode::MissingParameterValue,
        Some("identifier"),
        "missing parameter identifier",
    );
    fails(
        parse_kvp("service=WPS&request=DescribeProcess&version=1.0.0&identifier=,"),
        OwsCode::MissingParameterValue,
        Some("identifier"),
        "missing parameter identifier",
    );
    fails(
        parse_kvp("service=WPS&request=Execute&version=1.0.0"),
        OwsCode::MissingParameterValue,
        Some("identifier"),
        "missing parameter identifier",
    );
    let err = fails(
        parse_kvp("service=WPS&request=Execute&version=2.0.0&identifier=p"),
        OwsCode::OptionNotSupported,
        Some("request"),
        "WPS 2.0.0 Execute is only accepted as an XML document sent with POST",
    );
    assert!(err.text.contains("POST"), "{err}");
    let base = "service=WPS&request=Execute&version=1.0.0&identifier=p";
    let q = |rest: &str| parse_kvp(&format!("{base}&{rest}"));
    fails(
        q("DataInputs=IMG=%25%25@mimeType=image/png@encoding=base64"),
        OwsCode::InvalidParameterValue,
        Some("IMG"),
        "IMG: the value is not valid base64",
    );
    fails(
        q("DataInputs=A=1@colour=red"),
        OwsCode::InvalidParameterValue,
        Some("A"),
        "A: unknown attribute @colour",
    );
    fails(
        q("DataInputs=A=1@xlink:href=http://a"),
        OwsCode::InvalidParameterValue,
        Some("A"),
        "A: give either a value or @xlink:href, not both",
    );
    fails(
        q("status=true"),
        OwsCode::InvalidParameterValue,
        Some("status"),
        "status=true requires storeExecuteResponse=true",
    );
    fails(
        q("lineage=maybe"),
        OwsCode::InvalidParameterValue,
        Some("lineage"),
        r#"lineage must be true or false, not "maybe""#,
    );
    fails(
        q("RawDataOutput=A;B"),
        OwsCode::InvalidParameterValue,
        Some("RawDataOutput"),
        "RawDataOutput names exactly one output, got 2",
    );
    fails(
        q("RawDataOutput=A&ResponseDocument=B"),
        OwsCode::InvalidParameterValue,
        Some("RawDataOutput"),
        "ResponseDocument and RawDataOutput cannot be given together",
    );
    fails(
        q("ResponseDocument=A@asReference=perhaps"),
        OwsCode::InvalidParameterValue,
        Some("A"),
        r#"A must be true or false, not "perhaps""#,
    );
    let many = (0..1001)
        .map(|i| format!("I{i}=1"))
        .collect::<Vec<_>>()
        .join(";");
    fails(
        q(&format!("DataInputs={many}")),
        OwsCode::InvalidParameterValue,
        Some("DataInputs"),
        "DataInputs: more than 1000 items",
    );
    let long = "x".repeat(257);
    fails(
        parse_kvp(&format!(
            "service=WPS&request=Execute&version=1.0.0&identifier={long}"
        )),
        OwsCode::InvalidParameterValue,
        Some("identifier"),
        "identifier is longer than 256 characters",
    );
    fails(
        parse_kvp("service=WPS&service=WPS&request=GetCapabilities"),
        OwsCode::InvalidParameterValue,
        Some("service"),
        "parameter service is given more than once",
    );
}

#[test]
fn truncated_and_corrupted_examples_never_panic() {
    for dir in ["wps-1.0.0", "wps-2.0"] {
        for entry in std::fs::read_dir(examples().join(dir)).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            for cut in (0..body.len()).step_by(3) {
                let _ = parse_xml(&body[..cut]);
                let mut corrupted = body.clone();
                corrupted[cut] = b"<>&\"/x"[cut % 6];
                let _ = parse_xml(&corrupted);
            }
        }
    }
}
