//! Inline complex values: well-formed XML embedded as is, text in CDATA, anything else base64.

use base64::Engine as _;
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use wpsmesh_proto::process::{ComplexValue, Format};

use super::{Xml, all_xml_chars, is_xml_char, mime_ok};

/// How an inline complex value is written inside its element.
pub(crate) enum Inline<'a> {
    /// Well-formed XML, embedded as is (without its XML declaration).
    Xml(&'a str),
    /// Text (JSON, CSV, or XML that is not well formed) in CDATA.
    Text(&'a str),
    /// Anything else, base64 encoded (`encoding="base64"`).
    Base64(String),
}

impl<'a> Inline<'a> {
    pub(crate) fn of(format: Option<&Format>, data: &'a [u8]) -> Self {
        let mime = format
            .map_or("", |f| f.mime_type.as_str())
            .to_ascii_lowercase();
        let wants_base64 = format.is_some_and(|f| f.encoding.eq_ignore_ascii_case("base64"));
        let text = std::str::from_utf8(data)
            .ok()
            .map(|t| t.trim_start_matches('\u{FEFF}'));
        let encoded = || Self::Base64(base64::engine::general_purpose::STANDARD.encode(data));
        let Some(text) = text.filter(|t| !wants_base64 && all_xml_chars(t)) else {
            return encoded();
        };
        let xmlish = ["xml", "gml", "kml"].iter().any(|k| mime.contains(k));
        if xmlish && let Some(body) = embeddable_xml(text) {
            return Self::Xml(body);
        }
        if xmlish || textual(&mime) {
            Self::Text(text)
        } else {
            encoded()
        }
    }

    /// The `encoding` attribute to write with it.
    pub(crate) fn encoding<'f>(&self, format: Option<&'f Format>) -> &'f str {
        match self {
            Self::Base64(_) => "base64",
            _ => format.map_or("", |f| f.encoding.as_str()),
        }
    }

    pub(crate) fn write(&self, x: &mut Xml) {
        match self {
            Self::Xml(markup) => x.raw(markup),
            Self::Text(text) => x.cdata(text),
            Self::Base64(encoded) => x.text(encoded),
        }
    }
}

/// `<name mimeType encoding schema>value</name>`: an inline complex value (1.0.0 ComplexData,
/// 2.0 Data).
pub(crate) fn complex_value(x: &mut Xml, name: &'static str, value: &ComplexValue) {
    let format = value.format.as_ref();
    let inline = Inline::of(format, &value.data);
    let mime = format.map_or("", |f| f.mime_type.as_str());
    x.start(name)
        .attr_if("mimeType", if mime_ok(mime) { mime } else { "" })
        .attr_if("encoding", inline.encoding(format))
        .attr_if("schema", format.map_or("", |f| f.schema.as_str()))
        .open();
    inline.write(x);
    x.end(name);
}

fn textual(mime: &str) -> bool {
    mime.is_empty()
        || mime.starts_with("text/")
        || ["json", "xml", "csv", "javascript", "svg"]
            .iter()
            .any(|k| mime.contains(k))
}

/// `text` without its XML declaration if it is one namespace-well-formed element (with only
/// comments, processing instructions and white space around it) and declares no DTD.
pub(crate) fn embeddable_xml(text: &str) -> Option<&str> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_comments = true;
    let (mut start, mut depth, mut roots, mut first) = (0, 0usize, 0usize, true);
    loop {
        let event = match reader.read_resolved_event() {
            Ok((ResolveResult::Unknown(_), _)) | Err(_) => return None,
            Ok((_, event)) => event,
        };
        match event {
            Event::Decl(_) if first => start = usize::try_from(reader.buffer_position()).ok()?,
            Event::Decl(_) | Event::DocType(_) => return None,
            Event::Start(e) => {
                roots += usize::from(depth == 0);
                depth += 1;
                element_ok(&reader, &e)?;
            }
            Event::Empty(e) => {
                roots += usize::from(depth == 0);
                element_ok(&reader, &e)?;
            }
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => return None,
            Event::GeneralRef(r) => {
                let predefined = matches!(&*r, b"amp" | b"lt" | b"gt" | b"apos" | b"quot");
                let char_ok =
                    r.is_char_ref() && r.resolve_char_ref().ok().flatten().is_some_and(is_xml_char);
                if depth == 0 || !(predefined || char_ok) {
                    return None;
                }
            }
            Event::CData(_) if depth == 0 => return None,
            Event::PI(pi) if pi.target().eq_ignore_ascii_case(b"xml") => return None,
            Event::Eof => break,
            _ => {}
        }
        first = false;
    }
    (depth == 0 && roots == 1).then(|| text[start..].trim_start())
}

