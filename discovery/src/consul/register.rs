//! A service's registration in Consul (a node's, the storage's): a background task that
//! registers, retries while the agent is away, re-registers when the agent lost the service, and a
//! handle that deregisters.

use std::future::Future;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use consulrs::api::check::common::AgentServiceCheckBuilder;
use consulrs::api::service::requests::{ReadServiceRequest, RegisterServiceRequest};
use consulrs::client::ConsulClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;
use tracing::{debug, info, warn};

use super::{ConsulConfig, ConsulError, duration};
use wpsmesh_runtime::backoff::Backoff;

/// Longest wait for one register, read or deregister request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the deregistration at shutdown.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle on a service's Consul registration.
///
/// [`Registration::spawn`] returns at once; the registration happens in a background task, so
/// the service serves whether or not Consul is reachable. Call [`Registration::deregister`] on
/// SIGTERM/SIGINT, before the gRPC server stops, so callers stop routing to it first.
/// Dropping the handle stops the task without deregistering.
#[derive(Debug)]
pub struct Registration {
    inner: Option<Active>,
}

#[derive(Debug)]
struct Active {
    service: Arc<Service>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    registered: watch::Receiver<bool>,
}

/// What is registered, and the client that registers it.
struct Service {
    client: ConsulClient,
    id: String,
    name: String,
    host: String,
    port: u16,
    tags: Vec<String>,
    check_interval: Duration,
    deregister_critical_after: Duration,
    resync_interval: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("id", &self.id).finish()
    }
}

impl Registration {
    /// Starts registering `host:port` as an instance of the configured service. Without a
    /// configured Consul address this does nothing and contacts nothing.
    ///
    /// Fails only on an invalid configuration (a malformed address), never because Consul is
    /// unreachable. Must be called inside a tokio runtime.
    pub fn spawn(config: &ConsulConfig, host: &str, port: u16) -> Result<Self, ConsulError> {
        if !config.is_enabled() {
            debug!("consul not configured, not registering");
            return Ok(Self::disabled());
        }
        let service = Arc::new(Service {
            client: config.client()?,
            id: config.service_id(host, port),
            name: config.service.clone(),
            host: host.to_owned(),
            port,
            tags: config.tags.clone(),
            check_interval: config.check_interval,
            deregister_critical_after: config.deregister_critical_after,
            resync_interval: config.resync_interval,
        });
        let cancel = CancellationToken::new();
        let (state, registered) = watch::channel(false);
        let task = tokio::spawn(keep_registered(Arc::clone(&service), state, cancel.clone()));
        Ok(Self {
            inner: Some(Active {
                service,
                cancel,
                task,
                registered,
            }),
        })
    }

    /// A handle that registers nothing.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether Consul is configured for this registration.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The service id, `{service}-{host}-{port}`, when Consul is configured.
    pub fn service_id(&self) -> Option<&str> {
        self.inner.as_ref().map(|a| a.service.id.as_str())
    }

    /// Whether the agent accepted the registration (and has not been found to have lost it).
    pub fn is_registered(&self) -> bool {
        self.inner.as_ref().is_some_and(|a| *a.registered.borrow())
    }

