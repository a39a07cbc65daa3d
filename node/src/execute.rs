//! One execution: check the request against the process description, turn inputs into local
//! files and literals, run it on the pool, publish the outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::field::Empty;
use tracing::{Instrument, info};
use wpsmesh_proto::media::extension_for;
use wpsmesh_proto::process::{self as domain, ExecuteRequest, InputValue, Source};
use wpsmesh_proto::wire::process::v1::{self as wire, input_description};
use wpsmesh_telemetry::propagate::{self, KeyValue};

use crate::catalog::Catalog;
use crate::error::NodeError;
use crate::fetch::{Claim, Fetcher, settle_format};
use crate::jobs::Live;
use crate::outputs::{self, Delivery, Published, Storage};
use crate::pool::{
    Format, InputValue as WorkerValue, JobEvent, OutputRequest, Pool, PoolError, RunJob, RunTimes,
};

/// What an execution needs, shared by every call.
pub struct Executor {
    pub catalog: Arc<Catalog>,
    pub pool: Arc<Pool>,
    pub fetcher: Fetcher,
    pub storage: Storage,
    pub work_dir: PathBuf,
    pub max_inline_bytes: u64,
    pub max_timeout: Duration,
}

/// Checks a request against the description, once on receipt: the process exists, every input
/// id is known and of the right kind, required inputs are there, no input has too many values,
/// every requested output exists. Values themselves are checked by the worker, which knows QGIS.
pub fn check<'c>(
    catalog: &'c Catalog,
    req: &ExecuteRequest,
) -> Result<&'c wire::ProcessDescription, NodeError> {
    let desc = catalog
        .get(&req.process_id)
        .ok_or_else(|| NodeError::UnknownProcess(req.process_id.clone()))?;
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for i in &req.inputs {
        let d = desc
            .inputs
            .iter()
            .find(|d| d.id == i.id)
            .ok_or_else(|| NodeError::invalid(&i.id, "unknown input"))?;
        let ok = matches!(
            (&d.kind, &i.value),
            (
                Some(input_description::Kind::Literal(_)),
                InputValue::Literal(_)
            ) | (
                Some(input_description::Kind::Complex(_)),
                InputValue::Complex(_) | InputValue::Reference(_)
            ) | (
                Some(input_description::Kind::BoundingBox(_)),
                InputValue::BoundingBox(_)
            )
        );
        if !ok {
            let want = match d.kind {
                Some(input_description::Kind::Literal(_)) => "a literal value",
                Some(input_description::Kind::Complex(_)) => "complex data or a reference",
                _ => "a bounding box",
            };
            return Err(NodeError::invalid(&i.id, format!("expects {want}")));
        }
        *counts.entry(&i.id).or_default() += 1;
    }
    for d in &desc.inputs {
        let n = counts.get(d.id.as_str()).copied().unwrap_or(0);
        if n < d.min_occurs {
            return Err(NodeError::invalid(&d.id, "missing required input"));
        }
        if n > d.max_occurs.max(1) {
            return Err(NodeError::invalid(
                &d.id,
                format!("takes at most {} value(s), got {n}", d.max_occurs.max(1)),
            ));
        }
    }
    for o in &req.outputs {
        if !desc.outputs.iter().any(|d| d.id == o.id) {
            return Err(NodeError::invalid(&o.id, "unknown output"));
        }
    }
    Ok(desc)
}

/// Records the `algorithm run` span: the worker's own times for the run, failed or not, as a
/// child of the current span.
fn ran(process: &str, worker_pid: u32, (start, end): RunTimes, error: Option<String>) {
    propagate::Finished {
        name: "algorithm run",
        parent: propagate::context_of(&tracing::Span::current()),
        start,
        end,
        attributes: vec![
            KeyValue::new("wps.process_id", process.to_owned()),
            KeyValue::new("process.pid", i64::from(worker_pid)),
        ],
        links: Vec::new(),
        error,
    }
    .record();
}

/// The times of the `algorithm run` span of a run that failed: the worker's, else (a worker
/// that died, was killed or sent none) from the node seeing the job start to `now`.
fn failed_run(error: &PoolError, started: SystemTime, now: SystemTime) -> RunTimes {
    error.ran().unwrap_or((started, now))
}

