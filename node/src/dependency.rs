//! Why a dependency (storage, the job store) failed mid-call, in a few words: the one place that
//! turns an error chain (tonic, hyper, io, fred) into `connection refused`, `connection reset` or
//! `timed out`, so no message ever carries a debug dump of the chain.

use std::error::Error;

use tonic::{Code, Status};
use wpsmesh_proto::text;
pub use wpsmesh_runtime::failure::Cause;

pub use wpsmesh_proto::metadata::{JOB_STORE, STORAGE};

/// How a gRPC call to a dependency failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be reached, or the connection broke or timed out during the call: the
    /// caller answers UNAVAILABLE naming the dependency.
    Unavailable(Cause),
    /// It answered with an error of its own (the message on one line, bounded).
    Answered(Code, String),
}

impl Failure {
    /// Classifies a failed call. A status our client made from a transport error carries that
    /// error as its source; one the dependency sent has none. UNAVAILABLE and
    /// DEADLINE_EXCEEDED mean unavailable either way.
    pub fn of(status: &Status) -> Self {
        let source = status.source();
        if source.is_none() && !matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
        {
            return Self::Answered(status.code(), text::one_line(status.message()));
        }
        let cause = source
            .and_then(Cause::of_chain)
            .or_else(|| Cause::of_text(status.message()))
            .or_else(|| (status.code() == Code::DeadlineExceeded).then_some(Cause::TimedOut))
            .unwrap_or_else(|| Cause::other(status.message()));
        Self::Unavailable(cause)
    }

    /// The message to pass on: `{dependency} unavailable: {cause}` or `{dependency}: {message}`.
    pub fn message(&self, dependency: &str) -> String {
        match self {
            Self::Unavailable(cause) => format!("{dependency} unavailable: {cause}"),
            Self::Answered(_, message) => format!("{dependency}: {message}"),
        }
    }

    /// UNAVAILABLE, or the dependency's own code.
    pub fn code(&self) -> Code {
        match self {
            Self::Unavailable(_) => Code::Unavailable,
            Self::Answered(code, _) => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use wpsmesh_proto::wire::storage::v1::DeleteRequest;
    use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;

    use super::*;

    /// A storage call to `addr` and how it failed.
    async fn call(addr: std::net::SocketAddr) -> Failure {
        let channel = wpsmesh_runtime::grpc::channel(&format!("http://{addr}")).expect("channel");
        let status = StorageServiceClient::new(channel)
            .delete(DeleteRequest { id: "x".into() })
            .await
            .expect_err("the call fails");
        Failure::of(&status)
    }

    #[tokio::test]
    async fn a_refused_connection_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let failure = call(addr).await;
        assert_eq!(failure, Failure::Unavailable(Cause::Refused));
        assert_eq!(
            failure.message(STORAGE),
            "storage unavailable: connection refused"
        );
    }

    #[tokio::test]
    async fn a_connection_dropped_during_the_call_is_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            // The client's preface arrives; closing with most of it unread resets the connection.
            let _ = socket.read(&mut [0; 1]).await;
        });
        let failure = call(addr).await;
        assert_eq!(failure, Failure::Unavailable(Cause::Reset));
        assert_eq!(
            failure.message(STORAGE),
            "storage unavailable: connection reset"
        );
    }

    #[test]
    fn answers_of_the_dependency_keep_their_code() {
        let failure = Failure::of(&Status::not_found("object x not found"));
        assert_eq!(failure.code(), Code::NotFound);
        assert_eq!(failure.message(STORAGE), "storage: object x not found");
        let long = Failure::of(&Status::internal(format!("s3: {}", "x".repeat(5000))));
        assert!(long.message(STORAGE).len() < 1100);
        // The dependency saying it is unavailable, or a deadline, is unavailable.
        assert_eq!(
            Failure::of(&Status::unavailable("s3 down")),
            Failure::Unavailable(Cause::Other("s3 down".into()))
        );
        assert_eq!(
            Failure::of(&Status::deadline_exceeded("")),
            Failure::Unavailable(Cause::TimedOut)
        );
    }

    #[test]
    fn causes_are_read_from_text() {
        let refused = r#"Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }"#;
        assert_eq!(Cause::of_text(refused), Some(Cause::Refused));
        let reset =
            r#"Os { code: 104, kind: ConnectionReset, message: "Connection reset by peer" }"#;
        assert_eq!(Cause::of_text(reset), Some(Cause::Reset));
        assert_eq!(Cause::of_text("Request timed out."), Some(Cause::TimedOut));
        assert_eq!(Cause::of_text("WRONGTYPE"), None);
        assert_eq!(Cause::other("a\nb").to_string(), "a b");
    }
}
