//! gRPC calls that got no answer, told apart from answers: what went wrong on the way to a peer
//! (`connection refused`, `connection reset`, `timed out`, ...), read from the error chain of a
//! tonic status. The one place a service turns a transport error into words, so no message or
//! log line ever carries a debug dump of the chain; [`Cause`] says it in the words a dependency
//! failure is reported with (also read from the text of clients that keep only text, like fred).

use std::error::Error;
use std::fmt;
use std::io::{self, ErrorKind};

use tonic::{Code, Status};
use wpsmesh_proto::text;

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the address.
    Refused,
    /// The connection broke or was closed mid-call (reset, aborted, broken pipe, closed by the
    /// peer): hyper's h2 client reports a reset connection to its calls as closed, so the two
    /// cannot be told apart.
    Reset,
    /// No answer in time: a deadline, a connect or keep-alive timeout.
    TimedOut,
    /// The answer exceeded a limit of our client (header list or message size). Only this
    /// call is at fault: the peer is fine.
    TooLarge,
    /// The peer reset this one call's stream.
    Stream,
    /// Any other failure of the connection (name resolution, a protocol error).
    Transport,
}

impl Failure {
    /// A few lowercase words.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Refused => "connection refused",
            Self::Reset => "connection reset",
            Self::TimedOut => "timed out",
            Self::TooLarge => "answer too large",
            Self::Stream => "call reset",
            Self::Transport => "transport error",
        }
    }

    /// Whether the connection itself failed, so the peer may be down and is worth checking at
    /// once; false when only this call's stream failed.
    pub fn is_connection(self) -> bool {
        !matches!(self, Self::TooLarge | Self::Stream)
    }

    /// The failure a status reports, `None` when it is an answer of the peer (a status it
    /// sent). Answers carry no source; failures keep the transport error as theirs, except the
    /// size limits tonic checks while decoding, recognised by their text.
    pub fn of_status(status: &Status) -> Option<Self> {
        if exceeds_decoding_limit(status) {
            return Some(Self::TooLarge);
        }
        status.source().and_then(Self::of_error)
    }

    /// The failure an error chain shows: the most specific error in it that names one (an io
    /// error kind deep inside wins over the hyper error around it); `Transport` for a chain of
    /// transport errors that name none; `None` for anything else.
    pub fn of_error(error: &(dyn Error + 'static)) -> Option<Self> {
        let chain = chain(error);
        chain
            .iter()
            .rev()
            .find_map(|e| Self::of_one(*e))
            .or_else(|| {
                chain
                    .iter()
                    .any(|e| is_transport(*e))
                    .then_some(Self::Transport)
            })
    }

    fn of_one(e: &(dyn Error + 'static)) -> Option<Self> {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Self::of_kind(io.kind());
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return Self::of_h2(h2);
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Some(Self::TimedOut);
            }
            if hyper.is_closed() || hyper.is_incomplete_message() || hyper.is_canceled() {
                return Some(Self::Reset);
            }
            return None;
        }
        let timed_out = e.is::<tonic::TimeoutExpired>()
            || e.is::<tokio::time::error::Elapsed>()
            || e.is::<tower::timeout::error::Elapsed>();
        timed_out.then_some(Self::TimedOut)
    }

    fn of_kind(kind: ErrorKind) -> Option<Self> {
        match kind {
            ErrorKind::ConnectionRefused => Some(Self::Refused),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected => Some(Self::Reset),
            ErrorKind::TimedOut => Some(Self::TimedOut),
            _ => None,
        }
    }

    fn of_h2(e: &h2::Error) -> Option<Self> {
        use h2::Reason;
        if let Some(io) = e.get_io() {
            return Self::of_kind(io.kind()).or(Some(Self::Transport));
        }
        let reason = e.reason();
        if e.is_library() {
            // Our own h2 client refused what the peer sent: a header block over its
            // limit resets that stream (PROTOCOL_ERROR; REFUSED_STREAM in other h2 versions);
            // one far over it, or a single value too large to keep decoding, closes the
            // connection (ENHANCE_YOUR_CALM, COMPRESSION_ERROR). Either way one answer was too
            // large (or malformed, the rarer reason for the same resets).
            let oversize = if e.is_reset() {
                matches!(
                    reason,
                    Some(Reason::PROTOCOL_ERROR | Reason::REFUSED_STREAM)
                )
            } else {
                matches!(
                    reason,
                    Some(Reason::ENHANCE_YOUR_CALM | Reason::COMPRESSION_ERROR)
                )
            };
            if oversize {
                return Some(Self::TooLarge);
            }
        }
        if e.is_go_away() {
            return Some(if e.is_remote() {
                Self::Reset
            } else {
                Self::Transport
            });
        }
        e.is_reset().then_some(Self::Stream)
    }
}

/// `error` and its sources, looking inside io errors (whose `source` skips the error they wrap).
fn chain<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        chain.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
        if chain.len() > 32 {
            break;
        }
    }
    chain
}

