//! WPS 2.0 job documents: `wps:StatusInfo` (GetStatus, Dismiss, async Execute) and `wps:Result`
//! (GetResult, sync Execute with response="document").

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::Response;
use wpsmesh_proto::process::{JobState, JobStatus, Output, OutputValue};
use wpsmesh_proto::storage::retrieve_url;
use wpsmesh_proto::time;

use crate::wps::handler::xml_response;
use crate::wps::v2::root;
use crate::wps::xml::{self, Xml};

/// A WPS 2.0 StatusInfo answer of `job`, with a NextPoll while it is pending.
pub(crate) fn status_response(job: &JobStatus) -> Response {
    let next_poll = SystemTime::now() + super::POLL_INTERVAL;
    xml_response(StatusCode::OK, status_info(job, Some(next_poll), None))
}

/// The StatusInfo document of a job: Accepted, Running, Succeeded, Failed or Dismissed, with
/// the expiration date (`expiration`, else the job's `expires_at`), the next poll time while the
/// job is pending, and the percentage done (100 once succeeded).
pub fn status_info(
    status: &JobStatus,
    next_poll: Option<SystemTime>,
    expiration: Option<SystemTime>,
) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:StatusInfo").open();
    x.elem("wps:JobID", status.job_id.as_str());
    let (name, percent) = match status.state {
        JobState::Accepted => ("Accepted", Some(0)),
        JobState::Running => ("Running", Some(status.percent_done.min(100))),
        JobState::Succeeded => ("Succeeded", Some(100)),
        JobState::Failed => ("Failed", None),
        JobState::Dismissed => ("Dismissed", None),
    };
    x.elem("wps:Status", name);
    let expiration = expiration.or(status.expires_at);
    if let Some(expiration) = expiration {
        x.elem("wps:ExpirationDate", &time::rfc3339(expiration));
    }
    if matches!(name, "Accepted" | "Running")
        && let Some(next_poll) = next_poll
    {
        x.elem("wps:NextPoll", &time::rfc3339(next_poll));
    }
    if let Some(percent) = percent {
        x.elem("wps:PercentCompleted", &percent.to_string());
    }
    x.end("wps:StatusInfo");
    x.finish()
}

/// The Result document of a finished job (`job_id` left out when empty), stored outputs as
/// hrefs under `public_url`. The schema wants at least one output.
pub fn result(
    job_id: &str,
    expiration: Option<SystemTime>,
    outputs: &[Output],
    public_url: &str,
) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:Result").open();
    x.elem_if("wps:JobID", job_id);
    if let Some(expiration) = expiration {
        x.elem("wps:ExpirationDate", &time::rfc3339(expiration));
    }
    for out in outputs {
        x.start("wps:Output").attr("id", &out.id).open();
        match &out.value {
            OutputValue::Stored(file) => {
                let format = &file.format;
                let mime = format.mime_type.as_str();
                let href = retrieve_url(public_url, file.id.as_str(), &format.extension);
                x.start("wps:Reference")
                    .attr("xlink:href", &href)
                    .attr_if("mimeType", if xml::mime_ok(mime) { mime } else { "" })
                    .attr_if("encoding", &format.encoding)
                    .attr_if("schema", &format.schema)
                    .empty();
            }
            OutputValue::Literal(literal) => {
                let data_type = literal.data_type.map_or(String::new(), |t| {
                    format!("http://www.w3.org/2001/XMLSchema#{}", t.name())
                });
                x.open("wps:Data");
                x.start("wps:LiteralValue")
                    .attr_if("dataType", &data_type)
                    .attr_if("uom", &literal.uom)
                    .text(&literal.value);
                x.end("wps:Data");
            }
            OutputValue::Inline(complex) => xml::complex_value(&mut x, "wps:Data", complex),
            OutputValue::BoundingBox(bbox) => {
                x.start("wps:Data").attr("mimeType", "text/xml").open();
                xml::bounding_box(&mut x, "ows:BoundingBox", bbox);
                x.end("wps:Data");
            }
        }
        x.end("wps:Output");
    }
    x.end("wps:Result");
    x.finish()
}
