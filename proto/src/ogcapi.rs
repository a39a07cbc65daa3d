//! OGC API - Processes 1.0 job documents (statusInfo, results) written from the domain types:
//! one writer for the edge's answers and the nodes' callbacks. `base` is the edge's public URL
//! without a trailing slash; job links and output file hrefs are built under it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::process::{DataType, JobState, JobStatus, Output, OutputValue};
use crate::storage::retrieve_url;
use crate::time::rfc3339;

/// Media type of OGC API JSON documents.
pub const JSON: &str = "application/json";

/// The status name OGC API uses for `state` (statusCode: accepted, running, successful,
/// failed, dismissed).
pub fn status_code(state: JobState) -> &'static str {
    match state {
        JobState::Accepted => "accepted",
        JobState::Running => "running",
        JobState::Succeeded => "successful",
        JobState::Failed => "failed",
        JobState::Dismissed => "dismissed",
    }
}

/// The URL of job `id` under `base`.
pub fn job_url(base: &str, id: &str) -> String {
    format!("{base}/jobs/{id}")
}

/// The statusInfo of `job`: id, process, status, message, progress, times and links to itself
/// and (once it succeeded) its results.
pub fn status_info(job: &JobStatus, base: &str) -> Value {
    let url = job_url(base, job.job_id.as_str());
    let progress = match job.state {
        JobState::Succeeded => 100,
        _ => job.percent_done.min(100),
    };
    let mut links = vec![
        json!({"href": url, "rel": "self", "type": JSON, "title": "this job's status"}),
        json!({"href": url, "rel": "monitor", "type": JSON, "title": "this job's status"}),
    ];
    if job.state == JobState::Succeeded {
        links.push(json!({
            "href": format!("{url}/results"),
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
            "type": JSON,
            "title": "this job's results",
        }));
    }
    let mut doc = Map::new();
    doc.insert("jobID".into(), job.job_id.as_str().into());
    doc.insert("processID".into(), job.process_id.clone().into());
    doc.insert("type".into(), "process".into());
    doc.insert("status".into(), status_code(job.state).into());
    doc.insert("message".into(), job.message.clone().into());
    doc.insert("progress".into(), progress.into());
    let updated = job.finished_at.or(job.started_at).or(job.created_at);
    for (name, time) in [
        ("created", job.created_at),
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("updated", updated),
    ] {
        if let Some(time) = time {
            doc.insert(name.into(), rfc3339(time).into());
        }
    }
    doc.insert("links".into(), links.into());
    Value::Object(doc)
}

/// The results document of `outputs`: each output by id, files as links under `base`, literals
/// as plain values of their type, inline data as qualified values, extents as bbox objects; an
/// output given more than once becomes an array.
pub fn results(outputs: &[Output], base: &str) -> Value {
    let mut map = Map::new();
    for out in outputs {
        let value = output_value(&out.value, base);
        match map.get_mut(&out.id) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(out.id.clone(), value);
            }
        }
    }
    Value::Object(map)
}

/// One output value as OGC API writes it (`inlineOrRefData`).
pub fn output_value(value: &OutputValue, base: &str) -> Value {
    match value {
        OutputValue::Stored(file) => json!({
            "href": retrieve_url(base, file.id.as_str(), &file.format.extension),
            "type": file.format.mime_type,
            "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure",
        }),
        OutputValue::Literal(l) => {
            let value = literal(&l.value, l.data_type);
            if l.uom.is_empty() {
                value
            } else {
                json!({"value": value, "uom": l.uom})
            }
        }
        OutputValue::Inline(c) => {
            let media = c
                .format
                .as_ref()
                .map(|f| f.mime_type.as_str())
                .unwrap_or("");
            let is_json = media.ends_with("json");
            match std::str::from_utf8(&c.data) {
                Ok(text) if is_json => match serde_json::from_str::<Value>(text) {
                    Ok(v) => json!({"value": v, "mediaType": media}),
                    Err(_) => json!({"value": text, "mediaType": media}),
                },
                Ok(text) => json!({"value": text, "mediaType": media}),
                Err(_) => json!({
                    "value": BASE64.encode(&c.data),
                    "mediaType": media,
                    "encoding": "base64",
                }),
            }
        }
        OutputValue::BoundingBox(b) => json!({
            "bbox": [b.lower[0], b.lower[1], b.upper[0], b.upper[1]],
            "crs": crs_uri(&b.crs),
        }),
    }
}

