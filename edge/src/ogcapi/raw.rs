//! The raw answer of a synchronous execution (`"response": "raw"`), as OGC API - Processes 1.0
//! asks: one output by value is the output itself with its Content-Type (a file output comes
//! streamed from the node, see `jobs::execute_raw`; one found stored is streamed from storage
//! in place, with its Content-Length); outputs
//! all by reference are 204 with one `Link` header each; several outputs with any by value are
//! one `multipart/related` body, a part per output (by-reference parts carry
//! `Content-Location` and no content).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::Rng;
use tracing::info;
use wpsmesh_proto::ogcapi::{JSON, output_value};
use wpsmesh_proto::process::{Output, OutputRequest, OutputValue, StoredFile};
use wpsmesh_proto::storage::retrieve_url;

use crate::encoding::Identity;
use crate::files::{Storage, typed};
use crate::ows::OwsError;

/// The link relation of an output file.
const ENCLOSURE: &str = "http://www.opengis.net/def/rel/iana/1.0/enclosure";

/// One output as raw content.
enum Part<'a> {
    /// The bytes, with their media type.
    Content(String, Bytes),
    /// A stored file: its URL and media type, and the file.
    Stored(String, String, &'a StoredFile),
}

/// The raw answer: ready, or the one stored file asked for by value, to stream ([`stream`]).
enum Raw<'a> {
    Ready(Response),
    Stream(&'a StoredFile),
}

/// The raw answer for `outputs`, a stored file asked for by value streamed from `storage`.
pub(super) async fn respond(
    outputs: &[Output],
    wanted: &[OutputRequest],
    base: &str,
    storage: &Storage,
) -> Result<Response, OwsError> {
    match answer(outputs, wanted, base) {
        Raw::Ready(response) => Ok(response),
        Raw::Stream(file) => stream(storage, file).await,
    }
}

/// 200 with a stored file's bytes as they come from storage, its media type and length.
async fn stream(storage: &Storage, file: &StoredFile) -> Result<Response, OwsError> {
    let response = storage
        .object_response(file.id.as_str(), &file.format.mime_type)
        .await?;
    info!(object = %file.id, "raw output streamed from storage");
    Ok(response)
}

/// The raw answer for `outputs`; `wanted` says which were asked for by reference.
fn answer<'a>(outputs: &'a [Output], wanted: &[OutputRequest], base: &str) -> Raw<'a> {
    let by_reference = |id: &str| {
        wanted
            .iter()
            .find(|w| w.id == id)
            .is_none_or(|w| w.as_reference)
    };
    let parts: Vec<(&str, Part<'a>, bool)> = outputs
        .iter()
        .map(|o| (o.id.as_str(), part(&o.value, base), by_reference(&o.id)))
        .collect();
    let all_references = parts
        .iter()
        .all(|(_, p, reference)| *reference && matches!(p, Part::Stored(..)));
    if all_references {
        let mut response = StatusCode::NO_CONTENT.into_response();
        for (id, part, _) in &parts {
            if let Part::Stored(url, media, _) = part {
                let link =
                    format!("<{url}>; rel=\"{ENCLOSURE}\"; type=\"{media}\"; title=\"{id}\"");
                if let Ok(v) = HeaderValue::from_str(&link) {
                    response.headers_mut().append(header::LINK, v);
                }
            }
        }
        return Raw::Ready(response);
    }
    match parts.as_slice() {
        [(_, Part::Content(media, bytes), _)] => Raw::Ready(typed(media, bytes.clone())),
        [(_, Part::Stored(_, _, file), _)] => Raw::Stream(file),
        _ => Raw::Ready(multipart(&parts)),
    }
}

/// What one output value is as raw content.
fn part<'a>(value: &'a OutputValue, base: &str) -> Part<'a> {
    match value {
        OutputValue::Stored(file) => Part::Stored(
            retrieve_url(base, file.id.as_str(), &file.format.extension),
            file.format.mime_type.clone(),
            file,
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
            Part::Stored(url, media, _) => body.extend_from_slice(
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
    Identity::mark(response)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use wpsmesh_proto::process::{ComplexValue, Format, LiteralValue};

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

    /// The answer, which must not need storage.
    fn ready(outputs: &[Output], wanted: &[OutputRequest]) -> Response {
        match answer(outputs, wanted, "http://e.test") {
            Raw::Ready(r) => r,
            Raw::Stream(file) => panic!("{} streamed", file.id),
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
        let r = ready(&[out], &[wanted("OUTPUT", false)]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/geo+json");
        assert_eq!(body(r).await, "{\"type\":\"FeatureCollection\"}");
    }

    #[test]
    fn one_stored_value_is_streamed_and_one_stored_reference_is_not() {
        let outputs = [stored("OUTPUT")];
        let by_value = answer(&outputs, &[wanted("OUTPUT", false)], "http://e.test");
        assert!(
            matches!(by_value, Raw::Stream(f) if f.id.as_str() == ID),
            "a file asked for by value is streamed in place"
        );
        // No outputs named: every output by reference, so 204 and its Link.
        let unnamed = ready(&outputs, &[]);
        assert_eq!(unnamed.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn references_are_links_and_mixes_are_multipart() {
        let r = ready(&[stored("OUTPUT")], &[wanted("OUTPUT", true)]);
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
        let r = ready(
            &[stored("OUTPUT"), count],
            &[wanted("OUTPUT", true), wanted("COUNT", false)],
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
