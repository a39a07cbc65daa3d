//! A job store that counts its failed calls: wraps the node's store so every call site is
//! covered without a hook of its own (`wpsmesh_jobstore_errors_total{operation,kind}`). A full
//! queue is a refusal, not an error of the store, and is not counted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use wpsmesh_jobstore::{
    Claim, Heartbeat, JobRecord, JobStore, Lease, NewJob, Outcome, Reaped, StoreError,
};
use wpsmesh_proto::process::{JobId, JobPage, JobStatus, ListJobs};

use super::NodeMetrics;

/// The node's job store, counting failures.
pub struct MeteredStore {
    inner: Arc<dyn JobStore>,
    metrics: NodeMetrics,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn JobStore>, metrics: NodeMetrics) -> Arc<dyn JobStore> {
        Arc::new(Self { inner, metrics })
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let kind = match &result {
            Err(StoreError::Unavailable(_)) => "unavailable",
            Err(StoreError::Corrupt { .. }) => "corrupt",
            Ok(_) | Err(StoreError::QueueFull { .. } | StoreError::Invalid(_)) => return result,
        };
        self.metrics
            .store_errors
            .get_or_create(&[("operation", operation), ("kind", kind)])
            .inc();
        result
    }
}

#[tonic::async_trait]
impl JobStore for MeteredStore {
    async fn submit(&self, job: NewJob) -> Result<JobStatus, StoreError> {
        self.count("submit", self.inner.submit(job).await)
    }

    async fn begin(
        &self,
        id: &JobId,
        process_id: &str,
        node: &str,
        lease: Duration,
    ) -> Result<(Lease, JobStatus), StoreError> {
        self.count("begin", self.inner.begin(id, process_id, node, lease).await)
    }

    async fn queued(&self) -> Result<u64, StoreError> {
        self.count("queued", self.inner.queued().await)
    }

    async fn claim(
        &self,
        node: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        self.count("claim", self.inner.claim(node, lease, wait).await)
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        duration: Duration,
        beat: &Heartbeat,
    ) -> Result<bool, StoreError> {
        self.count(
            "heartbeat",
            self.inner.heartbeat(lease, duration, beat).await,
        )
    }

    async fn finish(
        &self,
        lease: &Lease,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<bool, StoreError> {
        self.count("finish", self.inner.finish(lease, worker, outcome).await)
    }

    async fn release(&self, lease: &Lease, reason: &str) -> Result<bool, StoreError> {
        self.count("release", self.inner.release(lease, reason).await)
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.count("get", self.inner.get(id).await)
    }

    async fn dismiss(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.count("dismiss", self.inner.dismiss(id).await)
    }

    fn dismissals(&self) -> broadcast::Receiver<JobId> {
        self.inner.dismissals()
    }

    async fn reap(&self) -> Result<Vec<Reaped>, StoreError> {
        self.count("reap", self.inner.reap().await)
    }

    async fn expired(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.count("expired", self.inner.expired(limit).await)
    }

    async fn forget(&self, id: &JobId) -> Result<(), StoreError> {
        self.count("forget", self.inner.forget(id).await)
    }

    async fn list(&self, query: &ListJobs) -> Result<JobPage, StoreError> {
        self.count("list", self.inner.list(query).await)
    }
}

#[cfg(test)]
mod tests {
    use wpsmesh_jobstore::{JobsConfig, MemoryStore};
    use wpsmesh_telemetry::metrics::Registry;

    use super::*;

    #[test]
    fn failures_of_the_store_are_counted_a_full_queue_is_not() {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::new(&mut registry);
        let store = MeteredStore {
            inner: Arc::new(MemoryStore::new(JobsConfig::default().limits())),
            metrics,
        };
        let _ = store.count("get", Ok::<_, StoreError>(()));
        let _ = store.count::<()>("claim", Err(StoreError::Unavailable("down".into())));
        let _ = store.count::<()>("submit", Err(StoreError::QueueFull { waiting: 9 }));
        let text = wpsmesh_telemetry::metrics::encode(&registry, false);
        let line = r#"wpsmesh_jobstore_errors_total{operation="claim",kind="unavailable"} 1"#;
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        assert!(!text.contains(r#"operation="get""#), "{text}");
        assert!(!text.contains(r#"operation="submit""#), "{text}");
    }
}
