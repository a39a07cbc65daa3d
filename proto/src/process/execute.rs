//! Execute request domain types: inputs, references and requested outputs, checked when
//! converted from `wire::ExecuteRequest` (every check that needs no process description).

use std::time::Duration;

use prost::bytes::Bytes;

use super::{BoundingBox, Format, Invalid, LiteralValue};
use crate::storage::ObjectId;
use crate::wire::process::v1 as wire;

/// Longest href accepted.
pub const MAX_HREF: usize = 8 * 1024;

/// A request to run a process: its shape checked, not yet against the process description.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    pub process_id: String,
    /// One entry per value; an id repeats for multiple values.
    pub inputs: Vec<Input>,
    /// Outputs to return; every output, by reference, when empty.
    pub outputs: Vec<OutputRequest>,
    /// Overrides the node's default job timeout (never its maximum).
    pub timeout: Option<Duration>,
    /// Callbacks about the job; `None` when none were asked for.
    pub subscriber: Option<Subscriber>,
}

/// Callbacks about a job (OGC API - Processes' `subscriber`): http(s) URIs the node running it
/// POSTs to, each optional but at least one present. Their shape is checked here; whether their
/// hosts may be called is the node's address policy's to say.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    /// Receives the results document when the job succeeds.
    pub success_uri: Option<String>,
    /// Receives the status while the job runs.
    pub in_progress_uri: Option<String>,
    /// Receives the status when the job fails.
    pub failed_uri: Option<String>,
    /// The edge's public base URL (no trailing slash), for links and output hrefs.
    pub base_url: String,
}

impl Subscriber {
    /// The URIs given, with the OGC name of each (`successUri`, ...), for checks and logs.
    pub fn uris(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("successUri", &self.success_uri),
            ("inProgressUri", &self.in_progress_uri),
            ("failedUri", &self.failed_uri),
        ]
        .into_iter()
        .filter_map(|(name, uri)| uri.as_deref().map(|u| (name, u)))
    }
}

/// `uri` if it is an absolute http(s) URL of printable ASCII within [`MAX_HREF`] bytes.
fn http_uri(locator: &str, uri: String) -> Result<String, Invalid> {
    let scheme_ok = uri
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        || uri
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
    if !scheme_ok {
        return Err(Invalid::new(locator, "not an http(s) URL"));
    }
    if uri.len() > MAX_HREF {
        return Err(Invalid::new(
            locator,
            format!("longer than {MAX_HREF} bytes"),
        ));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(locator, "a URL of printable ASCII is needed"));
    }
    Ok(uri)
}

impl TryFrom<wire::Subscriber> for Option<Subscriber> {
    type Error = Invalid;

    fn try_from(w: wire::Subscriber) -> Result<Self, Invalid> {
        let uri = |name: &str, u: String| {
            (!u.is_empty())
                .then(|| http_uri(&format!("subscriber.{name}"), u))
                .transpose()
        };
        let subscriber = Subscriber {
            success_uri: uri("successUri", w.success_uri)?,
            in_progress_uri: uri("inProgressUri", w.in_progress_uri)?,
            failed_uri: uri("failedUri", w.failed_uri)?,
            base_url: w.base_url,
        };
        if subscriber.uris().next().is_none() {
            return Ok(None);
        }
        let base_url = http_uri("subscriber.base_url", subscriber.base_url.clone())?;
        Ok(Some(Subscriber {
            base_url: base_url.trim_end_matches('/').to_owned(),
            ..subscriber
        }))
    }
}

impl From<Subscriber> for wire::Subscriber {
    fn from(s: Subscriber) -> Self {
        Self {
            success_uri: s.success_uri.unwrap_or_default(),
            in_progress_uri: s.in_progress_uri.unwrap_or_default(),
            failed_uri: s.failed_uri.unwrap_or_default(),
            base_url: s.base_url,
        }
    }
}

/// One value of an input parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub id: String,
    pub value: InputValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    Literal(LiteralValue),
    /// Data passed inline (base64 already undone).
    Complex(ComplexValue),
    Reference(Reference),
    BoundingBox(BoundingBox),
}

/// A complex value passed inline: text (GeoJSON, GML) or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplexValue {
    /// What the client declared; `None` lets the content decide.
    pub format: Option<Format>,
    pub data: Bytes,
}

/// Data the node reads from elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub source: Source,
    /// What the client declared; `None` lets the href and the content decide.
    pub format: Option<Format>,
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An http(s) URL (at most [`MAX_HREF`] bytes), fetched through the node's address policy.
    Href(String),
    /// An object in the storage service.
    Stored(StoredObject),
}

/// An object in the storage service, with the extension its name was given ("" for none).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub id: ObjectId,
    pub extension: String,
}

/// How one output should be returned.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRequest {
    pub id: String,
    /// The wanted format; the output's default when `None`.
    pub format: Option<Format>,
    /// A storage reference (true) or the value inline (false).
    pub as_reference: bool,
}

