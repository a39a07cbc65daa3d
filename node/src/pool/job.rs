//! What a job asks of a worker and what it gives back, and their wire (worker proto) forms.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use wpsmesh_proto::wire::worker::v1 as wire;

use super::RunTimes;

/// One run of a process on a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct RunJob {
    /// Names the job in logs and in the worker's events.
    pub job_id: String,
    pub process_id: String,
    pub inputs: Vec<JobInput>,
    /// Empty: every output in its default format.
    pub outputs: Vec<OutputRequest>,
    /// A directory owned by this job; outputs are written there.
    pub workdir: PathBuf,
    /// Overrides the pool's job timeout.
    pub timeout: Option<Duration>,
    /// The W3C trace context of the run (`traceparent[ tracestate]`), handed to the worker;
    /// empty when untraced.
    pub trace: String,
}

/// Every value given for one input parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    pub id: String,
    pub values: Vec<InputValue>,
}

/// One value of an input parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    Literal(String),
    /// A file already on this machine's disk.
    File {
        path: PathBuf,
        format: Format,
    },
    BoundingBox {
        crs: String,
        lower: Vec<f64>,
        upper: Vec<f64>,
    },
}

/// An output asked for, in a format (`None`: its default).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRequest {
    pub id: String,
    pub format: Option<Format>,
}

/// A file format (the process domain's); empty fields are unspecified.
pub use wpsmesh_proto::process::Format;

/// Reported while a job runs, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The job left the queue and runs on the worker with this pid.
    Started { worker_pid: u32 },
    /// Percent done, 0 to 100.
    Progress(f64),
    /// A log line of the algorithm.
    Log(String),
}

/// A job that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub outputs: Vec<JobOutput>,
    pub log: Vec<String>,
    /// The worker that ran it.
    pub worker_pid: u32,
    /// Time on the worker, from sending the job to its end.
    pub elapsed: Duration,
    /// When the algorithm started and ended, as the worker timed it.
    pub ran: Option<RunTimes>,
}

/// One result of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub id: String,
    pub value: OutputValue,
}

/// A literal result, or a file written into the job's workdir.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    Literal(String),
    File { path: PathBuf, format: Format },
}

impl RunJob {
    /// A job with a fresh id, no inputs and every output in its default format.
    pub fn new(process_id: impl Into<String>, workdir: impl Into<PathBuf>) -> Self {
        Self {
            job_id: uuid::Uuid::new_v4().simple().to_string(),
            process_id: process_id.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            workdir: workdir.into(),
            timeout: None,
            trace: String::new(),
        }
    }

    /// Adds a value to an input (several calls with one id give a multi-valued input).
    #[must_use]
    pub fn input(mut self, id: &str, value: InputValue) -> Self {
        match self.inputs.iter_mut().find(|input| input.id == id) {
            Some(input) => input.values.push(value),
            None => self.inputs.push(JobInput {
                id: id.to_owned(),
                values: vec![value],
            }),
        }
        self
    }

    /// Adds a literal value to an input.
    #[must_use]
    pub fn literal(self, id: &str, text: impl Into<String>) -> Self {
        self.input(id, InputValue::Literal(text.into()))
    }

    /// Adds a local file to an input, its format left to the worker to detect.
    #[must_use]
    pub fn file(self, id: &str, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.input(
            id,
            InputValue::File {
                path,
                format: Format::default(),
            },
        )
    }

    /// Asks for an output (in its default format when `format` is `None`).
    #[must_use]
    pub fn output(mut self, id: &str, format: Option<Format>) -> Self {
        self.outputs.push(OutputRequest {
            id: id.to_owned(),
            format,
        });
        self
    }

    /// Sets this job's timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub(super) fn to_wire(&self) -> wire::RunRequest {
        wire::RunRequest {
            job_id: self.job_id.clone(),
            process_id: self.process_id.clone(),
            inputs: self.inputs.iter().map(JobInput::to_wire).collect(),
            outputs: self
                .outputs
                .iter()
                .map(|output| wire::RunOutput {
                    id: output.id.clone(),
                    format: output.format.clone().map(Into::into),
                })
                .collect(),
            workdir: self.workdir.to_string_lossy().into_owned(),
            trace_context: self.trace.clone(),
        }
    }
}

