//! What the pool counts for the node's metrics: busy and idle worker slots, tasks waiting for a
//! worker, worker processes and starts, crashes, recycles, and jobs that waited for a worker
//! start; [`PoolCounts`] is the same read once, for logs and tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use wpsmesh_telemetry::metrics::Registry;
use wpsmesh_telemetry::metrics::prometheus_client::collector::Collector;
use wpsmesh_telemetry::metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use wpsmesh_telemetry::metrics::prometheus_client::metrics::histogram::Histogram;

use super::PoolError;
use super::supervisor::Task;

/// Buckets of a worker's start-up (spawn to ready), in seconds.
const START_BUCKETS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

/// The pool's counters, read once ([`Pool::counts`](super::Pool::counts)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolCounts {
    /// Workers retired after their share of jobs, each once its warm replacement was ready.
    pub recycles: u64,
    /// Workers that died on their own (during a job or idle).
    pub crashes: u64,
    /// Workers started after the pool's start: warm replacements and restarts.
    pub starts: u64,
    /// Starts that failed (the worker did not report ready); each is retried.
    pub start_failures: u64,
    /// Jobs that waited in the queue while the slot that took them had no worker and started
    /// one (after a crash, a timeout or a kill): time a client lost to a QGIS start-up.
    pub waited_for_start: u64,
    /// Worker processes now alive (running, starting, or being retired).
    pub processes: u64,
    /// The most worker processes alive at once since the pool started.
    pub peak_processes: u64,
}

/// The pool's counts; cloned into the registry, so a scrape reads them live.
#[derive(Debug)]
pub(super) struct PoolStats {
    busy: Gauge,
    idle: Gauge,
    pub(super) crashes: Counter,
    pub(super) recycles: Counter,
    pub(super) starts: Counter,
    pub(super) start_failures: Counter,
    pub(super) waited_for_start: Counter,
    starting: Gauge,
    processes: Gauge,
    peak_processes: AtomicU64,
    start_seconds: Histogram,
}

/// Keeps a slot counted busy while it lives.
pub(super) struct Busy<'a>(&'a PoolStats);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.dec();
        self.0.idle.inc();
    }
}

/// Keeps a worker process counted while it lives (from its spawn to its kill or exit).
#[derive(Debug)]
pub(super) struct Alive(Gauge);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Keeps a worker counted as starting while it lives.
pub(super) struct Starting(Gauge);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl PoolStats {
    /// `slots` slots, all idle.
    pub(super) fn new(slots: usize) -> Self {
        let stats = Self {
            busy: Gauge::default(),
            idle: Gauge::default(),
            crashes: Counter::default(),
            recycles: Counter::default(),
            starts: Counter::default(),
            start_failures: Counter::default(),
            waited_for_start: Counter::default(),
            starting: Gauge::default(),
            processes: Gauge::default(),
            peak_processes: AtomicU64::new(0),
            start_seconds: Histogram::new(START_BUCKETS),
        };
        stats.idle.set(i64::try_from(slots).unwrap_or(i64::MAX));
        stats
    }

    /// Counts a slot busy running a job until the guard drops.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.busy.inc();
        self.idle.dec();
        Busy(self)
    }

    /// Counts a worker process alive until the guard drops.
    pub(super) fn alive(&self) -> Alive {
        let now = self.processes.inc() + 1;
        self.peak_processes
            .fetch_max(u64::try_from(now).unwrap_or(0), Ordering::Relaxed);
        Alive(self.processes.clone())
    }

    /// Counts a worker starting until the guard drops.
    pub(super) fn starting(&self) -> Starting {
        self.starting.inc();
        Starting(self.starting.clone())
    }

    /// Records a worker's start-up time, spawn to ready.
    pub(super) fn started(&self, took: Duration) {
        self.start_seconds.observe(took.as_secs_f64());
    }

    /// Counts the crash a run ended with, if it did.
    pub(super) fn ran<T>(&self, result: &Result<T, PoolError>) {
        if matches!(result, Err(PoolError::Crashed { .. })) {
            self.crashes.inc();
        }
    }

    pub(super) fn counts(&self) -> PoolCounts {
        PoolCounts {
            recycles: self.recycles.get(),
            crashes: self.crashes.get(),
            starts: self.starts.get(),
            start_failures: self.start_failures.get(),
            waited_for_start: self.waited_for_start.get(),
            processes: u64::try_from(self.processes.get()).unwrap_or(0),
            peak_processes: self.peak_processes.load(Ordering::Relaxed),
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
            "Workers retired after running their share of jobs, each once its warm replacement \
             (started beforehand) was ready",
            self.recycles.clone(),
        );
        registry.register(
            "wpsmesh_worker_starts",
            "Workers started after the pool's start: warm replacements and restarts after a crash",
            self.starts.clone(),
        );
        registry.register(
            "wpsmesh_worker_start_failures",
            "Worker starts that failed (not ready in time, or exited); each is retried",
            self.start_failures.clone(),
        );
        registry.register(
            "wpsmesh_worker_start_waits",
            "Jobs that waited while the slot that took them started a worker (after a crash, \
             timeout or kill; never for a recycle)",
            self.waited_for_start.clone(),
        );
        registry.register(
            "wpsmesh_workers_starting",
            "Worker processes starting (QGIS initialising): warm replacements and restarts",
            self.starting.clone(),
        );
        registry.register(
            "wpsmesh_worker_processes",
            "Worker processes alive: the pool's workers plus those starting or being retired",
            self.processes.clone(),
        );
        registry.register(
            "wpsmesh_worker_start_seconds",
            "Time from a worker's spawn to its ready report (QGIS and Processing initialised)",
            self.start_seconds.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_is_exposed_and_read_back() {
        let stats = PoolStats::new(2);
        let (queue, _receiver) = mpsc::channel::<Task>(4);
        let mut registry = wpsmesh_telemetry::metrics::registry();
        stats.register(&mut registry, queue.downgrade());
        let (first, second) = (stats.alive(), stats.alive());
        drop(first);
        let _starting = stats.starting();
        stats.started(Duration::from_millis(1500));
        stats.recycles.inc();
        stats.waited_for_start.inc();
        let page = wpsmesh_telemetry::metrics::encode(&registry, false);
        for line in [
            "wpsmesh_worker_recycles_total 1",
            "wpsmesh_worker_start_waits_total 1",
            "wpsmesh_worker_starts_total 0",
            "wpsmesh_worker_start_failures_total 0",
            "wpsmesh_workers_starting 1",
            "wpsmesh_worker_processes 1",
            "wpsmesh_worker_start_seconds_bucket{le=\"2.0\"} 1",
            "wpsmesh_worker_queue_depth 0",
        ] {
            assert!(page.contains(line), "{line} in\n{page}");
        }
        let counts = stats.counts();
        assert_eq!((counts.processes, counts.peak_processes), (1, 2));
        assert_eq!((counts.recycles, counts.waited_for_start), (1, 1));
        drop(second);
        assert_eq!(stats.counts().processes, 0);
    }
}