/// A process, input or output id: not empty (how long is left to the description check, which
/// names an unknown one with its text bounded).
fn id(locator: &str, id: String) -> Result<String, Invalid> {
    if id.is_empty() {
        return Err(Invalid::new(locator, "empty identifier"));
    }
    Ok(id)
}

impl TryFrom<wire::ExecuteRequest> for ExecuteRequest {
    type Error = Invalid;

    fn try_from(w: wire::ExecuteRequest) -> Result<Self, Invalid> {
        let timeout = w
            .timeout
            .map(|t| {
                Duration::try_from(t)
                    .map_err(|_| Invalid::new("timeout", "a timeout must be positive"))
            })
            .transpose()?;
        Ok(Self {
            process_id: id("Identifier", w.process_id)?,
            inputs: w
                .inputs
                .into_iter()
                .map(Input::try_from)
                .collect::<Result<_, _>>()?,
            outputs: w
                .outputs
                .into_iter()
                .map(|o| {
                    Ok(OutputRequest {
                        id: id("output", o.id)?,
                        format: o.format.map(Format::from),
                        as_reference: o.as_reference,
                    })
                })
                .collect::<Result<_, Invalid>>()?,
            timeout,
            subscriber: w
                .subscriber
                .map(Option::<Subscriber>::try_from)
                .transpose()?
                .flatten(),
        })
    }
}

impl TryFrom<wire::Input> for Input {
    type Error = Invalid;

    fn try_from(w: wire::Input) -> Result<Self, Invalid> {
        use wire::input::Value;
        let input = id("input", w.id)?;
        let invalid = |message: &str| Invalid::new(&input, message);
        let value = match w.value {
            None => return Err(invalid("input without a value")),
            Some(Value::Literal(l)) => InputValue::Literal(l.try_into()?),
            Some(Value::BoundingBox(b)) => {
                InputValue::BoundingBox(BoundingBox::try_from(b).map_err(|e| invalid(&e.message))?)
            }
            Some(Value::Complex(c)) => InputValue::Complex(ComplexValue {
                format: c.format.map(Format::from),
                data: c.data,
            }),
            Some(Value::Reference(r)) => {
                let source = match r.source {
                    None => return Err(invalid("a reference needs an href or a stored object")),
                    Some(wire::reference::Source::Href(href)) => {
                        if href.trim().is_empty() {
                            return Err(invalid("reference without href"));
                        }
                        if href.len() > MAX_HREF {
                            return Err(invalid(&format!("href longer than {MAX_HREF} bytes")));
                        }
                        Source::Href(href)
                    }
                    Some(wire::reference::Source::Object(o)) => Source::Stored(StoredObject {
                        id: o
                            .id
                            .parse()
                            .map_err(|e: crate::storage::InvalidMessage| invalid(&e.0))?,
                        extension: crate::storage::valid_extension(&o.extension)
                            .unwrap_or_default(),
                    }),
                };
                InputValue::Reference(Reference {
                    source,
                    format: r.format.map(Format::from),
                })
            }
        };
        Ok(Self { id: input, value })
    }
}

impl From<ExecuteRequest> for wire::ExecuteRequest {
    fn from(r: ExecuteRequest) -> Self {
        Self {
            process_id: r.process_id,
            inputs: r.inputs.into_iter().map(wire::Input::from).collect(),
            outputs: r
                .outputs
                .into_iter()
                .map(|o| wire::OutputRequest {
                    id: o.id,
                    format: o.format.map(Into::into),
                    as_reference: o.as_reference,
                })
                .collect(),
            timeout: r.timeout.and_then(|t| t.try_into().ok()),
            subscriber: r.subscriber.map(Into::into),
        }
    }
}

