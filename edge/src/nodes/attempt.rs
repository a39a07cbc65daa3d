//! One attempt of a call on one node within its deadline: the answer, or why there was none —
//! the node's own error status, or a failure of the call (see [`crate::failure`]) — whether
//! another node is worth a try, and how it reads to the client. A node is checked at once only
//! when the connection failed or the node kept silent past the deadline, never for its answers
//! or for a failure of that one call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use humantime_serde::re::humantime::format_duration;
use tonic::Code;
use wpsmesh_proto::text;

use super::channel::Node;
use super::{MAX_NODE_HEADERS, MAX_NODE_MESSAGE};
use crate::ows::OwsError;
use wpsmesh_proto::metadata::dependency;
use wpsmesh_runtime::failure::Failure;

/// Why an attempt brought no answer.
#[derive(Debug)]
pub(super) enum Miss {
    /// The node answered with an error status.
    Answer(tonic::Status),
    /// No answer: why, and a one-line text naming the node.
    Failed(Failure, String),
}

/// `call` on `node`, given `deadline` to answer.
pub(super) async fn attempt<T>(
    node: &Arc<Node>,
    deadline: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Miss> {
    let status = match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => return Ok(response.into_inner()),
        Ok(Err(status)) => status,
        Err(_) => {
            // Silence: the node may be frozen (SIGSTOP) or overloaded; its health says which.
            node.failed(Failure::TimedOut);
            let text = format!(
                "node {} did not answer within {}",
                node.uri,
                format_duration(deadline)
            );
            return Err(Miss::Failed(Failure::TimedOut, text));
        }
    };
    let Some(failure) = Failure::of_status(&status) else {
        return Err(Miss::Answer(status));
    };
    node.failed(failure);
    let text = match failure {
        Failure::TooLarge => format!(
            "node {} answer too large: over the edge's limit of {} MiB per message or {} MiB \
             of headers",
            node.uri,
            MAX_NODE_MESSAGE >> 20,
            MAX_NODE_HEADERS >> 20
        ),
        Failure::Stream => format!("node {} reset the call", node.uri),
        other => format!("node {} unreachable: {}", node.uri, other.reason()),
    };
    Err(Miss::Failed(failure, text))
}

impl Miss {
    /// Whether another node may answer where this one did not: it was unreachable, silent or
    /// UNAVAILABLE itself. Not when it blamed a dependency all nodes share (the job store,
    /// storage), nor when its answer was too large (any node would send the same).
    pub(super) fn retryable(&self) -> bool {
        match self {
            Self::Answer(status) => {
                status.code() == Code::Unavailable && dependency(status).is_none()
            }
            Self::Failed(failure, _) => *failure != Failure::TooLarge,
        }
    }

    /// The reason, bounded, for log lines.
    pub(super) fn text(&self) -> String {
        match self {
            Self::Answer(status) => text::one_line(&text::shown(status.message())),
            Self::Failed(_, text) => text.clone(),
        }
    }

    /// The exception the client gets. A node that could not be reached or did not answer in
    /// time is ServerBusy (503 with Retry-After): the condition is temporary, the node is being
    /// checked and leaves the pool if it is down, and the next request goes elsewhere. An answer
    /// the edge could not take (too large, a stream reset) is NoApplicableCode with 502 Bad
    /// Gateway: the request reached a working node whose answer was unusable, which is neither
    /// the client's fault (4xx), nor the edge's own (500), nor worth retrying later (503).
    pub(super) fn into_error(self, retry_after: u32) -> OwsError {
        match self {
            Self::Answer(status) => OwsError::from_status(&status),
            Self::Failed(Failure::TooLarge | Failure::Stream, text) => {
                OwsError::internal(text).with_status(StatusCode::BAD_GATEWAY)
            }
            Self::Failed(_, text) => OwsError::busy(text, retry_after),
        }
    }
}
