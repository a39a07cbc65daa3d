//! Checks on an XML body before any parsing: no DTD or entity declaration (no XXE, no entity
//! expansion), UTF-8 only; and the position reporting shared by the XML errors.

use crate::ows::OwsError;

/// Refuses bodies a parser should never see.
pub(super) fn check(body: &[u8]) -> Result<(), OwsError> {
    if body.starts_with(&[0xFE, 0xFF]) || body.starts_with(&[0xFF, 0xFE]) || body.contains(&0) {
        // UTF-16/32 would hide a `<!DOCTYPE` from the byte search below.
        return Err(refused("XML requests must be UTF-8 encoded".to_owned()));
    }
    for (at, _) in body.iter().enumerate().filter(|(_, b)| **b == b'<') {
        let rest = &body[at + 1..];
        for keyword in [&b"!DOCTYPE"[..], &b"!ENTITY"[..]] {
            if rest.len() >= keyword.len() && rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
                return Err(refused(format!(
                    "DTDs and entity declarations are not accepted (<{} at {})",
                    String::from_utf8_lossy(keyword),
                    position(body, at)
                )));
            }
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(refused("empty XML request body".to_owned()));
    }
    Ok(())
}

/// A refused or malformed body: `InvalidParameterValue` without locator.
pub(super) fn refused(text: String) -> OwsError {
    OwsError::new(crate::ows::OwsCode::InvalidParameterValue, None, text)
}

/// A malformed body, with the place of the fault (the parser's words may quote the body: they
/// are cut as any user value is).
pub(super) fn malformed(body: &[u8], offset: usize, what: impl std::fmt::Display) -> OwsError {
    refused(format!(
        "malformed XML at {}: {}",
        position(body, offset),
        wpsmesh_proto::text::shown(&what.to_string())
    ))
}

/// `line L, column C` (1-based, columns in characters) of a byte offset.
pub(super) fn position(body: &[u8], offset: usize) -> String {
    let before = &body[..offset.min(body.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before[line_start..]
        .iter()
        .filter(|b| (**b & 0xC0) != 0x80)
        .count()
        + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ows::OwsCode;

    #[test]
    fn refuses_doctype_and_entity_in_any_case() {
        for body in [
            "<?xml version=\"1.0\"?><!DOCTYPE a><a/>",
            "<!doctype a><a/>",
            "<a><![CDATA[ <!Entity x \"y\"> ]]></a>",
        ] {
            let err = check(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, OwsCode::InvalidParameterValue);
            assert_eq!(err.locator, None);
            assert!(err.text.contains("DTDs and entity declarations"), "{err}");
        }
    }

    #[test]
    fn refuses_utf16_and_empty() {
        let utf16: Vec<u8> = "<a/>".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(check(&utf16).unwrap_err().text.contains("UTF-8"));
        assert!(check(b" \n ").unwrap_err().text.contains("empty"));
        assert!(check(b"<a/>").is_ok());
    }

    #[test]
    fn positions_are_one_based_in_characters() {
        assert_eq!(position(b"<a>\n  <b>", 6), "line 2, column 3");
        assert_eq!(position("é<".as_bytes(), 2), "line 1, column 2");
    }
}
