//! Output domain types: what a finished job returns, converted from `wire::Output` on receipt.

use super::{BoundingBox, ComplexValue, Format, Invalid, JobStatus, LiteralValue};
use crate::storage::ObjectId;
use crate::wire::process::v1 as wire;

/// One result value.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub id: String,
    pub value: OutputValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    Literal(LiteralValue),
    /// A file in the storage service (the edge serves it under its file API).
    Stored(StoredFile),
    /// A file's content, inline.
    Inline(ComplexValue),
    BoundingBox(BoundingBox),
}

/// An output file in the storage service.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub id: ObjectId,
    pub format: Format,
    pub size: u64,
}

impl Output {
    /// The storage object this output is, if it is one.
    pub fn object_id(&self) -> Option<ObjectId> {
        match &self.value {
            OutputValue::Stored(file) => Some(file.id),
            _ => None,
        }
    }
}

/// A finished job: its status, outputs and log.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub status: JobStatus,
    pub outputs: Vec<Output>,
    pub log: Vec<String>,
}

impl TryFrom<wire::Output> for Output {
    type Error = Invalid;

    fn try_from(o: wire::Output) -> Result<Self, Invalid> {
        use wire::output::Value;
        let invalid = |message: String| Invalid::new(&o.id, message);
        let value = match o.value.clone() {
            None => return Err(invalid("output without a value".into())),
            Some(Value::Literal(l)) => OutputValue::Literal(l.try_into()?),
            Some(Value::BoundingBox(b)) => {
                OutputValue::BoundingBox(b.try_into().map_err(|e: Invalid| invalid(e.message))?)
            }
            Some(Value::Complex(c)) => OutputValue::Inline(ComplexValue {
                format: c.format.map(Format::from),
                data: c.data,
            }),
            Some(Value::Reference(r)) => OutputValue::Stored(StoredFile {
                id: r
                    .object_id
                    .parse()
                    .map_err(|e: crate::storage::InvalidMessage| invalid(e.0))?,
                format: r.format.map(Format::from).unwrap_or_default(),
                size: r.size,
            }),
        };
        Ok(Self { id: o.id, value })
    }
}

impl From<Output> for wire::Output {
    fn from(o: Output) -> Self {
        use wire::output::Value;
        let value = match o.value {
            OutputValue::Literal(l) => Value::Literal(l.into()),
            OutputValue::BoundingBox(b) => Value::BoundingBox(b.into()),
            OutputValue::Inline(c) => Value::Complex(wire::ComplexValue {
                format: c.format.map(Into::into),
                data: c.data,
            }),
            OutputValue::Stored(f) => Value::Reference(wire::FileReference {
                object_id: f.id.to_string(),
                format: Some(f.format.into()),
                size: f.size,
            }),
        };
        Self {
            id: o.id,
            value: Some(value),
        }
    }
}

/// Outputs from the wire, each checked.
pub fn outputs_from_wire(outputs: Vec<wire::Output>) -> Result<Vec<Output>, Invalid> {
    outputs.into_iter().map(Output::try_from).collect()
}

/// Outputs for the wire.
pub fn outputs_to_wire(outputs: Vec<Output>) -> Vec<wire::Output> {
    outputs.into_iter().map(wire::Output::from).collect()
}

impl JobResult {
    /// A result from its wire parts (ExecuteResponse, GetResultResponse).
    pub fn from_wire(
        job: Option<wire::JobStatus>,
        outputs: Vec<wire::Output>,
        log: Vec<String>,
    ) -> Result<Self, Invalid> {
        Ok(Self {
            status: super::required_status(job)?,
            outputs: outputs_from_wire(outputs)?,
            log,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outputs_round_trip_and_bad_object_ids_are_refused() {
        let stored = Output {
            id: "OUTPUT".into(),
            value: OutputValue::Stored(StoredFile {
                id: ObjectId::random(),
                format: Format::of("application/geo+json"),
                size: 42,
            }),
        };
        let literal = Output {
            id: "COUNT".into(),
            value: OutputValue::Literal(LiteralValue::plain("3")),
        };
        for o in [stored.clone(), literal] {
            assert_eq!(Output::try_from(wire::Output::from(o.clone())).unwrap(), o);
        }
        assert!(stored.object_id().is_some());
        let mut w = wire::Output::from(stored);
        if let Some(wire::output::Value::Reference(r)) = &mut w.value {
            r.object_id = "nope".into();
        }
        let e = Output::try_from(w).unwrap_err();
        assert_eq!(e.locator, "OUTPUT");
        assert!(e.message.contains("invalid object id"), "{e}");
    }
}
