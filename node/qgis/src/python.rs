//! The calls into `wpsmesh_qgis` on the Python (main) thread: init, describe and run, with the
//! run's progress, log and cancel callbacks and its exceptions mapped to worker events.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyBrokenPipeError;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyTuple};
use wpsmesh_proto::wire::worker::v1::{
    Described, Failed, FailureKind, FileFormat, Finished, LocalFile, Log, OutputValue, Progress,
    RunRequest, output_value, run_value, worker_event::Event,
};

use crate::control::JobControl;
use crate::embed;
use crate::wire::EventSink;

/// Least time between two progress events of a job.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What `bootstrap.init()` reports.
pub struct Started {
    pub qgis_version: String,
    pub seconds: f64,
}

/// The package's entry points, looked up once.
pub struct Session {
    describe_all: Py<PyAny>,
    run: Py<PyAny>,
    release: Py<PyAny>,
    dumps: Py<PyAny>,
    parameter_error: Py<PyAny>,
    cancelled: Py<PyAny>,
    execution_error: Py<PyAny>,
}

impl Session {
    /// Points Python's stdout at stderr, installs the embedded package and initialises QGIS.
    pub fn start(py: Python<'_>) -> PyResult<(Self, Started)> {
        let sys = py.import("sys")?;
        sys.setattr("argv", vec!["wpsmesh-worker"])?;
        sys.setattr("stdout", sys.getattr("stderr")?)?;
        embed::install(py)?;
        crate::geojson::install(py)?;
        let init = py
            .import(format!("{}.bootstrap", embed::PACKAGE))?
            .call_method0("init")?;
        let started = Started {
            qgis_version: init.get_item("qgis_version")?.extract()?,
            seconds: init.get_item("seconds")?.extract()?,
        };
        let module = |name: &str| py.import(format!("{}.{name}", embed::PACKAGE));
        let errors = module("errors")?;
        let session = Self {
            describe_all: module("describe")?.getattr("describe_all")?.unbind(),
            run: module("run")?.getattr("run")?.unbind(),
            release: module("run")?.getattr("release")?.unbind(),
            dumps: py.import("json")?.getattr("dumps")?.unbind(),
            parameter_error: errors.getattr("ParameterError")?.unbind(),
            cancelled: errors.getattr("Cancelled")?.unbind(),
            execution_error: errors.getattr("ExecutionError")?.unbind(),
        };
        Ok((session, started))
    }

    /// `describe_all()` as JSON, or a failure.
    pub fn describe(&self, py: Python<'_>) -> Event {
        let described = self
            .describe_all
            .call0(py)
            .and_then(|all| self.dumps.call1(py, (all,)))
            .and_then(|json| json.extract::<String>(py));
        match described {
            Ok(json) => Event::Described(Described { json }),
            Err(error) => Event::Failed(self.failure(py, &error, "", Vec::new())),
        }
    }

    /// Runs one job; progress and log lines are sent as they come, then the returned event
    /// (`Finished` or `Failed`) ends the job.
    pub fn run(
        &self,
        py: Python<'_>,
        request: &RunRequest,
        sink: &Arc<EventSink>,
        control: &Arc<JobControl>,
    ) -> Event {
        let log = Arc::new(Mutex::new(Vec::new()));
        let result = self.call_run(py, request, sink, control, &log);
        let log = log.lock().map(|lines| lines.clone()).unwrap_or_default();
        match result.and_then(|result| finished(&result, &request.job_id)) {
            Ok(finished) => Event::Finished(finished),
            Err(error) => Event::Failed(self.failure(py, &error, &request.job_id, log)),
        }
    }

    /// Deletes what the last job left for the event loop (`run.release()`); call after its
    /// answer is sent, so it is off the job's latency.
    pub fn release(&self, py: Python<'_>) {
        if let Err(error) = self.release.call0(py) {
            let shown = wpsmesh_proto::text::one_line(&error.to_string());
            tracing::warn!(error = %shown, "cannot release the last job's layers");
        }
    }

