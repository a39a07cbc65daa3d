//! http(s) references: a reqwest client whose DNS resolver and redirect policy enforce the
//! address policy, and a size-limited streaming download into a fresh file.
//!
//! The resolver hands reqwest only addresses that passed the policy, so the checked address is
//! the one connected to (no DNS rebinding window). IP-literal hosts never reach the resolver;
//! they are checked before the request and on every redirect hop by the redirect policy.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, redirect};
use url::Url;

use super::FetchError;
use super::guard::{Policy, Refusal, shown};
use super::sink::{Sink, SinkError};

/// Builds the client: guarded resolver and redirects, no proxy from the environment, no
/// referer, no automatic decompression (not compiled in), an overall timeout.
pub(crate) fn client(
    policy: Arc<Policy>,
    max_redirects: usize,
    timeout: Duration,
) -> Result<Client, reqwest::Error> {
    Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
        .redirect(redirect_policy(policy, max_redirects))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(15)))
        .referer(false)
        .user_agent(concat!("wpsmesh-node/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves with the system resolver, then keeps only the addresses the policy admits.
pub(super) struct GuardedResolver {
    pub(super) policy: Arc<Policy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            policy.check_name(&host)?;
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = policy.filter(&host, found)?;
            tracing::debug!(%host, addresses = ?kept, "resolved input host");
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

fn redirect_policy(policy: Arc<Policy>, max: usize) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        // `previous` starts with the original URL, so its length counts the redirects so far.
        if attempt.previous().len() > max {
            return attempt.error(Refusal::TooManyRedirects(max));
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(reason) => {
                let url = shown(attempt.url());
                attempt.error(Refusal::Redirect {
                    url,
                    reason: Box::new(reason),
                })
            }
        }
    })
}

/// What [`download`] needs besides the URL.
pub(crate) struct Target<'a> {
    pub input: &'a str,
    pub dest_dir: &'a Path,
    pub ext_hint: Option<&'a str>,
    pub max_bytes: u64,
    pub timeout_secs: u64,
}

/// GETs `url` (already checked against the policy) into a fresh file in `dest_dir`.
pub(crate) async fn download(
    client: &Client,
    url: Url,
    t: &Target<'_>,
) -> Result<PathBuf, FetchError> {
    let url_shown = shown(&url);
    let fail = |e: reqwest::Error| from_reqwest(t, &url_shown, e);
    let mut response = client.get(url.clone()).send().await.map_err(fail)?;
    let status = response.status();
    if status.is_redirection() {
        // reqwest leaves a redirect it cannot express as an http URI (`file:///etc/passwd`)
        // unfollowed and hands back the 3xx: say why.
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| response.url().join(l).ok());
        if let Some(next) = location.filter(|u| !matches!(u.scheme(), "http" | "https")) {
            return Err(FetchError::Refused {
                input: t.input.to_owned(),
                refusal: Refusal::Redirect {
                    url: shown(&next),
                    reason: Box::new(Refusal::Scheme(next.scheme().to_owned())),
                },
            });
        }
    }
    if !status.is_success() {
        return Err(FetchError::HttpStatus {
            input: t.input.to_owned(),
            url: url_shown,
            status: status.as_u16(),
        });
    }
    let too_large = || FetchError::TooLarge {
        input: t.input.to_owned(),
        url: url_shown.clone(),
        limit: t.max_bytes,
    };
    if response.content_length().is_some_and(|n| n > t.max_bytes) {
        return Err(too_large());
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ext = super::choose_ext(t.ext_hint, content_type.as_deref(), response.url().path());
    let path = t.dest_dir.join(super::file_name(&ext));
    let mut sink = Sink::create(path, t.max_bytes)
        .await
        .map_err(|e| FetchError::io(t.input, "creating the input file failed", e))?;
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        sink.write(&chunk).await.map_err(|e| match e {
            SinkError::TooLarge => too_large(),
            SinkError::Io(e) => FetchError::io(t.input, "writing the input file failed", e),
        })?;
    }
    tracing::debug!(input = t.input, path = %sink.path().display(), "input body complete");
    let (path, _) = sink
        .finish()
        .await
        .map_err(|e| FetchError::io(t.input, "writing the input file failed", e))?;
    Ok(path)
}

/// Turns a reqwest error into a `FetchError`: a policy refusal found anywhere in the source
/// chain (resolver or redirect policy) wins; then timeouts; else the URL was unreachable.
fn from_reqwest(t: &Target<'_>, url: &str, e: reqwest::Error) -> FetchError {
    let reason = match cause(&e) {
        Err(refusal) => {
            return FetchError::Refused {
                input: t.input.to_owned(),
                refusal,
            };
        }
        Ok(reason) => reason,
    };
    if e.is_timeout() {
        return FetchError::Timeout {
            input: t.input.to_owned(),
            url: url.to_owned(),
            secs: t.timeout_secs,
        };
    }
    FetchError::Unreachable {
        input: t.input.to_owned(),
        url: url.to_owned(),
        reason,
    }
}

/// What broke in a failed request: the policy refusal found anywhere in `e`'s causes (the
/// guarded resolver's or redirect policy's), else the causes joined — without the outermost
/// message, which repeats the URL with its credentials.
pub(crate) fn cause(e: &reqwest::Error) -> Result<String, Refusal> {
    let mut reasons: Vec<String> = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return Err(refusal.clone());
        }
        let text = err.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        source = err.source();
    }
    let start = usize::from(reasons.len() > 1);
    Ok(reasons[start..].join(": "))
}
