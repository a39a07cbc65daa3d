//! The tonic `ProcessService`: requests converted to domain types and checked once on receipt;
//! List/Describe from the catalog; Execute runs here as a job recorded in the store from its
//! start; Submit queues into the store (a scheduler runs it); the job calls answered from the
//! store, the one source of truth (any node answers for any job), WatchJob from a live handle
//! when the job runs here.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};
use wpsmesh_jobstore::{JobRecord, JobStore, NewJob, Outcome, StoreError};
use wpsmesh_proto::process::{
    ExecuteRequest, JobId, JobState, JobStatus, ListJobs, outputs_to_wire,
};
use wpsmesh_proto::text::shown;
use wpsmesh_proto::wire::process::v1::{self as wire, process_service_server};

use crate::attempt::{Runner, ended, settle};
use crate::error::NodeError;
use crate::execute::check;
use crate::outputs::{self, Streamed};
use crate::stream;

/// Serves `wpsmesh.process.v1.ProcessService`.
#[derive(Clone)]
pub struct ProcessService {
    runner: Arc<Runner>,
}

impl ProcessService {
    pub fn new(runner: Arc<Runner>) -> Self {
        Self { runner }
    }

    fn store(&self) -> &Arc<dyn JobStore> {
        &self.runner.store
    }

    /// A job's record; JobNotFound when the store does not know it.
    async fn record(&self, id: &JobId) -> Result<JobRecord, NodeError> {
        self.store()
            .get(id)
            .await?
            .ok_or_else(|| NodeError::JobNotFound(id.to_string()))
    }

    /// Runs a checked request here to its end, as a job recorded in the store from its start
    /// (so any node answers for it and a dismissal anywhere cancels it). With the store away the
    /// job runs untracked: the caller still gets its answer.
    async fn run_sync(
        &self,
        request: ExecuteRequest,
        stream: Option<String>,
    ) -> Result<(wire::ExecuteResponse, Option<Streamed>), Status> {
        let r = &self.runner;
        let id = JobId::random();
        let process = request.process_id.clone();
        let (lease, status) = match r.store.begin(&id, &process, &r.node, r.config.lease).await {
            Ok((lease, status)) => (Some(lease), status),
            Err(StoreError::Unavailable(e)) => {
                warn!(job = %id, error = %e, "job store unavailable; running the job untracked");
                let mut status = JobStatus::new(id, &process, JobState::Accepted);
                status.node = r.node.clone();
                status.attempt = 1;
                (None, status)
            }
            Err(e) => return Err(NodeError::from(e).into()),
        };
        let job = r.running.begin(status);
        info!(job = %id, process = %process, "execute");
        // The client going away cancels the job.
        let guard = job.cancel.clone().drop_guard();
        let (result, streamed) = match r.run(&job, lease.as_ref(), request, stream).await {
            Ok(published) => (Ok(published.outputs), published.streamed),
            Err(e) => (Err(e), None),
        };
        guard.disarm();
        if let Err(e) = &result {
            warn!(job = %id, error = %e, "job failed");
        }
        let log = job.log();
        let (outcome, answer) = settle(result, log.clone());
        let status = job.status();
        let recorded = match &lease {
            Some(lease) => r.record(lease, &status.worker, &outcome).await,
            None => true,
        };
        let status = ended(status, &outcome, r.config.ttl);
        job.ended(status.clone());
        r.metrics.job_ended(&status);
        r.running.end(&id);
        let outputs = answer?;
        if !recorded {
            // Dismissed (or fenced out) meanwhile: its outputs are deleted already.
            return Err(NodeError::JobDismissed(id.to_string()).into());
        }
        let response = wire::ExecuteResponse {
            job: Some(status.into()),
            outputs: outputs_to_wire(outputs),
            log,
        };
        Ok((response, streamed))
    }
}

/// A job id from the wire; a malformed one names no job: NOT_FOUND, locator JobID.
fn job_id(id: &str) -> Result<JobId, NodeError> {
    id.parse()
        .map_err(|_| NodeError::JobNotFound(id.to_owned()))
}

/// An Execute request from the wire, checked against the catalog, its callback URIs by the
/// address policy.
async fn request(runner: &Runner, w: wire::ExecuteRequest) -> Result<ExecuteRequest, NodeError> {
    let request = ExecuteRequest::try_from(w)?;
    check(&runner.executor.catalog, &request)?;
    runner.callbacks.admit(request.subscriber.as_ref()).await?;
    Ok(request)
}