    fn call_run<'py>(
        &self,
        py: Python<'py>,
        request: &RunRequest,
        sink: &Arc<EventSink>,
        control: &Arc<JobControl>,
        log: &Arc<Mutex<Vec<String>>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = inputs(py, request)?;
        let outputs = PyDict::new(py);
        for output in &request.outputs {
            let spec = PyDict::new(py);
            if let Some(format) = &output.format {
                spec.set_item("format", format_dict(py, format)?)?;
            }
            outputs.set_item(&output.id, spec)?;
        }
        let job = request.job_id.clone();
        let progress_sink = Arc::clone(sink);
        // At most one progress event per PROGRESS_EVERY (and always 100 %): live enough for a
        // watcher, without a pipe write and a node wake-up per percent of a short job.
        let last_sent = Mutex::new(None::<std::time::Instant>);
        let on_progress = PyCFunction::new_closure(py, Some(c"on_progress"), None, {
            move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
                let percent: f64 = args.get_item(0)?.extract()?;
                if let Ok(mut last) = last_sent.lock() {
                    let now = std::time::Instant::now();
                    if percent < 100.0 && last.is_some_and(|t| now - t < PROGRESS_EVERY) {
                        return Ok(());
                    }
                    *last = Some(now);
                }
                let job_id = job.clone();
                send(
                    &progress_sink,
                    Event::Progress(Progress { job_id, percent }),
                )
            }
        })?;
        let job = request.job_id.clone();
        let (log_sink, lines) = (Arc::clone(sink), Arc::clone(log));
        let on_log = PyCFunction::new_closure(py, Some(c"on_log"), None, {
            move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
                let line: String = args.get_item(0)?.extract()?;
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line.clone());
                }
                let job_id = job.clone();
                send(&log_sink, Event::Log(Log { job_id, line }))
            }
        })?;
        let control = Arc::clone(control);
        let is_cancelled = PyCFunction::new_closure(py, Some(c"is_cancelled"), None, {
            move |_: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| control.is_cancelled()
        })?;
        let args = (
            &request.process_id,
            inputs,
            outputs,
            &request.workdir,
            on_progress,
            on_log,
            is_cancelled,
        );
        self.run.bind(py).call1(args)
    }

    /// Maps an exception of `run`/`describe_all` to a failure; unexpected ones are printed
    /// with their traceback to stderr.
    fn failure(&self, py: Python<'_>, error: &PyErr, job_id: &str, log: Vec<String>) -> Failed {
        let attr = |name: &str| -> String {
            error
                .value(py)
                .getattr(name)
                .and_then(|value| value.extract())
                .unwrap_or_default()
        };
        let (kind, parameter, message) = if error.is_instance(py, self.parameter_error.bind(py)) {
            let name = attr("name");
            let kind = if name == "Identifier" {
                FailureKind::UnknownProcess
            } else {
                FailureKind::Parameter
            };
            (kind, name, attr("message"))
        } else if error.is_instance(py, self.cancelled.bind(py)) {
            (
                FailureKind::Cancelled,
                String::new(),
                error.value(py).to_string(),
            )
        } else if error.is_instance(py, self.execution_error.bind(py)) {
            let message = error.value(py).to_string();
            (FailureKind::Execution, String::new(), message)
        } else {
            let shown = wpsmesh_proto::text::one_line(&error.to_string());
            tracing::error!(job = job_id, error = %shown, "unexpected python error");
            error.print(py);
            let message = format!("internal error: {error}");
            (FailureKind::Execution, String::new(), message)
        };
        Failed {
            job_id: job_id.to_owned(),
            kind: kind.into(),
            parameter,
            message,
            log,
            timing: None,
        }
    }
}

fn send(sink: &EventSink, event: Event) -> PyResult<()> {
    sink.send(event)
        .map_err(|e| PyBrokenPipeError::new_err(format!("cannot report to the node: {e}")))
}

/// `{name: [{"literal": text} | {"file": path, "format": {...}} | {"bbox": {...}}]}`.
fn inputs<'py>(py: Python<'py>, request: &RunRequest) -> PyResult<Bound<'py, PyDict>> {
    let inputs = PyDict::new(py);
    for input in &request.inputs {
        let values = PyList::empty(py);
        for value in &input.values {
            let item = PyDict::new(py);
            match &value.value {
                Some(run_value::Value::Literal(text)) => item.set_item("literal", text)?,
                Some(run_value::Value::File(file)) => {
                    item.set_item("file", &file.path)?;
                    let format = file.format.clone().unwrap_or_default();
                    item.set_item("format", format_dict(py, &format)?)?;
                }
                Some(run_value::Value::Bbox(extent)) => {
                    let bbox = PyDict::new(py);
                    bbox.set_item("crs", &extent.crs)?;
                    bbox.set_item("lower", &extent.lower)?;
                    bbox.set_item("upper", &extent.upper)?;
                    item.set_item("bbox", bbox)?;
                }
                None => {}
            }
            values.append(item)?;
        }
        inputs.set_item(&input.id, values)?;
    }
    Ok(inputs)
}

fn format_dict<'py>(py: Python<'py>, format: &FileFormat) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("mime_type", &format.mime_type)?;
    dict.set_item("encoding", &format.encoding)?;
    dict.set_item("schema", &format.schema)?;
    dict.set_item("extension", &format.extension)?;
    Ok(dict)
}

/// `{"outputs": {id: {"file", "format"} | {"literal"}}, "log": [...]}` as a `Finished` event.
fn finished(result: &Bound<'_, PyAny>, job_id: &str) -> PyResult<Finished> {
    let mut outputs = Vec::new();
    let returned = result.get_item("outputs")?;
    for (id, value) in returned.downcast::<PyDict>()?.iter() {
        let value = if value.contains("literal")? {
            output_value::Value::Literal(value.get_item("literal")?.extract()?)
        } else {
            let format = value.get_item("format")?;
            let field = |name: &str| -> PyResult<String> {
                match format.get_item(name) {
                    Ok(value) if !value.is_none() => value.extract(),
                    _ => Ok(String::new()),
                }
            };
            output_value::Value::File(LocalFile {
                path: value.get_item("file")?.extract()?,
                format: Some(FileFormat {
                    mime_type: field("mime_type")?,
                    encoding: field("encoding")?,
                    schema: field("schema")?,
                    extension: field("extension")?,
                }),
            })
        };
        outputs.push(OutputValue {
            id: id.extract()?,
            value: Some(value),
        });
    }
    Ok(Finished {
        job_id: job_id.to_owned(),
        outputs,
        log: result.get_item("log")?.extract()?,
        timing: None,
    })
}
