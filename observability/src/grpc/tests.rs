//! Tests of the gRPC spans: calls through [`Traced`] and [`client_span`] with scripted bodies,
//! their spans captured by an OpenTelemetry provider in this test.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::StreamBody;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;

use super::*;
use crate::ended::capture;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// A span's status, `rpc.grpc.status_code` and `rpc.response.bytes`.
fn outcome(span: &SpanData) -> (Status, String, String) {
    let get = |key| attribute(span, key).unwrap_or_default();
    (
        span.status.clone(),
        get("rpc.grpc.status_code"),
        get("rpc.response.bytes"),
    )
}

/// A body of scripted frames.
type Frames =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Data frames of `sizes` bytes, then `trailers` if any.
fn frames(sizes: &[usize], trailers: Option<http::HeaderMap>) -> Frames {
    let data = sizes
        .iter()
        .map(|&n| Frame::data(Bytes::from(vec![b'x'; n])));
    let all: Vec<_> = data.chain(trailers.map(Frame::trailers)).map(Ok).collect();
    StreamBody::new(futures::stream::iter(all))
}

/// Headers (or trailers) with `grpc-status` and, if any, `grpc-message`.
fn status_headers(code: u8, message: Option<&'static str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("grpc-status", u16::from(code).into());
    if let Some(message) = message {
        headers.insert("grpc-message", http::HeaderValue::from_static(message));
    }
    headers
}

async fn next<B: Body + Unpin>(body: &mut B) -> Option<Frame<B::Data>>
where
    B::Error: std::fmt::Debug,
{
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
        .await
        .map(|frame| frame.expect("a frame"))
}

/// A service that reads its request to the end, then answers with the headers and body it
/// is given (once).
#[derive(Clone)]
struct Script(Arc<Mutex<Option<(http::HeaderMap, Frames)>>>);

impl Script {
    fn new(headers: http::HeaderMap, body: Frames) -> Self {
        Self(Arc::new(Mutex::new(Some((headers, body)))))
    }
}

impl Service<http::Request<Counted<Frames>>> for Script {
    type Response = http::Response<Frames>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Counted<Frames>>) -> Self::Future {
        let (headers, body) = self.0.lock().expect("script").take().expect("one call");
        Box::pin(async move {
            let mut read = request.into_body();
            while next(&mut read).await.is_some() {}
            let mut response = http::Response::new(body);
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

const PARENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN: &str = "b7ad6b7169203331";

/// Calls `Download` on `script` with a 7-byte request under a remote parent.
async fn download(script: Script) -> http::Response<TracedBody<Frames>> {
    let request = http::Request::builder()
        .uri("/test.v1.Files/Download")
        .header(
            propagate::TRACEPARENT,
            format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"),
        )
        .body(frames(&[7], None))
        .expect("request");
    Traced::new(script).call(request).await.expect("answer")
}

#[tokio::test]
async fn a_streamed_answer_is_one_span_to_its_last_message_with_its_bytes() {
    let (ended, _provider, _guard) = capture();
    let body = frames(&[5, 10, 20], Some(status_headers(0, None)));
    let mut response = download(Script::new(http::HeaderMap::new(), body)).await;
    let body = response.body_mut();
    for _ in 0..3 {
        assert!(next(body).await.expect("a message").is_data());
        assert!(ended.spans().is_empty(), "the span ended before the stream");
    }
    let last_message = SystemTime::now();
    assert!(next(body).await.expect("trailers").is_trailers());
    let span = ended.only();
    assert!(span.end_time >= last_message, "{span:#?}");
    assert_eq!(span.name, "test.v1.Files/Download");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context.trace_id().to_string(), PARENT_TRACE);
    assert_eq!(span.parent_span_id.to_string(), PARENT_SPAN);
    assert_eq!(attribute(&span, "rpc.request.bytes").as_deref(), Some("7"));
    assert_eq!(
        attribute(&span, "rpc.response.bytes").as_deref(),
        Some("35")
    );
    assert_eq!(
        attribute(&span, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    // The positive control: an OK stream is no error.
    assert_eq!(span.status, Status::Unset);
    drop(response);
    assert_eq!(ended.spans().len(), 1, "one span, ended once");
}

#[tokio::test]
async fn a_status_other_than_ok_marks_the_span_failed_with_its_message() {
    let cases = [
        // In the trailers, after a message (read to the end).
        (
            http::HeaderMap::new(),
            frames(&[3], Some(status_headers(13, Some("disk%20full")))),
            usize::MAX,
            ("Internal: disk full", "13", "3"),
        ),
        // Trailers-only: in the headers, the body empty (hyper drops it unread).
        (
            status_headers(5, Some("no%20such%20object")),
            frames(&[], None),
            0,
            ("NotFound: no such object", "5", "0"),
        ),
        // None yet: the client went away after the first message.
        (
            http::HeaderMap::new(),
            frames(&[4, 4], Some(status_headers(0, None))),
            1,
            (CLIENT_GONE, "1", "4"),
        ),
    ];
    for (headers, body, frames, (message, code, bytes)) in cases {
        let (ended, _provider, _guard) = capture();
        let mut response = download(Script::new(headers, body)).await;
        for _ in 0..frames {
            if next(response.body_mut()).await.is_none() {
                break;
            }
        }
        drop(response);
        let want = (Status::error(message), code.to_owned(), bytes.to_owned());
        assert_eq!(outcome(&ended.only()), want);
    }
}

#[tokio::test]
async fn a_client_span_counts_both_bodies_and_reads_the_trailers() {
    let (ended, _provider, _guard) = capture();
    let mut request = http::Request::builder()
        .uri("/test.v1.Files/Download")
        .body(tonic::body::Body::new(frames(&[9], None)))
        .expect("request");
    let span = client_span(&mut request, "http://node:8001");
    let sent = request.headers()[propagate::TRACEPARENT]
        .to_str()
        .expect("traceparent")
        .to_owned();
    // The transport sends the request, then the answer comes.
    let mut body = request.into_body();
    while next(&mut body).await.is_some() {}
    drop(body);
    let answer = frames(&[6], Some(status_headers(14, Some("node%20down"))));
    let mut answer: Result<_, Infallible> = Ok(http::Response::new(tonic::body::Body::new(answer)));
    client_answer(&span, &mut answer);
    drop(span);
    assert!(ended.spans().is_empty(), "the span ended before the answer");
    let mut response = answer.expect("response");
    while next(response.body_mut()).await.is_some() {}
    let span = ended.only();
    assert_eq!(span.span_kind, SpanKind::Client);
    assert!(
        sent.contains(&span.span_context.span_id().to_string()),
        "{sent}"
    );
    assert_eq!(attribute(&span, "rpc.request.bytes").as_deref(), Some("9"));
    assert_eq!(attribute(&span, "rpc.response.bytes").as_deref(), Some("6"));
    assert_eq!(span.status, Status::error("Unavailable: node down"));
}

#[test]
fn paths_split_into_service_and_method() {
    assert_eq!(
        split("/wpsmesh.process.v1.ProcessService/Execute"),
        ("wpsmesh.process.v1.ProcessService", "Execute")
    );
    assert_eq!(split("/odd"), ("odd", ""));
}

#[test]
fn grpc_messages_are_percent_decoded() {
    assert_eq!(percent_decode("no%20node%3A x"), "no node: x");
    assert_eq!(percent_decode("50%"), "50%");
}
