//! The content of a container element (inline complex data): its text, and its elements
//! re-serialized as standalone XML with the namespace declarations they inherit.

use quick_xml::NsReader;
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::PrefixDeclaration;

use super::guard::{malformed, refused};
use super::tree::{attributes, offset, reference, resolve_name, too_deep};
use super::{MAX_DEPTH, MAX_INPUTS};
use crate::ows::OwsError;

/// The content of a container element.
#[derive(Debug, Default)]
pub(super) struct Content {
    /// Text and CDATA directly inside the container, unescaped.
    pub text: String,
    /// The child elements as XML, from the first to the end of the last, each top-level element
    /// given the namespace declarations in scope that it does not make itself. Empty when none.
    pub xml: Vec<u8>,
    /// `(namespace, local name)` of each top-level child element.
    pub roots: Vec<(String, String)>,
}

/// Reads a container's content up to and including its end tag.
pub(super) fn capture(
    reader: &mut NsReader<&[u8]>,
    body: &[u8],
    depth: usize,
) -> Result<Content, OwsError> {
    // Declarations in scope inside the container, its own included.
    let scope: Vec<(Option<Vec<u8>>, Vec<u8>)> = reader
        .prefixes()
        .map(|(prefix, ns)| match prefix {
            PrefixDeclaration::Default => (None, ns.as_ref().to_vec()),
            PrefixDeclaration::Named(p) => (Some(p.to_vec()), ns.as_ref().to_vec()),
        })
        .collect();
    let mut content = Content::default();
    let mut level = 0usize;
    let mut copied_until = 0usize;
    loop {
        let at = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| malformed(body, offset(reader.error_position()), e))?;
        let end = offset(reader.buffer_position());
        let empty = matches!(event, Event::Empty(_));
        let name = match &event {
            Event::Start(e) | Event::Empty(e) => Some(resolve_name(
                body,
                at,
                reader.resolve_element(e.name()).0,
                e,
            )?),
            _ => None,
        };
        match event {
            Event::Start(e) | Event::Empty(e) => {
                if depth + level >= MAX_DEPTH {
                    return Err(too_deep(body, at));
                }
                attributes(reader, body, at, &e)?;
                if level == 0 {
                    if content.roots.len() >= MAX_INPUTS {
                        return Err(malformed(
                            body,
                            at,
                            format!("more than {MAX_INPUTS} elements in one complex value"),
                        ));
                    }
                    content.roots.push(name.unwrap_or_default());
                    if !content.xml.is_empty() {
                        content.xml.extend_from_slice(&body[copied_until..at]);
                    }
                    open_tag(&mut content.xml, &e, &scope, empty);
                    copied_until = end;
                }
                if !empty {
                    level += 1;
                }
            }
            Event::End(_) => {
                if level == 0 {
                    break;
                }
                level -= 1;
                if level == 0 {
                    content.xml.extend_from_slice(&body[copied_until..end]);
                    copied_until = end;
                }
            }
            Event::Text(t) if level == 0 => {
                let text = t.xml10_content().map_err(|e| malformed(body, at, e))?;
                content.text.push_str(&text);
            }
            Event::CData(c) if level == 0 => {
                let text = c.xml10_content().map_err(|e| malformed(body, at, e))?;
                content.text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let text = reference(body, at, &r)?;
                if level == 0 {
                    content.text.push_str(&text);
                }
            }
            Event::DocType(_) => {
                return Err(refused(
                    "DTDs and entity declarations are not accepted".to_owned(),
                ));
            }
            Event::Eof => {
                return Err(malformed(
                    body,
                    body.len(),
                    "unexpected end of document inside complex data",
                ));
            }
            _ => {}
        }
    }
    Ok(content)
}

/// Writes a top-level start tag with the declarations in `scope` it does not make itself.
fn open_tag(
    out: &mut Vec<u8>,
    e: &BytesStart<'_>,
    scope: &[(Option<Vec<u8>>, Vec<u8>)],
    empty: bool,
) {
    let own: Vec<Option<Vec<u8>>> = e
        .attributes()
        .filter_map(Result::ok)
        .filter_map(|a| match a.key.as_namespace_binding()? {
            PrefixDeclaration::Default => Some(None),
            PrefixDeclaration::Named(p) => Some(Some(p.to_vec())),
        })
        .collect();
    out.push(b'<');
    out.extend_from_slice(&e[..]);
    for (prefix, ns) in scope.iter().filter(|(p, _)| !own.contains(p)) {
        out.extend_from_slice(b" xmlns");
        if let Some(prefix) = prefix {
            out.push(b':');
            out.extend_from_slice(prefix);
        }
        out.extend_from_slice(b"=\"");
        out.extend_from_slice(escape(String::from_utf8_lossy(ns)).as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(if empty { b"/>" } else { b">" });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tree::parse;
    use super::*;

    const CONTAINERS: &[(&str, &str)] = &[("urn:w", "Data")];

    fn content(xml: &str) -> Content {
        let root = parse(xml.as_bytes(), CONTAINERS).expect("parses");
        root.children
            .into_iter()
            .find_map(|c| c.content)
            .expect("container")
    }

    #[test]
    fn container_keeps_xml_with_namespaces_in_scope() {
        let c = content(
            r#"<w:R xmlns:w="urn:w" xmlns:g="urn:g"><w:Data> <!-- c --><g:P a="1"><g:Q/></g:P> </w:Data></w:R>"#,
        );
        assert_eq!(
            String::from_utf8(c.xml).expect("utf8"),
            r#"<g:P a="1" xmlns:w="urn:w" xmlns:g="urn:g"><g:Q/></g:P>"#
        );
        assert_eq!(c.roots, vec![("urn:g".to_owned(), "P".to_owned())]);
        assert_eq!(c.text.trim(), "");
    }

    #[test]
    fn container_does_not_redeclare_own_prefixes_and_keeps_empty_roots() {
        let c = content(
            r#"<R xmlns="urn:d" xmlns:w="urn:w"><w:Data><P xmlns="urn:p"/><Q/></w:Data></R>"#,
        );
        assert_eq!(
            String::from_utf8(c.xml).expect("utf8"),
            r#"<P xmlns="urn:p" xmlns:w="urn:w"/><Q xmlns="urn:d" xmlns:w="urn:w"/>"#
        );
    }

    #[test]
    fn container_text_and_cdata() {
        let c = content(
            r#"<w:R xmlns:w="urn:w"><w:Data> <![CDATA[{"a": "<b>"}]]> &amp;</w:Data></w:R>"#,
        );
        assert_eq!(c.text, r#" {"a": "<b>"} &"#);
        assert!(c.xml.is_empty());
    }

    #[test]
    fn undefined_entity_inside_container_is_refused() {
        let doc = r#"<w:R xmlns:w="urn:w"><w:Data><g>&x;</g></w:Data></w:R>"#;
        assert!(
            parse(doc.as_bytes(), CONTAINERS)
                .unwrap_err()
                .text
                .contains("&x;")
        );
    }
    #[test]
    fn depth_is_bounded_inside_containers() {
        let inner = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        let doc = format!(r#"<w:R xmlns:w="urn:w"><w:Data>{inner}</w:Data></w:R>"#);
        assert!(
            parse(doc.as_bytes(), CONTAINERS)
                .unwrap_err()
                .text
                .contains("deeper")
        );
    }
}
