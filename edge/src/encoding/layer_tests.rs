//! Unit tests of the middleware on a router of its own: which answers are compressed, which
//! never are, and `Vary`.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use tower::ServiceExt;

use super::super::codec::tests::{decode, sample};
use super::*;

fn json_of(len: usize) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(sample(len)),
    )
        .into_response()
}

fn app(document: Arc<Document>) -> Router {
    Router::new()
        .route("/big", get(|| async { json_of(10_000) }))
        .route("/small", get(|| async { json_of(MIN_BYTES as usize - 1) }))
        .route(
            "/problem",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/problem+json")],
                    Bytes::from(sample(4_000)),
                )
            }),
        )
        .route("/text", get(|| async { Bytes::from(sample(10_000)) }))
        .route("/raw", get(|| async { Identity::mark(json_of(10_000)) }))
        .route(
            "/stream",
            get(|| async {
                let chunks =
                    futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(sample(10_000)))]);
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(chunks),
                )
            }),
        )
        .route(
            "/range",
            get(|| async {
                let mut r = json_of(10_000);
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_static("bytes 0-9999/20000"),
                );
                r
            }),
        )
        .route("/doc", get(move || async move { document.response() }))
        .layer(axum::middleware::from_fn(compress))
}

async fn get_with(app: &Router, path: &str, accept: Option<&str>) -> (HeaderMap, Bytes) {
    let mut request = Request::get(path);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let headers = response.headers().clone();
    (
        headers,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn coding(h: &HeaderMap) -> Option<&str> {
    h.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap())
}

fn varies(h: &HeaderMap) -> bool {
    h.get_all(header::VARY)
        .iter()
        .any(|v| v == "accept-encoding")
}

fn doc() -> Arc<Document> {
    Arc::new(Document::new(
        "text/xml; charset=utf-8",
        Bytes::from(sample(30_000)),
    ))
}

#[tokio::test]
async fn xml_and_json_answers_are_compressed_as_negotiated() {
    let app = app(doc());
    let identity = Bytes::from(sample(10_000));
    for (accept, expected) in [
        (Some("gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("gzip, br"), Some("gzip")),
        (Some("gzip;q=0.5, br"), Some("br")),
        (Some("br;q=0.1, gzip"), Some("gzip")),
        (Some("gzip;q=0"), None),
        (Some("identity"), None),
        (None, None),
    ] {
        let (h, body) = get_with(&app, "/big", accept).await;
        assert_eq!(coding(&h), expected, "{accept:?}");
        assert!(varies(&h), "{accept:?}");
        assert_eq!(h[header::CONTENT_LENGTH], body.len().to_string().as_str());
        let encoding = match expected {
            Some("gzip") => Encoding::Gzip,
            Some(_) => Encoding::Br,
            None => Encoding::Identity,
        };
        assert_eq!(decode(encoding, &body), identity, "{accept:?}");
    }
    let (h, body) = get_with(&app, "/problem", Some("gzip")).await;
    assert_eq!(coding(&h), Some("gzip"));
    assert_eq!(decode(Encoding::Gzip, &body), sample(4_000));
}

#[tokio::test]
async fn small_answers_are_sent_as_they_are_but_still_vary() {
    let app = app(doc());
    let (h, body) = get_with(&app, "/small", Some("gzip, br")).await;
    assert_eq!(coding(&h), None);
    assert!(varies(&h));
    assert_eq!(body.len(), MIN_BYTES as usize - 1);
}

#[tokio::test]
async fn content_ranges_streams_and_other_types_are_never_compressed() {
    let app = app(doc());
    for path in ["/raw", "/stream", "/range", "/text"] {
        let (h, body) = get_with(&app, path, Some("gzip, br")).await;
        assert_eq!(coding(&h), None, "{path}");
        assert!(!varies(&h), "{path}");
        assert_eq!(body, Bytes::from(sample(10_000)), "{path}");
    }
    // Control: the same JSON unmarked is compressed.
    let (h, _) = get_with(&app, "/big", Some("gzip, br")).await;
    assert_eq!(coding(&h), Some("gzip"));
}

#[tokio::test]
async fn a_document_is_answered_from_its_precomputed_forms() {
    let document = doc();
    let app = app(document.clone());
    for (accept, encoding) in [
        (Some("gzip"), Encoding::Gzip),
        (Some("br"), Encoding::Br),
        (Some("*;q=0.5, br;q=0"), Encoding::Gzip),
        (None, Encoding::Identity),
    ] {
        let (h, body) = get_with(&app, "/doc", accept).await;
        let held = document.form(encoding).unwrap();
        // The very bytes computed once when the document was made: nothing encoded now.
        assert_eq!(body.as_ptr(), held.as_ptr(), "{accept:?}");
        assert_eq!(decode(encoding, &body), *document.identity());
        assert_eq!(h[header::ETAG], document.etag(encoding));
        assert!(varies(&h));
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }
}
