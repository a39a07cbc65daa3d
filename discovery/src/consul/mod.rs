//! Consul: a service's self-registration (with a gRPC health check: nodes as `wps-node`,
//! storage as `wps-file-storage`) and discovery of healthy instances through blocking health
//! queries.
//!
//! Consul is optional. With [`ConsulConfig::address`] empty (the embedded default) nothing is
//! registered and no request is made. With an address, [`Registration::spawn`] registers the
//! service in the background, retries with capped exponential backoff while the agent is away, and
//! re-registers when the agent lost the service (checked every
//! [`ConsulConfig::resync_interval`]); [`Registration::deregister`] removes it on shutdown.
//!
//! Registration and deregistration go through `consulrs`. Discovery ([`watch_service`]) uses a
//! small direct HTTP call: `consulrs` 0.1.0 has no `/v1/health/service/:name` endpoint.

mod duration;
mod register;
mod watch;

use std::time::Duration;

use consulrs::client::{ConsulClient, ConsulClientSettingsBuilder};
use serde::{Deserialize, Serialize};
use url::Url;

pub use register::{Registration, register_until};
pub use watch::watch_service;

/// Consul settings of a registering service (node, storage) or of a Consul discovery source.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsulConfig {
    /// HTTP address of the Consul agent, e.g. `http://127.0.0.1:8500` (`http://` is assumed
    /// without a scheme). Empty disables Consul: nothing registers, nothing is contacted.
    pub address: String,
    /// ACL token sent as `X-Consul-Token`; empty sends none.
    pub token: String,
    /// Service name registered and watched (`wps-node` unless set; storage's sections default
    /// to [`crate::STORAGE_SERVICE`]).
    pub service: String,
    /// Host name or IP advertised to Consul and dialled by its gRPC health check; empty uses
    /// this machine's host name.
    pub advertise: String,
    /// Tags of the registered service.
    pub tags: Vec<String>,
    /// How often Consul runs the gRPC health check (`10s`, `1m 30s`).
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Consul removes the service after its check has been critical this long (Consul's
    /// minimum is one minute).
    #[serde(with = "humantime_serde")]
    pub deregister_critical_after: Duration,
    /// How often the service checks that the agent still knows its registration, and registers
    /// again if the agent forgot it (e.g. a dev-mode agent restarted).
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            token: String::new(),
            service: "wps-node".into(),
            advertise: String::new(),
            tags: Vec::new(),
            check_interval: Duration::from_secs(10),
            deregister_critical_after: Duration::from_secs(60),
            resync_interval: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("token", &token)
            .field("service", &self.service)
            .field("advertise", &self.advertise)
            .field("tags", &self.tags)
            .field("check_interval", &self.check_interval)
            .field("deregister_critical_after", &self.deregister_critical_after)
            .field("resync_interval", &self.resync_interval)
            .finish()
    }
}

impl ConsulConfig {
    /// The defaults, for service `name`.
    pub fn for_service(name: &str) -> Self {
        Self {
            service: name.to_owned(),
            ..Self::default()
        }
    }

    /// Whether a Consul agent is configured.
    pub fn is_enabled(&self) -> bool {
        !self.address.trim().is_empty()
    }

    /// The host to advertise: [`ConsulConfig::advertise`], else this machine's host name.
    pub fn advertise_host(&self) -> String {
        let configured = self.advertise.trim();
        if configured.is_empty() {
            host_name()
        } else {
            configured.to_owned()
        }
    }

    /// The service id of an instance: `{service}-{host}-{port}`.
    pub fn service_id(&self, host: &str, port: u16) -> String {
        format!("{}-{host}-{port}", self.service)
    }

