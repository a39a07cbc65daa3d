//! `wpsmesh-worker`: one PyQGIS worker process. Initialises QGIS once, then serves describe and
//! run requests from stdin, one job at a time, answering with events on stdout (see
//! `proto/wpsmesh/worker/v1/worker.proto`). Logs go to stderr; EOF on stdin ends it.

mod control;
mod embed;
mod geojson;
mod interpreter;
mod media;
mod python;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pyo3::prelude::*;
use wpsmesh_proto::wire::worker::v1::worker_event::Event;
use wpsmesh_proto::wire::worker::v1::{Ready, RunTiming};

use crate::control::{Command, JobControl};

/// Set by the node to its pid: the worker dies with it (see `die_with_parent`).
const PARENT_ENV: &str = "WPSMESH_WORKER_PARENT";

fn main() -> ExitCode {
    wpsmesh_telemetry::init_relayed("WPSMESH_WORKER_LOG", "info");
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "worker failed");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> anyhow::Result<()> {
    die_with_parent()?;
    let started = Instant::now();
    let sink = Arc::new(wire::take_stdout().context("cannot take stdout")?);
    let control = Arc::new(JobControl::default());
    interpreter::initialize()?;
    Python::attach(|py| {
        let sys = py.import("sys")?;
        let python_home: String = sys.getattr("prefix")?.extract()?;
        let version: String = sys.getattr("version")?.extract()?;
        let python_version = version.split(' ').next().unwrap_or_default().to_owned();
        let (session, qgis) = python::Session::start(py).map_err(|error| {
            error.print(py);
            anyhow::anyhow!("cannot initialise qgis: {error}")
        })?;
        let ready = Ready {
            qgis_version: qgis.qgis_version,
            init_seconds: started.elapsed().as_secs_f64(),
            pid: std::process::id(),
            python_home,
            python_version,
        };
        tracing::info!(
            qgis = ready.qgis_version,
            seconds = ready.init_seconds,
            qgis_seconds = qgis.seconds,
            python = ready.python_version,
            python_home = ready.python_home,
            "worker ready"
        );
        sink.send(Event::Ready(ready))?;
        let mut commands = control::spawn_reader(Arc::clone(&control))?;
        loop {
            // Wait without the GIL; the receiver moves in and out (it is not Sync).
            let (command, receiver) = py.detach(move || (commands.recv(), commands));
            commands = receiver;
            let Ok(command) = command else {
                tracing::debug!("no more requests");
                return Ok(());
            };
            let ran = matches!(command, Command::Run(_));
            let event = match command {
                Command::Describe(_) => session.describe(py),
                Command::Run(request) => {
                    let run = run_span(&request.trace_context);
                    let _in_run = run.enter();
                    let started = Instant::now();
                    let started_at = unix_nanos();
                    let mut event = session.run(py, &request, &sink, &control);
                    // The node records the `algorithm run` span with these times.
                    let timing = Some(RunTiming {
                        started_unix_nanos: started_at,
                        ended_unix_nanos: unix_nanos(),
                    });
                    let outcome = match &mut event {
                        Event::Finished(finished) => {
                            finished.timing = timing;
                            "finished"
                        }
                        Event::Failed(failed) => {
                            failed.timing = timing;
                            "failed"
                        }
                        _ => "failed",
                    };
                    tracing::info!(
                        job = request.job_id,
                        process = request.process_id,
                        seconds = started.elapsed().as_secs_f64(),
                        outcome,
                        "job done"
                    );
                    event
                }
            };
            sink.send(event).context("cannot send an event")?;
            if ran {
                session.release(py);
            }
        }
    })
}

/// Now, in ns since the Unix epoch.
fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The span a job runs in: every line the worker writes meanwhile names the job's trace and
/// the node's span the run is under (`run{trace_id=… span_id=…}: …`), the ids the node's own
/// lines of the job carry. The `algorithm run` span itself is recorded by the node afterwards,
/// with the times the worker reports, so its id cannot be known here. At error level so that
/// the span is on whenever a line is; none when the job is untraced.
fn run_span(context: &str) -> tracing::Span {
    match trace_ids(context) {
        Some((trace_id, span_id)) => tracing::error_span!("run", %trace_id, %span_id),
        None => tracing::Span::none(),
    }
}

/// The trace and span ids of a `traceparent[ tracestate]` context
/// (`00-<trace id>-<span id>-<flags>`); `None` when empty or malformed.
fn trace_ids(context: &str) -> Option<(&str, &str)> {
    let mut parts = context.split_whitespace().next()?.split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |id: &str, len: usize| id.len() == len && id.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace, 32) && hex(span, 16)).then_some((trace, span))
}

/// Asks the kernel to SIGKILL this worker when the node that started it dies, even by
/// SIGKILL, and refuses to start when the node is already gone.
fn die_with_parent() -> anyhow::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if let Ok(parent) = std::env::var(PARENT_ENV) {
        let actual = nix::unistd::getppid().as_raw().to_string();
        anyhow::ensure!(actual == parent, "the node (pid {parent}) is gone");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_names_the_trace_and_span_of_its_context() {
        let context = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 k=v";
        assert_eq!(
            trace_ids(context),
            Some(("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
        );
        for untraced in [
            "",
            "00-not-a-trace-01",
            "00-0af7651916cd43dd8448eb211c80319c",
        ] {
            assert_eq!(trace_ids(untraced), None, "{untraced}");
        }
    }
}
