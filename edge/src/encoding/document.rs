//! A document rendered once (capabilities, descriptions, process lists, the OpenAPI document)
//! and kept with its gzip and br forms, compressed once at the best levels when it is made.
//! A handler answers [`Document::response`]: the identity bytes, carrying the document itself
//! so that [`super::compress`] swaps in the representation the client negotiated, with its
//! own strong ETag, and answers `If-None-Match` with 304. Nothing is compressed per request.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::codec::{Level, encode};
use super::{AcceptEncoding, Encoding};

/// A rendered document and its compressed forms.
#[derive(Debug)]
pub struct Document {
    content_type: HeaderValue,
    identity: Bytes,
    /// The gzip form, when smaller than the identity bytes.
    gzip: Option<Bytes>,
    /// The br form, when smaller than the identity bytes.
    br: Option<Bytes>,
    /// A hash of the identity bytes: the ETags' common part.
    tag: u64,
}

impl Document {
    /// `identity` as `content_type`, compressed now (blocking: see [`Document::render`]).
    pub fn new(content_type: &'static str, identity: Bytes) -> Self {
        let started = Instant::now();
        let smaller = |encoding| {
            let encoded = encode(encoding, &identity, Level::Cached);
            (encoded.len() < identity.len()).then_some(encoded)
        };
        let (gzip, br) = (smaller(Encoding::Gzip), smaller(Encoding::Br));
        let mut hasher = std::hash::DefaultHasher::new();
        identity.hash(&mut hasher);
        let document = Self {
            content_type: HeaderValue::from_static(content_type),
            tag: hasher.finish(),
            identity,
            gzip,
            br,
        };
        debug!(
            bytes = document.identity.len(),
            gzip = document.gzip.as_ref().map(Bytes::len),
            br = document.br.as_ref().map(Bytes::len),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "document compressed"
        );
        document
    }

    /// [`Document::new`] on the blocking pool (best-level br takes a while for large ones).
    pub async fn render(content_type: &'static str, identity: Bytes) -> Self {
        let copy = identity.clone();
        match tokio::task::spawn_blocking(move || Self::new(content_type, copy)).await {
            Ok(document) => document,
            Err(e) => {
                warn!(error = %e, "document not compressed");
                Self {
                    content_type: HeaderValue::from_static(content_type),
                    tag: 0,
                    identity,
                    gzip: None,
                    br: None,
                }
            }
        }
    }

    /// The identity bytes.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// The bytes of `encoding`, if the document has that form.
    pub fn form(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Identity => Some(&self.identity),
            Encoding::Gzip => self.gzip.as_ref(),
            Encoding::Br => self.br.as_ref(),
        }
    }

    /// The codings this document has, in the server's order of preference.
    fn offered(&self) -> Vec<Encoding> {
        Encoding::PREFERRED
            .into_iter()
            .filter(|&e| self.form(e).is_some())
            .collect()
    }

    /// The strong ETag of the `encoding` form: each representation has its own.
    pub fn etag(&self, encoding: Encoding) -> HeaderValue {
        let suffix = match encoding {
            Encoding::Identity => "",
            Encoding::Gzip => "-gz",
            Encoding::Br => "-br",
        };
        HeaderValue::from_str(&format!("\"{:016x}{suffix}\"", self.tag))
            .unwrap_or(HeaderValue::from_static("\"0\""))
    }

    /// 200 with the identity bytes, carrying the document for [`super::compress`] to answer
    /// in the negotiated coding.
    pub fn response(self: &Arc<Self>) -> Response {
        let mut response = self.serve(Encoding::Identity, StatusCode::OK);
        response.extensions_mut().insert(self.clone());
        response
    }

    /// The answer to a request that accepts `accept` and sent `if_none_match`: the
    /// negotiated form with its Content-Encoding, ETag and `Vary`, or 304 when
    /// `If-None-Match` names that form.
    pub fn negotiated(
        &self,
        accept: &AcceptEncoding,
        if_none_match: Option<&HeaderValue>,
        status: StatusCode,
    ) -> Response {
        let encoding = accept.choose(&self.offered());
        if status == StatusCode::OK
            && if_none_match.is_some_and(|inm| matches_none(inm, &self.etag(encoding)))
        {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ETAG, self.etag(encoding));
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            return response;
        }
        self.serve(encoding, status)
    }

    /// `status` with the `encoding` form (identity when the document has no such form).
    fn serve(&self, encoding: Encoding, status: StatusCode) -> Response {
        let (encoding, body) = match self.form(encoding) {
            Some(body) => (encoding, body.clone()),
            None => (Encoding::Identity, self.identity.clone()),
        };
        let length = body.len();
        let mut response = (status, Body::from(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(header::ETAG, self.etag(encoding));
        if encoding != Encoding::Identity {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.as_str()),
            );
        }
        response
    }
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks for
/// this header) or is `*`.
fn matches_none(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(tags), Ok(etag)) = (if_none_match.to_str(), etag.to_str()) else {
        return false;
    };
    tags.split(',')
        .take(64)
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Where a cached document is made once: concurrent requests for it wait for the one render
/// (and compression) instead of each doing it.
pub type Slot = Arc<OnceCell<Arc<Document>>>;

/// The document in `slot`, rendered by `render` and compressed the first time; an error is
/// returned and not kept (the next request renders again).
pub async fn once<E>(
    slot: &Slot,
    content_type: &'static str,
    render: impl Future<Output = Result<Bytes, E>>,
) -> Result<Arc<Document>, E> {
    slot.get_or_try_init(|| async {
        let identity = render.await?;
        Ok(Arc::new(Document::render(content_type, identity).await))
    })
    .await
    .cloned()
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
