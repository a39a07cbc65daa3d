//! The tonic `ProcessService`: List/Describe from the catalog, Execute/Submit through the
//! executor, and the job calls from the in-process job table.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};
use wpsmesh_proto::wire::process::v1::{self as wire, process_service_server};
use wpsmesh_proto::wire::storage::v1::DeleteRequest;

use crate::error::NodeError;
use crate::execute::{Executor, check};
use crate::jobs::{Job, JobResult, Jobs, is_terminal};

/// Serves `wpsmesh.process.v1.ProcessService`.
#[derive(Clone)]
pub struct ProcessService {
    executor: Arc<Executor>,
    jobs: Arc<Jobs>,
}

impl ProcessService {
    pub fn new(executor: Arc<Executor>, jobs: Arc<Jobs>) -> Self {
        Self { executor, jobs }
    }

    /// Runs a job to its end, recording the result in the job table.
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

    /// Deletes output files from storage (best effort, logged).
    async fn delete_outputs(&self, outputs: Vec<wire::Output>) {
        let mut storage = self.executor.storage.clone();
        for o in outputs {
            if let Some(wire::output::Value::Reference(r)) = o.value
                && let Err(e) = storage
                    .delete(DeleteRequest {
                        id: r.object_id.clone(),
                    })
                    .await
                && e.code() != tonic::Code::NotFound
            {
                warn!(object = %r.object_id, error = %e, "cannot delete job output");
            }
        }
    }

    /// Removes expired jobs and their output files; run periodically.
    pub async fn sweep(&self) {
        for job in self.jobs.take_expired(std::time::SystemTime::now()) {
            job.cancel.cancel();
            if let Some(JobResult::Succeeded(outputs)) = job.result() {
                self.delete_outputs(outputs).await;
            }
            info!(job = %job.id, "expired job removed");
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
            .ok_or_else(|| NodeError::UnknownProcess(id.chars().take(128).collect()))?;
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
        let job = self.jobs.create(&req.process_id);
        info!(job = %job.id, process = %req.process_id, "submit");
        let this = self.clone();
        let running = job.clone();
        tokio::spawn(async move {
            let _ = this.run_job(&running, req).await;
        });
        Ok(Response::new(wire::SubmitResponse {
            job: Some(job.status()),
        }))
    }

    async fn get_status(
        &self,
        request: Request<wire::GetStatusRequest>,
    ) -> Result<Response<wire::GetStatusResponse>, Status> {
        let job = self.jobs.get(&request.into_inner().job_id)?;
        Ok(Response::new(wire::GetStatusResponse {
            job: Some(job.status()),
        }))
    }

    async fn get_result(
        &self,
        request: Request<wire::GetResultRequest>,
    ) -> Result<Response<wire::GetResultResponse>, Status> {
        let job = self.jobs.get(&request.into_inner().job_id)?;
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
        let job = self.jobs.get(&request.into_inner().job_id)?;
        let outputs = job.dismiss();
        self.delete_outputs(outputs).await;
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
        let job = self.jobs.get(&request.into_inner().job_id)?;
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
