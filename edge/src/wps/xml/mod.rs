//! Shared XML writing for the WPS documents: the escaping writer, RFC 3339 times, literal
//! types and formats; the OWS sections both versions share ([`ows`]) and how inline complex
//! values are embedded ([`inline`]).

mod inline;
pub(crate) mod ows;

pub(crate) use inline::complex_value;
pub(crate) use ows::{
    bounding_box, exception_report, operations_metadata, service_identification, service_provider,
};

use wpsmesh_proto::wire::process::v1 as wire;

/// What the capabilities documents say about the service, and where it answers.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub title: String,
    pub abstract_text: String,
    pub keywords: Vec<String>,
    pub provider_name: String,
    /// The provider's web site; omitted when empty.
    pub provider_site: String,
    pub contact_name: String,
    pub contact_email: String,
    /// The WPS endpoint, `{public_url}/api/wps`.
    pub url: String,
}

/// The WPS endpoint of a deployment reachable at `public_url`: `{public_url}/api/wps`.
pub fn endpoint(public_url: &str) -> String {
    format!("{}/api/wps", public_url.trim_end_matches('/'))
}

impl Service {
    /// The defaults of a wpsmesh deployment reachable at `public_url` (e.g. `http://host:9000`).
    pub fn new(public_url: &str) -> Self {
        Self {
            title: "wpsmesh".to_owned(),
            abstract_text: "Every QGIS Processing algorithm as an OGC WPS process".to_owned(),
            keywords: vec![
                "WPS".to_owned(),
                "QGIS".to_owned(),
                "geoprocessing".to_owned(),
            ],
            provider_name: "wpsmesh".to_owned(),
            url: endpoint(public_url),
            ..Self::default()
        }
    }
}

pub(crate) const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
pub(crate) const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The one language the documents are written in.
pub(crate) const LANG: &str = "en-US";

/// A document being written: a `String` and escaping rules, so writing cannot fail.
pub(crate) struct Xml {
    buf: String,
}

impl Xml {
    pub(crate) fn new() -> Self {
        let mut buf = String::with_capacity(4096);
        buf.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        buf.push('\n');
        Self { buf }
    }

    /// Starts `<name`; finish it with [`Tag::open`], [`Tag::empty`] or [`Tag::text`].
    pub(crate) fn start(&mut self, name: &'static str) -> Tag<'_> {
        self.buf.push('<');
        self.buf.push_str(name);
        Tag { xml: self, name }
    }

    pub(crate) fn open(&mut self, name: &'static str) {
        self.start(name).open();
    }

    pub(crate) fn end(&mut self, name: &str) {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    pub(crate) fn text(&mut self, text: &str) {
        escape_into(&mut self.buf, text, false);
    }

    /// `<name>text</name>`.
    pub(crate) fn elem(&mut self, name: &'static str, text: &str) {
        self.start(name).text(text);
    }

    /// `<name>text</name>` unless `text` is empty.
    pub(crate) fn elem_if(&mut self, name: &'static str, text: &str) {
        if !text.is_empty() {
            self.elem(name, text);
        }
    }

    /// Text in CDATA sections (split around `]]>`), characters XML forbids removed.
    pub(crate) fn cdata(&mut self, text: &str) {
        self.buf.push_str("<![CDATA[");
        if all_xml_chars(text) {
            // The common case (a GeoJSON output): whole runs copied, no per-character work.
            let mut runs = text.split("]]>");
            self.buf.push_str(runs.next().unwrap_or_default());
            for run in runs {
                self.buf.push_str("]]]]><![CDATA[>");
                self.buf.push_str(run);
            }
            self.buf.push_str("]]>");
            return;
        }
        for c in text.chars().filter(|&c| is_xml_char(c)) {
            self.buf.push(c);
            if c == '>' && self.buf.ends_with("]]>") {
                self.buf.truncate(self.buf.len() - 1);
                self.buf.push_str("]]><![CDATA[>");
            }
        }
        self.buf.push_str("]]>");
    }

    /// Markup already checked to be well formed.
    pub(crate) fn raw(&mut self, markup: &str) {
        self.buf.push_str(markup);
    }

    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

/// An element start being written.
#[must_use]
pub(crate) struct Tag<'a> {
    xml: &'a mut Xml,
    name: &'static str,
}

impl Tag<'_> {
    pub(crate) fn attr(self, key: &str, value: &str) -> Self {
        let buf = &mut self.xml.buf;
        buf.push(' ');
        buf.push_str(key);
        buf.push_str("=\"");
        escape_into(buf, value, true);
        buf.push('"');
        self
    }

    /// The attribute unless `value` is empty.
    pub(crate) fn attr_if(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.attr(key, value)
        }
    }

    pub(crate) fn open(self) {
        self.xml.buf.push('>');
    }

    pub(crate) fn empty(self) {
        self.xml.buf.push_str("/>");
    }

    pub(crate) fn text(self, text: &str) {
        let Self { xml, name } = self;
        xml.buf.push('>');
        xml.text(text);
        xml.end(name);
    }
}