/// A literal as the JSON value of its type; text when it does not parse as one.
fn literal(text: &str, data_type: Option<DataType>) -> Value {
    let parsed = match data_type {
        Some(DataType::Integer) => text.trim().parse::<i64>().ok().map(Value::from),
        Some(DataType::Double) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        Some(DataType::Boolean) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        Some(DataType::String) | None => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

/// `EPSG:4326` as its OGC URI; other forms as given.
pub fn crs_uri(crs: &str) -> String {
    match crs.split_once(':') {
        Some((auth, code)) if auth.eq_ignore_ascii_case("epsg") && !code.contains('/') => {
            format!("http://www.opengis.net/def/crs/EPSG/0/{code}")
        }
        _ => crs.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::process::{BoundingBox, ComplexValue, Format, JobId, LiteralValue, StoredFile};

    #[test]
    fn status_info_names_the_job_its_times_and_links() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let job = JobStatus {
            created_at: Some(at),
            started_at: Some(at),
            finished_at: Some(at + Duration::from_secs(2)),
            percent_done: 40,
            ..JobStatus::new(JobId::random(), "native:buffer", JobState::Succeeded)
        };
        let doc = status_info(&job, "http://wps.example.com");
        assert_eq!(doc["status"], "successful");
        assert_eq!(doc["type"], "process");
        assert_eq!(doc["progress"], 100);
        assert_eq!(doc["finished"], "2023-11-14T22:13:22Z");
        assert_eq!(doc["updated"], doc["finished"]);
        let rels: Vec<_> = doc["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        assert!(rels.contains(&"http://www.opengis.net/def/rel/ogc/1.0/results"));
        let running = JobStatus::new(JobId::random(), "native:buffer", JobState::Running);
        let doc = status_info(&running, "http://wps.example.com");
        assert_eq!(doc["status"], "running");
        assert_eq!(doc["links"].as_array().unwrap().len(), 2);
        assert!(doc.get("finished").is_none());
    }

    #[test]
    fn results_write_each_kind_of_output() {
        let id = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let outputs = vec![
            Output {
                id: "OUTPUT".into(),
                value: OutputValue::Stored(StoredFile {
                    id,
                    format: Format {
                        mime_type: "application/geo+json".into(),
                        extension: "geojson".into(),
                        ..Format::default()
                    },
                    size: 10,
                }),
            },
            Output {
                id: "COUNT".into(),
                value: OutputValue::Literal(LiteralValue {
                    value: "240".into(),
                    data_type: Some(DataType::Integer),
                    uom: String::new(),
                }),
            },
            Output {
                id: "INLINE".into(),
                value: OutputValue::Inline(ComplexValue {
                    format: Some(Format::of("application/geo+json")),
                    data: r#"{"type":"FeatureCollection","features":[]}"#.into(),
                }),
            },
            Output {
                id: "EXTENT".into(),
                value: OutputValue::BoundingBox(BoundingBox {
                    crs: "EPSG:4326".into(),
                    lower: [0.0, 1.0],
                    upper: [2.0, 3.0],
                }),
            },
        ];
        let doc = results(&outputs, "http://wps.example.com");
        assert_eq!(
            doc["OUTPUT"]["href"],
            "http://wps.example.com/api/file/retrieve/0123456789abcdef0123456789abcdef.geojson"
        );
        assert_eq!(doc["OUTPUT"]["type"], "application/geo+json");
        assert_eq!(doc["COUNT"], 240);
        assert_eq!(doc["INLINE"]["value"]["type"], "FeatureCollection");
        assert_eq!(doc["INLINE"]["mediaType"], "application/geo+json");
        assert_eq!(doc["EXTENT"]["bbox"], json!([0.0, 1.0, 2.0, 3.0]));
        assert_eq!(
            doc["EXTENT"]["crs"],
            "http://www.opengis.net/def/crs/EPSG/0/4326"
        );
    }
}
