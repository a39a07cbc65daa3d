//! Process domain types beside the `wpsmesh.process.v1` wire types: requests, job statuses and
//! outputs, converted from the wire once on receipt (every check that needs no process
//! description happens there) and back to the wire at the edge of each service.

mod execute;
mod job;
mod list;
mod output;

use crate::wire::process::v1 as wire;

pub use execute::{
    ComplexValue, ExecuteRequest, Input, InputValue, MAX_HREF, OutputRequest, Reference, Source,
    StoredObject, Subscriber,
};
pub use job::{JOB_ID, JobId, JobState, JobStatus, required_status};
pub use list::{DEFAULT_LIMIT, JobFilter, JobPage, ListJobs, MAX_LIMIT};
pub use output::{JobResult, Output, OutputValue, StoredFile, outputs_from_wire, outputs_to_wire};

/// A wire message that failed a check: what was wrong (`message`) and where (`locator`, e.g.
/// the input id). Services answer it as INVALID_ARGUMENT with the locator in `wpsmesh-locator`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{locator}: {message}")]
pub struct Invalid {
    pub locator: String,
    pub message: String,
}

impl Invalid {
    pub fn new(locator: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            locator: locator.into(),
            message: message.into(),
        }
    }
}

/// A file format: media type, encoding, schema and the extension files of it are written with.
/// Empty strings are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Format {
    pub mime_type: String,
    pub encoding: String,
    pub schema: String,
    pub extension: String,
}

impl Format {
    /// A format given by its media type only.
    pub fn of(mime_type: &str) -> Self {
        Self {
            mime_type: mime_type.to_owned(),
            ..Self::default()
        }
    }
}

/// Conversions between [`Format`] and a wire message with the same four fields (the process
/// API's `Format`, the worker channel's `FileFormat`).
macro_rules! format_conversions {
    ($($wire:ty),+) => {$(
        impl From<$wire> for Format {
            fn from(f: $wire) -> Self {
                Self {
                    mime_type: f.mime_type,
                    encoding: f.encoding,
                    schema: f.schema,
                    extension: f.extension,
                }
            }
        }

        impl From<Format> for $wire {
            fn from(f: Format) -> Self {
                Self {
                    mime_type: f.mime_type,
                    encoding: f.encoding,
                    schema: f.schema,
                    extension: f.extension,
                }
            }
        }
    )+};
}

format_conversions!(wire::Format, crate::wire::worker::v1::FileFormat);

/// The data type of a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    String,
    Double,
    Integer,
    Boolean,
}

impl DataType {
    /// The XML Schema name: string, double, integer or boolean.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Double => "double",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
        }
    }

    /// The type of a wire `LiteralType` value; `None` when unspecified or unknown.
    pub fn from_wire(v: i32) -> Option<Self> {
        match wire::LiteralType::try_from(v).ok()? {
            wire::LiteralType::String => Some(Self::String),
            wire::LiteralType::Double => Some(Self::Double),
            wire::LiteralType::Integer => Some(Self::Integer),
            wire::LiteralType::Boolean => Some(Self::Boolean),
            wire::LiteralType::Unspecified => None,
        }
    }

    /// The wire `LiteralType` value of `t` (unspecified for `None`).
    pub fn to_wire(t: Option<Self>) -> i32 {
        let w = match t {
            None => wire::LiteralType::Unspecified,
            Some(Self::String) => wire::LiteralType::String,
            Some(Self::Double) => wire::LiteralType::Double,
            Some(Self::Integer) => wire::LiteralType::Integer,
            Some(Self::Boolean) => wire::LiteralType::Boolean,
        };
        w as i32
    }
}

/// A literal as text, with its type and unit of measure when known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiteralValue {
    pub value: String,
    pub data_type: Option<DataType>,
    /// "" when none.
    pub uom: String,
}

impl LiteralValue {
    /// A value with no type or unit.
    pub fn plain(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }
}

impl TryFrom<wire::LiteralValue> for LiteralValue {
    type Error = Invalid;

    fn try_from(l: wire::LiteralValue) -> Result<Self, Invalid> {
        Ok(Self {
            value: l.value,
            data_type: DataType::from_wire(l.data_type),
            uom: l.uom,
        })
    }
}

impl From<LiteralValue> for wire::LiteralValue {
    fn from(l: LiteralValue) -> Self {
        Self {
            value: l.value,
            data_type: DataType::to_wire(l.data_type),
            uom: l.uom,
        }
    }
}

/// A 2D extent in a CRS ("" for the input's default CRS).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundingBox {
    pub crs: String,
    pub lower: [f64; 2],
    pub upper: [f64; 2],
}

impl TryFrom<wire::BoundingBox> for BoundingBox {
    type Error = Invalid;

    fn try_from(b: wire::BoundingBox) -> Result<Self, Invalid> {
        let corner = |c: &[f64]| -> Option<[f64; 2]> {
            match c {
                [x, y] if x.is_finite() && y.is_finite() => Some([*x, *y]),
                _ => None,
            }
        };
        match (corner(&b.lower_corner), corner(&b.upper_corner)) {
            (Some(lower), Some(upper)) => Ok(Self {
                crs: b.crs,
                lower,
                upper,
            }),
            _ => Err(Invalid::new("bbox", "a bounding box needs two 2D corners")),
        }
    }
}

impl From<BoundingBox> for wire::BoundingBox {
    fn from(b: BoundingBox) -> Self {
        Self {
            crs: b.crs,
            lower_corner: b.lower.to_vec(),
            upper_corner: b.upper.to_vec(),
        }
    }
}