/// Checks what quick-xml leaves unchecked in a start tag: names, attribute values (entities)
/// and attribute prefixes.
fn element_ok(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Option<()> {
    if !is_name(e.name().as_ref()) {
        return None;
    }
    for attr in e.attributes() {
        let attr = attr.ok()?;
        attr.unescape_value().ok()?;
        let key = attr.key.as_ref();
        if !is_name(key) {
            return None;
        }
        let prefix = attr.key.prefix().map(|p| p.into_inner());
        if key != b"xmlns" && !matches!(prefix, Some(b"xml" | b"xmlns")) {
            let (ns, _) = reader.resolve_attribute(attr.key);
            if matches!(ns, ResolveResult::Unknown(_)) {
                return None;
            }
        }
    }
    Some(())
}

/// A rough XML `Name` check (quick-xml does not check names).
fn is_name(name: &[u8]) -> bool {
    let ok =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.') || b >= 0x80;
    match name.first() {
        Some(&b) => {
            (b.is_ascii_alphabetic() || b == b'_' || b >= 0x80) && name.iter().all(|&b| ok(b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespace_well_formed_single_roots_are_embedded() {
        let ok = "<?xml version=\"1.0\"?>\n<!-- c --><a xmlns:g=\"urn:g\" g:x=\"1&amp;\"><g:b/>&#233;&lt;</a>\n";
        assert_eq!(
            embeddable_xml(ok),
            Some("<!-- c --><a xmlns:g=\"urn:g\" g:x=\"1&amp;\"><g:b/>&#233;&lt;</a>\n")
        );
        for bad in [
            "<a><b></a>",
            "<a/><b/>",
            "text<a/>",
            "<g:a/>",
            "<a g:x=\"1\"/>",
            "<a>&nbsp;</a>",
            "<a>&#0;</a>",
            "<!DOCTYPE a><a/>",
            "<a><?xml version=\"1.0\"?></a>",
            "<a><!-- a -- b --></a>",
            "<1a/>",
            "<a x=\"1\" x=\"2\"/>",
            "",
            "<a>",
        ] {
            assert_eq!(embeddable_xml(bad), None, "{bad}");
        }
    }

    #[test]
    fn inline_values_by_mime_type() {
        let f = |mime: &str| Format {
            mime_type: mime.to_owned(),
            ..Default::default()
        };
        assert!(matches!(
            Inline::of(Some(&f("application/gml+xml")), b"<a/>"),
            Inline::Xml("<a/>")
        ));
        assert!(matches!(
            Inline::of(Some(&f("text/xml")), b"<a>"),
            Inline::Text("<a>")
        ));
        assert!(matches!(
            Inline::of(Some(&f("application/json")), b"<a/>"),
            Inline::Text(_)
        ));
        assert!(
            matches!(Inline::of(Some(&f("application/zip")), b"PK"), Inline::Base64(ref s) if s == "UEs=")
        );
        assert!(matches!(Inline::of(None, b"\xff"), Inline::Base64(_)));
        let b64 = Format {
            encoding: "base64".to_owned(),
            ..f("text/plain")
        };
        assert!(matches!(Inline::of(Some(&b64), b"hi"), Inline::Base64(_)));
    }
}
