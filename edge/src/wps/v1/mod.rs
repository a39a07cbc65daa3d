//! WPS 1.0.0 documents (OWS 1.1): capabilities, process descriptions, execute responses and
//! exception reports, each valid against the official schemas.

mod describe;
mod execute;

pub use describe::process_descriptions;
pub use execute::{ExecuteResponseArgs, Lineage, execute_response};

use wpsmesh_proto::wire::process::v1 as wire;

use super::xml::{self, LANG, Service, XLINK_NS, XSI_NS, Xml};
use crate::ows::{OwsCode, OwsError};

pub(crate) const WPS_NS: &str = "http://www.opengis.net/wps/1.0.0";
pub(crate) const OWS_NS: &str = "http://www.opengis.net/ows/1.1";
const VERSION: &str = "1.0.0";

/// Starts the root element `name` with the WPS, OWS, XLink and XSI namespaces, the schema
/// location of `schema` and `service`/`version`/`xml:lang`; the caller adds attributes and opens.
pub(crate) fn root<'a>(x: &'a mut Xml, name: &'static str, schema: &str) -> xml::Tag<'a> {
    let location = format!("{WPS_NS} http://schemas.opengis.net/wps/1.0.0/{schema}");
    x.start(name)
        .attr("xmlns:wps", WPS_NS)
        .attr("xmlns:ows", OWS_NS)
        .attr("xmlns:xlink", XLINK_NS)
        .attr("xmlns:xsi", XSI_NS)
        .attr("xsi:schemaLocation", &location)
        .attr("service", "WPS")
        .attr("version", VERSION)
        .attr("xml:lang", LANG)
}

/// The statusLocation of job `job_id`: `{public_url}/api/wps/status/{job_id}`, served by the
/// edge itself (an ExecuteResponse following the job).
pub fn status_location(service: &Service, job_id: &str) -> String {
    format!("{}/status/{job_id}", service.url)
}

/// `wps:processVersion`: the process's version, `1.0.0` when it has none.
pub(crate) fn process_version(summary: &wire::ProcessSummary) -> &str {
    xml::or(&summary.version, VERSION)
}

/// The GetCapabilities response listing `processes` (the schema wants at least one: answer
/// ServerBusy rather than an empty list).
pub fn capabilities(service: &Service, processes: &[wire::ProcessSummary]) -> String {
    let mut x = Xml::new();
    root(
        &mut x,
        "wps:Capabilities",
        "wpsGetCapabilities_response.xsd",
    )
    .open();
    xml::service_identification(&mut x, service, VERSION);
    xml::service_provider(&mut x, service);
    let ops = [
        ("GetCapabilities", true, true),
        ("DescribeProcess", true, true),
        ("Execute", true, true),
    ];
    xml::operations_metadata(&mut x, &format!("{}?", service.url), &service.url, &ops);
    x.open("wps:ProcessOfferings");
    for process in processes {
        x.start("wps:Process")
            .attr("wps:processVersion", process_version(process))
            .open();
        x.elem("ows:Identifier", &process.id);
        x.elem("ows:Title", xml::or(&process.title, &process.id));
        x.elem_if("ows:Abstract", &process.description);
        x.end("wps:Process");
    }
    x.end("wps:ProcessOfferings");
    x.open("wps:Languages");
    x.open("wps:Default");
    x.elem("ows:Language", LANG);
    x.end("wps:Default");
    x.open("wps:Supported");
    x.elem("ows:Language", LANG);
    x.end("wps:Supported");
    x.end("wps:Languages");
    x.end("wps:Capabilities");
    x.finish()
}

/// The exception code a WPS 1.0.0 client is given for `code`. The WPS 2.0 codes have no 1.0.0
/// counterpart: an unknown process or job is an InvalidParameterValue (the locator names the
/// parameter), a result not ready yet is a NoApplicableCode.
pub fn exception_code(code: OwsCode) -> &'static str {
    match code {
        OwsCode::NoSuchProcess | OwsCode::NoSuchJob => OwsCode::InvalidParameterValue.as_str(),
        OwsCode::ResultNotReady => OwsCode::NoApplicableCode.as_str(),
        other => other.as_str(),
    }
}

/// An OWS 1.1 ExceptionReport (`version="1.0.0"`) for `error`.
pub fn exception_report(error: &OwsError) -> String {
    let mut x = Xml::new();
    let location = format!("{OWS_NS} http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd");
    let ns = [
        ("xmlns:ows", OWS_NS),
        ("xmlns:xsi", XSI_NS),
        ("xsi:schemaLocation", location.as_str()),
    ];
    let code = exception_code(error.code);
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
