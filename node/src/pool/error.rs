//! Why a pool request did not succeed.

use std::process::ExitStatus;
use std::time::Duration;

/// The error of [`Pool`](super::Pool) requests.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// An input or output was rejected; `name` is the parameter ("" when QGIS names none).
    #[error("{}", parameter_text(name, message))]
    Parameter { name: String, message: String },
    /// The process id is unknown or not published.
    #[error("{message}")]
    UnknownProcess { process: String, message: String },
    /// The algorithm ran and failed; `log` is what it reported.
    #[error("execution failed: {message}")]
    Execution { message: String, log: Vec<String> },
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
    /// The job ran longer than its timeout; its worker was killed.
    #[error("job timed out after {}", humantime_serde::re::humantime::format_duration(*after))]
    TimedOut { after: Duration },
    /// The worker died while it ran the job (segfault, OOM kill, ...).
    #[error("worker crashed ({})", exit_text(*signal, *code))]
    Crashed {
        signal: Option<i32>,
        code: Option<i32>,
    },
    /// Every worker is busy and the queue of waiting jobs is full.
    #[error("all workers are busy and the job queue is full")]
    Busy,
    /// The pool cannot serve: shut down, or its workers cannot start.
    #[error("worker pool unavailable: {0}")]
    Unavailable(String),
    /// The worker broke the channel's protocol; it was killed.
    #[error("worker protocol error: {0}")]
    Protocol(String),
}

impl PoolError {
    /// The error for a worker that ended with `status`.
    pub(super) fn crashed(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self::Crashed {
            signal: status.signal(),
            code: status.code(),
        }
    }
}

fn parameter_text(name: &str, message: &str) -> String {
    if name.is_empty() {
        format!("invalid input: {message}")
    } else {
        format!("invalid parameter {name}: {message}")
    }
}

fn exit_text(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(signal), _) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("signal {signal}, {name}"),
            Err(_) => format!("signal {signal}"),
        },
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "unknown exit".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        let crashed = PoolError::Crashed {
            signal: Some(9),
            code: None,
        };
        assert_eq!(crashed.to_string(), "worker crashed (signal 9, SIGKILL)");
        let exited = PoolError::Crashed {
            signal: None,
            code: Some(3),
        };
        assert_eq!(exited.to_string(), "worker crashed (exit code 3)");
        let timed_out = PoolError::TimedOut {
            after: Duration::from_millis(1500),
        };
        assert_eq!(timed_out.to_string(), "job timed out after 1s 500ms");
        let parameter = PoolError::Parameter {
            name: "DISTANCE".into(),
            message: "expected a number".into(),
        };
        assert_eq!(
            parameter.to_string(),
            "invalid parameter DISTANCE: expected a number"
        );
    }
}
