//! This edge's own files inside the mesh: an input href to the edge's file API
//! (`{base}/api/file/retrieve/{id}.{ext}`, under the public URL, a configured `file_hosts` base,
//! or loopback/`localhost` on the listening port) becomes a storage reference before a node is
//! called; another path of this edge is refused; output objects become URLs under the public URL.

use std::net::{IpAddr, SocketAddr};

use tracing::warn;
use url::{Host, Url};
use wpsmesh_proto::process::{ExecuteRequest, InputValue, Source, StoredFile, StoredObject};
use wpsmesh_proto::storage::{ObjectId, RETRIEVE_PATH as RETRIEVE, retrieve_url, valid_extension};
use wpsmesh_proto::text;

use crate::ows::OwsError;

/// Which hrefs name this edge's files, and the public URL output hrefs are built on.
#[derive(Debug, Clone)]
pub struct OwnFiles {
    public_url: String,
    /// The public URL and the configured `file_hosts`, paths ending in `/`.
    bases: Vec<Url>,
    /// The port the edge listens on: loopback and `localhost` on it reach the edge directly.
    listen: SocketAddr,
}

/// What an href under one of the edge's bases names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// A stored object, with the extension the href gives (may be empty).
    Object { id: ObjectId, ext: String },
    /// A path of this edge that is not a stored file: refused, never fetched over HTTP.
    Other(String),
}

impl OwnFiles {
    /// The edge reachable at `public_url` and each of `file_hosts`, listening on `listen`. A base
    /// that is no http(s) URL is left out with a warning.
    pub fn new(public_url: &str, listen: SocketAddr, file_hosts: &[String]) -> Self {
        let bases = std::iter::once(public_url)
            .chain(file_hosts.iter().map(String::as_str))
            .filter_map(|base| {
                parse_base(base)
                    .inspect_err(|e| warn!(error = %e, "file host left out"))
                    .ok()
            })
            .collect();
        Self {
            public_url: public_url.to_owned(),
            bases,
            listen,
        }
    }

    /// Checks the public URL and every `file_hosts` base, naming the first that is no http(s)
    /// base URL (a configuration error, refused at startup).
    pub fn check(public_url: &str, file_hosts: &[String]) -> Result<(), String> {
        std::iter::once(public_url)
            .chain(file_hosts.iter().map(String::as_str))
            .try_for_each(|base| parse_base(base).map(drop))
    }

    /// The URL clients read stored output `file` at.
    pub fn url(&self, file: &StoredFile) -> String {
        retrieve_url(&self.public_url, file.id.as_str(), &file.format.extension)
    }

