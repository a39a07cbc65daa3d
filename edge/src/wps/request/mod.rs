//! WPS requests parsed on receipt: KVP query strings (GET) and XML bodies (POST), WPS 1.0.0 and
//! 2.0.0, into the version-agnostic [`WpsRequest`].
//!
//! Entry points:
//! - [`parse_kvp`] takes the raw (still percent-encoded) query string, with or without its `?`.
//! - [`parse_xml`] takes the POST body. It first refuses, without parsing, any body holding a
//!   `<!DOCTYPE` or `<!ENTITY` (case-insensitive, anywhere) or one that is not UTF-8, then parses
//!   it with quick-xml, which knows no DTDs: only the five predefined entities and character
//!   references are expanded.
//!
//! Decisions the rest of the edge relies on:
//! - Malformed XML (and a refused DTD) is `InvalidParameterValue` with no locator: the body as a
//!   whole is at fault; the text names the line and column.
//! - Errors about one input or output carry its identifier as locator (`DISTANCE`); errors about
//!   a request parameter carry the parameter's name as the KVP spells it (`service`, `request`,
//!   `version`, `identifier`, `jobId`, `DataInputs`, `ResponseDocument`, `RawDataOutput`,
//!   `storeExecuteResponse`, `status`, `lineage`, `mode`, `response`, ...).
//! - WPS 1.0.0 KVP plain values (`ID=value`) are literals, values with `@xlink:href` are
//!   references, values with `@mimeType`/`@encoding`/`@schema` and no href are complex values.
//!   A bounding box given in KVP (`ID=1,2,3,4,EPSG:4326`) arrives as a literal: convert it with
//!   [`resolve_bboxes`] once the process description is known.
//! - Inline complex values arrive as bytes, base64 already undone (their format's `encoding` is
//!   then cleared); inline XML is re-serialized with the namespace declarations in scope added to
//!   its top-level elements, so that GML or KML parse on their own.
//! - A reference with `method="POST"`, a body, a body reference or headers is `OptionNotSupported`
//!   (the nodes fetch inputs with GET); this includes the official example 52.
//! - GetCapabilities keeps AcceptVersions for negotiation; without it, a KVP `version` of 1.0.0 or
//!   2.0.0 (as OWSLib sends) or the XML root's namespace stands in for it.

mod bbox;
mod content;
mod guard;
mod kvp;
mod kvp_data;
mod tree;
mod values;
mod xml;
mod xml_v1;
mod xml_v2;

pub use bbox::{bbox_from_text, resolve_bboxes};
pub(crate) use values::identifier;

use super::model::WpsRequest;
use crate::ows::OwsError;

/// Most inputs (and most requested outputs) one Execute may carry.
pub const MAX_INPUTS: usize = 1000;
/// Longest process, input, output or job identifier, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 256;
/// Deepest element nesting accepted in an XML body, inline complex values included.
pub const MAX_DEPTH: usize = 100;
/// Most elements of an XML body outside inline complex values.
pub const MAX_ELEMENTS: usize = 20_000;

/// Parses a GET query string (`service=WPS&request=...`), parameter names case-insensitive.
pub fn parse_kvp(query: &str) -> Result<WpsRequest, OwsError> {
    kvp::parse(query)
}

/// Parses a POST body: a WPS 1.0.0 or 2.0 request document, told apart by the root element's
/// namespace.
pub fn parse_xml(body: &[u8]) -> Result<WpsRequest, OwsError> {
    guard::check(body)?;
    xml::parse(body)
}
