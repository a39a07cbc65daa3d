//! A raw output streamed from the node that ran the job (ExecuteStreamed): its bytes pass
//! through to the client as the node reads them from the worker's file, never stored nor held
//! whole, with the Content-Length the node announced.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tracing::warn;
use wpsmesh_proto::process::Format;
use wpsmesh_proto::wire::process::v1::execute_streamed_response::Part;

use crate::files::typed;
use crate::nodes::Streamed;

/// The streamed output of a finished job.
pub struct RawOutput {
    pub id: String,
    pub format: Format,
    pub size: u64,
    chunks: tonic::Streaming<wpsmesh_proto::wire::process::v1::ExecuteStreamedResponse>,
}

impl From<Streamed> for RawOutput {
    fn from((described, chunks): Streamed) -> Self {
        Self {
            id: described.id,
            format: described.format.map(Format::from).unwrap_or_default(),
            size: described.size,
            chunks,
        }
    }
}

impl RawOutput {
    /// 200 with the output's media type and length, its bytes as they come. A node failing
    /// mid-way cuts the body short of its Content-Length, which clients see as an error.
    pub fn into_response(self) -> Response {
        let mut response = typed(
            &self.format.mime_type,
            Body::from_stream(bytes(self.chunks)),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(self.size));
        response
    }
}

fn bytes(
    chunks: tonic::Streaming<wpsmesh_proto::wire::process::v1::ExecuteStreamedResponse>,
) -> impl Stream<Item = Result<Bytes, tonic::Status>> {
    chunks.map(|message| {
        let chunk = match message?.part {
            Some(Part::Chunk(bytes)) => Ok(bytes),
            _ => Err(tonic::Status::internal(
                "invalid ExecuteStreamed answer from a node: not a chunk after the result",
            )),
        };
        if let Err(e) = &chunk {
            warn!(error = %e.message(), "streamed output cut short");
        }
        chunk
    })
}
