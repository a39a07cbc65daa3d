//! Every XML document the edge writes, for WPS 1.0.0 and 2.0, validated against the official
//! schemas with `../shared/schemas/validate` (xmllint, offline), plus checks of key contents.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wire::{input, input_description::Kind as In, output, output_description::Kind as Out};
use wpsmesh_edge::ows::{OwsCode, OwsError};
use wpsmesh_edge::wps::{Service, v1, v2};
use wpsmesh_proto::process;
use wpsmesh_proto::wire::process::v1 as wire;

/// The public URL stored outputs are served under.
const PUBLIC_URL: &str = "http://localhost:9000";

const NASTY: &str =
    "Buffers <features> & \"quotes\" 'apostrophes' in Zürich — ÅÄÖ ✓ 🌍\u{1}\u{7}\u{b}";

const ALL_CODES: [OwsCode; 11] = [
    OwsCode::MissingParameterValue,
    OwsCode::InvalidParameterValue,
    OwsCode::NoApplicableCode,
    OwsCode::OperationNotSupported,
    OwsCode::OptionNotSupported,
    OwsCode::VersionNegotiationFailed,
    OwsCode::ServerBusy,
    OwsCode::FileSizeExceeded,
    OwsCode::NoSuchProcess,
    OwsCode::NoSuchJob,
    OwsCode::ResultNotReady,
];

/// Documents written to a temporary folder (kept under `$WPSMESH_DOCS_DIR/<test>` when that is
/// set, to look at them), validated together.
struct Docs {
    _dir: tempfile::TempDir,
    path: PathBuf,
    files: Vec<PathBuf>,
}

