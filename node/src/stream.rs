//! ExecuteStreamed answers: the finished job's result first, then the streamed output's bytes
//! read from its (already unlinked) file in chunks of at most [`MAX_CHUNK`], as the client
//! takes them.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use tonic::Status;
use wpsmesh_proto::storage::MAX_CHUNK;
use wpsmesh_proto::wire::process::v1::{self as wire, execute_streamed_response::Part};

use crate::outputs::Streamed;

/// The message stream of an ExecuteStreamed answer.
pub type Answer = Pin<Box<dyn Stream<Item = Result<wire::ExecuteStreamedResponse, Status>> + Send>>;

/// `response`, then the bytes of `streamed` (exactly its size: a file that shrank meanwhile
/// ends the stream short, which the client detects against the size).
pub fn answer(response: wire::ExecuteResponse, streamed: Option<Streamed>) -> Answer {
    let described = streamed.as_ref().map(|s| wire::StreamedOutput {
        id: s.id.clone(),
        format: Some(s.format.clone().into()),
        size: s.size,
    });
    let head = wire::ExecuteStreamedResponse {
        part: Some(Part::Result(wire::ExecuteStreamedResult {
            response: Some(response),
            streamed: described,
        })),
    };
    let chunks = streamed.map(|s| {
        ReaderStream::with_capacity(s.file.take(s.size), MAX_CHUNK).map(|read| {
            read.map(|bytes| wire::ExecuteStreamedResponse {
                part: Some(Part::Chunk(bytes)),
            })
            .map_err(|e| Status::internal(format!("cannot read the streamed output: {e}")))
        })
    });
    futures::stream::once(async { Ok(head) })
        .chain(futures::stream::iter(chunks).flatten())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_result_comes_first_then_the_files_bytes_in_bounded_chunks() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("OUTPUT.geojson");
        let bytes: Vec<u8> = (0..MAX_CHUNK * 2 + 10).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let file = tokio::fs::File::open(&path).await.expect("open");
        // Streamed from the open file after its name is gone, as after the job's cleanup.
        drop(dir);
        let streamed = Streamed {
            id: "OUTPUT".into(),
            format: Default::default(),
            size: bytes.len() as u64,
            file,
        };
        let messages: Vec<_> = answer(wire::ExecuteResponse::default(), Some(streamed))
            .map(|m| m.expect("message").part.expect("part"))
            .collect()
            .await;
        let Some(Part::Result(result)) = messages.first() else {
            panic!("the result first: {:?}", messages.first());
        };
        let described = result.streamed.as_ref().expect("described");
        assert_eq!(
            (described.id.as_str(), described.size),
            ("OUTPUT", bytes.len() as u64)
        );
        let mut got = Vec::new();
        for m in &messages[1..] {
            let Part::Chunk(c) = m else {
                panic!("only chunks after the result")
            };
            assert!(c.len() <= MAX_CHUNK);
            got.extend_from_slice(c);
        }
        assert!(got == bytes, "the file's bytes, in order");

        // No file output to stream: the result alone.
        let alone: Vec<_> = answer(wire::ExecuteResponse::default(), None)
            .collect()
            .await;
        assert_eq!(alone.len(), 1);
    }
}
