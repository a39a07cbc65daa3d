//! Why a pool request did not succeed.

use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use wpsmesh_proto::text;
use wpsmesh_proto::wire::worker::v1::{Failed, FailureKind};

use super::job::run_times;

/// When the worker started and ended a job's algorithm, as it timed them.
pub type RunTimes = (SystemTime, SystemTime);

/// The error of [`Pool`](super::Pool) requests.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// An input or output was rejected; `name` is the parameter ("" when QGIS names none).
    /// `ran`: the worker's times, as for every failure the worker reports.
    #[error("{}", parameter_text(name, message))]
    Parameter {
        name: String,
        message: String,
        ran: Option<RunTimes>,
    },
    /// The process id is unknown or not published.
    #[error("{message}")]
    UnknownProcess {
        process: String,
        message: String,
        ran: Option<RunTimes>,
    },
    /// The algorithm ran and failed; `log` is what it reported.
    #[error("execution failed: {message}")]
    Execution {
        message: String,
        log: Vec<String>,
        ran: Option<RunTimes>,
    },
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
    /// When the worker ran the failed job, as it timed it: for the failures it reported
    /// (`None` for those of the pool, or a worker that died, was killed or sent no times).
    pub fn ran(&self) -> Option<RunTimes> {
        match self {
            Self::Parameter { ran, .. }
            | Self::UnknownProcess { ran, .. }
            | Self::Execution { ran, .. } => *ran,
            _ => None,
        }
    }

    /// The error a worker reported, with its times; its texts (which may echo client values)
    /// are bounded here, where they enter the node.
    pub(super) fn reported(failed: Failed, process: &str) -> Self {
        let message = text::one_line(&failed.message);
        let ran = run_times(failed.timing);
        match FailureKind::try_from(failed.kind) {
            Ok(FailureKind::Parameter) => Self::Parameter {
                name: text::shown(&failed.parameter).into_owned(),
                message,
                ran,
            },
            Ok(FailureKind::UnknownProcess) => Self::UnknownProcess {
                process: process.to_owned(),
                message,
                ran,
            },
            Ok(FailureKind::Cancelled) => Self::Cancelled,
            Ok(FailureKind::Execution) => Self::Execution {
                message,
                log: failed.log,
                ran,
            },
            Ok(FailureKind::Unspecified) | Err(_) => Self::Protocol(format!(
                "failure of unknown kind {}: {message}",
                failed.kind
            )),
        }
    }

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
            ran: None,
        };
        assert_eq!(
            parameter.to_string(),
            "invalid parameter DISTANCE: expected a number"
        );
    }

    #[test]
    fn a_failure_the_worker_reports_keeps_its_times() {
        use std::time::UNIX_EPOCH;

        use wpsmesh_proto::wire::worker::v1::RunTiming;

        let failed = |kind: FailureKind| Failed {
            job_id: "j".into(),
            kind: kind.into(),
            message: "boom".into(),
            timing: Some(RunTiming {
                started_unix_nanos: 5_000,
                ended_unix_nanos: 9_000,
            }),
            ..Default::default()
        };
        let times = (
            UNIX_EPOCH + Duration::from_nanos(5_000),
            UNIX_EPOCH + Duration::from_nanos(9_000),
        );
        let execution = PoolError::reported(failed(FailureKind::Execution), "native:buffer");
        assert_eq!(execution.to_string(), "execution failed: boom");
        assert_eq!(execution.ran(), Some(times));
        let parameter = PoolError::reported(failed(FailureKind::Parameter), "native:buffer");
        assert_eq!(parameter.ran(), Some(times));
        // Without times (an older worker) there are none; the pool's own errors have none.
        let untimed = Failed {
            timing: None,
            ..failed(FailureKind::Execution)
        };
        assert_eq!(PoolError::reported(untimed, "native:buffer").ran(), None);
        assert_eq!(PoolError::Busy.ran(), None);
    }
}
