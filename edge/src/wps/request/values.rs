//! Value checks and conversions shared by the KVP and XML parsers: identifiers, booleans, literal
//! data types, formats, complex values and error texts.

use base64::Engine as _;
use bytes::Bytes;
use wpsmesh_proto::process::{
    ComplexValue, DataType, Format, Input, InputValue, LiteralValue, Reference, Source,
};

use super::MAX_IDENTIFIER_CHARS;
use crate::ows::{OwsCode, OwsError};

/// A process, input, output or job identifier: trimmed, not empty, at most
/// [`MAX_IDENTIFIER_CHARS`] characters, no control characters.
pub(crate) fn identifier(raw: &str, locator: &str) -> Result<String, OwsError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(OwsError::missing(locator));
    }
    if id.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(OwsError::invalid(
            locator,
            format!("{locator} is longer than {MAX_IDENTIFIER_CHARS} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(OwsError::invalid(
            locator,
            format!("{locator} holds control characters"),
        ));
    }
    Ok(id.to_owned())
}

/// Fails when more than `max` items were given.
pub(super) fn at_most(count: usize, max: usize, locator: &str) -> Result<(), OwsError> {
    if count > max {
        return Err(OwsError::invalid(
            locator,
            format!("{locator}: more than {max} items"),
        ));
    }
    Ok(())
}

/// An xs:boolean (`true`, `false`, `1`, `0`; case-insensitive).
pub(super) fn boolean(raw: &str, locator: &str) -> Result<bool, OwsError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(OwsError::invalid(
            locator,
            format!("{locator} must be true or false, not {}", quote(raw)),
        )),
    }
}

