//! The tonic `ProcessService`: List/Describe from the catalog, Execute through the executor,
//! Submit into the job store (the scheduler runs it), and the job calls answered from the store
//! (any node answers for any job) or, for synchronous jobs, from this node's job table.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};
use wpsmesh_jobstore::{JobRecord, JobStore, NewJob, Outcome, is_terminal, new_job_id};
use wpsmesh_proto::wire::process::v1::{self as wire, JobState, process_service_server};

use crate::error::NodeError;
use crate::execute::{Executor, check};
use crate::jobs::{Job, JobResult, Jobs};
use crate::outputs;

/// Serves `wpsmesh.process.v1.ProcessService`.
#[derive(Clone)]
pub struct ProcessService {
    executor: Arc<Executor>,
    /// Synchronous jobs, and the asynchronous ones running here.
    jobs: Arc<Jobs>,
    /// Asynchronous jobs, wherever they run.
    store: Arc<dyn JobStore>,
}

impl ProcessService {
    pub fn new(executor: Arc<Executor>, jobs: Arc<Jobs>, store: Arc<dyn JobStore>) -> Self {
        Self {
            executor,
            jobs,
            store,
        }
    }

    /// Runs a synchronous job to its end, recording the result in the job table.
    async fn run_job(
        &self,
        job: &Job,
        req: wire::ExecuteRequest,
    ) -> Result<Vec<wire::Output>, Status> {
        let result = self.executor.run(job, req).await;
        match result {
            Ok((outputs, _log)) => {
                job.finish(Ok(outputs.clone()));
                Ok(outputs)
            }
            Err(e) => {
                warn!(job = %job.id, error = %e, "job failed");
                let status = Status::from(e);
                job.finish(Err(status.clone()));
                Err(status)
            }
        }
    }

    /// A job's record in the store; `None` when the store does not know it.
    async fn record(&self, id: &str) -> Result<Option<JobRecord>, NodeError> {
        Ok(self.store.get(id).await?)
    }
}

fn not_found(id: &str) -> NodeError {
    NodeError::JobNotFound(id.to_owned())
}

