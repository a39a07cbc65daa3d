//! The middleware every edge answer passes through: a cached [`Document`] is answered in the
//! negotiated coding from its precomputed forms; any other XML or JSON answer of a known size
//! between [`MIN_BYTES`] and [`MAX_BYTES`] is compressed for this response at a fast level;
//! answers marked [`Identity`] (file downloads, raw outputs), streamed answers, ranges and
//! anything already encoded pass untouched. XML and JSON answers of a known size carry
//! `Vary: Accept-Encoding`, compressed or not.

use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tracing::warn;

use super::codec::{Level, encode};
use super::{AcceptEncoding, Document, Encoding};

/// Answers smaller than this are sent as they are: compression would save next to nothing.
pub const MIN_BYTES: u64 = 1024;
/// Answers larger than this are sent as they are: the middleware never holds more.
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Answers up to this size are compressed on the request's task; larger on the blocking pool.
const INLINE_BYTES: usize = 64 * 1024;

/// The headers a [`Document`]'s answer sets itself, per representation.
const OWN: [header::HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::VARY,
];

/// A response extension: this answer is content itself (a file, a raw output), never encoded.
#[derive(Debug, Clone, Copy)]
pub struct Identity;

impl Identity {
    /// `response` marked as never to be encoded.
    pub fn mark(mut response: Response) -> Response {
        response.extensions_mut().insert(Identity);
        response
    }
}

/// The middleware (`axum::middleware::from_fn(compress)`).
pub async fn compress(request: Request, next: Next) -> Response {
    let accept = AcceptEncoding::from_headers(request.headers());
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let mut response = next.run(request).await;
    if let Some(document) = response.extensions_mut().remove::<Arc<Document>>() {
        let status = response.status();
        let mut answer = document.negotiated(&accept, if_none_match.as_ref(), status);
        // Whatever else the handler set (e.g. Retry-After) stays.
        for (name, value) in response.headers() {
            if !OWN.contains(name) && !answer.headers().contains_key(name) {
                answer.headers_mut().insert(name, value.clone());
            }
        }
        return answer;
    }
    if response.extensions().get::<Identity>().is_some() || !negotiable(&response) {
        return response;
    }
    // A streamed answer is never encoded (never held), so it does not vary.
    let Some(size) = response.body().size_hint().exact() else {
        return response;
    };
    vary(response.headers_mut());
    let encoding = accept.choose(&Encoding::PER_RESPONSE);
    if encoding == Encoding::Identity || !(MIN_BYTES..=MAX_BYTES).contains(&size) {
        return response;
    }
    encoded(response, encoding).await
}

/// Whether `response` is an XML or JSON document that may be sent encoded: not a range, not
/// already encoded, with a body.
fn negotiable(response: &Response) -> bool {
    let status = response.status();
    if status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return false;
    }
    let headers = response.headers();
    if headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::CONTENT_RANGE)
    {
        return false;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_document)
}

/// XML or JSON: `text/xml`, `application/xml`, `application/json` and any `+xml`/`+json`.
fn is_document(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/xml" | "application/xml" | "application/json"
    ) || essence.ends_with("+xml")
        || essence.ends_with("+json")
}

/// Adds `Accept-Encoding` to `Vary` unless it is there.
fn vary(headers: &mut HeaderMap) {
    let already = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*");
    if !already {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `response` with its body (of a known size, at most [`MAX_BYTES`]) encoded as `encoding`.
async fn encoded(response: Response, encoding: Encoding) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            warn!(error = %e, "answer body failed before encoding");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let body = if bytes.len() <= INLINE_BYTES {
        Some(encode(encoding, &bytes, Level::Fast))
    } else {
        let input = bytes.clone();
        tokio::task::spawn_blocking(move || encode(encoding, &input, Level::Fast))
            .await
            .inspect_err(|e| warn!(error = %e, "answer not encoded"))
            .ok()
    };
    let Some(body) = body.filter(|b| b.len() < bytes.len()) else {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        return Response::from_parts(parts, Body::from(bytes));
    };
    let headers = &mut parts.headers;
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    // A strong validator names exact bytes; these are another representation's.
    if let Some(etag) = headers.get(header::ETAG).cloned()
        && !etag.as_bytes().starts_with(b"W/")
        && let Ok(weak) = HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat())
    {
        headers.insert(header::ETAG, weak);
    }
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
