//! A fake processing node for the edge's tests: a small in-process tonic server implementing
//! ProcessService with canned answers (and the standard health service), which can be slowed,
//! failed, killed and restarted at will; and the helpers that start a node pool over fakes.
//! Execute takes its cue from the DISTANCE literal: a number succeeds, anything else is an
//! INVALID_ARGUMENT quoting the value whole (as nodes once did), and `status-bytes:N`,
//! `output-bytes:N`, `storage-down` and `bad-answer` answer with an N-byte status message, an
//! N-byte inline output, UNAVAILABLE blaming storage, and an output naming no valid object. File outputs are storage object ids ([`OUTPUT_ID`]):
//! the edge builds their hrefs from its public URL.

// Each test crate uses its own part of this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::{Response, Status};
use wpsmesh_edge::nodes::{DiscoveryConfig, DiscoveryKind, Nodes};
use wpsmesh_proto::wire::process::v1::process_service_server::{
    ProcessService, ProcessServiceServer,
};
use wpsmesh_proto::wire::process::v1::*;
use wpsmesh_tests::eventually;

// ---------------------------------------------------------------------------------------------
// A fake node
// ---------------------------------------------------------------------------------------------

/// What a fake node does and saw.
#[derive(Default)]
pub struct Behaviour {
    /// Answer every ProcessService call with UNAVAILABLE.
    pub unavailable: AtomicBool,
    /// Execute waits until this turns true.
    pub hold: Option<watch::Receiver<bool>>,
    pub describes: AtomicUsize,
    pub lists: AtomicUsize,
    pub executes: AtomicUsize,
    pub last_execute: Mutex<Option<ExecuteRequest>>,
    /// Submit, GetStatus, GetResult and Dismiss calls seen.
    pub job_calls: AtomicUsize,
    /// What every job call fails with; Submit accepts and the others say NOT_FOUND without it.
    pub job_error: Mutex<Option<Status>>,
    /// A Submit was accepted: GetStatus of [`JOB`] answers it as accepted from then on.
    pub submitted: AtomicBool,
}

#[derive(Clone)]
pub struct Fake {
    pub name: String,
    pub b: Arc<Behaviour>,
}

pub fn summary(name: &str) -> ProcessSummary {
    ProcessSummary {
        id: "native:buffer".into(),
        title: name.into(),
        async_supported: true,
        ..Default::default()
    }
}

/// The job id fake nodes hand out.
pub const JOB: &str = "0123456789abcdef0123456789abcdef";

/// The storage object of the file output of a fake Execute (a `.geojson`).
pub const OUTPUT_ID: &str = "0123456789abcdef0123456789abcdef";

/// The status of a job of `process` that `node` ran to success.
fn succeeded(process: &str, node: &str) -> JobStatus {
    JobStatus {
        job_id: JOB.into(),
        process_id: process.into(),
        state: JobState::Successful as i32,
        percent_done: 100,
        message: "process finished".into(),
        finished_at: Some(std::time::SystemTime::now().into()),
        node: node.into(),
        ..Default::default()
    }
}

pub fn with_locator(mut status: Status, locator: &str) -> Status {
    status
        .metadata_mut()
        .insert("wpsmesh-locator", locator.parse().unwrap());
    status
}

impl Fake {
    fn check(&self) -> Result<(), Status> {
        if self.b.unavailable.load(Ordering::SeqCst) {
            return Err(Status::unavailable(format!("{} is draining", self.name)));
        }
        Ok(())
    }

