//! The worker's side of the channel: length-delimited prost messages, requests read from stdin
//! and events written to the protocol stream (the original stdout).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::sync::Mutex;

use wpsmesh_proto::framing;
use wpsmesh_proto::wire::worker::v1::{WorkerEvent, WorkerRequest, worker_event::Event};

/// The largest request accepted; requests are small (paths, literals), so this is generous.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// Takes stdout for the protocol and points fd 1 at stderr, so that anything else writing to
/// stdout (Python's `print`, QGIS or GDAL C++ code) lands in the log instead of the protocol.
pub fn take_stdout() -> anyhow::Result<EventSink> {
    let protocol = io::stdout().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2(2, 1)?;
    Ok(EventSink {
        out: Mutex::new(BufWriter::new(File::from(protocol))),
    })
}

/// Writes events; shared by the main thread and the Python callbacks.
pub struct EventSink {
    out: Mutex<BufWriter<File>>,
}

impl EventSink {
    /// Writes one event and flushes it, so the node sees it at once.
    pub fn send(&self, event: Event) -> io::Result<()> {
        let message = WorkerEvent { event: Some(event) };
        let bytes = framing::encode(&message);
        let mut out = self
            .out
            .lock()
            .map_err(|_| io::Error::other("event sink poisoned"))?;
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// Reads the next request; `None` at a clean end of input (between messages).
pub fn read_request(input: &mut impl Read) -> io::Result<Option<WorkerRequest>> {
    framing::read(input, MAX_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wpsmesh_proto::wire::worker::v1::{CancelRequest, worker_request::Request};

    #[test]
    fn reads_requests_until_end_of_input() {
        let mut bytes = Vec::new();
        for id in ["a", &"x".repeat(300)] {
            let request = WorkerRequest {
                request: Some(Request::Cancel(CancelRequest { job_id: id.into() })),
            };
            bytes.extend(framing::encode(&request));
        }
        let mut input = bytes.as_slice();
        let mut ids = Vec::new();
        while let Some(request) = read_request(&mut input).expect("valid input") {
            let Some(Request::Cancel(cancel)) = request.request else {
                panic!("not a cancel");
            };
            ids.push(cancel.job_id.len());
        }
        assert_eq!(ids, vec![1, 300]);
    }

    #[test]
    fn a_truncated_request_is_an_error() {
        let request = WorkerRequest {
            request: Some(Request::Cancel(CancelRequest { job_id: "a".into() })),
        };
        let bytes = framing::encode(&request);
        let mut input = &bytes[..bytes.len() - 1];
        assert!(read_request(&mut input).is_err());
    }
}
