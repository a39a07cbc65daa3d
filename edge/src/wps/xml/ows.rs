//! The OWS sections OWS 1.1 and 2.0 spell alike (the `ows` prefix is bound to the version's
//! namespace by the root): service identification and provider, operations, exception reports,
//! bounding boxes.

use wpsmesh_proto::process::BoundingBox;
use wpsmesh_proto::wire::process::v1 as wire;

use super::{LANG, Service, Xml, number, or};

/// `ows:ServiceIdentification`, the same in OWS 1.1 and 2.0.
pub(crate) fn service_identification(x: &mut Xml, service: &Service, version: &str) {
    x.open("ows:ServiceIdentification");
    x.elem("ows:Title", or(&service.title, "wpsmesh"));
    x.elem_if("ows:Abstract", &service.abstract_text);
    if !service.keywords.is_empty() {
        x.open("ows:Keywords");
        for keyword in &service.keywords {
            x.elem("ows:Keyword", keyword);
        }
        x.end("ows:Keywords");
    }
    x.elem("ows:ServiceType", "WPS");
    x.elem("ows:ServiceTypeVersion", version);
    x.elem("ows:Fees", "NONE");
    x.elem("ows:AccessConstraints", "NONE");
    x.end("ows:ServiceIdentification");
}

/// `ows:ServiceProvider`, the same in OWS 1.1 and 2.0.
pub(crate) fn service_provider(x: &mut Xml, service: &Service) {
    x.open("ows:ServiceProvider");
    x.elem("ows:ProviderName", or(&service.provider_name, "wpsmesh"));
    if !service.provider_site.is_empty() {
        x.start("ows:ProviderSite")
            .attr("xlink:href", &service.provider_site)
            .empty();
    }
    x.open("ows:ServiceContact");
    x.elem_if("ows:IndividualName", &service.contact_name);
    if !service.contact_email.is_empty() {
        x.open("ows:ContactInfo");
        x.open("ows:Address");
        x.elem("ows:ElectronicMailAddress", &service.contact_email);
        x.end("ows:Address");
        x.end("ows:ContactInfo");
    }
    x.end("ows:ServiceContact");
    x.end("ows:ServiceProvider");
}

/// `ows:OperationsMetadata` with one HTTP DCP per operation: `(name, get, post)`.
pub(crate) fn operations_metadata(
    x: &mut Xml,
    get_url: &str,
    post_url: &str,
    ops: &[(&str, bool, bool)],
) {
    x.open("ows:OperationsMetadata");
    for &(name, get, post) in ops {
        x.start("ows:Operation").attr("name", name).open();
        x.open("ows:DCP");
        x.open("ows:HTTP");
        if get {
            x.start("ows:Get").attr("xlink:href", get_url).empty();
        }
        if post {
            x.start("ows:Post").attr("xlink:href", post_url).empty();
        }
        x.end("ows:HTTP");
        x.end("ows:DCP");
        x.end("ows:Operation");
    }
    x.end("ows:OperationsMetadata");
}

/// `ows:ExceptionReport` (`ns` holds the namespace declarations when it is the root).
pub(crate) fn exception_report(
    x: &mut Xml,
    ns: &[(&str, &str)],
    version: &str,
    code: &str,
    locator: Option<&str>,
    text: &str,
) {
    let mut tag = x.start("ows:ExceptionReport");
    for (key, value) in ns {
        tag = tag.attr(key, value);
    }
    tag.attr("version", version).attr("xml:lang", LANG).open();
    x.start("ows:Exception")
        .attr("exceptionCode", code)
        .attr_if("locator", locator.unwrap_or_default())
        .open();
    x.elem("ows:ExceptionText", or(text, code));
    x.end("ows:Exception");
    x.end("ows:ExceptionReport");
}

/// `ows:BoundingBox`-typed content under `name` (OWS 1.1 and 2.0 alike).
pub(crate) fn bounding_box(x: &mut Xml, name: &'static str, bbox: &BoundingBox) {
    x.start(name)
        .attr_if("crs", &bbox.crs)
        .attr("dimensions", "2")
        .open();
    let corner = |values: &[f64]| {
        let values: Vec<String> = values.iter().map(|v| number(*v, false)).collect();
        values.join(" ")
    };
    x.elem("ows:LowerCorner", &corner(&bbox.lower));
    x.elem("ows:UpperCorner", &corner(&bbox.upper));
    x.end(name);
}

/// A literal's domain as OWS 1.1 and 2.0 both write it: `ows:AnyValue`, or `ows:AllowedValues`
/// with the enum's values and a `ows:Range` for a minimum/maximum.
pub(crate) fn allowed_values(x: &mut Xml, literal: &wire::LiteralInputDescription) {
    let integer = super::type_name(literal.data_type) == "integer";
    let range = literal.minimum.is_some() || literal.maximum.is_some();
    if literal.allowed_values.is_empty() && !range {
        x.start("ows:AnyValue").empty();
    } else {
        x.open("ows:AllowedValues");
        for value in &literal.allowed_values {
            x.elem("ows:Value", value);
        }
        if range {
            x.open("ows:Range");
            if let Some(min) = literal.minimum {
                x.elem("ows:MinimumValue", &super::number(min, integer));
            }
            if let Some(max) = literal.maximum {
                x.elem("ows:MaximumValue", &super::number(max, integer));
            }
            x.end("ows:Range");
        }
        x.end("ows:AllowedValues");
    }
}