/// Characters XML 1.0 allows (`Char` production).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether every character of `text` is one XML allows ([`is_xml_char`]), checked on bytes.
pub(crate) fn all_xml_chars(text: &str) -> bool {
    text.bytes()
        .all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        && !text.contains(['\u{FFFE}', '\u{FFFF}'])
}

fn escape_into(buf: &mut String, text: &str, attr: bool) {
    let plain = |b: u8| b >= 0x20 && !matches!(b, b'&' | b'<' | b'>' | b'"') && b != 0x7f;
    if text.bytes().all(plain) && !text.contains(['\u{FFFE}', '\u{FFFF}']) {
        buf.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' if attr => buf.push_str("&quot;"),
            '\t' if attr => buf.push_str("&#9;"),
            '\n' if attr => buf.push_str("&#10;"),
            '\r' => buf.push_str("&#13;"),
            c if is_xml_char(c) => buf.push(c),
            _ => {}
        }
    }
}

/// `text`, or `fallback` when it is empty.
pub(crate) fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}

/// Whether `mime` matches OWS's MimeType pattern.
pub(crate) fn mime_ok(mime: &str) -> bool {
    const TYPES: [&str; 8] = [
        "application",
        "audio",
        "image",
        "text",
        "video",
        "message",
        "multipart",
        "model",
    ];
    mime.split_once('/').is_some_and(|(top, rest)| {
        TYPES.contains(&top) && !rest.is_empty() && !rest.contains(['\n', '\r'])
    })
}

/// The MIME type of a format as a description writes it: `application/octet-stream` when the
/// format has none, or one that does not match OWS's pattern.
pub(crate) fn described_mime(format: &wire::Format) -> &str {
    if mime_ok(&format.mime_type) {
        format.mime_type.as_str()
    } else {
        "application/octet-stream"
    }
}

/// The formats of a complex description, never empty (the first is the default).
pub(crate) fn formats(complex: &wire::ComplexDescription) -> Vec<&wire::Format> {
    static OCTET_STREAM: std::sync::LazyLock<wire::Format> =
        std::sync::LazyLock::new(|| wire::Format {
            mime_type: "application/octet-stream".to_owned(),
            ..wire::Format::default()
        });
    if complex.formats.is_empty() {
        vec![&OCTET_STREAM]
    } else {
        complex.formats.iter().collect()
    }
}

/// The CRSs of a bounding box description, never empty (the first is the default).
pub(crate) fn crs_list(bbox: &wire::BoundingBoxDescription) -> Vec<&str> {
    let list: Vec<&str> = bbox
        .crs
        .iter()
        .map(String::as_str)
        .filter(|c| !c.is_empty())
        .collect();
    if list.is_empty() {
        vec!["EPSG:4326"]
    } else {
        list
    }
}

/// The XML Schema name of a literal type (`string` when unspecified).
pub(crate) fn type_name(data_type: i32) -> &'static str {
    match wire::LiteralType::try_from(data_type).unwrap_or(wire::LiteralType::String) {
        wire::LiteralType::Double => "double",
        wire::LiteralType::Integer => "integer",
        wire::LiteralType::Boolean => "boolean",
        wire::LiteralType::String | wire::LiteralType::Unspecified => "string",
    }
}

/// A number as XML Schema writes it: `INF`/`-INF`, integers without a fraction.
pub(crate) fn number(value: f64, integer: bool) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "INF" } else { "-INF" }.to_owned()
    } else if (integer || value.fract() == 0.0) && value.abs() < 1e15 {
        format!("{}", value.trunc() as i64)
    } else {
        format!("{value}")
    }
}

/// A `max_occurs` of this value means unbounded.
pub(crate) const UNBOUNDED: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_splits_its_end_marker_on_both_paths() {
        let cdata = |text: &str| {
            let declaration = Xml::new().finish().len();
            let mut x = Xml::new();
            x.cdata(text);
            x.finish()[declaration..].to_owned()
        };
        // Clean text (copied in runs) and text with a forbidden character (filtered per
        // character): the same sections, `]]>` split so the section never ends early.
        assert_eq!(
            cdata("a]]>b]]>"),
            "<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>"
        );
        assert_eq!(
            cdata("a]]>\u{1}b]]>"),
            "<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>"
        );
        // A marker that appears only once the forbidden character is gone is split too.
        assert_eq!(cdata("]]\u{1}>"), "<![CDATA[]]]]><![CDATA[>]]>");
        assert!(all_xml_chars("{\"é\": \"\u{10000}\"}\t\n"));
        for bad in ["\u{0}", "x\u{1f}", "\u{FFFE}", "\u{FFFF}"] {
            assert!(!all_xml_chars(bad), "{bad:?}");
            assert_eq!(all_xml_chars(bad), bad.chars().all(is_xml_char));
        }
    }

    #[test]
    fn escaping_drops_characters_xml_forbids() {
        let mut x = Xml::new();
        x.start("a")
            .attr("b", "<\"&\t\n\u{1}é>")
            .text("<&>\"\r\u{0}\u{FFFE}ü");
        let doc = x.finish();
        assert!(
            doc.ends_with("<a b=\"&lt;&quot;&amp;&#9;&#10;é&gt;\">&lt;&amp;&gt;\"&#13;ü</a>"),
            "{doc}"
        );
    }
}