    /// The agent's base URL (scheme, host and port only).
    pub(crate) fn base_url(&self) -> Result<Url, ConsulError> {
        let address = self.address.trim();
        if address.is_empty() {
            return Err(ConsulError::Disabled);
        }
        let invalid = |reason: &str| ConsulError::InvalidAddress {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        let full = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let url = Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if url.host_str().is_none() {
            return Err(invalid("no host"));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(invalid("must not have a path or query"));
        }
        Ok(url)
    }

    /// A consulrs client for the agent, with the configured token (never the environment's).
    pub(crate) fn client(&self) -> Result<ConsulClient, ConsulError> {
        let base = self.base_url()?;
        let mut settings = ConsulClientSettingsBuilder::default()
            .address(base.as_str().trim_end_matches('/'))
            .build()
            .map_err(|e| ConsulError::Client(e.to_string()))?;
        // The builder's token setter cannot express "none" and its default reads
        // CONSUL_HTTP_TOKEN; the configured token alone counts.
        settings.token = (!self.token.is_empty()).then(|| self.token.clone());
        ConsulClient::new(settings).map_err(|e| ConsulError::Client(error_chain(&e)))
    }
}

/// What can go wrong talking to Consul.
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// No Consul address is configured.
    #[error("consul is not configured")]
    Disabled,
    /// The configured address is not a usable agent URL.
    #[error("invalid consul address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    /// The HTTP client could not be built.
    #[error("consul client: {0}")]
    Client(String),
    /// The request did not get an answer (connection refused, reset, ...).
    #[error("consul request failed: {0}")]
    Request(String),
    /// Consul answered with an error status.
    #[error("consul answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The answer was not what Consul documents.
    #[error("unexpected consul answer: {0}")]
    Decode(String),
    /// No answer in time.
    #[error("consul request timed out after {0:?}")]
    Timeout(Duration),
}

impl From<consulrs::error::ClientError> for ConsulError {
    fn from(e: consulrs::error::ClientError) -> Self {
        match e {
            consulrs::error::ClientError::APIError { code, message } => ConsulError::Status {
                status: code,
                message: message.unwrap_or_default().trim().to_owned(),
            },
            other => ConsulError::Request(error_chain(&other)),
        }
    }
}

/// An error and its sources as one line. Sources already spelled out by the message above them
/// are left out, and so are consulrs' and rustify's capitalised wrappers ("An error occurred
/// with the request") when a library's own message follows.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.last().is_some_and(|above| above.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    let first_specific = parts
        .iter()
        .position(|p| p.starts_with(|c: char| !c.is_uppercase()))
        .unwrap_or(0);
    parts.split_off(first_specific).join(": ")
}

/// This machine's host name (Linux), falling back to `$HOSTNAME`, then `localhost`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_disabled_with_documented_values() {
        let c = ConsulConfig::default();
        assert!(!c.is_enabled());
        assert_eq!(c.service, "wps-node");
        assert_eq!(c.check_interval, Duration::from_secs(10));
        assert_eq!(c.deregister_critical_after, Duration::from_secs(60));
        assert!(matches!(c.base_url(), Err(ConsulError::Disabled)));
        assert!(!c.advertise_host().is_empty());
    }

    #[test]
    fn addresses_are_normalised_and_checked() {
        let with = |a: &str| ConsulConfig {
            address: a.into(),
            ..ConsulConfig::default()
        };
        assert_eq!(
            with("127.0.0.1:8500").base_url().unwrap().as_str(),
            "http://127.0.0.1:8500/"
        );
        assert_eq!(
            with("https://consul:8501/").base_url().unwrap().as_str(),
            "https://consul:8501/"
        );
        assert!(with("ftp://consul").base_url().is_err());
        assert!(with("http://consul:8500/v1").base_url().is_err());
    }

    #[test]
    fn config_round_trips_with_durations_and_rejects_unknown_fields() {
        let c: ConsulConfig = serde_json::from_value(serde_json::json!({
            "address": "http://consul:8500",
            "check_interval": "1m30s",
            "deregister_critical_after": "2m",
            "tags": ["a"],
        }))
        .unwrap();
        assert_eq!(c.check_interval, Duration::from_secs(90));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["check_interval"], "1m 30s");
        assert_eq!(back["deregister_critical_after"], "2m");
        assert_eq!(back["resync_interval"], "30s");
        assert_eq!(
            duration::format(c.check_interval),
            "90s",
            "consul's own syntax"
        );
        let unknown = serde_json::from_value::<ConsulConfig>(serde_json::json!({"adress": "x"}));
        assert!(unknown.is_err());
        let bad = serde_json::from_value::<ConsulConfig>(serde_json::json!({"check_interval": 10}));
        assert!(bad.is_err());
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let c = ConsulConfig {
            token: "secret".into(),
            ..ConsulConfig::default()
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn error_chain_drops_wrappers_and_repeats() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let refused = E("Connection refused", None);
        let connect = E(
            "tcp connect error: Connection refused",
            Some(Box::new(refused)),
        );
        let send = E("error sending request", Some(Box::new(connect)));
        let wrapper = E("An error occurred with the request", Some(Box::new(send)));
        assert_eq!(
            error_chain(&wrapper),
            "error sending request: tcp connect error: Connection refused"
        );
        assert_eq!(error_chain(&E("Only capitals", None)), "Only capitals");
    }
}
