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
}
