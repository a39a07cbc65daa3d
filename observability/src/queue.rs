//! The span processor between the SDK and the OTLP exporter: a bounded queue that ending a span
//! only ever `try_send`s into (a full queue drops the span and counts it), and one export
//! thread that sends batches, each export bounded by a timeout. A collector that is down or
//! hangs therefore never slows the code that ends spans: it only fills the queue.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::Effective;

/// Spans dropped because the export queue was full (or already shut down), since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Export calls that failed or timed out, since start.
static FAILED_EXPORTS: AtomicU64 = AtomicU64::new(0);

/// Spans dropped since the process started because the export queue was full: the collector
/// is down, hangs or is too slow for the load.
pub fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Export calls that failed or timed out since the process started.
pub fn failed_exports() -> u64 {
    FAILED_EXPORTS.load(Ordering::Relaxed)
}

/// What the export thread is asked besides exporting.
enum Control {
    Resource(Resource),
    /// Export everything queued, then answer.
    Flush(SyncSender<()>),
    /// Export everything queued, shut the exporter down, answer and stop.
    Shutdown(SyncSender<()>),
}

/// The bounded queue and its export thread.
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    spans: SyncSender<SpanData>,
    control: Mutex<Sender<Control>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Longest the export thread sleeps before looking at its control messages.
const TICK: Duration = Duration::from_millis(50);

impl QueueProcessor {
    /// Starts the export thread. Exports run on the Tokio runtime of the caller (the tonic
    /// exporter's channel lives there), so this must be called within one.
    pub(crate) fn start<E>(exporter: E, settings: &Effective) -> Result<Self, String>
    where
        E: SpanExporter + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "tracing needs a tokio runtime".to_owned())?;
        let (spans, queued) = mpsc::sync_channel(settings.max_queue);
        let (control, commands) = mpsc::channel();
        let worker = Worker {
            exporter,
            runtime,
            queued,
            commands,
            batch_size: settings.batch_size,
            delay: settings.schedule_delay.max(Duration::from_millis(1)),
            timeout: settings.export_timeout,
        };
        let thread = std::thread::Builder::new()
            .name("wpsmesh-otlp-export".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the span export thread: {e}"))?;
        Ok(Self {
            spans,
            control: Mutex::new(control),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn ask(&self, make: impl FnOnce(SyncSender<()>) -> Control, wait: Duration) -> OTelSdkResult {
        let (done, answer) = mpsc::sync_channel(1);
        let sent = self
            .control
            .lock()
            .map_err(|_| OTelSdkError::AlreadyShutdown)?
            .send(make(done));
        if sent.is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        answer
            .recv_timeout(wait)
            .map_err(|_| OTelSdkError::Timeout(wait))
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        // Full (the collector is slow, down or hung) or shut down: dropped, counted.
        if self.spans.try_send(span).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let answered = self.ask(Control::Shutdown, timeout);
        if answered.is_ok()
            && let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take())
        {
            let _ = thread.join();
        }
        answered
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Ok(control) = self.control.lock() {
            let _ = control.send(Control::Resource(resource.clone()));
        }
    }
}

/// The export thread's state.
struct Worker<E> {
    exporter: E,
    runtime: tokio::runtime::Handle,
    queued: Receiver<SpanData>,
    commands: Receiver<Control>,
    batch_size: usize,
    delay: Duration,
    timeout: Duration,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut due = Instant::now() + self.delay;
        loop {
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    Control::Resource(resource) => self.exporter.set_resource(&resource),
                    Control::Flush(done) => {
                        self.drain(&mut batch);
                        let _ = done.send(());
                    }
                    Control::Shutdown(done) => {
                        self.drain(&mut batch);
                        let _ = self.exporter.shutdown_with_timeout(self.timeout);
                        let _ = done.send(());
                        return;
                    }
                }
            }
            let wait = due.saturating_duration_since(Instant::now()).min(TICK);
            match self.queued.recv_timeout(wait) {
                Ok(span) => {
                    batch.push(span);
                    if batch.len() >= self.batch_size {
                        self.export(&mut batch);
                        due = Instant::now() + self.delay;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= due {
                        if !batch.is_empty() {
                            self.export(&mut batch);
                        }
                        due = Instant::now() + self.delay;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain(&mut batch);
                    return;
                }
            }
        }
    }

    /// Exports everything queued now, in batches.
    fn drain(&self, batch: &mut Vec<SpanData>) {
        while let Ok(span) = self.queued.try_recv() {
            batch.push(span);
            if batch.len() >= self.batch_size {
                self.export(batch);
            }
        }
        if !batch.is_empty() {
            self.export(batch);
        }
    }

    /// One export call, given at most the export timeout; a failure loses the batch (counted).
    fn export(&self, batch: &mut Vec<SpanData>) {
        let spans = std::mem::replace(batch, Vec::with_capacity(self.batch_size));
        let call = self.exporter.export(spans);
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, call).await });
        if !matches!(outcome, Ok(Ok(()))) {
            FAILED_EXPORTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;
    use crate::config::Sampling;

    /// An exporter whose calls never finish (a hung collector), or that keeps what it gets.
    #[derive(Debug, Default, Clone)]
    struct Exporter {
        hangs: bool,
        got: Arc<Mutex<Vec<SpanData>>>,
        service: Arc<Mutex<String>>,
    }

    impl SpanExporter for Exporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            self.got.lock().expect("got").extend(batch);
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            let name = resource.get(&opentelemetry::Key::new("service.name"));
            *self.service.lock().expect("service") =
                name.map(|v| v.to_string()).unwrap_or_default();
        }
    }

    fn settings(max_queue: usize, export_timeout: Duration) -> Effective {
        Effective {
            endpoint: None,
            service_name: "t".into(),
            sampling: Sampling::ParentRatio(1.0),
            max_queue,
            batch_size: 1,
            schedule_delay: Duration::from_millis(5),
            export_timeout,
        }
    }

    fn provider(exporter: Exporter, settings: &Effective) -> SdkTracerProvider {
        let processor = QueueProcessor::start(exporter, settings).expect("start");
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(Resource::builder_empty().with_service_name("svc").build())
            .build()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_exporter_never_blocks_ending_spans_and_drops_are_counted() {
        let exporter = Exporter {
            hangs: true,
            ..Default::default()
        };
        let provider = provider(exporter, &settings(4, Duration::from_millis(200)));
        let tracer = provider.tracer("t");
        let dropped = dropped_spans();
        let failed = failed_exports();
        let started = Instant::now();
        for _ in 0..200 {
            tracer.start("work").end();
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(200),
            "ending 200 spans took {took:?}"
        );
        // At most the queue (4) and the batch in export (1) were kept.
        assert!(
            dropped_spans() - dropped >= 195,
            "{}",
            dropped_spans() - dropped
        );
        let _ = provider.shutdown();
        assert!(failed_exports() > failed, "timed-out exports are counted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_exported_in_batches_with_the_resource() {
        let exporter = Exporter::default();
        let provider = provider(exporter.clone(), &settings(64, Duration::from_secs(5)));
        let tracer = provider.tracer("t");
        for _ in 0..10 {
            let mut span = tracer.start("work");
            span.set_attribute(opentelemetry::KeyValue::new("k", 1));
            span.end();
        }
        provider.force_flush().expect("flush");
        assert_eq!(exporter.got.lock().expect("got").len(), 10);
        assert_eq!(*exporter.service.lock().expect("service"), "svc");
        provider.shutdown().expect("shutdown");
    }
}
