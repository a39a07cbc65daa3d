//! The address policy for the node's other outgoing http calls (job callbacks): a URL judged
//! on receipt (host names resolved and their addresses judged as input fetching judges them),
//! and a client that connects only to admitted addresses and follows no redirect.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, redirect};
use url::{Host, Url};

use super::guard::{Policy, Refusal};
use super::http::GuardedResolver;

/// Longest a host name lookup may take when a URL is judged on receipt.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The fetcher's address policy (same allowlist), for calls other than input fetching.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<Policy>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    pub(super) fn new(policy: Arc<Policy>) -> Self {
        Self { policy }
    }

    /// What can be judged without a lookup: the scheme, an IP-literal host (the client connects
    /// to those without asking its resolver) and metadata host names.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        self.policy.check_url(url)
    }

    /// [`Outbound::check_url`], then a host name's addresses, refused when none of them may be
    /// reached. A name that does not resolve now is not refused: every call resolves it again
    /// under the same policy.
    pub async fn check(&self, url: &Url) -> Result<(), Refusal> {
        self.policy.check_url(url)?;
        let Some(Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(80);
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port))).await {
            Ok(Ok(found)) => self.policy.filter(name, found).map(drop),
            Ok(Err(e)) => {
                tracing::debug!(host = name, error = %e, "host does not resolve now; judged again when called");
                Ok(())
            }
            Err(_) => {
                tracing::debug!(
                    host = name,
                    "host lookup timed out; judged again when called"
                );
                Ok(())
            }
        }
    }

    /// A client whose resolver hands it only admitted addresses (the address judged is the one
    /// connected to: no DNS rebinding window), following no redirect, no proxy from the
    /// environment, `timeout` for each request (connecting, sending and the whole answer).
    pub fn client(&self, timeout: Duration) -> Result<Client, reqwest::Error> {
        Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: self.policy.clone(),
            }))
            .redirect(redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .referer(false)
            .user_agent(concat!("wpsmesh-node/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(allow: &[&str]) -> Outbound {
        let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        Outbound::new(Arc::new(Policy::new(&allow).expect("allowlist")))
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[tokio::test]
    async fn literals_and_resolved_names_are_judged_like_input_references() {
        let strict = outbound(&[]);
        let err = strict
            .check(&url("http://169.254.169.254/latest"))
            .await
            .expect_err("metadata address");
        assert_eq!(
            err.to_string(),
            "address 169.254.169.254 is not allowed (cloud metadata)"
        );
        let err = strict
            .check(&url("http://localhost:9/cb"))
            .await
            .expect_err("loopback by name");
        assert!(matches!(err, Refusal::Resolved { .. }), "{err}");
        assert!(matches!(
            strict.check(&url("http://metadata.google.internal/")).await,
            Err(Refusal::MetadataHost(_))
        ));
        let loopback = outbound(&["127.0.0.1"]);
        assert!(loopback.check(&url("http://127.0.0.1:9/cb")).await.is_ok());
        assert!(loopback.check(&url("http://127.0.0.2:9/cb")).await.is_err());
        assert!(loopback.check_url(&url("http://[::1]:9/")).is_err());
        assert!(loopback.client(Duration::from_secs(1)).is_ok());
    }
}
