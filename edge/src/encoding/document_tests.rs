//! Unit tests of [`Document`]: its forms, ETags, 304s, and that a cached document is answered
//! with the very bytes it holds (no compression per request).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;

use super::super::codec::tests::{decode, sample};
use super::*;

/// `doc` answered to a request accepting `accept`, with `if_none_match` if given.
fn ask(doc: &Document, accept: &str, if_none_match: Option<&str>) -> Response {
    let inm = if_none_match.map(|v| HeaderValue::from_str(v).unwrap());
    doc.negotiated(&AcceptEncoding::parse(accept), inm.as_ref(), StatusCode::OK)
}

async fn body(response: Response) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[test]
fn a_document_holds_forms_that_decode_to_its_bytes() {
    let identity = Bytes::from(sample(50_000));
    let doc = Document::new("text/xml; charset=utf-8", identity.clone());
    for encoding in [Encoding::Gzip, Encoding::Br] {
        let form = doc.form(encoding).unwrap();
        assert!(
            form.len() < identity.len() / 4,
            "{encoding:?}: {}",
            form.len()
        );
        assert_eq!(decode(encoding, form), identity);
    }
    let tags: std::collections::HashSet<_> = Encoding::PREFERRED
        .into_iter()
        .map(|e| doc.etag(e))
        .collect();
    assert_eq!(tags.len(), 3, "each representation has its own strong ETag");
    // The same bytes rendered again (another edge, another generation) get the same ETags.
    assert_eq!(
        Document::new("text/xml; charset=utf-8", identity).etag(Encoding::Br),
        doc.etag(Encoding::Br)
    );
}

#[test]
fn a_tiny_document_keeps_no_compressed_form() {
    let doc = Document::new("application/json", Bytes::from_static(b"{}"));
    assert!(doc.form(Encoding::Gzip).is_none() && doc.form(Encoding::Br).is_none());
    let answer = ask(&doc, "gzip, br", None);
    assert!(answer.headers().get(header::CONTENT_ENCODING).is_none());
    // Control: a larger one is compressed for the same request.
    let large = Document::new("application/json", Bytes::from(sample(5_000)));
    let answer = ask(&large, "gzip, br", None);
    assert_eq!(answer.headers()[header::CONTENT_ENCODING], "br");
}

#[tokio::test]
async fn each_coding_is_answered_with_the_bytes_the_document_holds() {
    let doc = Arc::new(Document::new(
        "text/xml; charset=utf-8",
        Bytes::from(sample(20_000)),
    ));
    for (accept, encoding) in [
        ("gzip", Encoding::Gzip),
        ("br, gzip", Encoding::Br),
        ("gzip;q=0", Encoding::Identity),
        ("", Encoding::Identity),
    ] {
        let answer = ask(&doc, accept, None);
        let h = answer.headers().clone();
        assert_eq!(h[header::VARY], "accept-encoding", "{accept}");
        assert_eq!(h[header::ETAG], doc.etag(encoding), "{accept}");
        assert_eq!(
            h.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()),
            (encoding != Encoding::Identity).then_some(encoding.as_str()),
            "{accept}"
        );
        let sent = body(answer).await;
        let held = doc.form(encoding).unwrap();
        assert_eq!(h[header::CONTENT_LENGTH], held.len().to_string().as_str());
        // The same allocation: the form computed once, not an encoding made for this request.
        assert_eq!(sent.as_ptr(), held.as_ptr(), "{accept}");
        assert_eq!(sent, *held);
    }
}

#[test]
fn if_none_match_on_the_negotiated_form_is_304() {
    let doc = Document::new("application/json", Bytes::from(sample(5_000)));
    let gz = doc.etag(Encoding::Gzip);
    let gz = gz.to_str().unwrap();
    let ask = |inm: &str| ask(&doc, "gzip", Some(inm)).status();
    assert_eq!(ask(gz), StatusCode::NOT_MODIFIED);
    assert_eq!(ask(&format!("W/{gz}")), StatusCode::NOT_MODIFIED);
    assert_eq!(ask(&format!("\"other\", {gz}")), StatusCode::NOT_MODIFIED);
    assert_eq!(ask("*"), StatusCode::NOT_MODIFIED);
    // Controls: another form's tag, or another document's, is a full answer.
    assert_eq!(
        ask(doc.etag(Encoding::Br).to_str().unwrap()),
        StatusCode::OK
    );
    assert_eq!(ask("\"0123\""), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_first_requests_render_once_and_errors_are_not_kept() {
    let slot = Slot::default();
    let renders = AtomicUsize::new(0);
    let render = || async {
        renders.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok::<_, ()>(Bytes::from(sample(3_000)))
    };
    let docs =
        futures::future::join_all((0..8).map(|_| once(&slot, "application/json", render()))).await;
    assert_eq!(renders.load(Ordering::SeqCst), 1);
    let first = docs[0].as_ref().unwrap();
    assert!(docs.iter().all(|d| Arc::ptr_eq(d.as_ref().unwrap(), first)));

    let failing = Slot::default();
    assert!(
        once(&failing, "application/json", async {
            Err::<Bytes, _>("down")
        })
        .await
        .is_err()
    );
    assert!(failing.get().is_none(), "an error is not kept");
    let doc = once(&failing, "application/json", render()).await.unwrap();
    assert_eq!(doc.identity().len(), 3_000);
}
