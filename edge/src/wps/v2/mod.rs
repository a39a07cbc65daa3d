//! WPS 2.0 documents (OWS 2.0): capabilities, process offerings, status info, results and
//! exception reports, each valid against the official schemas.

mod describe;

pub use crate::jobs::wps2::{result, status_info};
pub use describe::process_offerings;

use wpsmesh_proto::wire::process::v1 as wire;

use super::xml::{self, LANG, Service, XLINK_NS, XSI_NS, Xml};
use crate::ows::OwsError;

pub(crate) const WPS_NS: &str = "http://www.opengis.net/wps/2.0";
pub(crate) const OWS_NS: &str = "http://www.opengis.net/ows/2.0";
const VERSION: &str = "2.0.0";
const SCHEMA_LOCATION: &str =
    "http://www.opengis.net/wps/2.0 http://schemas.opengis.net/wps/2.0/wps.xsd";

/// Starts the root element `name` with the WPS, OWS, XLink and XSI namespaces and the schema
/// location; the caller adds attributes and opens it.
pub(crate) fn root<'a>(x: &'a mut Xml, name: &'static str) -> xml::Tag<'a> {
    x.start(name)
        .attr("xmlns:wps", WPS_NS)
        .attr("xmlns:ows", OWS_NS)
        .attr("xmlns:xlink", XLINK_NS)
        .attr("xmlns:xsi", XSI_NS)
        .attr("xsi:schemaLocation", SCHEMA_LOCATION)
}

/// The process properties of a ProcessSummary or ProcessOffering: jobControlOptions,
/// outputTransmission and processVersion (when it is an OWS version, `x.y.z`).
pub(crate) fn process_properties<'a>(
    tag: xml::Tag<'a>,
    summary: &wire::ProcessSummary,
) -> xml::Tag<'a> {
    let control = if summary.async_supported {
        "sync-execute async-execute dismiss"
    } else {
        "sync-execute"
    };
    let version = if is_version(&summary.version) {
        summary.version.as_str()
    } else {
        ""
    };
    tag.attr("jobControlOptions", control)
        .attr("outputTransmission", "value reference")
        .attr_if("processVersion", version)
}

/// Whether `v` matches OWS's VersionType, `\d+\.\d?\d\.\d?\d`.
fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    parts.len() == 3 && digits(parts[0], usize::MAX) && digits(parts[1], 2) && digits(parts[2], 2)
}

/// The GetCapabilities response listing `processes` (the schema wants at least one: answer
/// ServerBusy rather than an empty list).
pub fn capabilities(service: &Service, processes: &[wire::ProcessSummary]) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:Capabilities")
        .attr("service", "WPS")
        .attr("version", VERSION)
        .open();
    xml::service_identification(&mut x, service, VERSION);
    xml::service_provider(&mut x, service);
    let ops = [
        ("GetCapabilities", true, true),
        ("DescribeProcess", true, true),
        ("Execute", false, true),
        ("GetStatus", true, true),
        ("GetResult", true, true),
        ("Dismiss", true, true),
    ];
    xml::operations_metadata(&mut x, &service.url, &service.url, &ops);
    x.open("ows:Languages");
    x.elem("ows:Language", LANG);
    x.end("ows:Languages");
    x.open("wps:Contents");
    for process in processes {
        process_properties(x.start("wps:ProcessSummary"), process).open();
        x.elem("ows:Title", xml::or(&process.title, &process.id));
        x.elem_if("ows:Abstract", &process.description);
        x.elem("ows:Identifier", &process.id);
        x.end("wps:ProcessSummary");
    }
    x.end("wps:Contents");
    x.end("wps:Capabilities");
    x.finish()
}

/// An OWS 2.0 ExceptionReport (`version="2.0.0"`) for `error`; every code is written as is.
pub fn exception_report(error: &OwsError) -> String {
    let mut x = Xml::new();
    let location = format!("{OWS_NS} http://schemas.opengis.net/ows/2.0/owsExceptionReport.xsd");
    let ns = [
        ("xmlns:ows", OWS_NS),
        ("xmlns:xsi", XSI_NS),
        ("xsi:schemaLocation", location.as_str()),
    ];
    let code = error.code.as_str();
    xml::exception_report(
        &mut x,
        &ns,
        VERSION,
        code,
        error.locator.as_deref(),
        &error.text,
    );
    x.finish()
}
