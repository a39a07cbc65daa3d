//! The node's Prometheus metrics, in a registry of its own served on the node's metrics port:
//! jobs by process and final state, their run time and queue wait (from the job's recorded
//! times), job store errors (see `store`), job callbacks by kind and outcome, plus what the pool,
//! the fetcher and the gRPC layer register themselves.

mod store;

use std::time::SystemTime;

use wpsmesh_proto::process::JobStatus;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::family::Family;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::gauge::Gauge;
use wpsmesh_telemetry::metrics::{HistogramFamily, Registry, job_histogram};

pub use store::MeteredStore;

type ProcessLabel = [(&'static str, String); 1];

/// The `kind` label of a job callback: the subscriber URI it went to.
pub const CALLBACK_KINDS: [&str; 3] = ["success", "in_progress", "failed"];
/// The `outcome` label of a job callback: `delivered` (a 2xx answer), `failed` (refused at the
/// call, a final answer that is not 2xx, or retries used up), `dropped` (not sent: too many
/// jobs with callbacks outstanding, or an in-progress status superseded by the job's end) and
/// `refused` (its URI refused by the address policy at submit).
pub const CALLBACK_OUTCOMES: [&str; 4] = ["delivered", "failed", "dropped", "refused"];

/// The job metrics of one node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    jobs: Family<[(&'static str, String); 2], Counter>,
    duration: HistogramFamily<ProcessLabel>,
    queue_wait: HistogramFamily<ProcessLabel>,
    store_errors: Family<[(&'static str, &'static str); 2], Counter>,
    queued: Gauge,
    callbacks: Family<[(&'static str, &'static str); 2], Counter>,
}

impl NodeMetrics {
    /// Registers the job metrics in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            jobs: Family::default(),
            duration: HistogramFamily::new_with_constructor(job_histogram as _),
            queue_wait: HistogramFamily::new_with_constructor(job_histogram as _),
            store_errors: Family::default(),
            queued: Gauge::default(),
            callbacks: Family::default(),
        };
        for kind in CALLBACK_KINDS {
            for outcome in CALLBACK_OUTCOMES {
                drop(
                    metrics
                        .callbacks
                        .get_or_create(&[("kind", kind), ("outcome", outcome)]),
                );
            }
        }
        registry.register(
            "wpsmesh_jobs",
            "Jobs run on this node that reached a final state, by process and state (succeeded, failed, dismissed)",
            metrics.jobs.clone(),
        );
        registry.register(
            "wpsmesh_job_duration_seconds",
            "Run time of jobs on this node, from start to final state, by process",
            metrics.duration.clone(),
        );
        registry.register(
            "wpsmesh_job_queue_wait_seconds",
            "Time queued jobs waited, from accepted to claimed by this node, by process",
            metrics.queue_wait.clone(),
        );
        registry.register(
            "wpsmesh_jobstore_errors",
            "Job store calls that failed (store unreachable or a record unreadable), by operation and kind",
            metrics.store_errors.clone(),
        );
        registry.register(
            "wpsmesh_jobs_queued",
            "Jobs waiting in the job store's queue for any node, as this node last read it (every sweep interval)",
            metrics.queued.clone(),
        );
        registry.register(
            "wpsmesh_node_callbacks",
            "Job callbacks (OGC API - Processes subscriber) by kind (success, in_progress, failed) and outcome (delivered, failed, dropped, refused)",
            metrics.callbacks.clone(),
        );
        metrics
    }

    /// One callback of `kind` ended with `outcome` (see [`CALLBACK_KINDS`],
    /// [`CALLBACK_OUTCOMES`]).
    pub fn callback(&self, kind: &'static str, outcome: &'static str) {
        self.callbacks
            .get_or_create(&[("kind", kind), ("outcome", outcome)])
            .inc();
    }

    /// The store's queue held `waiting` jobs at the last housekeeping sweep.
    pub fn queue_depth(&self, waiting: u64) {
        self.queued.set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// A job run here reached `status`; counted and timed when that state is final.
    pub fn job_ended(&self, status: &JobStatus) {
        if !status.state.is_terminal() {
            return;
        }
        let process = status.process_id.clone();
        self.jobs
            .get_or_create(&[
                ("process", process.clone()),
                ("status", status.state.name().to_owned()),
            ])
            .inc();
        if let Some(seconds) = between(status.started_at, status.finished_at) {
            self.duration
                .get_or_create(&[("process", process)])
                .observe(seconds);
        }
    }

    /// A queued job was claimed here: the time it waited since it was accepted.
    pub fn job_claimed(&self, status: &JobStatus) {
        if let Some(seconds) = between(status.created_at, status.started_at) {
            self.queue_wait
                .get_or_create(&[("process", status.process_id.clone())])
                .observe(seconds);
        }
    }
}

/// Seconds from `from` to `to`, when both are known and in order.
fn between(from: Option<SystemTime>, to: Option<SystemTime>) -> Option<f64> {
    Some(to?.duration_since(from?).ok()?.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wpsmesh_proto::process::{JobId, JobState};

    use super::*;

    fn status(state: JobState) -> JobStatus {
        let now = SystemTime::now();
        JobStatus {
            created_at: Some(now),
            started_at: Some(now + Duration::from_secs(2)),
            finished_at: Some(now + Duration::from_secs(5)),
            ..JobStatus::new(JobId::random(), "native:buffer", state)
        }
    }

    #[test]
    fn final_states_are_counted_and_timed_running_ones_are_not() {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::new(&mut registry);
        metrics.job_ended(&status(JobState::Running));
        metrics.job_ended(&status(JobState::Succeeded));
        metrics.job_claimed(&status(JobState::Running));
        metrics.queue_depth(7);
        metrics.callback("success", "delivered");
        let text = wpsmesh_telemetry::metrics::encode(&registry, false);
        for line in [
            "wpsmesh_jobs_queued 7",
            r#"wpsmesh_node_callbacks_total{kind="success",outcome="delivered"} 1"#,
            r#"wpsmesh_node_callbacks_total{kind="failed",outcome="dropped"} 0"#,
            r#"wpsmesh_jobs_total{process="native:buffer",status="succeeded"} 1"#,
            r#"wpsmesh_job_duration_seconds_sum{process="native:buffer"} 3.0"#,
            r#"wpsmesh_job_queue_wait_seconds_sum{process="native:buffer"} 2.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains(r#"status="running""#), "{text}");
    }
}
