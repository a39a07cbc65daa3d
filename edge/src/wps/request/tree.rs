//! A small element tree read from an XML body with quick-xml: names resolved to namespaces, text
//! unescaped, depth and size bounded. Content containers (inline complex data) are not built
//! into nodes: `content` keeps them as text and as re-serialized XML.

use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;

use super::content::{Content, capture};
use super::guard::{malformed, refused};
use super::{MAX_DEPTH, MAX_ELEMENTS};
use crate::ows::OwsError;

/// One element.
#[derive(Debug, Default)]
pub(super) struct Node {
    /// Namespace URI, empty when none.
    pub ns: String,
    pub local: String,
    /// Attributes other than namespace declarations.
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// Text and CDATA directly inside, unescaped, concatenated.
    pub text: String,
    /// What a content container holds; `None` for other elements.
    pub content: Option<Content>,
}

#[derive(Debug)]
pub(super) struct Attr {
    pub ns: String,
    pub local: String,
    pub value: String,
}

impl Node {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    /// An attribute without namespace (`mimeType`, `id`, ...).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attr_ns("", local)
    }

    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.local == local)
            .map(|a| a.value.as_str())
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// The first child named `local` in any of `namespaces`.
    pub fn child_in(&self, namespaces: &[&str], local: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.local == local && namespaces.contains(&c.ns.as_str()))
    }

    pub fn children_named<'s>(
        &'s self,
        ns: &'s str,
        local: &'s str,
    ) -> impl Iterator<Item = &'s Node> + 's {
        self.children.iter().filter(move |c| c.is(ns, local))
    }
}

/// Parses `body` into its root element; elements named in `containers` (namespace, local name)
/// become content containers.
pub(super) fn parse(body: &[u8], containers: &[(&str, &str)]) -> Result<Node, OwsError> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().check_comments = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let at = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| malformed(body, offset(reader.error_position()), e))?;
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
                if root.is_some() && stack.is_empty() {
                    return Err(malformed(body, at, "content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(body, at));
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(refused(format!(
                        "XML request has more than {MAX_ELEMENTS} elements"
                    )));
                }
                let (ns, local) = name.unwrap_or_default();
                let attrs = attributes(&reader, body, at, &e)?;
                let mut node = Node {
                    ns,
                    local,
                    attrs,
                    ..Node::default()
                };
                let is_container = containers.iter().any(|(ns, local)| node.is(ns, local));
                if is_container {
                    node.content = Some(if empty {
                        Content::default()
                    } else {
                        capture(&mut reader, body, stack.len() + 1)?
                    });
                    attach(&mut stack, &mut root, node);
                } else if empty {
                    attach(&mut stack, &mut root, node);
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => match stack.pop() {
                Some(node) => attach(&mut stack, &mut root, node),
                None => return Err(malformed(body, at, "unexpected end tag")),
            },
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|e| malformed(body, at, e))?;
                push_text(&mut stack, body, at, &text)?;
            }
            Event::CData(c) => {
                let text = c.xml10_content().map_err(|e| malformed(body, at, e))?;
                push_text(&mut stack, body, at, &text)?;
            }
            Event::GeneralRef(r) => {
                let text = reference(body, at, &r)?;
                push_text(&mut stack, body, at, &text)?;
            }
            Event::DocType(_) => {
                return Err(refused(
                    "DTDs and entity declarations are not accepted".to_owned(),
                ));
            }
            Event::Decl(d) => {
                if let Some(Ok(encoding)) = d.encoding() {
                    let encoding = String::from_utf8_lossy(&encoding).to_ascii_lowercase();
                    if !matches!(encoding.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return Err(refused(format!(
                            "XML requests must be UTF-8 encoded, not {encoding}"
                        )));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            body,
            body.len(),
            format!("unexpected end of document, <{}> is not closed", open.local),
        ));
    }
    root.ok_or_else(|| malformed(body, body.len(), "no root element"))
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn push_text(stack: &mut [Node], body: &[u8], at: usize, text: &str) -> Result<(), OwsError> {
    match stack.last_mut() {
        Some(node) => node.text.push_str(text),
        None if text.chars().all(char::is_whitespace) => {}
        None => return Err(malformed(body, at, "text outside the root element")),
    }
    Ok(())
}

pub(super) fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

pub(super) fn too_deep(body: &[u8], at: usize) -> OwsError {
    malformed(
        body,
        at,
        format!("elements nested deeper than {MAX_DEPTH} levels"),
    )
}

fn utf8(body: &[u8], at: usize, bytes: &[u8]) -> Result<String, OwsError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| malformed(body, at, "invalid UTF-8"))
}

