//! The bodies of a traced gRPC call, each a body watched frame by frame ([`Watched`]): the
//! request body counts its bytes onto the call's span ([`Counted`]), and the response body keeps
//! the span open until the response ends ([`TracedBody`]), reading the status from the trailers
//! and counting the bytes sent. A span of a streamed answer thus covers the whole stream.

use std::fmt::{self, Display};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

use super::record_status;
use crate::propagate;

/// Sees the frames of a body as they pass.
pub trait Watch {
    /// A frame passed (`Some(Ok)`), the body failed (`Some(Err)`) or it ended (`None`).
    fn saw<D: Buf, E: Display>(&mut self, polled: Option<Result<&Frame<D>, &E>>);

    /// The span the body's own work belongs to, entered while it is polled.
    fn span(&self) -> Option<&tracing::Span> {
        None
    }
}

/// A body whose frames `W` sees.
pub struct Watched<B, W> {
    inner: B,
    watch: W,
}

impl<B, W: fmt::Debug> fmt::Debug for Watched<B, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl<B, W> Body for Watched<B, W>
where
    B: Body + Unpin,
    B::Error: Display,
    W: Watch + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = {
            let _entered = this.watch.span().map(tracing::Span::enter);
            Pin::new(&mut this.inner).poll_frame(cx)
        };
        if let Poll::Ready(polled) = &polled {
            this.watch.saw(polled.as_ref().map(Result::as_ref));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body counting its data bytes, recorded on a span when the body is dropped (read to its
/// end or given up).
pub type Counted<B> = Watched<B, Count>;

/// The bytes of a [`Counted`] body so far.
#[derive(Debug)]
pub struct Count {
    span: tracing::Span,
    field: &'static str,
    bytes: u64,
}

impl<B> Counted<B> {
    /// `inner`, its bytes recorded on `span` as `field` (a field the span declares).
    pub(super) fn new(inner: B, span: tracing::Span, field: &'static str) -> Self {
        let watch = Count {
            span,
            field,
            bytes: 0,
        };
        Self { inner, watch }
    }
}

impl Watch for Count {
    fn saw<D: Buf, E: Display>(&mut self, polled: Option<Result<&Frame<D>, &E>>) {
        if let Some(Ok(frame)) = polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.remaining() as u64;
        }
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        // Once only: an attribute recorded twice would be exported twice.
        self.span.record(self.field, self.bytes);
    }
}

/// A response body that ends its call's span with the response: at the trailers (their
/// `grpc-status` and `grpc-message` recorded), at the end of the body, or when it is dropped
/// (a response given up before its status is `Cancelled`).
pub type TracedBody<B> = Watched<B, Call>;

/// The span of one call while its response is under way.
#[derive(Debug)]
pub struct Call {
    /// Taken when the response ends, which ends the span (with the request body gone too).
    span: Option<tracing::Span>,
    /// Whether a `grpc-status` was seen (in the headers or the trailers).
    status: bool,
    bytes: u64,
    /// The error status of a response dropped before its status (`Cancelled: ...`).
    dropped: &'static str,
}

impl<B> TracedBody<B> {
    /// `inner`, the response of the call of `span`, whose headers carried a status or not;
    /// `dropped` is the error status when it is dropped before its status.
    pub(super) fn new(inner: B, span: tracing::Span, status: bool, dropped: &'static str) -> Self {
        let watch = Call {
            span: Some(span),
            status,
            bytes: 0,
            dropped,
        };
        Self { inner, watch }
    }
}

impl Call {
    fn end(&mut self) {
        if let Some(span) = self.span.take() {
            span.record("rpc.response.bytes", self.bytes);
        }
    }
}

impl Watch for Call {
    fn saw<D: Buf, E: Display>(&mut self, polled: Option<Result<&Frame<D>, &E>>) {
        match polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.remaining() as u64;
                } else if let (Some(trailers), Some(span)) = (frame.trailers_ref(), &self.span) {
                    self.status |= record_status(span, trailers);
                    self.end();
                }
            }
            Some(Err(e)) => {
                if let Some(span) = &self.span {
                    propagate::fail(span, format!("the response stream failed: {e}"));
                }
                self.status = true;
                self.end();
            }
            None => self.end(),
        }
    }

    fn span(&self) -> Option<&tracing::Span> {
        self.span.as_ref()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let Some(span) = &self.span
            && !self.status
        {
            span.record("rpc.grpc.status_code", tonic::Code::Cancelled as i32);
            propagate::fail(span, self.dropped);
        }
        self.end();
    }
}
