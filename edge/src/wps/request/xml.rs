//! XML (POST) requests: the version from the root element's namespace (checked against its
//! `version` attribute), the operation from its name; GetCapabilities, DescribeProcess and the
//! job operations here, Execute in `xml_v1`/`xml_v2`; helpers both versions share.

use bytes::Bytes;
use wpsmesh_proto::process;

use super::content::Content;
use super::tree::{self, Node};
use super::values::{
    at_most, complex, format, get_method, identifier, is_base64, quote, reference,
};
use super::{MAX_INPUTS, bbox, kvp, xml_v1, xml_v2};
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::{Version, WpsRequest};

pub(super) const WPS1: &str = "http://www.opengis.net/wps/1.0.0";
pub(super) const WPS2: &str = "http://www.opengis.net/wps/2.0";
pub(super) const OWS: &[&str] = &[
    "http://www.opengis.net/ows/1.1",
    "http://www.opengis.net/ows/2.0",
];
pub(super) const XLINK: &str = "http://www.w3.org/1999/xlink";

/// Elements whose content is data, not request structure.
const CONTAINERS: &[(&str, &str)] = &[
    (WPS1, "ComplexData"),
    (WPS1, "Body"),
    (WPS2, "Data"),
    (WPS2, "Body"),
];

/// Parses a checked body (see `guard`).
pub(super) fn parse(body: &[u8]) -> Result<WpsRequest, OwsError> {
    let root = tree::parse(body, CONTAINERS)?;
    let version = match root.ns.as_str() {
        WPS1 => Version::V100,
        WPS2 => Version::V200,
        ns => {
            return Err(OwsError::invalid(
                "request",
                format!(
                    "<{}> in namespace {} is not a WPS request; expected {WPS1} or {WPS2}",
                    root.local,
                    quote(ns)
                ),
            ));
        }
    };
    match root.attr("service").map(str::trim) {
        None | Some("") => return Err(OwsError::missing("service")),
        Some(s) if !s.eq_ignore_ascii_case("WPS") => {
            return Err(OwsError::invalid(
                "service",
                format!("service must be WPS, not {}", quote(s)),
            ));
        }
        Some(_) => {}
    }
    let given = root.attr("version").map(str::trim).unwrap_or_default();
    if !given.is_empty() && kvp::version(given)? != version {
        return Err(OwsError::invalid(
            "version",
            format!("version {given} does not match the namespace {}", root.ns),
        ));
    }
    match (root.local.as_str(), version) {
        ("GetCapabilities", _) => Ok(get_capabilities(&root, version)),
        ("DescribeProcess", _) => describe(&root, version),
        ("Execute", Version::V100) => xml_v1::execute(&root),
        ("Execute", Version::V200) => xml_v2::execute(&root),
        ("GetStatus", Version::V200) => Ok(WpsRequest::GetStatus {
            version,
            job_id: job_id(&root)?,
        }),
        ("GetResult", Version::V200) => Ok(WpsRequest::GetResult {
            version,
            job_id: job_id(&root)?,
        }),
        ("Dismiss", Version::V200) => Ok(WpsRequest::Dismiss {
            version,
            job_id: job_id(&root)?,
        }),
        (other, version) => Err(OwsError::new(
            OwsCode::OperationNotSupported,
            Some("request"),
            format!(
                "operation {} is not supported in WPS {}",
                quote(other),
                version.as_str()
            ),
        )),
    }
}

/// AcceptVersions as given; without them, the root namespace's version.
fn get_capabilities(root: &Node, version: Version) -> WpsRequest {
    let mut accept_versions: Vec<String> = root
        .children
        .iter()
        .filter(|c| c.local == "AcceptVersions")
        .flat_map(|c| c.children.iter().filter(|v| v.local == "Version"))
        .map(|v| v.text.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if accept_versions.is_empty() {
        accept_versions.push(version.as_str().to_owned());
    }
    WpsRequest::GetCapabilities { accept_versions }
}

fn describe(root: &Node, version: Version) -> Result<WpsRequest, OwsError> {
    let identifiers = root
        .children
        .iter()
        .filter(|c| c.local == "Identifier" && OWS.contains(&c.ns.as_str()))
        .map(|c| identifier(&c.text, "identifier"))
        .collect::<Result<Vec<_>, _>>()?;
    if identifiers.is_empty() {
        return Err(OwsError::missing("identifier"));
    }
    at_most(identifiers.len(), MAX_INPUTS, "identifier")?;
    Ok(WpsRequest::DescribeProcess {
        version,
        identifiers: kvp::all_or(identifiers, version),
    })
}

fn job_id(root: &Node) -> Result<String, OwsError> {
    let node = root
        .child(WPS2, "JobID")
        .ok_or_else(|| OwsError::missing("jobId"))?;
    identifier(&node.text, "jobId")
}

/// The `ows:Identifier` child; MissingParameterValue with `locator` when absent.
pub(super) fn ows_identifier(node: &Node, locator: &str) -> Result<String, OwsError> {
    let id = node
        .child_in(OWS, "Identifier")
        .ok_or_else(|| OwsError::missing(locator))?;
    identifier(&id.text, locator)
}

/// A `wps:Reference` (either version): GET only, no headers and no body.
pub(super) fn reference_input(
    node: &Node,
    wps: &str,
    id: &str,
) -> Result<process::Reference, OwsError> {
    get_method(node.attr("method"), id)?;
    for unsupported in ["Header", "Body", "BodyReference"] {
        if node.child(wps, unsupported).is_some() {
            return Err(OwsError::not_supported(
                id,
                format!("{id}: references with a {unsupported} are not supported"),
            ));
        }
    }
    let href = node
        .attr_ns(XLINK, "href")
        .or_else(|| node.attr("href"))
        .unwrap_or_default();
    let format = format(
        node.attr("mimeType"),
        node.attr("encoding"),
        node.attr("schema"),
    );
    reference(href, format, id)
}

/// An inline complex value from a container: its XML when it holds elements, else its text
/// (trimmed), base64-decoded when the encoding says so.
pub(super) fn complex_input(
    node: &Node,
    content: &Content,
    id: &str,
) -> Result<process::ComplexValue, OwsError> {
    let encoding = node.attr("encoding");
    let data = if content.roots.is_empty() {
        Bytes::from(content.text.trim().as_bytes().to_vec())
    } else if is_base64(encoding) {
        return Err(OwsError::invalid(
            id,
            format!("{id}: base64 content must be text, not XML elements"),
        ));
    } else {
        Bytes::from(content.xml.clone())
    };
    complex(
        data,
        node.attr("mimeType"),
        encoding,
        node.attr("schema"),
        id,
    )
}

/// A bounding box element (`wps:BoundingBoxData`, `ows:BoundingBox`).
pub(super) fn bbox_input(node: &Node, id: &str) -> Result<process::BoundingBox, OwsError> {
    let corner = |name: &str| {
        node.child_in(OWS, name)
            .map(|c| c.text.as_str())
            .ok_or_else(|| {
                OwsError::new(
                    OwsCode::MissingParameterValue,
                    Some(id),
                    format!("{id}: bounding box without ows:{name}"),
                )
            })
    };
    let bbox = bbox::from_corners(
        node.attr("crs"),
        corner("LowerCorner")?,
        corner("UpperCorner")?,
        id,
    )?;
    bbox::two_d(bbox, id)
}