impl From<Input> for wire::Input {
    fn from(i: Input) -> Self {
        use wire::input::Value;
        let value = match i.value {
            InputValue::Literal(l) => Value::Literal(l.into()),
            InputValue::BoundingBox(b) => Value::BoundingBox(b.into()),
            InputValue::Complex(c) => Value::Complex(wire::ComplexValue {
                format: c.format.map(Into::into),
                data: c.data,
            }),
            InputValue::Reference(r) => Value::Reference(wire::Reference {
                source: Some(match r.source {
                    Source::Href(href) => wire::reference::Source::Href(href),
                    Source::Stored(o) => wire::reference::Source::Object(wire::StoredObject {
                        id: o.id.to_string(),
                        extension: o.extension,
                    }),
                }),
                format: r.format.map(Into::into),
            }),
        };
        Self {
            id: i.id,
            value: Some(value),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored() -> Input {
        Input {
            id: "INPUT".into(),
            value: InputValue::Reference(Reference {
                source: Source::Stored(StoredObject {
                    id: "0123456789abcdef0123456789abcdef".parse().unwrap(),
                    extension: "zip".into(),
                }),
                format: Some(Format::of("application/zip")),
            }),
        }
    }

    #[test]
    fn requests_round_trip_through_the_wire() {
        let request = ExecuteRequest {
            process_id: "native:buffer".into(),
            inputs: vec![
                stored(),
                Input {
                    id: "DISTANCE".into(),
                    value: InputValue::Literal(LiteralValue::plain("10")),
                },
                Input {
                    id: "EXTENT".into(),
                    value: InputValue::BoundingBox(BoundingBox {
                        crs: "EPSG:4326".into(),
                        lower: [0.0, 1.0],
                        upper: [2.0, 3.0],
                    }),
                },
            ],
            outputs: vec![OutputRequest {
                id: "OUTPUT".into(),
                format: None,
                as_reference: true,
            }],
            timeout: Some(Duration::from_secs(30)),
            subscriber: Some(Subscriber {
                success_uri: Some("http://hooks.example.com/done".into()),
                in_progress_uri: None,
                failed_uri: Some("https://hooks.example.com/failed".into()),
                base_url: "http://wps.example.com".into(),
            }),
        };
        let wire = wire::ExecuteRequest::from(request.clone());
        assert_eq!(ExecuteRequest::try_from(wire).unwrap(), request);
    }

    fn refused(input: wire::Input) -> Invalid {
        ExecuteRequest::try_from(wire::ExecuteRequest {
            process_id: "native:buffer".into(),
            inputs: vec![input],
            ..Default::default()
        })
        .unwrap_err()
    }

    #[test]
    fn malformed_inputs_are_refused_naming_the_input() {
        let good = wire::Input::from(stored());
        // Positive control: the valid form passes.
        assert!(
            ExecuteRequest::try_from(wire::ExecuteRequest {
                process_id: "native:buffer".into(),
                inputs: vec![good.clone()],
                ..Default::default()
            })
            .is_ok()
        );
        let mut no_value = good.clone();
        no_value.value = None;
        let e = refused(no_value);
        assert_eq!(
            (e.locator.as_str(), e.message.as_str()),
            ("INPUT", "input without a value")
        );

        let bad_id = wire::Input {
            value: Some(wire::input::Value::Reference(wire::Reference {
                source: Some(wire::reference::Source::Object(wire::StoredObject {
                    id: "../../etc/passwd".into(),
                    extension: String::new(),
                })),
                format: None,
            })),
            ..good.clone()
        };
        let e = refused(bad_id);
        assert_eq!(e.locator, "INPUT");
        assert!(e.message.contains("invalid object id"), "{e}");

        let long = wire::Input {
            value: Some(wire::input::Value::Reference(wire::Reference {
                source: Some(wire::reference::Source::Href(format!(
                    "http://example.com/{}",
                    "a".repeat(MAX_HREF)
                ))),
                format: None,
            })),
            ..good.clone()
        };
        assert_eq!(
            refused(long).message,
            format!("href longer than {MAX_HREF} bytes")
        );

        let flat = wire::Input {
            id: "EXTENT".into(),
            value: Some(wire::input::Value::BoundingBox(wire::BoundingBox {
                crs: String::new(),
                lower_corner: vec![0.0],
                upper_corner: vec![1.0, 2.0],
            })),
        };
        let e = refused(flat);
        assert_eq!(
            (e.locator.as_str(), e.message.as_str()),
            ("EXTENT", "a bounding box needs two 2D corners")
        );
        let e = refused(wire::Input {
            id: String::new(),
            ..good
        });
        assert_eq!(e.message, "empty identifier");
    }

    #[test]
    fn subscribers_need_http_uris_and_a_base() {
        let check = |w: wire::Subscriber| Option::<Subscriber>::try_from(w);
        let good = wire::Subscriber {
            success_uri: "http://hooks.example.com/done".into(),
            base_url: "http://wps.example.com/".into(),
            ..Default::default()
        };
        // Positive control; the base loses its trailing slash.
        let ok = check(good.clone()).unwrap().unwrap();
        assert_eq!(ok.base_url, "http://wps.example.com");
        assert_eq!(
            ok.uris().collect::<Vec<_>>(),
            [("successUri", "http://hooks.example.com/done")]
        );
        // No URI at all is no subscriber.
        assert_eq!(check(wire::Subscriber::default()).unwrap(), None);
        let e = check(wire::Subscriber {
            failed_uri: "file:///etc/passwd".into(),
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(
            (e.locator.as_str(), e.message.as_str()),
            ("subscriber.failedUri", "not an http(s) URL")
        );
        let e = check(wire::Subscriber {
            in_progress_uri: "http://a b".into(),
            ..good.clone()
        })
        .unwrap_err();
        assert_eq!(e.locator, "subscriber.inProgressUri");
        let e = check(wire::Subscriber {
            base_url: String::new(),
            ..good
        })
        .unwrap_err();
        assert_eq!(e.locator, "subscriber.base_url");
    }
}