pub(super) fn resolve_name(
    body: &[u8],
    at: usize,
    resolved: ResolveResult<'_>,
    e: &BytesStart<'_>,
) -> Result<(String, String), OwsError> {
    let ns = match resolved {
        ResolveResult::Bound(ns) => utf8(body, at, ns.as_ref())?,
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(prefix) => {
            return Err(malformed(
                body,
                at,
                format!(
                    "undeclared namespace prefix {}",
                    String::from_utf8_lossy(&prefix)
                ),
            ));
        }
    };
    Ok((ns, utf8(body, at, e.local_name().as_ref())?))
}

/// The element's attributes, namespace declarations left out, values unescaped.
pub(super) fn attributes(
    reader: &NsReader<&[u8]>,
    body: &[u8],
    at: usize,
    e: &BytesStart<'_>,
) -> Result<Vec<Attr>, OwsError> {
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|err| malformed(body, at, err))?;
        let value = attr
            .decode_and_unescape_value(reader.decoder())
            .map_err(|err| malformed(body, at, err))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, local) = reader.resolve_attribute(attr.key);
        let ns = match resolved {
            ResolveResult::Bound(ns) => utf8(body, at, ns.as_ref())?,
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(malformed(
                    body,
                    at,
                    format!(
                        "undeclared namespace prefix {}",
                        String::from_utf8_lossy(&prefix)
                    ),
                ));
            }
        };
        attrs.push(Attr {
            ns,
            local: utf8(body, at, local.as_ref())?,
            value: value.into_owned(),
        });
    }
    Ok(attrs)
}

/// Expands `&lt;`-style and character references; any other entity is undefined (no DTD).
pub(super) fn reference(body: &[u8], at: usize, r: &BytesRef<'_>) -> Result<String, OwsError> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            Ok(None) | Err(_) => Err(malformed(body, at, "invalid character reference")),
        };
    }
    let name = r.decode().map_err(|e| malformed(body, at, e))?;
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| malformed(body, at, format!("undefined entity &{name};")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CONTAINERS: &[(&str, &str)] = &[("urn:w", "Data")];

    #[test]
    fn builds_nodes_with_namespaces_attributes_and_text() {
        let root = parse(
            br#"<w:R xmlns:w="urn:w" xmlns:x="urn:x" a="1 &amp; 2"><w:C x:h="v">t&#65;&lt;<![CDATA[<c>]]></w:C><w:E/></w:R>"#,
            CONTAINERS,
        )
        .expect("parses");
        assert!(root.is("urn:w", "R"));
        assert_eq!(root.attr("a"), Some("1 & 2"));
        let c = root.child("urn:w", "C").expect("C");
        assert_eq!(c.attr_ns("urn:x", "h"), Some("v"));
        assert_eq!(c.text, "tA<<c>");
        assert!(root.child("urn:w", "E").is_some());
    }

    #[test]
    fn malformed_documents_name_the_place() {
        for (xml, needle) in [
            ("<a><b></a>", "line 1"),
            ("<a>", "not closed"),
            ("<a/><b/>", "after the root"),
            ("<a>&foo;</a>", "undefined entity"),
            ("<x:a/>", "undeclared namespace prefix x"),
            ("<a b='1' b='2'/>", "line 1, column 1"),
            ("", "no root element"),
            (
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
                "UTF-8",
            ),
        ] {
            let err = parse(xml.as_bytes(), CONTAINERS).unwrap_err();
            assert!(err.text.contains(needle), "{xml}: {err}");
            assert_eq!(err.locator, None);
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(
            parse(deep.as_bytes(), CONTAINERS)
                .unwrap_err()
                .text
                .contains("deeper")
        );
    }
}
