//! The raw answer of a synchronous execution (`"response": "raw"`), as OGC API - Processes 1.0
//! asks: one output by value is the output itself with its Content-Type (a file output too big
//! for the node to inline is a 303 to its file API URL, which streams it); outputs all by
//! reference are 204 with one `Link` header each; several outputs with any by value are one
//! `multipart/related` body, a part per output (by-reference parts carry `Content-Location`
//! and no content).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::Rng;
use wpsmesh_proto::ogcapi::{JSON, output_value};
use wpsmesh_proto::process::{Output, OutputRequest, OutputValue};
use wpsmesh_proto::storage::retrieve_url;

/// The link relation of an output file.
const ENCLOSURE: &str = "http://www.opengis.net/def/rel/iana/1.0/enclosure";

/// One output as raw content.
enum Part {
    /// The bytes, with their media type.
    Content(String, Bytes),
    /// A stored file: its URL and media type.
    Stored(String, String),
}

/// The raw answer for `outputs`; `wanted` says which were asked for by reference.
pub(super) fn answer(outputs: &[Output], wanted: &[OutputRequest], base: &str) -> Response {
    let by_reference = |id: &str| {
        wanted
            .iter()
            .find(|w| w.id == id)
            .is_none_or(|w| w.as_reference)
    };
    let parts: Vec<(&str, Part, bool)> = outputs
        .iter()
        .map(|o| (o.id.as_str(), part(&o.value, base), by_reference(&o.id)))
        .collect();
    let all_references = parts
        .iter()
        .all(|(_, p, reference)| *reference && matches!(p, Part::Stored(..)));
    if all_references {
        let mut response = StatusCode::NO_CONTENT.into_response();
        for (id, part, _) in &parts {
            if let Part::Stored(url, media) = part {
                let link =
                    format!("<{url}>; rel=\"{ENCLOSURE}\"; type=\"{media}\"; title=\"{id}\"");
                if let Ok(v) = HeaderValue::from_str(&link) {
                    response.headers_mut().append(header::LINK, v);
                }
            }
        }
        return response;
    }
    match parts.as_slice() {
        [(_, Part::Content(media, bytes), _)] => content(media, bytes.clone()),
        [(_, Part::Stored(url, _), _)] => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(url) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response
        }
        _ => multipart(&parts),
    }
}

/// What one output value is as raw content.
fn part(value: &OutputValue, base: &str) -> Part {
    match value {
        OutputValue::Stored(file) => Part::Stored(
            retrieve_url(base, file.id.as_str(), &file.format.extension),
            file.format.mime_type.clone(),
        ),
        OutputValue::Inline(c) => {
            let media = c
                .format
                .as_ref()
                .map(|f| f.mime_type.as_str())
                .filter(|m| !m.is_empty())
                .unwrap_or("application/octet-stream");
            Part::Content(media.to_owned(), c.data.clone())
        }
        OutputValue::Literal(l) => Part::Content(
            "text/plain; charset=utf-8".into(),
            Bytes::from(l.value.clone()),
        ),
        OutputValue::BoundingBox(_) => Part::Content(
            JSON.into(),
            Bytes::from(output_value(value, base).to_string()),
        ),
    }
}

/// 200 with `bytes` as `media`.
fn content(media: &str, bytes: Bytes) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let media = HeaderValue::from_str(media)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, media);
    response
}

/// 200 with a `multipart/related` body: a part per output, named by `Content-ID`.
fn multipart(parts: &[(&str, Part, bool)]) -> Response {
    let boundary = format!("wpsmesh-{:032x}", rand::rng().random::<u128>());
    let mut body = Vec::new();
    for (id, part, _) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-ID: <{id}>\r\n").as_bytes());
        match part {
            Part::Content(media, bytes) => {
                body.extend_from_slice(format!("Content-Type: {media}\r\n\r\n").as_bytes());
                body.extend_from_slice(bytes);
            }
            Part::Stored(url, media) => body.extend_from_slice(
                format!("Content-Type: {media}\r\nContent-Location: {url}\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/related; boundary={boundary}")) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use wpsmesh_proto::process::{ComplexValue, Format, LiteralValue, StoredFile};

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn stored(id: &str) -> Output {
        Output {
            id: id.into(),
            value: OutputValue::Stored(StoredFile {
                id: ID.parse().unwrap(),
                format: Format {
                    extension: "geojson".into(),
                    ..Format::of("application/geo+json")
                },
                size: 3,
            }),
        }
    }

    fn wanted(id: &str, as_reference: bool) -> OutputRequest {
        OutputRequest {
            id: id.into(),
            format: None,
            as_reference,
        }
    }

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn one_value_is_the_output_itself() {
        let out = Output {
            id: "OUTPUT".into(),
            value: OutputValue::Inline(ComplexValue {
                format: Some(Format::of("application/geo+json")),
                data: Bytes::from_static(b"{\"type\":\"FeatureCollection\"}"),
            }),
        };
        let r = answer(&[out], &[wanted("OUTPUT", false)], "http://e.test");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/geo+json");
        assert_eq!(body(r).await, "{\"type\":\"FeatureCollection\"}");
        let big = answer(
            &[stored("OUTPUT")],
            &[wanted("OUTPUT", false)],
            "http://e.test",
        );
        assert_eq!(big.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            big.headers()[header::LOCATION],
            format!("http://e.test/api/file/retrieve/{ID}.geojson").as_str()
        );
    }

    #[tokio::test]
    async fn references_are_links_and_mixes_are_multipart() {
        let r = answer(
            &[stored("OUTPUT")],
            &[wanted("OUTPUT", true)],
            "http://e.test",
        );
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let link = r.headers()[header::LINK].to_str().unwrap();
        assert!(
            link.starts_with(&format!("<http://e.test/api/file/retrieve/{ID}.geojson>")),
            "{link}"
        );
        assert!(link.contains("title=\"OUTPUT\""), "{link}");
        let count = Output {
            id: "COUNT".into(),
            value: OutputValue::Literal(LiteralValue::plain("240")),
        };
        let r = answer(
            &[stored("OUTPUT"), count],
            &[wanted("OUTPUT", true), wanted("COUNT", false)],
            "http://e.test",
        );
        let media = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let boundary = media
            .strip_prefix("multipart/related; boundary=")
            .unwrap()
            .to_owned();
        let text = body(r).await;
        assert!(
            text.contains(
                "Content-ID: <COUNT>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n240\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "Content-Location: http://e.test/api/file/retrieve/{ID}.geojson"
            )),
            "{text}"
        );
        assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
    }
}