    /// Stops the registration task and removes the service from Consul. Gives up after a
    /// few seconds if the agent does not answer; Consul then drops the instance by itself
    /// once its check has been critical for `deregister_critical_after`.
    pub async fn deregister(mut self) {
        let Some(active) = self.inner.take() else {
            return;
        };
        active.cancel.cancel();
        if let Err(e) = active.task.await {
            warn!(error = %e, "consul registration task failed");
        }
        let service = &active.service;
        let deregistration = consulrs::service::deregister(&service.client, &service.id, None);
        match tokio::time::timeout(DEREGISTER_TIMEOUT, quiet(deregistration)).await {
            Ok(Ok(_)) => info!(id = %service.id, "deregistered from consul"),
            Ok(Err(e)) => match ConsulError::from(e) {
                ConsulError::Status { status: 404, .. } => {
                    debug!(id = %service.id, "consul did not know the service");
                }
                e => warn!(id = %service.id, error = %e, "consul deregistration failed"),
            },
            Err(_) => warn!(
                id = %service.id,
                timeout = ?DEREGISTER_TIMEOUT,
                "consul deregistration timed out"
            ),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(active) = &self.inner {
            active.cancel.cancel();
        }
    }
}

/// Registers `host:port` until `shutdown` resolves, then deregisters: [`Registration::spawn`]
/// and [`Registration::deregister`] in one future, for callers with a shutdown future at hand.
pub async fn register_until(
    config: &ConsulConfig,
    host: &str,
    port: u16,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConsulError> {
    let registration = Registration::spawn(config, host, port)?;
    shutdown.await;
    registration.deregister().await;
    Ok(())
}

/// The background task: register (retrying with backoff), then every `resync_interval` check
/// that the agent still knows the service and register again when it does not.
async fn keep_registered(
    service: Arc<Service>,
    state: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut attempt: u32 = 0;
    loop {
        if !*state.borrow() {
            attempt += 1;
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = service.register() => outcome,
            };
            match outcome {
                Ok(()) => {
                    info!(
                        id = %service.id,
                        service = %service.name,
                        address = %service.host,
                        port = service.port,
                        attempt,
                        "registered in consul"
                    );
                    state.send_replace(true);
                    backoff.reset();
                    attempt = 0;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(
                        id = %service.id,
                        attempt,
                        retry_in = ?delay,
                        error = %e,
                        "consul registration failed, retrying"
                    );
                    if sleep_or_cancel(delay, &cancel).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if sleep_or_cancel(service.resync_interval, &cancel).await {
            return;
        }
        let known = tokio::select! {
            () = cancel.cancelled() => return,
            known = service.is_known() => known,
        };
        match known {
            Ok(true) => debug!(id = %service.id, "consul still knows the service"),
            Ok(false) => {
                warn!(id = %service.id, "consul lost the registration, registering again");
                state.send_replace(false);
            }
            Err(e) => warn!(
                id = %service.id,
                error = %e,
                "cannot reach consul to verify the registration"
            ),
        }
    }
}

/// Sleeps `delay`; true when cancelled first.
async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

impl Service {
    /// `PUT /v1/agent/service/register` with the gRPC health check.
    async fn register(&self) -> Result<(), ConsulError> {
        let check = AgentServiceCheckBuilder::default()
            .grpc(grpc_target(&self.host, self.port))
            .grpc_use_tls(false)
            .interval(duration::format(self.check_interval))
            .deregister_critical_service_after(duration::format(self.deregister_critical_after))
            .build()
            .map_err(|e| ConsulError::Client(e.to_string()))?;
        let mut request = RegisterServiceRequest::builder();
        request
            .id(self.id.as_str())
            .address(self.host.as_str())
            .port(u64::from(self.port))
            .tags(self.tags.clone())
            .check(check);
        let call = consulrs::service::register(&self.client, &self.name, Some(&mut request));
        with_timeout(quiet(call)).await?;
        Ok(())
    }

    /// `GET /v1/agent/service/:id`: true when the agent knows the service, false on 404.
    ///
    /// The answer is not decoded: consulrs models `TaggedAddresses` as strings while Consul
    /// answers objects (it adds `lan_ipv4`/`wan_ipv4` for IP addresses), so
    /// `consulrs::service::read` would fail on a healthy registration.
    async fn is_known(&self) -> Result<bool, ConsulError> {
        let request = ReadServiceRequest::builder()
            .name(self.id.as_str())
            .build()
            .map_err(|e| ConsulError::Client(e.to_string()))?;
        match with_timeout(quiet(consulrs::api::exec_with_raw(&self.client, request))).await {
            Ok(_) => Ok(true),
            Err(ConsulError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The address Consul's gRPC check dials: `host:port`, IPv6 literals in brackets.
fn grpc_target(host: &str, port: u16) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Runs a consulrs call with its own logging muted: consulrs logs every request at info and
/// every failure at error, in free text; this module logs the outcome itself, structured.
fn quiet<F: Future>(call: F) -> impl Future<Output = F::Output> {
    call.with_subscriber(NoSubscriber::default())
}

/// Bounds a consulrs call by [`REQUEST_TIMEOUT`].
async fn with_timeout<T>(
    call: impl Future<Output = Result<T, consulrs::error::ClientError>>,
) -> Result<T, ConsulError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(result) => result.map_err(ConsulError::from),
        Err(_) => Err(ConsulError::Timeout(REQUEST_TIMEOUT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_target_brackets_ipv6() {
        assert_eq!(grpc_target("10.0.0.1", 8001), "10.0.0.1:8001");
        assert_eq!(grpc_target("node-1", 8001), "node-1:8001");
        assert_eq!(grpc_target("::1", 8001), "[::1]:8001");
    }

    #[test]
    fn disabled_registration_has_no_task() {
        let r = Registration::spawn(&ConsulConfig::default(), "h", 1);
        assert!(r.is_ok_and(|r| !r.is_enabled() && r.service_id().is_none()));
    }
}