    /// Counts a job call; the configured job error, if any.
    fn job_call(&self) -> Result<(), Status> {
        self.b.job_calls.fetch_add(1, Ordering::SeqCst);
        match self.b.job_error.lock().unwrap().clone() {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }
}

/// The answer a DISTANCE cue asks for (see the module docs), if it is one.
fn cue(value: &str) -> Option<Result<Response<ExecuteResponse>, Status>> {
    let bytes = |prefix: &str| {
        value
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
    };
    if let Some(n) = bytes("status-bytes:") {
        return Some(Err(Status::internal("x".repeat(n))));
    }
    if let Some(n) = bytes("output-bytes:") {
        return Some(Ok(Response::new(ExecuteResponse {
            job: Some(succeeded("native:buffer", "fake")),
            outputs: vec![Output {
                id: "OUTPUT".into(),
                value: Some(output::Value::Complex(ComplexValue {
                    data: vec![b'x'; n].into(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })));
    }
    if value == "bad-answer" {
        return Some(Ok(Response::new(ExecuteResponse {
            job: Some(succeeded("native:buffer", "fake")),
            outputs: vec![Output {
                id: "OUTPUT".into(),
                value: Some(output::Value::Reference(FileReference {
                    object_id: "../../etc/passwd".into(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })));
    }
    if value == "storage-down" {
        let mut status = Status::unavailable("storage unavailable: connection reset");
        status
            .metadata_mut()
            .insert("wpsmesh-dependency", "storage".parse().unwrap());
        return Some(Err(status));
    }
    None
}

#[tonic::async_trait]
impl ProcessService for Fake {
    async fn list_processes(
        &self,
        _: tonic::Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        self.b.lists.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(Response::new(ListProcessesResponse {
            processes: vec![summary(&self.name)],
        }))
    }

    async fn describe_process(
        &self,
        request: tonic::Request<DescribeProcessRequest>,
    ) -> Result<Response<DescribeProcessResponse>, Status> {
        self.b.describes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        if request.get_ref().id != "native:buffer" {
            return Err(with_locator(
                Status::not_found("no such process"),
                "Identifier",
            ));
        }
        Ok(Response::new(DescribeProcessResponse {
            process: Some(ProcessDescription {
                summary: Some(summary(&self.name)),
                ..Default::default()
            }),
        }))
    }

    async fn execute(
        &self,
        request: tonic::Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        self.b.executes.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        *self.b.last_execute.lock().unwrap() = Some(request.clone());
        if let Some(hold) = &self.b.hold {
            let mut hold = hold.clone();
            let _ = hold.wait_for(|released| *released).await;
        }
        self.check()?;
        if request.process_id != "native:buffer" {
            return Err(with_locator(
                Status::not_found(format!("process {:?} not found", request.process_id)),
                "Identifier",
            ));
        }
        let distance = request.inputs.iter().find(|i| i.id == "DISTANCE");
        if let Some(Input {
            value: Some(input::Value::Literal(l)),
            ..
        }) = distance
            && l.value.parse::<f64>().is_err()
        {
            if let Some(answer) = cue(&l.value) {
                return answer;
            }
            return Err(with_locator(
                Status::invalid_argument(format!(
                    "invalid parameter DISTANCE: {:?} is not a number",
                    l.value
                )),
                "DISTANCE",
            ));
        }
        Ok(Response::new(ExecuteResponse {
            job: Some(succeeded(&request.process_id, &self.name)),
            outputs: vec![Output {
                id: "OUTPUT".into(),
                value: Some(output::Value::Reference(FileReference {
                    object_id: OUTPUT_ID.into(),
                    format: Some(Format {
                        mime_type: "application/geo+json".into(),
                        extension: "geojson".into(),
                        ..Default::default()
                    }),
                    size: 10,
                })),
            }],
            log: vec![],
        }))
    }

    type ExecuteStreamedStream =
        Pin<Box<dyn Stream<Item = Result<ExecuteStreamedResponse, Status>> + Send + 'static>>;

    /// Answers as Execute does, streaming nothing: the output stays a stored reference.
    async fn execute_streamed(
        &self,
        request: tonic::Request<ExecuteStreamedRequest>,
    ) -> Result<Response<Self::ExecuteStreamedStream>, Status> {
        let execute = request.into_inner().execute.unwrap_or_default();
        let response = self
            .execute(tonic::Request::new(execute))
            .await?
            .into_inner();
        let head = ExecuteStreamedResponse {
            part: Some(execute_streamed_response::Part::Result(
                ExecuteStreamedResult {
                    response: Some(response),
                    streamed: None,
                },
            )),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(head)]))))
    }

    async fn submit(
        &self,
        request: tonic::Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        self.job_call()?;
        self.b.submitted.store(true, Ordering::SeqCst);
        Ok(Response::new(SubmitResponse {
            job: Some(JobStatus {
                job_id: JOB.into(),
                process_id: request.into_inner().execute.unwrap_or_default().process_id,
                state: JobState::Accepted as i32,
                message: "accepted".into(),
                node: self.name.clone(),
                attempt: 1,
                ..Default::default()
            }),
        }))
    }

    async fn get_status(
        &self,
        request: tonic::Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        self.job_call()?;
        if request.get_ref().job_id == JOB && self.b.submitted.load(Ordering::SeqCst) {
            return Ok(Response::new(GetStatusResponse {
                job: Some(JobStatus {
                    job_id: JOB.into(),
                    process_id: "native:buffer".into(),
                    state: JobState::Accepted as i32,
                    message: "accepted".into(),
                    node: self.name.clone(),
                    attempt: 1,
                    ..Default::default()
                }),
            }));
        }
        Err(with_locator(Status::not_found("no such job"), "JobID"))
    }

    async fn get_result(
        &self,
        _: tonic::Request<GetResultRequest>,
    ) -> Result<Response<GetResultResponse>, Status> {
        self.job_call()?;
        Err(with_locator(Status::not_found("no such job"), "JobID"))
    }

    async fn dismiss(
        &self,
        _: tonic::Request<DismissRequest>,
    ) -> Result<Response<DismissResponse>, Status> {
        self.job_call()?;
        Err(with_locator(Status::not_found("no such job"), "JobID"))
    }

    type WatchJobStream =
        Pin<Box<dyn Stream<Item = Result<WatchJobResponse, Status>> + Send + 'static>>;

    async fn watch_job(
        &self,
        _: tonic::Request<WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        Err(Status::unimplemented("watch"))
    }

    async fn list_jobs(
        &self,
        _: tonic::Request<wpsmesh_proto::wire::process::v1::ListJobsRequest>,
    ) -> Result<Response<wpsmesh_proto::wire::process::v1::ListJobsResponse>, Status> {
        Err(Status::unimplemented("list jobs"))
    }
}

/// A fake node served on loopback; stoppable and restartable on the same port.
pub struct FakeNode {
    pub addr: SocketAddr,
    pub fake: Fake,
    pub running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeNode {
    pub async fn start(name: &str) -> Self {
        Self::with(name, Behaviour::default()).await
    }

    pub async fn with(name: &str, b: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut node = Self {
            addr: listener.local_addr().unwrap(),
            fake: Fake {
                name: name.into(),
                b: Arc::new(b),
            },
            running: None,
        };
        node.serve(listener).await;
        node
    }

    pub async fn serve(&mut self, listener: TcpListener) {
        let (router, health) =
            wpsmesh_runtime::grpc::with_health_and_reflection(wpsmesh_runtime::grpc::server());
        health.set_serving::<ProcessServiceServer<Fake>>().await;
        let router = router.add_service(ProcessServiceServer::new(self.fake.clone()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            wpsmesh_runtime::grpc::serve(router, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        self.running = Some((stop, task));
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn b(&self) -> &Behaviour {
        &self.fake.b
    }

    /// Stops serving: the port is closed once this returns.
    pub async fn kill(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("fake node stops")
                .unwrap();
        }
    }

    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or("wpsmesh_edge=debug,info".into()))
        .with_test_writer()
        .try_init();
}

pub fn static_config(nodes: &[&FakeNode]) -> DiscoveryConfig {
    DiscoveryConfig {
        kind: DiscoveryKind::Static,
        nodes: nodes.iter().map(|n| n.uri()).collect(),
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_secs(1),
        ..DiscoveryConfig::default()
    }
}

pub async fn started(config: &DiscoveryConfig, healthy: usize) -> Nodes {
    let nodes = Nodes::start(config).unwrap();
    assert!(
        nodes.wait_for(healthy, Duration::from_secs(5)).await,
        "{healthy} nodes healthy: {:?}",
        nodes.stats()
    );
    nodes
}

pub async fn list_title(nodes: &Nodes) -> Result<String, wpsmesh_edge::ows::OwsError> {
    let answer = nodes
        .call_idempotent(|mut c| async move { c.list_processes(ListProcessesRequest {}).await })
        .await?;
    Ok(answer.processes[0].title.clone())
}

pub fn wait(what: &str, cond: impl FnMut() -> bool) -> impl Future<Output = ()> {
    let what = what.to_owned();
    async move {
        eventually(&what, Duration::from_secs(5), cond)
            .await
            .unwrap();
    }
}

/// The whole edge over `nodes` (storage unused: a lazy channel to nowhere).
pub fn edge(nodes: &Nodes) -> axum::Router {
    let storage = tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy();
    let config = wpsmesh_edge::Config {
        public_url: "http://edge.test".into(),
        ..Default::default()
    };
    wpsmesh_edge::app(&config, nodes.clone(), storage)
}
