//! Bench fastpath: the three WPS 1.0.0 response forms of the Execute, and the checks that an
//! answer is correct (a GeoJSON of the 240 buffered points, or a reference to one).

use std::time::{Duration, Instant};

/// Features every correct output has.
pub const FEATURES: usize = 240;

#[derive(Debug, Clone, Copy)]
pub enum Form {
    Raw,
    Value,
    Reference,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::Raw, Form::Value, Form::Reference];

    /// The KVP response form parameter.
    pub fn param(self) -> &'static str {
        match self {
            Form::Raw => "RawDataOutput=OUTPUT@mimeType=application/geo%2Bjson",
            Form::Value => "ResponseDocument=OUTPUT@mimeType=application/geo%2Bjson",
            Form::Reference => {
                "ResponseDocument=OUTPUT@asReference=true@mimeType=application/geo%2Bjson"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Form::Raw => "RawDataOutput",
            Form::Value => "ResponseDocument, output by value",
            Form::Reference => "ResponseDocument, output by reference",
        }
    }

    /// Goal of issue 14 for p50 / processing.run.
    pub fn goal(self) -> f64 {
        match self {
            Form::Reference => 1.3,
            _ => 1.2,
        }
    }
}

/// Features of a GeoJSON document; None if it is not one.
fn features(geojson: &[u8]) -> Option<usize> {
    serde_json::from_slice::<Collection>(geojson)
        .ok()
        .map(|c| c.features.len())
}

/// What the count needs of a FeatureCollection: the document is still parsed whole (so checked
/// as JSON), its features skipped instead of built into values — the client's CPU comes out of
/// the same two cores as the mesh's (3 ms a request with `serde_json::Value`).
#[derive(serde::Deserialize)]
struct Collection {
    features: Vec<serde::de::IgnoredAny>,
}

/// Checks a GeoJSON document has the [`FEATURES`].
pub fn check_features(geojson: &[u8]) -> Result<(), String> {
    match features(geojson) {
        Some(FEATURES) => Ok(()),
        other => Err(format!("{other:?} features, not {FEATURES}")),
    }
}

/// The text between `<{tag}…>` and `</{tag}>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}"))?;
    let open = start + xml[start..].find('>')? + 1;
    let end = open + xml[open..].find(&format!("</{tag}>"))?;
    Some(&xml[open..end])
}

/// The text of the CDATA sections in `text`, joined (`]]>` in data splits a section in two).
fn cdata(text: &str) -> String {
    text.split("<![CDATA[")
        .skip(1)
        .filter_map(|s| s.split_once("]]>").map(|(data, _)| data))
        .collect()
}

/// The GeoJSON an Execute answered with, or the href of its output.
pub enum Answer {
    GeoJson(Vec<u8>),
    Reference(String),
}

/// What a `form` Execute answered, or why it is wrong.
pub fn answer(form: Form, status: u16, body: &[u8]) -> Result<Answer, String> {
    let head = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != 200 {
        return Err(format!("status {status}: {}", head()));
    }
    let xml = || {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        match text.contains("ProcessSucceeded") {
            true => Ok(text),
            false => Err(format!("not succeeded: {}", head())),
        }
    };
    match form {
        Form::Raw => Ok(Answer::GeoJson(body.to_vec())),
        Form::Value => element(xml()?, "wps:ComplexData")
            .map(|data| Answer::GeoJson(cdata(data).into_bytes()))
            .ok_or_else(|| format!("no wps:ComplexData: {}", head())),
        Form::Reference => {
            const START: &str = "<wps:Reference href=\"";
            let text = xml()?;
            let at = text
                .find(START)
                .ok_or_else(|| format!("no wps:Reference: {}", head()))?;
            let href = text[at + START.len()..].split('"').next().unwrap_or("");
            Ok(Answer::Reference(href.replace("&amp;", "&")))
        }
    }
}

/// One timed GET: its time, status and body.
pub async fn timed_get(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(Duration, u16, Vec<u8>)> {
    let t = Instant::now();
    let r = http.get(url).send().await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?.to_vec();
    Ok((t.elapsed(), status, body))
}