/// What the client declared a complex input to be, from its format (media type, else
/// extension). The input's default format is no claim: the content decides then.
fn declared(f: Option<&domain::Format>) -> Option<Claim> {
    f.and_then(|f| Claim::declared(&f.mime_type, &f.extension))
}

/// Whether an input takes vector layers, so a zip given to it holds shapefiles to unpack
/// (inputs that take files as they are, zips included, have no vector format).
fn takes_vector_layers(d: &wire::InputDescription) -> bool {
    let Some(input_description::Kind::Complex(c)) = &d.kind else {
        return false;
    };
    c.formats
        .iter()
        .any(|f| extension_for(&f.mime_type) == Some("geojson"))
}

impl Executor {
    /// Runs a request checked on receipt for `job`, feeding its status and log; returns the
    /// outputs, and the file output named by `stream` opened for streaming.
    pub async fn run(
        &self,
        job: &Live,
        req: ExecuteRequest,
        stream: Option<String>,
    ) -> Result<Published, NodeError> {
        let desc = self
            .catalog
            .get(&req.process_id)
            .ok_or_else(|| NodeError::UnknownProcess(req.process_id.clone()))?;
        let workdir = tempfile::Builder::new()
            .prefix(&format!("job-{}-", job.id))
            .tempdir_in(&self.work_dir)?;
        let inputs_dir = workdir.path().join("inputs");
        let outputs_dir = workdir.path().join("outputs");
        // Directory entries in the job's own folder are made in place (as the folder itself
        // is): each takes microseconds, less than a hop to the blocking pool, which on a busy
        // machine waits for a time slice every time.
        std::fs::create_dir(&inputs_dir)?;
        std::fs::create_dir(&outputs_dir)?;

        let mut run = RunJob::new(req.process_id.clone(), &outputs_dir);
        run.job_id = job.id.to_string();
        run.trace = propagate::carrier(&tracing::Span::current());
        if let Some(t) = req.timeout {
            run = run.timeout(t.min(self.max_timeout));
        }
        for (n, i) in req.inputs.into_iter().enumerate() {
            let d = desc
                .inputs
                .iter()
                .find(|d| d.id == i.id)
                .ok_or_else(|| NodeError::invalid(&i.id, "unknown input"))?;
            let values = self
                .resolve(&i.id, i.value, d, &inputs_dir.join(n.to_string()))
                .await?;
            for value in values {
                run = run.input(&i.id, value);
            }
        }
        let mut delivery = Delivery {
            max_inline: self.max_inline_bytes,
            stream,
            ..Delivery::default()
        };
        for o in &req.outputs {
            if !o.as_reference {
                delivery.inline.push(o.id.clone());
            }
            run.outputs.push(OutputRequest {
                id: o.id.clone(),
                format: o.format.clone(),
            });
        }

        let (tx, mut rx) = mpsc::channel(64);
        // The wait for a free worker: from here to the worker taking the job.
        let mut queued = Some(tracing::info_span!("queue wait"));
        let mut started = None;
        let pump = async {
            while let Some(event) = rx.recv().await {
                match event {
                    JobEvent::Started { worker_pid } => {
                        queued = None;
                        started = Some((SystemTime::now(), worker_pid));
                        job.started(worker_pid.to_string());
                    }
                    JobEvent::Progress(p) => job.progress(p),
                    JobEvent::Log(line) => job.log_line(line),
                }
            }
        };
        let (outcome, ()) = tokio::join!(self.pool.run(run, tx, job.cancel.clone()), pump);
        drop(queued);
        let process = req.process_id.clone();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some((start, pid)) = started {
                    let times = failed_run(&e, start, SystemTime::now());
                    ran(&process, pid, times, Some(e.to_string()));
                }
                return Err(e.into());
            }
        };
        if let Some(times) = outcome.ran {
            ran(&process, outcome.worker_pid, times, None);
        }
        info!(job = %job.id, worker = outcome.worker_pid, elapsed = ?outcome.elapsed, "job ran");
        let span = tracing::info_span!("output publish", outputs = outcome.outputs.len());
        let published = outputs::publish(&self.storage, outcome.outputs, &delivery)
            .instrument(span.clone())
            .await;
        if let Err(e) = &published {
            propagate::fail(&span, e.to_string());
        }
        published
    }

    /// Turns one input value into what the worker takes (several values for a zip of
    /// shapefiles given to a multi-layer input): files land in `dir`.
    async fn resolve(
        &self,
        id: &str,
        value: InputValue,
        d: &wire::InputDescription,
        dir: &Path,
    ) -> Result<Vec<WorkerValue>, NodeError> {
        Ok(match value {
            InputValue::Literal(l) => vec![WorkerValue::Literal(l.value)],
            InputValue::BoundingBox(b) => vec![WorkerValue::BoundingBox {
                crs: b.crs,
                lower: b.lower.to_vec(),
                upper: b.upper.to_vec(),
            }],
            InputValue::Complex(c) => {
                std::fs::create_dir_all(dir)?;
                let claim = declared(c.format.as_ref());
                let ext = claim.as_ref().map_or("dat", |c| c.extension.as_str());
                let path = dir.join(format!("data.{ext}"));
                tokio::fs::write(&path, &c.data).await?;
                let format = c.format.clone().unwrap_or_default();
                self.file_input(id, path, claim, format, d, dir).await?
            }
            InputValue::Reference(r) => {
                std::fs::create_dir_all(dir)?;
                let claim = declared(r.format.as_ref());
                let span = tracing::info_span!(
                    "input fetch",
                    input = id,
                    server.address = Empty,
                    storage.object_id = Empty,
                    bytes = Empty
                );
                let fetched = async {
                    let ext = claim.as_ref().map(|c| c.extension.as_str());
                    Ok::<_, NodeError>(match &r.source {
                        Source::Href(href) => {
                            if let Some(host) = url::Url::parse(href)
                                .ok()
                                .and_then(|u| u.host_str().map(str::to_owned))
                            {
                                span.record("server.address", host);
                            }
                            let path = self.fetcher.fetch(id, href, dir, ext).await?;
                            (path, claim.or_else(|| Claim::from_href(href)))
                        }
                        Source::Stored(object) => {
                            span.record("storage.object_id", object.id.to_string());
                            let path = self.fetcher.fetch_object(id, object, dir, ext).await?;
                            (
                                path,
                                claim.or_else(|| Claim::from_extension(&object.extension)),
                            )
                        }
                    })
                }
                .instrument(span.clone())
                .await;
                let (path, claim) = match fetched {
                    Ok(fetched) => fetched,
                    Err(e) => {
                        propagate::fail(&span, e.to_string());
                        return Err(e);
                    }
                };
                if let Ok(meta) = std::fs::metadata(&path) {
                    span.record("bytes", meta.len());
                }
                let format = r.format.clone().unwrap_or_default();
                self.file_input(id, path, claim, format, d, dir).await?
            }
        })
    }

    /// A file input, named for its checked format; a zip given to a vector input is unpacked
    /// (with limits) and its shapefiles are the values.
    async fn file_input(
        &self,
        id: &str,
        path: PathBuf,
        claim: Option<Claim>,
        format: Format,
        d: &wire::InputDescription,
        dir: &Path,
    ) -> Result<Vec<WorkerValue>, NodeError> {
        let path = settle_format(id, &path, claim.as_ref()).await?;
        let is_zip = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        if !(is_zip && takes_vector_layers(d)) {
            return Ok(vec![WorkerValue::File { path, format }]);
        }
        let several = d.max_occurs > 1;
        let layers = self
            .fetcher
            .unzip_shapefiles(id, &path, dir, several)
            .await?;
        Ok(layers
            .into_iter()
            .map(|path| WorkerValue::File {
                path,
                format: format.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn a_failed_run_has_the_workers_times_when_it_sent_them() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let (node_start, now) = (at(100), at(200));
        let worker = (at(120), at(150));
        let execution = |ran| PoolError::Execution {
            message: "boom".into(),
            log: Vec::new(),
            ran,
        };
        assert_eq!(
            failed_run(&execution(Some(worker)), node_start, now),
            worker
        );
        // No times from the worker (it died, or is older): the node's.
        assert_eq!(
            failed_run(&execution(None), node_start, now),
            (node_start, now)
        );
        let crashed = PoolError::Crashed {
            signal: Some(9),
            code: None,
        };
        assert_eq!(failed_run(&crashed, node_start, now), (node_start, now));
    }
}
