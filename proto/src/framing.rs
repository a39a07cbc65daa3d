//! The framing of the node ↔ worker channel (`wpsmesh.worker.v1`): each message is prefixed by
//! its length as a protobuf varint (prost's `encode_length_delimited`). Both ends use this
//! module: the node writes requests and reads events asynchronously, the worker reads requests
//! and writes events from blocking code.

use std::io;

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest varint a length prefix may take.
const MAX_PREFIX: usize = 10;

/// `message` with its length prefix, ready to be written in one go.
pub fn encode(message: &impl Message) -> Vec<u8> {
    message.encode_length_delimited_to_vec()
}

/// Reads the next message from blocking `input`; `None` at a clean end of input (between
/// messages). A frame longer than `max` bytes, a broken prefix, a truncated frame or an
/// undecodable message is an error.
pub fn read<M: Message + Default>(input: &mut impl io::Read, max: usize) -> io::Result<Option<M>> {
    let mut prefix = Prefix::default();
    let len = loop {
        let mut byte = [0u8; 1];
        if input.read(&mut byte)? == 0 {
            return prefix.ended();
        }
        if let Some(len) = prefix.push(byte[0], max)? {
            break len;
        }
    };
    let mut buf = vec![0; len];
    input.read_exact(&mut buf)?;
    decode(&buf).map(Some)
}

/// Reads the next message from asynchronous `input`, as [`read`] does.
pub async fn read_async<M: Message + Default>(
    input: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> io::Result<Option<M>> {
    let mut prefix = Prefix::default();
    let len = loop {
        let byte = match input.read_u8().await {
            Ok(byte) => byte,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return prefix.ended(),
            Err(error) => return Err(error),
        };
        if let Some(len) = prefix.push(byte, max)? {
            break len;
        }
    };
    let mut buf = vec![0; len];
    input.read_exact(&mut buf).await?;
    decode(&buf).map(Some)
}

fn decode<M: Message + Default>(buf: &[u8]) -> io::Result<M> {
    M::decode(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A length prefix being read, byte by byte.
#[derive(Default)]
struct Prefix {
    value: u64,
    bytes: usize,
}

impl Prefix {
    /// Takes the next byte: the frame's length once the prefix is complete.
    fn push(&mut self, byte: u8, max: usize) -> io::Result<Option<usize>> {
        if self.bytes == MAX_PREFIX {
            return Err(invalid("length prefix longer than 10 bytes".into()));
        }
        self.value |= u64::from(byte & 0x7f) << (7 * self.bytes);
        self.bytes += 1;
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        usize::try_from(self.value)
            .ok()
            .filter(|len| *len <= max)
            .map(Some)
            .ok_or_else(|| invalid(format!("frame of {} bytes is too large", self.value)))
    }

    /// The input ended: cleanly before a prefix, else in the middle of one.
    fn ended<M>(&self) -> io::Result<Option<M>> {
        if self.bytes == 0 {
            Ok(None)
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::worker::v1::worker_request::Request;
    use crate::wire::worker::v1::{CancelRequest, WorkerRequest};

    fn cancel(id: &str) -> WorkerRequest {
        WorkerRequest {
            request: Some(Request::Cancel(CancelRequest { job_id: id.into() })),
        }
    }

    fn ids(requests: Vec<WorkerRequest>) -> Vec<usize> {
        requests
            .into_iter()
            .map(|r| match r.request {
                Some(Request::Cancel(c)) => c.job_id.len(),
                _ => panic!("not a cancel"),
            })
            .collect()
    }

    fn two_frames() -> Vec<u8> {
        // 300 bytes take a two-byte prefix.
        let mut bytes = encode(&cancel("a"));
        bytes.extend(encode(&cancel(&"x".repeat(300))));
        bytes
    }

    #[test]
    fn reads_frames_until_a_clean_end() {
        let bytes = two_frames();
        let mut input = bytes.as_slice();
        let mut got = Vec::new();
        while let Some(request) = read::<WorkerRequest>(&mut input, 1024).expect("valid") {
            got.push(request);
        }
        assert_eq!(ids(got), vec![1, 300]);
    }

    #[tokio::test]
    async fn reads_frames_asynchronously_until_a_clean_end() {
        let bytes = two_frames();
        let mut input = bytes.as_slice();
        let mut got = Vec::new();
        while let Some(request) = read_async::<WorkerRequest>(&mut input, 1024)
            .await
            .expect("valid")
        {
            got.push(request);
        }
        assert_eq!(ids(got), vec![1, 300]);
    }

    #[tokio::test]
    async fn broken_input_is_an_error() {
        let frame = encode(&cancel("abc"));
        let cases: [(&str, &[u8]); 4] = [
            ("truncated frame", &frame[..frame.len() - 1]),
            ("truncated prefix", &[0x80]),
            ("prefix too long", &[0xff; 11]),
            ("undecodable", &[0x02, 0xff, 0xff]),
        ];
        for (what, bytes) in cases {
            assert!(read::<WorkerRequest>(&mut &*bytes, 1024).is_err(), "{what}");
            assert!(
                read_async::<WorkerRequest>(&mut &*bytes, 1024)
                    .await
                    .is_err(),
                "{what} (async)"
            );
        }
    }

    #[tokio::test]
    async fn frames_over_the_maximum_are_refused() {
        let frame = encode(&cancel(&"x".repeat(300)));
        let error = read::<WorkerRequest>(&mut frame.as_slice(), 299).expect_err("too large");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("too large"), "{error}");
        let error = read_async::<WorkerRequest>(&mut frame.as_slice(), 299)
            .await
            .expect_err("too large");
        assert!(error.to_string().contains("too large"), "{error}");
        // Exactly the maximum is fine.
        let len = frame.len() - 2;
        assert!(read::<WorkerRequest>(&mut frame.as_slice(), len).is_ok());
    }
}