    /// The public URL output hrefs are built on.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Turns every reference to this edge's file API in `request` into a storage reference;
    /// InvalidParameterValue naming the input when one points at this edge but at no file.
    pub fn resolve(&self, request: &mut ExecuteRequest) -> Result<(), OwsError> {
        for input in &mut request.inputs {
            let InputValue::Reference(reference) = &mut input.value else {
                continue;
            };
            let Source::Href(href) = &reference.source else {
                continue;
            };
            let Ok(url) = Url::parse(href.trim()) else {
                continue;
            };
            match self.named(&url) {
                None => {}
                Some(Named::Object { id, ext }) => {
                    reference.source = Source::Stored(StoredObject {
                        id,
                        extension: valid_extension(&ext).unwrap_or_default(),
                    });
                }
                Some(Named::Other(reason)) => {
                    return Err(OwsError::invalid(
                        &input.id,
                        format!(
                            "input {}: invalid reference {:?}: {reason}",
                            input.id,
                            text::shown(href)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What `url` names when it lies under one of the bases (same scheme, host, port and path
    /// prefix) or is loopback/`localhost` over http on the listening port.
    fn named(&self, url: &Url) -> Option<Named> {
        let under_base = self.bases.iter().find_map(|base| {
            let same_origin = base.scheme() == url.scheme()
                && base.host() == url.host()
                && base.port_or_known_default() == url.port_or_known_default();
            same_origin
                .then(|| url.path().strip_prefix(base.path()))
                .flatten()
        });
        let rest = match under_base {
            Some(rest) => rest,
            None if self.reaches_listener(url) => url.path().strip_prefix('/')?,
            None => return None,
        };
        let Some(file) = rest.strip_prefix(RETRIEVE) else {
            return Some(Named::Other(format!(
                "it points at this service but not at /{RETRIEVE}{{id}}.{{ext}}"
            )));
        };
        let (id, ext) = file.split_once('.').unwrap_or((file, ""));
        let Ok(id) = id.parse::<ObjectId>() else {
            return Some(Named::Other(
                "invalid object id: expected 32 lowercase hexadecimal characters".into(),
            ));
        };
        Some(Named::Object {
            id,
            ext: ext.to_ascii_lowercase(),
        })
    }

    /// Whether `url` is plain http to this edge's listening port on `localhost`, a loopback
    /// address, or the address the edge is bound to.
    fn reaches_listener(&self, url: &Url) -> bool {
        if url.scheme() != "http" || url.port_or_known_default() != Some(self.listen.port()) {
            return false;
        }
        let ip = match url.host() {
            Some(Host::Domain(name)) => return name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            None => return false,
        };
        ip.is_loopback() || (!self.listen.ip().is_unspecified() && ip == self.listen.ip())
    }
}

/// A base URL: http(s), with a host, no query or fragment; its path is made to end in `/`.
fn parse_base(base: &str) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| format!("base url {base:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "base url {base:?} must be an http(s) url with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base url {base:?} must not have a query or fragment"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use wpsmesh_proto::process::{Format, Input, Reference};

    use super::*;
    use crate::ows::OwsCode;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn own() -> OwnFiles {
        OwnFiles::new(
            "http://localhost:9000",
            "0.0.0.0:9000".parse().unwrap(),
            &["https://maps.example.org/wps".into(), "not a url".into()],
        )
    }

    fn request(href: &str) -> ExecuteRequest {
        ExecuteRequest {
            process_id: "native:buffer".into(),
            inputs: vec![Input {
                id: "INPUT".into(),
                value: InputValue::Reference(Reference {
                    source: Source::Href(href.into()),
                    format: Some(Format::of("application/zip")),
                }),
            }],
            outputs: vec![],
            timeout: None,
            subscriber: None,
        }
    }

    fn resolved(href: &str) -> Result<Source, OwsError> {
        let mut r = request(href);
        own().resolve(&mut r)?;
        match r.inputs.remove(0).value {
            InputValue::Reference(reference) => Ok(reference.source),
            other => panic!("{other:?}"),
        }
    }

    fn stored(ext: &str) -> Source {
        Source::Stored(StoredObject {
            id: ID.parse().unwrap(),
            extension: ext.into(),
        })
    }

    #[test]
    fn bad_bases_are_refused_by_name_at_startup() {
        assert!(
            OwnFiles::check(
                "http://localhost:9000",
                &["https://maps.example.org/wps".into()]
            )
            .is_ok()
        );
        let e = OwnFiles::check("http://localhost:9000", &["ftp://files.example.org".into()])
            .unwrap_err();
        assert!(
            e.contains("ftp://files.example.org") && e.contains("http(s)"),
            "{e}"
        );
        assert!(
            OwnFiles::check("not a url", &[])
                .unwrap_err()
                .contains("not a url")
        );
    }

    #[test]
    fn own_file_hrefs_under_any_name_of_the_edge_become_stored_objects() {
        for (href, ext) in [
            (
                format!("http://localhost:9000/api/file/retrieve/{ID}.zip"),
                "zip",
            ),
            (
                format!("http://127.0.0.1:9000/api/file/retrieve/{ID}.ZIP"),
                "zip",
            ),
            (format!("http://[::1]:9000/api/file/retrieve/{ID}"), ""),
            (
                format!("http://LOCALHOST:9000/api/file/retrieve/{ID}.geojson"),
                "geojson",
            ),
            (
                format!("https://maps.example.org:443/wps/api/file/retrieve/{ID}.zip"),
                "zip",
            ),
        ] {
            assert_eq!(resolved(&href).unwrap(), stored(ext), "{href}");
        }
        let file = StoredFile {
            id: ID.parse().unwrap(),
            format: Format {
                extension: "geojson".into(),
                ..Format::of("application/geo+json")
            },
            size: 1,
        };
        assert_eq!(
            own().url(&file),
            format!("http://localhost:9000/api/file/retrieve/{ID}.geojson")
        );
    }

    #[test]
    fn other_hosts_ports_and_schemes_pass_as_hrefs() {
        for href in [
            format!("http://127.0.0.1:9001/api/file/retrieve/{ID}.zip"),
            format!("https://localhost:9000/api/file/retrieve/{ID}.zip"),
            format!("https://maps.example.org/api/file/retrieve/{ID}.zip"),
            format!("http://example.com/api/file/retrieve/{ID}.zip"),
            "http://10.0.0.1:9000/api/wps?service=WPS".into(),
            "not a url at all".into(),
        ] {
            assert_eq!(resolved(&href).unwrap(), Source::Href(href.clone()));
        }
    }

    #[test]
    fn other_paths_of_the_edge_are_refused_with_the_reason() {
        let upper = format!(
            "http://127.0.0.1:9000/api/file/retrieve/{}.zip",
            ID.to_uppercase()
        );
        for (href, reason) in [
            (
                "http://localhost:9000/api/wps?service=WPS".to_owned(),
                "it points at this service but not at /api/file/retrieve/{id}.{ext}",
            ),
            (
                "https://maps.example.org/wps/jobs".to_owned(),
                "it points at this service but not at /api/file/retrieve/{id}.{ext}",
            ),
            (
                "http://localhost:9000/api/file/retrieve/nope.zip".to_owned(),
                "invalid object id: expected 32 lowercase hexadecimal characters",
            ),
            (
                upper,
                "invalid object id: expected 32 lowercase hexadecimal characters",
            ),
        ] {
            let e = resolved(&href).unwrap_err();
            assert_eq!(
                (e.code, e.locator.as_deref()),
                (OwsCode::InvalidParameterValue, Some("INPUT")),
                "{href}"
            );
            assert_eq!(
                e.text,
                format!("input INPUT: invalid reference {href:?}: {reason}")
            );
        }
    }

    #[test]
    fn the_bound_address_reaches_the_edge_too() {
        let own = OwnFiles::new("http://edge.test", "10.1.2.3:9000".parse().unwrap(), &[]);
        let mut r = request(&format!("http://10.1.2.3:9000/api/file/retrieve/{ID}.zip"));
        own.resolve(&mut r).unwrap();
        assert!(matches!(
            &r.inputs[0].value,
            InputValue::Reference(Reference {
                source: Source::Stored(_),
                ..
            })
        ));
    }
}