fn is_transport(e: &(dyn Error + 'static)) -> bool {
    e.is::<tonic::transport::Error>()
        || e.is::<tonic::ConnectError>()
        || e.is::<hyper::Error>()
        || e.is::<h2::Error>()
        || e.is::<io::Error>()
}

/// The statuses tonic itself makes when an answer exceeds `max_decoding_message_size`
/// (`OUT_OF_RANGE`, "decoded message length too large") or decompresses past it
/// (`RESOURCE_EXHAUSTED`, "size limit ... exceeded while decompressing"). They carry no source
/// and a node could send the same codes, so their text tells them apart.
fn exceeds_decoding_limit(status: &Status) -> bool {
    let message = status.message();
    match status.code() {
        Code::OutOfRange => message.starts_with("Error, decoded message length too large"),
        Code::ResourceExhausted => {
            message.starts_with("Error decompressing: size limit")
                && message.ends_with("exceeded while decompressing message")
        }
        _ => false,
    }
}

/// What happened to the connection to a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Refused,
    Reset,
    TimedOut,
    /// Anything else, in a few words (one line, bounded).
    Other(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refused => "connection refused",
            Self::Reset => "connection reset",
            Self::TimedOut => "timed out",
            Self::Other(reason) => reason,
        })
    }
}

impl Cause {
    /// The cause the shared classifier of transport failures gives (refused, reset, timed out;
    /// other transport failures in its words).
    fn of_failure(failure: Failure) -> Self {
        match failure {
            Failure::Refused => Self::Refused,
            Failure::Reset => Self::Reset,
            Failure::TimedOut => Self::TimedOut,
            other => Self::Other(other.reason().to_owned()),
        }
    }

    /// The cause an error's text names, for errors that keep it only as text (fred renders io
    /// errors with `Debug`; hyper says "connection closed before message completed").
    pub fn of_text(text: &str) -> Option<Self> {
        let text = text.to_ascii_lowercase();
        let names = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if names(&["refused"]) {
            Some(Self::Refused)
        } else if names(&[
            "reset",
            "broken pipe",
            "brokenpipe",
            "closed",
            "eof",
            "aborted",
        ]) {
            Some(Self::Reset)
        } else if names(&["timed out", "timedout", "timeout", "deadline"]) {
            Some(Self::TimedOut)
        } else {
            None
        }
    }

    /// The cause an error chain shows: what the shared classifier finds in it
    /// ([`Failure`]), else the first error whose text names one.
    pub fn of_chain(error: &(dyn Error + 'static)) -> Option<Self> {
        let chain =
            || std::iter::successors(Some(error), |e: &&(dyn Error + 'static)| (*e).source());
        Failure::of_error(error)
            .map(Self::of_failure)
            .or_else(|| chain().find_map(|e| Self::of_text(&e.to_string())))
    }

    /// Some words for an unclassified failure: `text` on one line, bounded.
    pub fn other(text: &str) -> Self {
        Self::Other(text::one_line(&text::shown(text)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn with_source(code: Code, source: impl Error + Send + Sync + 'static) -> Status {
        let mut status = Status::new(code, "transport error");
        status.set_source(Arc::new(source));
        status
    }

    #[test]
    fn io_kinds_deep_in_the_chain_name_the_failure() {
        for (kind, failure, reason) in [
            (
                ErrorKind::ConnectionRefused,
                Failure::Refused,
                "connection refused",
            ),
            (
                ErrorKind::ConnectionReset,
                Failure::Reset,
                "connection reset",
            ),
            (ErrorKind::BrokenPipe, Failure::Reset, "connection reset"),
            (ErrorKind::UnexpectedEof, Failure::Reset, "connection reset"),
            (ErrorKind::TimedOut, Failure::TimedOut, "timed out"),
        ] {
            // As hyper wraps it: an io error around an io error, under an unknown status.
            let inner = io::Error::other(io::Error::from(kind));
            let status = with_source(Code::Unknown, inner);
            let found = Failure::of_status(&status);
            assert_eq!(found, Some(failure), "{kind:?}");
            assert_eq!(failure.reason(), reason);
            assert!(failure.is_connection());
        }
    }

    #[test]
    fn answers_are_not_failures() {
        assert_eq!(Failure::of_status(&Status::unavailable("draining")), None);
        assert_eq!(Failure::of_status(&Status::out_of_range("DISTANCE")), None);
        assert_eq!(
            Failure::of_status(&Status::deadline_exceeded("job timed out")),
            None
        );
        // An unrelated error as source is not a transport failure either.
        let status = with_source(Code::Internal, std::fmt::Error);
        assert_eq!(Failure::of_status(&status), None);
    }

    #[test]
    fn decoding_limits_are_that_calls_failure() {
        let status = Status::out_of_range(
            "Error, decoded message length too large: found 70000000 bytes, the limit is: \
             67108864 bytes",
        );
        assert_eq!(Failure::of_status(&status), Some(Failure::TooLarge));
        assert!(!Failure::TooLarge.is_connection());
    }

    #[test]
    fn h2_and_timeout_errors() {
        // A bare reason names no failure: still the transport's.
        let reason = with_source(Code::Unavailable, h2::Error::from(h2::Reason::CANCEL));
        assert_eq!(Failure::of_status(&reason), Some(Failure::Transport));
        let elapsed = with_source(Code::Cancelled, tonic::TimeoutExpired(()));
        assert_eq!(Failure::of_status(&elapsed), Some(Failure::TimedOut));
    }
}