/// The literal type named by a `dataType` (`xs:double`, `double`, an XML Schema or OGC URI);
/// unspecified when unknown.
pub(super) fn literal_type(data_type: Option<&str>) -> Option<DataType> {
    let name = data_type
        .unwrap_or_default()
        .rsplit(['#', ':', '/'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match name.as_str() {
        "string" | "anyuri" | "token" | "normalizedstring" => Some(DataType::String),
        "double" | "float" | "decimal" => Some(DataType::Double),
        "integer" | "int" | "long" | "short" | "byte" | "nonnegativeinteger"
        | "positiveinteger" | "negativeinteger" | "nonpositiveinteger" | "unsignedint"
        | "unsignedlong" | "unsignedshort" | "unsignedbyte" => Some(DataType::Integer),
        "boolean" => Some(DataType::Boolean),
        _ => None,
    }
}

/// A literal input value.
pub(super) fn literal(value: String, data_type: Option<&str>, uom: Option<&str>) -> LiteralValue {
    LiteralValue {
        value,
        data_type: literal_type(data_type),
        uom: uom.unwrap_or_default().trim().to_owned(),
    }
}

/// A format from mimeType/encoding/schema; `None` when none is given.
pub(super) fn format(
    mime_type: Option<&str>,
    encoding: Option<&str>,
    schema: Option<&str>,
) -> Option<Format> {
    let [mime_type, encoding, schema] =
        [mime_type, encoding, schema].map(|v| v.unwrap_or_default().trim().to_owned());
    if mime_type.is_empty() && encoding.is_empty() && schema.is_empty() {
        return None;
    }
    Some(Format {
        mime_type,
        encoding,
        schema,
        extension: String::new(),
    })
}

pub(super) fn is_base64(encoding: Option<&str>) -> bool {
    encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"))
}

/// An inline complex value: `data` decoded when the encoding is base64, in which case the
/// format's encoding is cleared (the bytes are no longer base64).
pub(super) fn complex(
    data: Bytes,
    mime_type: Option<&str>,
    encoding: Option<&str>,
    schema: Option<&str>,
    locator: &str,
) -> Result<ComplexValue, OwsError> {
    let base64 = is_base64(encoding);
    let data = if base64 {
        decode_base64(&data, locator)?
    } else {
        data
    };
    let encoding = if base64 { None } else { encoding };
    Ok(ComplexValue {
        format: format(mime_type, encoding, schema),
        data,
    })
}

/// Standard base64 (padding optional), whitespace ignored.
fn decode_base64(text: &[u8], locator: &str) -> Result<Bytes, OwsError> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map(Bytes::from)
        .map_err(|e| {
            OwsError::invalid(
                locator,
                format!("{locator}: the value is not valid base64 ({e})"),
            )
        })
}

/// A reference input.
pub(super) fn reference(
    href: &str,
    format: Option<Format>,
    locator: &str,
) -> Result<Reference, OwsError> {
    let href = href.trim();
    if href.is_empty() {
        return Err(OwsError::new(
            OwsCode::MissingParameterValue,
            Some(locator),
            format!("{locator}: reference without href"),
        ));
    }
    Ok(Reference {
        source: Source::Href(href.to_owned()),
        format,
    })
}

/// Refuses a reference `method` other than GET.
pub(super) fn get_method(method: Option<&str>, locator: &str) -> Result<(), OwsError> {
    match method.map(str::trim) {
        None => Ok(()),
        Some(m) if m.eq_ignore_ascii_case("GET") => Ok(()),
        Some(m) => Err(OwsError::not_supported(
            locator,
            format!(
                "{locator}: reference method {} is not supported; inputs are fetched with GET",
                quote(m)
            ),
        )),
    }
}

/// A user-given value for an error text: shortened, in quotes.
pub(super) fn quote(raw: &str) -> String {
    const MAX: usize = 64;
    if raw.chars().count() > MAX {
        let head: String = raw.chars().take(MAX).collect();
        format!("\"{head}…\"")
    } else {
        format!("\"{raw}\"")
    }
}

pub(super) fn input(id: String, value: InputValue) -> Input {
    Input { id, value }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert_eq!(
            identifier(" native:buffer ", "identifier").unwrap(),
            "native:buffer"
        );
        assert_eq!(
            identifier("  ", "identifier").unwrap_err().code,
            OwsCode::MissingParameterValue
        );
        let long = "x".repeat(MAX_IDENTIFIER_CHARS + 1);
        let err = identifier(&long, "identifier").unwrap_err();
        assert_eq!(err.code, OwsCode::InvalidParameterValue);
        assert_eq!(err.locator.as_deref(), Some("identifier"));
        assert!(identifier("a\u{7}", "identifier").is_err());
    }

    #[test]
    fn literal_types_from_any_spelling() {
        for (name, kind) in [
            ("xs:double", Some(DataType::Double)),
            (
                "http://www.w3.org/TR/xmlschema-2/#integer",
                Some(DataType::Integer),
            ),
            (
                "urn:ogc:def:dataType:OGC:1.1:boolean",
                Some(DataType::Boolean),
            ),
            ("string", Some(DataType::String)),
            ("whatever", None),
        ] {
            assert_eq!(literal_type(Some(name)), kind, "{name}");
        }
        assert_eq!(literal_type(None), None);
    }

    #[test]
    fn base64_is_decoded_and_encoding_cleared() {
        let v = complex(
            Bytes::from_static(b"aGVs\n bG8="),
            Some("application/octet-stream"),
            Some("Base64"),
            None,
            "IN",
        )
        .unwrap();
        assert_eq!(&v.data[..], b"hello");
        let f = v.format.unwrap();
        assert_eq!(f.mime_type, "application/octet-stream");
        assert_eq!(f.encoding, "");
        let err =
            complex(Bytes::from_static(b"%%%"), None, Some("base64"), None, "IN").unwrap_err();
        assert_eq!(err.code, OwsCode::InvalidParameterValue);
        assert_eq!(err.locator.as_deref(), Some("IN"));
    }

    #[test]
    fn booleans_and_methods() {
        assert!(boolean("TRUE", "lineage").unwrap());
        assert!(!boolean("0", "lineage").unwrap());
        assert_eq!(
            boolean("yes", "lineage").unwrap_err().locator.as_deref(),
            Some("lineage")
        );
        assert!(get_method(Some("get"), "IN").is_ok());
        assert_eq!(
            get_method(Some("POST"), "IN").unwrap_err().code,
            OwsCode::OptionNotSupported
        );
    }
}
