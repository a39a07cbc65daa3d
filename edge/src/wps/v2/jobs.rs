//! WPS 2.0 job documents: `wps:StatusInfo` (GetStatus, Dismiss, async Execute) and `wps:Result`
//! (GetResult, sync Execute with response="document").

use std::time::SystemTime;

use wire::{JobState, output};
use wpsmesh_proto::time;
use wpsmesh_proto::wire::process::v1 as wire;

use super::root;
use crate::wps::xml::{self, Xml};

/// The StatusInfo document of a job: Accepted, Running, Succeeded, Failed or Dismissed, with
/// the expiration date (`expiration`, else the job's `expires_at`), the next poll time while the
/// job is pending, and the percentage done (100 once succeeded).
pub fn status_info(
    status: &wire::JobStatus,
    next_poll: Option<SystemTime>,
    expiration: Option<SystemTime>,
) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:StatusInfo").open();
    x.elem("wps:JobID", &status.job_id);
    let state = JobState::try_from(status.state).unwrap_or(JobState::Unspecified);
    let (name, percent) = match state {
        JobState::Unspecified | JobState::Accepted => ("Accepted", Some(0)),
        JobState::Running => ("Running", Some(status.percent_done.min(100))),
        JobState::Successful => ("Succeeded", Some(100)),
        JobState::Failed => ("Failed", None),
        JobState::Dismissed => ("Dismissed", None),
    };
    x.elem("wps:Status", name);
    let expiration = expiration.or_else(|| status.expires_at.as_ref().map(time::system_time));
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

/// The Result document of a finished job (`job_id` left out when empty). The schema wants at
/// least one output; an output without a value is written as empty `wps:Data`.
pub fn result(job_id: &str, expiration: Option<SystemTime>, outputs: &[wire::Output]) -> String {
    let mut x = Xml::new();
    root(&mut x, "wps:Result").open();
    x.elem_if("wps:JobID", job_id);
    if let Some(expiration) = expiration {
        x.elem("wps:ExpirationDate", &time::rfc3339(expiration));
    }
    for out in outputs {
        x.start("wps:Output").attr("id", &out.id).open();
        match &out.value {
            Some(output::Value::Reference(file)) => {
                let format = file.format.as_ref();
                let mime = format.map_or("", |f| f.mime_type.as_str());
                x.start("wps:Reference")
                    .attr("xlink:href", &file.href)
                    .attr_if("mimeType", if xml::mime_ok(mime) { mime } else { "" })
                    .attr_if("encoding", format.map_or("", |f| f.encoding.as_str()))
                    .attr_if("schema", format.map_or("", |f| f.schema.as_str()))
                    .empty();
            }
            Some(output::Value::Literal(literal)) => {
                let data_type = match literal.data_type {
                    0 => String::new(),
                    t => format!("http://www.w3.org/2001/XMLSchema#{}", xml::type_name(t)),
                };
                x.open("wps:Data");
                x.start("wps:LiteralValue")
                    .attr_if("dataType", &data_type)
                    .attr_if("uom", &literal.uom)
                    .text(&literal.value);
                x.end("wps:Data");
            }
            Some(output::Value::Complex(complex)) => {
                xml::complex_value(&mut x, "wps:Data", complex)
            }
            Some(output::Value::BoundingBox(bbox)) => {
                x.start("wps:Data").attr("mimeType", "text/xml").open();
                xml::bounding_box(&mut x, "ows:BoundingBox", bbox);
                x.end("wps:Data");
            }
            None => x.start("wps:Data").empty(),
        }
        x.end("wps:Output");
    }
    x.end("wps:Result");
    x.finish()
}