impl Docs {
    fn new(test: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = std::env::var_os("WPSMESH_DOCS_DIR").map_or_else(
            || dir.path().to_owned(),
            |keep| PathBuf::from(keep).join(test),
        );
        std::fs::create_dir_all(&path).expect("documents dir");
        Self {
            _dir: dir,
            path,
            files: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, doc: &str) {
        let path = self.path.join(format!("{name}.xml"));
        std::fs::write(&path, doc).expect("write document");
        self.files.push(path);
    }

    /// Runs `../shared/schemas/validate` (or `$WPSMESH_SCHEMAS/validate`) on every document.
    fn run_validator(&self, version: &str) -> std::process::Output {
        let validate = std::env::var("WPSMESH_SCHEMAS").map_or_else(
            |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas/validate"),
            |dir| PathBuf::from(dir).join("validate"),
        );
        Command::new("bash")
            .arg(&validate)
            .arg(version)
            .args(&self.files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", validate.display()))
    }

    /// Validates every document; fails with xmllint's output and the failing documents.
    fn validate(&self, version: &str) {
        let out = self.run_validator(version);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            for file in &self.files {
                let name = file.display().to_string();
                if stderr.contains(&format!("{name}:")) || stderr.contains(&format!("{name} fails"))
                {
                    let doc = std::fs::read_to_string(file).unwrap_or_default();
                    eprintln!("---- {name}\n{doc}\n");
                }
            }
            panic!(
                "{} documents fail WPS {version} validation:\n{stderr}",
                self.files.len()
            );
        }
        assert_eq!(
            stderr.matches(" validates").count(),
            self.files.len(),
            "{stderr}"
        );
    }
}

fn service() -> Service {
    Service {
        title: format!("wpsmesh {NASTY}"),
        abstract_text: NASTY.to_owned(),
        keywords: vec!["WPS".to_owned(), "<QGIS>".to_owned()],
        provider_name: "wpsmesh & friends".to_owned(),
        provider_site: "https://example.org/wpsmesh?a=1&b=2".to_owned(),
        contact_name: "Zoë Müller".to_owned(),
        contact_email: "wps@example.org".to_owned(),
        url: "http://localhost:9000/api/wps".to_owned(),
    }
}

fn fmt(mime: &str, ext: &str) -> wire::Format {
    wire::Format {
        mime_type: mime.to_owned(),
        extension: ext.to_owned(),
        ..Default::default()
    }
}

fn vector_formats() -> Vec<wire::Format> {
    vec![
        fmt("application/geo+json", "geojson"),
        fmt("application/zip", "zip"),
        fmt("application/geopackage+sqlite3", "gpkg"),
        wire::Format {
            schema: "http://schemas.opengis.net/gml/3.2.1/feature.xsd".into(),
            ..fmt("application/gml+xml", "gml")
        },
        wire::Format {
            encoding: "UTF-8".into(),
            ..fmt("application/vnd.google-earth.kml+xml", "kml")
        },
    ]
}

fn literal(
    id: &str,
    data_type: wire::LiteralType,
    f: impl FnOnce(&mut wire::LiteralInputDescription),
) -> wire::InputDescription {
    let mut literal = wire::LiteralInputDescription {
        data_type: data_type as i32,
        role: wire::LiteralRole::Plain as i32,
        ..Default::default()
    };
    f(&mut literal);
    wire::InputDescription {
        id: id.into(),
        title: format!("{id} title"),
        min_occurs: 0,
        max_occurs: 1,
        kind: Some(In::Literal(literal)),
        ..Default::default()
    }
}

fn buffer_summary() -> wire::ProcessSummary {
    wire::ProcessSummary {
        id: "native:buffer".into(),
        title: "Buffer".into(),
        description: NASTY.into(),
        version: "3.22.16".into(),
        provider: "native".into(),
        async_supported: true,
    }
}

fn buffer() -> wire::ProcessDescription {
    let complex = |formats, mb| wire::ComplexDescription {
        formats,
        maximum_megabytes: mb,
    };
    let inputs = vec![
        wire::InputDescription {
            id: "INPUT".into(),
            title: "Input layer".into(),
            description: NASTY.into(),
            min_occurs: 1,
            max_occurs: 1,
            kind: Some(In::Complex(complex(vector_formats(), 100))),
        },
        literal("DISTANCE", wire::LiteralType::Double, |l| {
            l.default_value = Some("10".into());
            l.uom = "meters".into();
        }),
        literal("SEGMENTS", wire::LiteralType::Integer, |l| {
            l.default_value = Some("5".into());
            l.minimum = Some(1.0);
        }),
        literal("END_CAP_STYLE", wire::LiteralType::String, |l| {
            l.role = wire::LiteralRole::Enum as i32;
            l.allowed_values = vec!["Round".into(), "Flat".into(), "Square".into()];
            l.default_value = Some("Round".into());
        }),
        literal("MITER_LIMIT", wire::LiteralType::Double, |l| {
            l.minimum = Some(1.0);
            l.maximum = Some(f64::INFINITY);
            l.uom = "map units".into();
        }),
        literal("DISSOLVE", wire::LiteralType::Boolean, |l| {
            l.default_value = Some("false".into())
        }),
        literal("TARGET_CRS", wire::LiteralType::String, |l| {
            l.role = wire::LiteralRole::Crs as i32;
            l.default_value = Some("EPSG:4326".into());
        }),
        literal("EXPRESSION", wire::LiteralType::Unspecified, |l| {
            l.default_value = Some("\"name\" < 'x' & 1".into())
        }),
        wire::InputDescription {
            id: "EXTENT".into(),
            title: "Extent".into(),
            min_occurs: 0,
            max_occurs: 1,
            kind: Some(In::BoundingBox(wire::BoundingBoxDescription {
                crs: vec!["EPSG:4326".into(), "EPSG:3857".into()],
            })),
            ..Default::default()
        },
        wire::InputDescription {
            id: "LAYERS".into(),
            title: String::new(),
            min_occurs: 0,
            max_occurs: u32::MAX,
            kind: Some(In::Complex(complex(
                vec![fmt("application/octet-stream", "")],
                0,
            ))),
            ..Default::default()
        },
        wire::InputDescription {
            id: "ODD".into(),
            title: "No kind, odd formats".into(),
            min_occurs: 0,
            max_occurs: 0,
            kind: None,
            ..Default::default()
        },
        wire::InputDescription {
            id: "NOFORMAT".into(),
            title: "Empty formats".into(),
            min_occurs: 0,
            max_occurs: 3,
            kind: Some(In::Complex(complex(
                vec![fmt("", "bin"), fmt("weird", "w")],
                0,
            ))),
            ..Default::default()
        },
    ];
    let outputs = vec![
        wire::OutputDescription {
            id: "OUTPUT".into(),
            title: "Buffered".into(),
            description: NASTY.into(),
            kind: Some(Out::Complex(complex(vector_formats(), 0))),
        },
        wire::OutputDescription {
            id: "FEATURE_COUNT".into(),
            title: "Feature count".into(),
            description: String::new(),
            kind: Some(Out::Literal(wire::LiteralOutputDescription {
                data_type: wire::LiteralType::Integer as i32,
                uom: String::new(),
            })),
        },
        wire::OutputDescription {
            id: "LENGTH".into(),
            title: "Length".into(),
            description: String::new(),
            kind: Some(Out::Literal(wire::LiteralOutputDescription {
                data_type: wire::LiteralType::Double as i32,
                uom: "meters".into(),
            })),
        },
        wire::OutputDescription {
            id: "BOUNDS".into(),
            title: "Bounds".into(),
            description: String::new(),
            kind: Some(Out::BoundingBox(wire::BoundingBoxDescription {
                crs: vec![],
            })),
        },
        wire::OutputDescription {
            id: "GML".into(),
            title: String::new(),
            description: String::new(),
            kind: None,
        },
    ];
    wire::ProcessDescription {
        summary: Some(buffer_summary()),
        inputs,
        outputs,
    }
}

/// A process with no inputs, no version, no title, not asynchronous.
fn bare() -> wire::ProcessDescription {
    let summary = wire::ProcessSummary {
        id: "qgis:bare".into(),
        version: String::new(),
        ..Default::default()
    };
    let outputs = vec![wire::OutputDescription {
        id: "RESULT".into(),
        kind: Some(Out::Complex(wire::ComplexDescription::default())),
        ..Default::default()
    }];
    wire::ProcessDescription {
        summary: Some(summary),
        inputs: vec![],
        outputs,
    }
}

const GML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gml:FeatureCollection xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:ogr="http://ogr.maptools.org/" gml:id="c1"><!-- a comment --><gml:featureMember><ogr:buffer gml:id="b.1"><ogr:name>Z&#252;rich &amp; &lt;co&gt;</ogr:name><gml:Point srsName="EPSG:4326"><gml:pos>8.5 47.4</gml:pos></gml:Point></ogr:buffer></gml:featureMember></gml:FeatureCollection>
"#;

const JSON: &str = r#"{"type": "FeatureCollection", "name": "a <b> & ]]> c", "features": []}"#;

fn complex(mime: &str, data: impl Into<Vec<u8>>) -> wire::ComplexValue {
    let data: Vec<u8> = data.into();
    wire::ComplexValue {
        format: Some(fmt(mime, "")),
        data: data.into(),
    }
}

/// Outputs of every kind, as a node sends them (an output without a value is refused on
/// receipt, see [`answers_the_writers_cannot_get_are_refused_on_receipt`]).
fn outputs() -> Vec<process::Output> {
    let out = |id: &str, value| wire::Output {
        id: id.into(),
        value: Some(value),
    };
    vec![
        out(
            "OUTPUT",
            output::Value::Reference(wire::FileReference {
                object_id: "0123456789abcdef0123456789abcdef".into(),
                format: Some(fmt("application/geo+json", "geojson")),
                size: 1234,
            }),
        ),
        out(
            "FEATURE_COUNT",
            output::Value::Literal(wire::LiteralValue {
                value: "240".into(),
                data_type: wire::LiteralType::Integer as i32,
                uom: String::new(),
            }),
        ),
        out(
            "LENGTH",
            output::Value::Literal(wire::LiteralValue {
                value: "12.5".into(),
                data_type: wire::LiteralType::Double as i32,
                uom: "meters".into(),
            }),
        ),
        out(
            "TEXT",
            output::Value::Literal(wire::LiteralValue {
                value: NASTY.into(),
                data_type: 0,
                uom: String::new(),
            }),
        ),
        out(
            "GML",
            output::Value::Complex(complex("application/gml+xml", GML)),
        ),
        out(
            "KML_BROKEN",
            output::Value::Complex(complex(
                "application/vnd.google-earth.kml+xml",
                "<kml><unclosed></kml>",
            )),
        ),
        out(
            "UNDECLARED",
            output::Value::Complex(complex(
                "text/xml",
                "<gml:Point><gml:pos>1 2</gml:pos></gml:Point>",
            )),
        ),
        out(
            "LAUGHS",
            output::Value::Complex(complex(
                "application/xml",
                "<!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>",
            )),
        ),
        out(
            "JSON",
            output::Value::Complex(complex("application/geo+json", JSON)),
        ),
        out(
            "PNG",
            output::Value::Complex(complex(
                "image/png",
                vec![0x89, b'P', b'N', b'G', 0, 1, 2, 0xff, 0xfe],
            )),
        ),
        out(
            "NOMIME",
            output::Value::Complex(wire::ComplexValue {
                format: None,
                data: b"plain text \x01 with control".to_vec().into(),
            }),
        ),
        out(
            "BOUNDS",
            output::Value::BoundingBox(wire::BoundingBox {
                crs: "EPSG:4326".into(),
                lower_corner: vec![-180.0, -90.0],
                upper_corner: vec![180.0, 83.6],
            }),
        ),
    ]
    .into_iter()
    .map(|o| process::Output::try_from(o).expect("a valid output"))
    .collect()
}

fn inputs() -> Vec<process::Input> {
    let inp = |id: &str, value| wire::Input {
        id: id.into(),
        value: Some(value),
    };
    vec![
        inp(
            "INPUT",
            input::Value::Reference(wire::Reference {
                source: Some(wire::reference::Source::Href(
                    "http://localhost:9000/api/file/retrieve/abc.geojson?x=1&y=2".into(),
                )),
                format: Some(fmt("application/geo+json", "geojson")),
            }),
        ),
        inp(
            "DISTANCE",
            input::Value::Literal(wire::LiteralValue {
                value: "0.5".into(),
                data_type: wire::LiteralType::Double as i32,
                uom: "meters".into(),
            }),
        ),
        inp(
            "EXPRESSION",
            input::Value::Literal(wire::LiteralValue {
                value: "\"a\" < 3 & b".into(),
                data_type: 0,
                uom: String::new(),
            }),
        ),
        inp(
            "OVERLAY",
            input::Value::Complex(complex("application/gml+xml", GML)),
        ),
        inp(
            "JSONIN",
            input::Value::Complex(complex("application/json", JSON)),
        ),
        inp(
            "EXTENT",
            input::Value::BoundingBox(wire::BoundingBox {
                crs: "EPSG:3857".into(),
                lower_corner: vec![1.0, 2.0],
                upper_corner: vec![3.0, 4.0],
            }),
        ),
    ]
    .into_iter()
    .map(|i| process::Input::try_from(i).expect("a valid input"))
    .collect()
}

fn status(state: process::JobState, percent: u8, message: &str) -> process::JobStatus {
    let id = "4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b"
        .parse()
        .expect("a job id");
    process::JobStatus {
        percent_done: percent,
        message: message.into(),
        created_at: None,
        expires_at: Some(t(1_735_689_600)),
        ..process::JobStatus::new(id, "native:buffer", state)
    }
}

#[test]
fn answers_the_writers_cannot_get_are_refused_on_receipt() {
    // An output without a value, an input without one and a job in no state never reach the
    // writers: the edge refuses such node answers as they arrive.
    let none = wire::Output {
        id: "NONE".into(),
        value: None,
    };
    let e = process::Output::try_from(none).expect_err("no value");
    assert_eq!(
        (e.locator.as_str(), e.message.as_str()),
        ("NONE", "output without a value")
    );
    let empty = wire::Input {
        id: "EMPTY".into(),
        value: None,
    };
    assert!(process::Input::try_from(empty).is_err());
    let unspecified = wire::JobStatus {
        job_id: "4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b".into(),
        state: wire::JobState::Unspecified as i32,
        ..Default::default()
    };
    assert!(process::JobStatus::try_from(unspecified).is_err());
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn error(code: OwsCode) -> OwsError {
    let locator = match code {
        OwsCode::NoApplicableCode | OwsCode::ServerBusy => None,
        OwsCode::NoSuchJob => Some("JobID"),
        _ => Some("DISTANCE"),
    };
    OwsError::new(code, locator, format!("{} <&> \"x\" é\u{0}", code.as_str()))
}

#[test]
fn v1_capabilities_and_descriptions_validate() {
    let mut docs = Docs::new("v1_capabilities_and_descriptions");
    let caps = v1::capabilities(
        &service(),
        &[buffer_summary(), bare().summary.unwrap_or_default()],
    );
    docs.add("capabilities", &caps);
    let described = v1::process_descriptions(&[buffer(), bare()]);
    docs.add("describe", &described);
    docs.add("describe-one", &v1::process_descriptions(&[buffer()]));
    docs.validate("1.0.0");

    assert!(
        caps.contains(r#"<ows:Get xlink:href="http://localhost:9000/api/wps?"/>"#),
        "{caps}"
    );
    assert!(caps.contains(r#"<ows:Post xlink:href="http://localhost:9000/api/wps"/>"#));
    assert!(
        caps.contains(
            "Buffers &lt;features&gt; &amp; \"quotes\" 'apostrophes' in Zürich — ÅÄÖ ✓ 🌍<"
        )
    );
    assert!(!caps.contains('\u{1}') && !caps.contains('\u{7}') && !caps.contains('\u{b}'));
    assert!(
        caps.contains(
            r#"<ows:ProviderSite xlink:href="https://example.org/wpsmesh?a=1&amp;b=2"/>"#
        )
    );
    assert!(
        caps.contains(r#"wps:processVersion="3.22.16""#)
            && caps.contains(r#"wps:processVersion="1.0.0""#)
    );
    assert!(caps.contains("<ows:Language>en-US</ows:Language>"));
    for op in ["GetCapabilities", "DescribeProcess", "Execute"] {
        assert!(caps.contains(&format!(r#"<ows:Operation name="{op}">"#)));
    }

    assert!(described.contains(r#"storeSupported="true" statusSupported="true""#));
    assert!(described.contains(r#"storeSupported="false" statusSupported="false""#));
    assert!(described.contains(r#"<ComplexData maximumMegabytes="100"><Default><Format><MimeType>application/geo+json</MimeType></Format></Default>"#), "{described}");
    assert!(
        described.contains("<Schema>http://schemas.opengis.net/gml/3.2.1/feature.xsd</Schema>")
    );
    assert!(described.contains(
        "<ows:Value>Round</ows:Value><ows:Value>Flat</ows:Value><ows:Value>Square</ows:Value>"
    ));
    assert!(described.contains("<ows:Range><ows:MinimumValue>1</ows:MinimumValue></ows:Range>"));
    assert!(described.contains("<ows:MaximumValue>INF</ows:MaximumValue>"));
    assert!(described.contains("<UOMs><Default><ows:UOM>meters</ows:UOM></Default>"));
    assert!(described.contains("<DefaultValue>10</DefaultValue>"));
    assert!(described.contains("<DefaultValue>\"name\" &lt; 'x' &amp; 1</DefaultValue>"));
    assert!(described.contains("<Default><CRS>EPSG:4326</CRS></Default><Supported><CRS>EPSG:4326</CRS><CRS>EPSG:3857</CRS></Supported>"));
    assert!(described.contains(r#"<Input minOccurs="0" maxOccurs="4294967295">"#));
    assert!(described.contains(r##"<ows:DataType ows:reference="http://www.w3.org/TR/xmlschema-2/#double">double</ows:DataType>"##));
    assert!(described.contains("<MimeType>application/octet-stream</MimeType>"));
}

#[test]
fn v1_execute_responses_validate_in_every_state() {
    use process::JobState::*;
    let service = service();
    let (summary, description) = (buffer_summary(), buffer());
    let (outputs, inputs) = (outputs(), inputs());
    let requested = vec![
        process::OutputRequest {
            id: "OUTPUT".into(),
            format: Some(fmt("application/geo+json", "geojson").into()),
            as_reference: true,
        },
        process::OutputRequest {
            id: "FEATURE_COUNT".into(),
            format: None,
            as_reference: false,
        },
    ];
    let base = v1::ExecuteResponseArgs {
        process: &summary,
        description: Some(&description),
        status: &status(Accepted, 0, ""),
        outputs: &outputs,
        lineage: None,
        status_location: None,
        creation_time: t(1_700_000_000),
        public_url: PUBLIC_URL,
    };
    let lineage = Some(v1::Lineage {
        inputs: &inputs,
        outputs: &requested,
    });
    let every_output = Some(v1::Lineage {
        inputs: &inputs,
        outputs: &[],
    });
    let status_location = v1::status_location(&service, "4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b");
    let location = Some(status_location.as_str());

    let mut docs = Docs::new("v1_execute_responses");
    let mut doc = |name: &str,
                   status: &process::JobStatus,
                   lineage: Option<v1::Lineage<'_>>,
                   status_location: Option<&str>| {
        let args = v1::ExecuteResponseArgs {
            status,
            lineage,
            status_location,
            ..base
        };
        let text = v1::execute_response(&service, &args);
        docs.add(name, &text);
        text
    };
    let accepted = doc("accepted", &status(Accepted, 0, ""), None, location);
    let running = doc(
        "running",
        &status(Running, 42, "buffering <layer>"),
        None,
        location,
    );
    let almost = doc("running-100", &status(Running, 100, ""), None, location);
    let succeeded = doc("succeeded", &status(Succeeded, 100, "done"), lineage, None);
    let followed = doc(
        "succeeded-at-status-location",
        &status(Succeeded, 100, "done"),
        None,
        location,
    );
    let accepted_lineage = doc(
        "accepted-with-lineage",
        &status(Accepted, 0, "accepted"),
        lineage,
        location,
    );
    let all_defs = doc(
        "succeeded-every-output",
        &status(Succeeded, 100, ""),
        every_output,
        None,
    );
    let failed = doc(
        "failed",
        &status(Failed, 30, "worker crashed: <oops> & more"),
        lineage,
        location,
    );
    let dismissed = doc("dismissed", &status(Dismissed, 30, ""), None, location);
    doc(
        "succeeded-no-outputs",
        &status(Succeeded, 100, ""),
        None,
        None,
    );
    let bare_summary = bare().summary.unwrap_or_default();
    let bare_status = status(Succeeded, 100, "");
    let bare_outputs = [process::Output::try_from(wire::Output {
        id: "RESULT".into(),
        value: Some(output::Value::Complex(complex(
            "application/json",
            "[1, 2]",
        ))),
    })
    .expect("a valid output")];
    let bare_args = v1::ExecuteResponseArgs {
        process: &bare_summary,
        description: None,
        status: &bare_status,
        outputs: &bare_outputs,
        lineage: Some(v1::Lineage {
            inputs: &[],
            outputs: &[],
        }),
        status_location: None,
        creation_time: t(0),
        public_url: PUBLIC_URL,
    };
    docs.add("bare", &v1::execute_response(&service, &bare_args));
    docs.validate("1.0.0");

    assert!(
        accepted.contains("<wps:ProcessAccepted>process accepted</wps:ProcessAccepted>"),
        "{accepted}"
    );
    assert!(accepted.contains(r#"statusLocation="http://localhost:9000/api/wps/status/4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b""#), "{accepted}");
    assert!(
        accepted_lineage.contains("<wps:ProcessAccepted>accepted</wps:ProcessAccepted>")
            && accepted_lineage.contains("<wps:DataInputs>")
            && !accepted_lineage.contains("ProcessOutputs")
    );
    assert!(
        followed.contains(r#"statusLocation="http://localhost:9000/api/wps/status/"#)
            && followed.contains("<wps:ProcessSucceeded>done</wps:ProcessSucceeded>")
            && followed.contains("<wps:ProcessOutputs>")
    );
    assert!(accepted.contains(r#"serviceInstance="http://localhost:9000/api/wps?service=WPS&amp;request=GetCapabilities&amp;version=1.0.0""#));
    assert!(accepted.contains(r#"<wps:Status creationTime="2023-11-14T22:13:20Z">"#));
    assert!(!accepted.contains("ProcessOutputs"));
    assert!(running.contains(
        r#"<wps:ProcessStarted percentCompleted="42">buffering &lt;layer&gt;</wps:ProcessStarted>"#
    ));
    assert!(almost.contains(r#"percentCompleted="99""#));
    assert!(failed.contains(r#"<ows:Exception exceptionCode="NoApplicableCode"><ows:ExceptionText>worker crashed: &lt;oops&gt; &amp; more</ows:ExceptionText>"#), "{failed}");
    assert!(!failed.contains("ProcessOutputs"));
    assert!(dismissed.contains("job dismissed"));
    assert!(failed.contains(r#"statusLocation="http://localhost:9000/api/wps/status/"#));

    let s = &succeeded;
    assert!(s.contains(r#"<wps:Reference href="http://localhost:9000/api/file/retrieve/0123456789abcdef0123456789abcdef.geojson" mimeType="application/geo+json"/>"#), "{s}");
    assert!(s.contains(r#"<wps:Reference xlink:href="http://localhost:9000/api/file/retrieve/abc.geojson?x=1&amp;y=2" mimeType="application/geo+json"/>"#));
    assert!(s.contains(r#"<wps:LiteralData dataType="integer">240</wps:LiteralData>"#));
    assert!(
        s.contains(r#"<wps:LiteralData dataType="double" uom="meters">12.5</wps:LiteralData>"#)
    );
    assert!(s.contains(r#"<wps:ComplexData mimeType="application/gml+xml"><gml:FeatureCollection xmlns:gml="http://www.opengis.net/gml/3.2""#));
    assert!(!s.contains("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gml"));
    assert!(s.contains(r#"<wps:ComplexData mimeType="application/geo+json"><![CDATA[{"type": "FeatureCollection", "name": "a <b> & ]]]]><![CDATA[> c", "features": []}]]></wps:ComplexData>"#));
    assert!(s.contains(
        r#"<wps:ComplexData mimeType="image/png" encoding="base64">iVBORwABAv/+</wps:ComplexData>"#
    ));
    assert!(s.contains("<![CDATA[<kml><unclosed></kml>]]>"));
    assert!(s.contains("<![CDATA[<gml:Point>"));
    assert!(s.contains("<![CDATA[<!DOCTYPE l"));
    assert!(s.contains(r#"<wps:BoundingBoxData crs="EPSG:4326" dimensions="2"><ows:LowerCorner>-180 -90</ows:LowerCorner><ows:UpperCorner>180 83.6</ows:UpperCorner></wps:BoundingBoxData>"#));
    assert!(s.contains(r#"<wps:Output mimeType="application/geo+json" asReference="true"><ows:Identifier>OUTPUT</ows:Identifier><ows:Title>Buffered</ows:Title>"#));
    assert!(!s.contains("<ows:Identifier>NONE</ows:Identifier>"));
    assert!(
        all_defs
            .contains(r#"<wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier>"#)
    );
    assert!(all_defs.contains(
        r#"<wps:Output asReference="false"><ows:Identifier>FEATURE_COUNT</ows:Identifier>"#
    ));
}

#[test]
fn v1_exception_reports_validate_for_every_code() {
    let mut docs = Docs::new("v1_exception_reports");
    let reports: Vec<String> = ALL_CODES
        .iter()
        .map(|&code| v1::exception_report(&error(code)))
        .collect();
    for (code, report) in ALL_CODES.iter().zip(&reports) {
        docs.add(code.as_str(), report);
    }
    docs.validate("1.0.0");

    let report = |code| {
        &reports[ALL_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or_default()]
    };
    assert!(report(OwsCode::InvalidParameterValue).contains(r#"<ows:Exception exceptionCode="InvalidParameterValue" locator="DISTANCE"><ows:ExceptionText>InvalidParameterValue &lt;&amp;&gt; "x" é</ows:ExceptionText>"#));
    assert!(
        report(OwsCode::NoSuchProcess)
            .contains(r#"exceptionCode="InvalidParameterValue" locator="DISTANCE""#)
    );
    assert!(
        report(OwsCode::NoSuchJob)
            .contains(r#"exceptionCode="InvalidParameterValue" locator="JobID""#)
    );
    assert!(report(OwsCode::ResultNotReady).contains(r#"exceptionCode="NoApplicableCode""#));
    assert!(report(OwsCode::ServerBusy).contains(r#"<ows:Exception exceptionCode="ServerBusy">"#));
    assert!(report(OwsCode::FileSizeExceeded).contains(r#"exceptionCode="FileSizeExceeded""#));
    assert!(
        report(OwsCode::NoApplicableCode).contains(r#"xmlns:ows="http://www.opengis.net/ows/1.1""#)
    );
    assert!(report(OwsCode::NoApplicableCode).contains(r#"version="1.0.0" xml:lang="en-US""#));
    assert_eq!(
        v1::exception_code(OwsCode::NoSuchProcess),
        "InvalidParameterValue"
    );
}

#[test]
fn v2_capabilities_and_offerings_validate() {
    let mut docs = Docs::new("v2_capabilities_and_offerings");
    let caps = v2::capabilities(
        &service(),
        &[buffer_summary(), bare().summary.unwrap_or_default()],
    );
    docs.add("capabilities", &caps);
    let offerings = v2::process_offerings(&[buffer(), bare()]);
    docs.add("offerings", &offerings);
    docs.validate("2.0");

    assert!(
        caps.contains(r#"<wps:Capabilities "#)
            && caps.contains(r#"service="WPS" version="2.0.0">"#)
    );
    assert!(caps.contains("<ows:ServiceType>WPS</ows:ServiceType><ows:ServiceTypeVersion>2.0.0</ows:ServiceTypeVersion>"));
    for op in [
        "GetCapabilities",
        "DescribeProcess",
        "Execute",
        "GetStatus",
        "GetResult",
        "Dismiss",
    ] {
        assert!(
            caps.contains(&format!(r#"<ows:Operation name="{op}">"#)),
            "{op}"
        );
    }
    assert!(caps.contains(r#"<wps:ProcessSummary jobControlOptions="sync-execute async-execute dismiss" outputTransmission="value reference" processVersion="3.22.16"><ows:Title>Buffer</ows:Title>"#), "{caps}");
    assert!(caps.contains(r#"<wps:ProcessSummary jobControlOptions="sync-execute" outputTransmission="value reference"><ows:Title>qgis:bare</ows:Title>"#));

    let o = &offerings;
    assert!(
        o.contains(
            r#"<wps:Format mimeType="application/geo+json" maximumMegabytes="100" default="true"/>"#
        ),
        "{o}"
    );
    assert!(o.contains(r#"<wps:Format mimeType="application/gml+xml" schema="http://schemas.opengis.net/gml/3.2.1/feature.xsd" maximumMegabytes="100"/>"#));
    assert!(o.contains(r#"<wps:Input minOccurs="0" maxOccurs="unbounded">"#));
    assert!(o.contains(
        r#"<LiteralDataDomain default="true"><ows:AllowedValues><ows:Value>Round</ows:Value>"#
    ));
    assert!(o.contains(r##"<ows:DataType ows:reference="http://www.w3.org/2001/XMLSchema#double">double</ows:DataType><ows:UOM>meters</ows:UOM><ows:DefaultValue>10</ows:DefaultValue>"##));
    assert!(o.contains(r#"<wps:SupportedCRS default="true">EPSG:4326</wps:SupportedCRS><wps:SupportedCRS>EPSG:3857</wps:SupportedCRS>"#));
}

#[test]
fn v2_status_and_results_validate() {
    use process::JobState::*;
    let mut docs = Docs::new("v2_status_and_results");
    let (poll, expiry) = (Some(t(1_700_000_005)), Some(t(1_700_086_400)));
    let mut statuses = Vec::new();
    for (name, state, percent) in [
        ("accepted", Accepted, 0),
        ("running", Running, 42),
        ("succeeded", Succeeded, 100),
        ("failed", Failed, 10),
        ("dismissed", Dismissed, 10),
    ] {
        let doc = v2::status_info(&status(state, percent, "msg"), poll, expiry);
        docs.add(&format!("status-{name}"), &doc);
        statuses.push(doc);
    }
    let no_expiry = v2::status_info(
        &process::JobStatus {
            expires_at: None,
            ..status(Running, 250, "")
        },
        None,
        None,
    );
    docs.add("status-minimal", &no_expiry);
    let result = v2::result(
        "4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b",
        expiry,
        &outputs(),
        PUBLIC_URL,
    );
    docs.add("result", &result);
    let sync = v2::result("", None, &outputs()[..1], PUBLIC_URL);
    docs.add("result-sync", &sync);
    let reports: Vec<String> = ALL_CODES
        .iter()
        .map(|&code| v2::exception_report(&error(code)))
        .collect();
    for (code, report) in ALL_CODES.iter().zip(&reports) {
        docs.add(&format!("exception-{}", code.as_str()), report);
    }
    docs.validate("2.0");

    let [accepted, running, succeeded, failed, dismissed] = &statuses[..] else {
        panic!("five statuses")
    };
    assert!(accepted.contains("<wps:JobID>4f1c2f0e9a6b4d1e8c3b2a1f0e9d8c7b</wps:JobID><wps:Status>Accepted</wps:Status><wps:ExpirationDate>2023-11-15T22:13:20Z</wps:ExpirationDate><wps:NextPoll>2023-11-14T22:13:25Z</wps:NextPoll>"), "{accepted}");
    assert!(
        running.contains("<wps:Status>Running</wps:Status>")
            && running.contains("<wps:PercentCompleted>42</wps:PercentCompleted>")
    );
    assert!(
        succeeded.contains("<wps:Status>Succeeded</wps:Status>")
            && succeeded.contains("<wps:PercentCompleted>100</wps:PercentCompleted>")
    );
    assert!(!succeeded.contains("NextPoll"));
    assert!(
        failed.contains("<wps:Status>Failed</wps:Status>")
            && dismissed.contains("<wps:Status>Dismissed</wps:Status>")
    );
    assert!(
        no_expiry.contains("<wps:PercentCompleted>100</wps:PercentCompleted>")
            && !no_expiry.contains("ExpirationDate")
    );
    let with_job_expiry = v2::status_info(&status(Running, 1, ""), None, None);
    assert!(
        with_job_expiry.contains("<wps:ExpirationDate>2025-01-01T00:00:00Z</wps:ExpirationDate>")
    );

    assert!(result.contains(r#"<wps:Output id="OUTPUT"><wps:Reference xlink:href="http://localhost:9000/api/file/retrieve/0123456789abcdef0123456789abcdef.geojson" mimeType="application/geo+json"/></wps:Output>"#), "{result}");
    assert!(result.contains(r##"<wps:Data><wps:LiteralValue dataType="http://www.w3.org/2001/XMLSchema#integer">240</wps:LiteralValue></wps:Data>"##));
    assert!(result.contains(r#"<wps:Data mimeType="application/gml+xml"><gml:FeatureCollection"#));
    assert!(
        result.contains(
            r#"<wps:Data mimeType="image/png" encoding="base64">iVBORwABAv/+</wps:Data>"#
        )
    );
    assert!(result.contains(
        r#"<wps:Data mimeType="text/xml"><ows:BoundingBox crs="EPSG:4326" dimensions="2">"#
    ));
    assert!(!sync.contains("JobID") && !sync.contains("ExpirationDate"));

    let report = |code| {
        &reports[ALL_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or_default()]
    };
    assert!(
        report(OwsCode::NoSuchProcess)
            .contains(r#"<ows:Exception exceptionCode="NoSuchProcess" locator="DISTANCE">"#)
    );
    assert!(report(OwsCode::NoSuchJob).contains(r#"exceptionCode="NoSuchJob" locator="JobID""#));
    assert!(report(OwsCode::ResultNotReady).contains(r#"exceptionCode="ResultNotReady""#));
    assert!(report(OwsCode::ServerBusy).contains(r#"xmlns:ows="http://www.opengis.net/ows/2.0""#));
    assert!(report(OwsCode::ServerBusy).contains(r#"version="2.0.0" xml:lang="en-US""#));
}

#[test]
fn the_validator_rejects_what_the_writers_avoid() {
    let mut docs = Docs::new("rejected");
    let running = status(process::JobState::Running, 42, "");
    let summary = buffer_summary();
    let args = v1::ExecuteResponseArgs {
        process: &summary,
        description: None,
        status: &running,
        outputs: &[],
        lineage: None,
        status_location: None,
        creation_time: t(0),
        public_url: PUBLIC_URL,
    };
    let doc = v1::execute_response(&service(), &args);
    docs.add(
        "percent-100",
        &doc.replace(r#"percentCompleted="42""#, r#"percentCompleted="100""#),
    );
    let described = v1::process_descriptions(&[buffer()]);
    docs.add(
        "qualified",
        &described.replace("DataInputs>", "wps:DataInputs>"),
    );
    // The same documents as written validate in the same run.
    docs.add("percent-42", &doc);
    docs.add("unqualified", &described);
    let out = docs.run_validator("1.0.0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("percent-100.xml fails") && stderr.contains("/qualified.xml fails"),
        "{stderr}"
    );
    assert!(
        stderr.contains("percent-42.xml validates") && stderr.contains("unqualified.xml validates"),
        "{stderr}"
    );
}
