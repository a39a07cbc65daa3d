//! What the pool counts for the node's metrics: busy and idle worker slots, tasks waiting for a
//! worker, worker crashes and recycles.

use std::fmt;

use tokio::sync::mpsc;
use wpsmesh_telemetry::metrics::Registry;
use wpsmesh_telemetry::metrics::prometheus_client::collector::Collector;
use wpsmesh_telemetry::metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::gauge::{ConstGauge, Gauge};

use super::PoolError;
use super::supervisor::Task;

/// The pool's counts; cloned into the registry, so a scrape reads them live.
#[derive(Debug, Default)]
pub(super) struct PoolStats {
    busy: Gauge,
    idle: Gauge,
    pub(super) crashes: Counter,
    pub(super) recycles: Counter,
}

/// Keeps a slot counted busy while it lives.
pub(super) struct Busy<'a>(&'a PoolStats);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.dec();
        self.0.idle.inc();
    }
}

impl PoolStats {
    /// `slots` slots, all idle.
    pub(super) fn new(slots: usize) -> Self {
        let stats = Self::default();
        stats.idle.set(i64::try_from(slots).unwrap_or(i64::MAX));
        stats
    }

    /// Counts a slot busy running a job until the guard drops.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.busy.inc();
        self.idle.dec();
        Busy(self)
    }

    /// Counts the crash a run ended with, if it did.
    pub(super) fn ran<T>(&self, result: &Result<T, PoolError>) {
        if matches!(result, Err(PoolError::Crashed { .. })) {
            self.crashes.inc();
        }
    }

    /// Registers the counts, and the depth of the pool's queue read at each scrape.
    pub(super) fn register(&self, registry: &mut Registry, queue: mpsc::WeakSender<Task>) {
        registry.register(
            "wpsmesh_workers_busy",
            "Worker slots running a job",
            self.busy.clone(),
        );
        registry.register(
            "wpsmesh_workers_idle",
            "Worker slots free for a job (a slot whose worker is being replaced counts as idle)",
            self.idle.clone(),
        );
        registry.register(
            "wpsmesh_worker_crashes",
            "Workers that died on their own (during a job or idle); each is replaced",
            self.crashes.clone(),
        );
        registry.register(
            "wpsmesh_worker_recycles",
            "Workers stopped and replaced after running their share of jobs",
            self.recycles.clone(),
        );
        registry.register_collector(Box::new(QueueDepth(queue)));
    }
}

/// Tasks waiting in the pool's queue for a worker, read at each scrape.
struct QueueDepth(mpsc::WeakSender<Task>);

impl fmt::Debug for QueueDepth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueDepth")
    }
}

impl Collector for QueueDepth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let depth = self
            .0
            .upgrade()
            .map_or(0, |queue| queue.max_capacity() - queue.capacity());
        let gauge = ConstGauge::new(i64::try_from(depth).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "wpsmesh_worker_queue_depth",
            "Jobs accepted by this node and waiting for a free worker.",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}