impl JobInput {
    fn to_wire(&self) -> wire::RunInput {
        use wire::run_value::Value;
        let values = self.values.iter().map(|value| {
            let value = match value {
                InputValue::Literal(text) => Value::Literal(text.clone()),
                InputValue::File { path, format } => Value::File(wire::LocalFile {
                    path: path.to_string_lossy().into_owned(),
                    format: Some(format.clone().into()),
                }),
                InputValue::BoundingBox { crs, lower, upper } => Value::Bbox(wire::Extent {
                    crs: crs.clone(),
                    lower: lower.clone(),
                    upper: upper.clone(),
                }),
            };
            wire::RunValue { value: Some(value) }
        });
        wire::RunInput {
            id: self.id.clone(),
            values: values.collect(),
        }
    }
}

impl RunOutcome {
    /// The output with this id.
    pub fn output(&self, id: &str) -> Option<&OutputValue> {
        self.outputs
            .iter()
            .find(|output| output.id == id)
            .map(|output| &output.value)
    }

    pub(super) fn from_wire(finished: wire::Finished, worker_pid: u32, elapsed: Duration) -> Self {
        use wire::output_value::Value;
        let outputs = finished.outputs.into_iter().filter_map(|output| {
            let value = match output.value? {
                Value::Literal(text) => OutputValue::Literal(text),
                Value::File(file) => OutputValue::File {
                    path: PathBuf::from(file.path),
                    format: file.format.unwrap_or_default().into(),
                },
            };
            Some(JobOutput {
                id: output.id,
                value,
            })
        });
        Self {
            outputs: outputs.collect(),
            log: finished.log,
            worker_pid,
            elapsed,
            ran: run_times(finished.timing),
        }
    }
}

/// The times a worker reported for a run (finished or failed); `None` without times (an older
/// worker) or with times that make no span.
pub(super) fn run_times(timing: Option<wire::RunTiming>) -> Option<RunTimes> {
    let at = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
    timing
        .filter(|t| t.started_unix_nanos > 0 && t.ended_unix_nanos >= t.started_unix_nanos)
        .map(|t| (at(t.started_unix_nanos), at(t.ended_unix_nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_inputs_become_one_multi_valued_input() {
        let job = RunJob::new("native:mergevectorlayers", "/tmp/job")
            .file("LAYERS", "/tmp/a.geojson")
            .file("LAYERS", "/tmp/b.geojson")
            .literal("CRS", "EPSG:4326");
        let request = job.to_wire();
        assert_eq!(request.inputs.len(), 2);
        assert_eq!(request.inputs[0].values.len(), 2);
        assert_eq!(request.workdir, "/tmp/job");
        assert_eq!(request.job_id.len(), 32);
        assert_eq!(
            request.trace_context, "",
            "untraced jobs hand the worker no context"
        );
    }

    #[test]
    fn the_trace_goes_to_the_worker_and_its_timing_comes_back() {
        let mut job = RunJob::new("native:buffer", "/tmp/job");
        job.trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into();
        assert_eq!(job.to_wire().trace_context, job.trace);
        let finished = |timing| wire::Finished {
            job_id: job.job_id.clone(),
            timing,
            ..Default::default()
        };
        let timed = RunOutcome::from_wire(
            finished(Some(wire::RunTiming {
                started_unix_nanos: 1_000,
                ended_unix_nanos: 3_000,
            })),
            7,
            Duration::ZERO,
        );
        assert_eq!(
            timed.ran,
            Some((
                UNIX_EPOCH + Duration::from_nanos(1_000),
                UNIX_EPOCH + Duration::from_nanos(3_000)
            ))
        );
        // No timing (an older worker), or times that make no span: none is recorded.
        assert_eq!(
            RunOutcome::from_wire(finished(None), 7, Duration::ZERO).ran,
            None
        );
        let backwards = wire::RunTiming {
            started_unix_nanos: 3_000,
            ended_unix_nanos: 1_000,
        };
        assert_eq!(
            RunOutcome::from_wire(finished(Some(backwards)), 7, Duration::ZERO).ran,
            None
        );
    }
}