/// A finished job's outputs, or why there are none.
fn result_of(record: JobRecord) -> Result<wire::GetResultResponse, Status> {
    let JobRecord { status, outcome } = record;
    match outcome {
        Some(Outcome::Succeeded { outputs, log }) => Ok(wire::GetResultResponse {
            job: Some(status),
            outputs,
            log,
        }),
        Some(Outcome::Failed { code, message, .. }) => Err(Status::new(code, message)),
        None if status.state() == JobState::Dismissed => {
            Err(NodeError::JobDismissed(status.job_id).into())
        }
        None => {
            let state = match status.state() {
                JobState::Running => "running",
                JobState::Accepted => "accepted",
                _ => "not finished",
            };
            Err(NodeError::JobNotReady {
                id: status.job_id,
                state,
                message: status.message,
            }
            .into())
        }
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
            processes: self.executor.catalog.summaries().to_vec(),
        }))
    }

    async fn describe_process(
        &self,
        request: Request<wire::DescribeProcessRequest>,
    ) -> Result<Response<wire::DescribeProcessResponse>, Status> {
        let id = request.into_inner().id;
        let process = self
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
        request: Request<wire::ExecuteRequest>,
    ) -> Result<Response<wire::ExecuteResponse>, Status> {
        let req = request.into_inner();
        check(&self.executor.catalog, &req)?;
        let job = self.jobs.create(&req.process_id);
        info!(job = %job.id, process = %req.process_id, "execute");
        // The client going away cancels the job.
        let guard = job.cancel.clone().drop_guard();
        let outputs = self.run_job(&job, req).await?;
        guard.disarm();
        Ok(Response::new(wire::ExecuteResponse {
            job: Some(job.status()),
            outputs,
            log: job.log(),
        }))
    }

    async fn submit(
        &self,
        request: Request<wire::SubmitRequest>,
    ) -> Result<Response<wire::SubmitResponse>, Status> {
        let req = request
            .into_inner()
            .execute
            .ok_or_else(|| NodeError::invalid("execute", "missing execute request"))?;
        check(&self.executor.catalog, &req)?;
        let id = new_job_id();
        let process = req.process_id.clone();
        let job = self
            .store
            .submit(NewJob {
                id: id.clone(),
                request: req,
            })
            .await
            .map_err(NodeError::from)?;
        info!(job = %id, process = %process, "job submitted");
        Ok(Response::new(wire::SubmitResponse { job: Some(job) }))
    }

    async fn get_status(
        &self,
        request: Request<wire::GetStatusRequest>,
    ) -> Result<Response<wire::GetStatusResponse>, Status> {
        let id = request.into_inner().job_id;
        let status = match self.record(&id).await? {
            Some(record) => record.status,
            None => self.jobs.get(&id)?.status(),
        };
        Ok(Response::new(wire::GetStatusResponse { job: Some(status) }))
    }

    async fn get_result(
        &self,
        request: Request<wire::GetResultRequest>,
    ) -> Result<Response<wire::GetResultResponse>, Status> {
        let id = request.into_inner().job_id;
        if let Some(record) = self.record(&id).await? {
            return result_of(record).map(Response::new);
        }
        let job = self.jobs.get(&id)?;
        match job.result() {
            Some(JobResult::Succeeded(outputs)) => Ok(Response::new(wire::GetResultResponse {
                job: Some(job.status()),
                outputs,
                log: job.log(),
            })),
            Some(JobResult::Failed(status)) => Err(status),
            None => Err(NodeError::JobNotReady {
                id: job.id.clone(),
                state: "not finished",
                message: job.status().message,
            }
            .into()),
        }
    }

    async fn dismiss(
        &self,
        request: Request<wire::DismissRequest>,
    ) -> Result<Response<wire::DismissResponse>, Status> {
        let id = request.into_inner().job_id;
        let mut storage = self.executor.storage.clone();
        if let Some(before) = self.store.dismiss(&id).await.map_err(NodeError::from)? {
            // A running attempt hears of it and stops; its late outputs are refused and deleted.
            if let Some(outcome) = &before.outcome {
                outputs::delete(&mut storage, outcome.object_ids()).await;
            }
            info!(job = %id, was = ?before.state(), "job dismissed");
            let status = self
                .record(&id)
                .await?
                .ok_or_else(|| not_found(&id))?
                .status;
            return Ok(Response::new(wire::DismissResponse { job: Some(status) }));
        }
        let job = self.jobs.get(&id)?;
        let outputs = job.dismiss();
        outputs::delete(&mut storage, wpsmesh_proto::process::object_ids(&outputs)).await;
        info!(job = %job.id, "job dismissed");
        Ok(Response::new(wire::DismissResponse {
            job: Some(job.status()),
        }))
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(
        &self,
        request: Request<wire::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = request.into_inner().job_id;
        let Some(job) = self.jobs.find(&id) else {
            // Running elsewhere (or finished): follow the store's record.
            self.record(&id).await?.ok_or_else(|| not_found(&id))?;
            return Ok(Response::new(Box::pin(poll_store(self.store.clone(), id))));
        };
        let mut rx = job.subscribe();
        let stream = async_stream::stream! {
            let mut sent = 0;
            loop {
                let status = rx.borrow_and_update().clone();
                let log_lines = job.log_since(sent);
                sent += log_lines.len();
                let done = is_terminal(status.state);
                yield Ok(wire::WatchJobResponse { job: Some(status), log_lines });
                if done || rx.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

/// How often WatchJob looks at the store for a job running on another node.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// Status updates of a job followed through the store, until it ends.
fn poll_store(
    store: Arc<dyn JobStore>,
    id: String,
) -> impl Stream<Item = Result<wire::WatchJobResponse, Status>> + Send {
    async_stream::stream! {
        let mut last: Option<wire::JobStatus> = None;
        loop {
            let status = match store.get(&id).await {
                Ok(Some(record)) => record.status,
                Ok(None) => {
                    yield Err(Status::from(not_found(&id)));
                    break;
                }
                Err(e) => {
                    yield Err(Status::from(NodeError::from(e)));
                    break;
                }
            };
            let done = is_terminal(status.state);
            if last.as_ref() != Some(&status) {
                last = Some(status.clone());
                yield Ok(wire::WatchJobResponse { job: Some(status), log_lines: vec![] });
            }
            if done {
                break;
            }
            tokio::time::sleep(WATCH_POLL).await;
        }
    }
}