/// A finished job's outputs, or why there are none.
fn result_of(record: JobRecord) -> Result<wire::GetResultResponse, Status> {
    let JobRecord { status, outcome } = record;
    match outcome {
        Some(Outcome::Succeeded { outputs, log }) => Ok(wire::GetResultResponse {
            job: Some(status.into()),
            outputs: outputs_to_wire(outputs),
            log,
        }),
        Some(Outcome::Failed { code, message, .. }) => Err(Status::new(code, message)),
        None if status.state == JobState::Dismissed => {
            Err(NodeError::JobDismissed(status.job_id.to_string()).into())
        }
        None => Err(NodeError::JobNotReady {
            id: status.job_id.to_string(),
            state: match status.state {
                JobState::Running | JobState::Accepted => status.state.name(),
                _ => "not finished",
            },
            message: status.message,
        }
        .into()),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<wire::WatchJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl process_service_server::ProcessService for ProcessService {
    async fn list_processes(
        &self,
        _: Request<wire::ListProcessesRequest>,
    ) -> Result<Response<wire::ListProcessesResponse>, Status> {
        Ok(Response::new(wire::ListProcessesResponse {
            processes: self.runner.executor.catalog.summaries().to_vec(),
        }))
    }

    async fn describe_process(
        &self,
        request: Request<wire::DescribeProcessRequest>,
    ) -> Result<Response<wire::DescribeProcessResponse>, Status> {
        let id = request.into_inner().id;
        let process = self
            .runner
            .executor
            .catalog
            .get(&id)
            .cloned()
            .ok_or_else(|| NodeError::UnknownProcess(id.clone()))?;
        Ok(Response::new(wire::DescribeProcessResponse {
            process: Some(process),
        }))
    }

    async fn execute(
        &self,
        w: Request<wire::ExecuteRequest>,
    ) -> Result<Response<wire::ExecuteResponse>, Status> {
        let request = request(&self.runner, w.into_inner()).await?;
        let (response, _) = self.run_sync(request, None).await?;
        Ok(Response::new(response))
    }

    type ExecuteStreamedStream = stream::Answer;

    async fn execute_streamed(
        &self,
        w: Request<wire::ExecuteStreamedRequest>,
    ) -> Result<Response<Self::ExecuteStreamedStream>, Status> {
        let w = w.into_inner();
        let execute = w
            .execute
            .ok_or_else(|| NodeError::invalid("execute", "missing execute request"))?;
        let request = request(&self.runner, execute).await?;
        if !request.outputs.iter().any(|o| o.id == w.output) {
            return Err(NodeError::invalid(
                "output",
                format!(
                    "the output to stream, {}, is not among the requested outputs",
                    shown(&w.output)
                ),
            )
            .into());
        }
        let (response, streamed) = self.run_sync(request, Some(w.output)).await?;
        Ok(Response::new(stream::answer(response, streamed)))
    }

    async fn submit(
        &self,
        w: Request<wire::SubmitRequest>,
    ) -> Result<Response<wire::SubmitResponse>, Status> {
        let w = w
            .into_inner()
            .execute
            .ok_or_else(|| NodeError::invalid("execute", "missing execute request"))?;
        let request = request(&self.runner, w).await?;
        let id = JobId::random();
        let process = request.process_id.clone();
        let job = self
            .store()
            .submit(NewJob {
                id,
                request,
                // The claimed run, on whichever node, is linked to this call's trace.
                trace: wpsmesh_telemetry::propagate::carrier(&tracing::Span::current()),
            })
            .await
            .map_err(NodeError::from)?;
        info!(job = %id, process = %process, "job submitted");
        Ok(Response::new(wire::SubmitResponse {
            job: Some(job.into()),
        }))
    }

    async fn get_status(
        &self,
        request: Request<wire::GetStatusRequest>,
    ) -> Result<Response<wire::GetStatusResponse>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        let status = self.record(&id).await?.status;
        Ok(Response::new(wire::GetStatusResponse {
            job: Some(status.into()),
        }))
    }

    async fn get_result(
        &self,
        request: Request<wire::GetResultRequest>,
    ) -> Result<Response<wire::GetResultResponse>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        result_of(self.record(&id).await?).map(Response::new)
    }

    async fn dismiss(
        &self,
        request: Request<wire::DismissRequest>,
    ) -> Result<Response<wire::DismissResponse>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        let before = self
            .store()
            .dismiss(&id)
            .await
            .map_err(NodeError::from)?
            .ok_or_else(|| NodeError::JobNotFound(id.to_string()))?;
        // A running attempt hears of it and stops; its late outputs are refused and deleted.
        if let Some(outcome) = &before.outcome {
            outputs::delete(&self.runner.executor.storage, outcome.object_ids()).await;
        }
        info!(job = %id, was = %before.state(), "job dismissed");
        let status = self.record(&id).await?.status;
        Ok(Response::new(wire::DismissResponse {
            job: Some(status.into()),
        }))
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(
        &self,
        request: Request<wire::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = job_id(&request.into_inner().job_id)?;
        let Some(job) = self.runner.running.find(&id) else {
            // Running elsewhere (or finished): follow the store's record.
            self.record(&id).await?;
            return Ok(Response::new(Box::pin(poll_store(
                self.store().clone(),
                id,
            ))));
        };
        let mut rx = job.subscribe();
        let stream = async_stream::stream! {
            let mut sent = 0;
            loop {
                let status = rx.borrow_and_update().clone();
                let log_lines = job.log_since(sent);
                sent += log_lines.len();
                let done = status.state.is_terminal();
                yield Ok(wire::WatchJobResponse { job: Some(status.into()), log_lines });
                if done || rx.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_jobs(
        &self,
        request: Request<wire::ListJobsRequest>,
    ) -> Result<Response<wire::ListJobsResponse>, Status> {
        let query = ListJobs::try_from(request.into_inner()).map_err(NodeError::from)?;
        let page = self.store().list(&query).await.map_err(NodeError::from)?;
        Ok(Response::new(page.into()))
    }
}

/// How often WatchJob looks at the store for a job running on another node.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// Status updates of a job followed through the store, until it ends.
fn poll_store(
    store: Arc<dyn JobStore>,
    id: JobId,
) -> impl Stream<Item = Result<wire::WatchJobResponse, Status>> + Send {
    async_stream::stream! {
        let mut last: Option<JobStatus> = None;
        loop {
            let status = match store.get(&id).await {
                Ok(Some(record)) => record.status,
                Ok(None) => {
                    yield Err(Status::from(NodeError::JobNotFound(id.to_string())));
                    break;
                }
                Err(e) => {
                    yield Err(Status::from(NodeError::from(e)));
                    break;
                }
            };
            let done = status.state.is_terminal();
            if last.as_ref() != Some(&status) {
                last = Some(status.clone());
                yield Ok(wire::WatchJobResponse { job: Some(status.into()), log_lines: vec![] });
            }
            if done {
                break;
            }
            tokio::time::sleep(WATCH_POLL).await;
        }
    }
}
