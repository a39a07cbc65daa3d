//! Input fetching: turns the references of a job's inputs into local files before it runs.
//!
//! - `http`/`https` hrefs are fetched with a size limit and a total timeout, under the address
//!   policy of `guard` (checked after DNS resolution, for IP literals and on every redirect);
//! - hrefs to this deployment's own `/api/file/retrieve/{id}.{ext}` are read from the storage
//!   service over gRPC (`storage`), never over HTTP;
//! - the file's format is checked and settled by [`settle_format`]: the client's [`Claim`]
//!   against the content's signature;
//! - zips (shapefiles above all) are unpacked under limits by [`unzip`] and [`unzip_shapefiles`].
//!
//! Errors are one [`FetchError`] enum that converts into a `tonic::Status`.

mod config;
mod error;
mod format;
mod guard;
mod http;
mod outbound;
mod sink;
mod storage;
mod unzip;
mod zipsafe;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use url::Url;
use wpsmesh_proto::storage::ObjectId;
use wpsmesh_proto::text;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_runtime::grpc::MAX_MESSAGE;
use wpsmesh_telemetry::metrics::Registry;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use wpsmesh_telemetry::metrics::prometheus_client::metrics::family::Family;

use crate::dependency::STORAGE;

pub use config::{FetchConfig, ZipLimits};
pub use error::FetchError;
pub use format::{Claim, settle as settle_format};
pub use guard::Refusal;
pub(crate) use http::cause as failure_cause;
pub use outbound::Outbound;
pub use unzip::{Unzipped, ZipRefusal, unzip, unzip_shapefiles};

use guard::Policy;
pub use guard::shown;

/// Extension of a fetched file when neither the caller, the href nor the server says one.
const DEFAULT_EXT: &str = "dat";
use wpsmesh_proto::process::{MAX_HREF, StoredObject};

/// Fetches input references into local files. Cheap to clone; share one per node.
#[derive(Clone)]
pub struct Fetcher {
    config: Arc<FetchConfig>,
    policy: Arc<Policy>,
    client: reqwest::Client,
    storage: Option<StorageServiceClient<Channel>>,
    /// References refused by the address policy, by kind of refusal.
    refused: Family<[(&'static str, &'static str); 1], Counter>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.config)
            .field("storage", &self.storage.is_some())
            .finish()
    }
}

impl Fetcher {
    /// Checks the configuration and builds the http client. Without a storage client, hrefs
    /// to this deployment's files fail with [`FetchError::NoStorage`].
    pub fn new(
        config: FetchConfig,
        storage: Option<StorageServiceClient<Channel>>,
    ) -> Result<Self, FetchError> {
        config.validate().map_err(FetchError::Config)?;
        let policy = Arc::new(Policy::new(&config.allow).map_err(FetchError::Config)?);
        let client = http::client(
            policy.clone(),
            config.max_redirects,
            Duration::from_secs(config.timeout_secs),
        )
        .map_err(|e| FetchError::Config(format!("building the http client failed: {e}")))?;
        let storage = storage.map(|c| c.max_decoding_message_size(MAX_MESSAGE));
        let refused = Family::default();
        for kind in Refusal::KINDS {
            drop(refused.get_or_create(&[("reason", kind)]));
        }
        Ok(Self {
            config: Arc::new(config),
            policy,
            client,
            storage,
            refused,
        })
    }

    /// Registers the count of refused references (`wpsmesh_fetch_refused_total{reason}`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "wpsmesh_fetch_refused",
            "Input references refused by the address policy (SSRF guard), by kind of refusal",
            self.refused.clone(),
        );
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// The same address policy for the node's other outgoing calls (job callbacks).
    pub fn outbound(&self) -> Outbound {
        Outbound::new(self.policy.clone())
    }

    /// Fetches `href` into a new file in `dest_dir` named `{random hex}.{ext}` and returns its
    /// path. The extension is `ext_hint` when given, else the one the href or the server
    /// implies, else `dat`. On failure no file is left behind.
    pub async fn fetch(
        &self,
        input_id: &str,
        href: &str,
        dest_dir: &Path,
        ext_hint: Option<&str>,
    ) -> Result<PathBuf, FetchError> {
        let invalid = |reason: String| FetchError::InvalidReference {
            input: input_id.to_owned(),
            href: text::shown(href).into_owned(),
            reason,
        };
        if href.len() > MAX_HREF {
            return Err(invalid(format!("longer than {MAX_HREF} bytes")));
        }
        let ext_hint = match ext_hint {
            Some(e) => Some(
                valid_ext(e)
                    .ok_or_else(|| invalid(format!("bad extension {:?}", text::shown(e))))?,
            ),
            None => None,
        };
        let url = Url::parse(href.trim()).map_err(|e| invalid(e.to_string()))?;
        let refused = |refusal: Refusal| {
            self.refused
                .get_or_create(&[("reason", refusal.kind())])
                .inc();
            tracing::warn!(input = input_id, url = %shown(&url), reason = %refusal, "input reference refused");
            FetchError::Refused {
                input: input_id.to_owned(),
                refusal,
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused(Refusal::Scheme(url.scheme().to_owned())));
        }
        self.policy.check_url(&url).map_err(refused)?;
        let url_shown = shown(&url);
        tracing::debug!(input = input_id, url = %url_shown, "fetching input over http");
        let target = http::Target {
            input: input_id,
            dest_dir,
            ext_hint: ext_hint.as_deref(),
            max_bytes: self.config.max_bytes,
            timeout_secs: self.config.timeout_secs,
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let path = tokio::time::timeout(timeout, http::download(&self.client, url, &target))
            .await
            .map_err(|_| FetchError::Timeout {
                input: input_id.to_owned(),
                url: url_shown.clone(),
                secs: self.config.timeout_secs,
            })?
            .inspect_err(|e| match e {
                FetchError::Refused { refusal, .. } => {
                    self.refused.get_or_create(&[("reason", refusal.kind())]).inc();
                    tracing::warn!(input = input_id, url = %url_shown, reason = %refusal, "input reference refused");
                }
                e => tracing::info!(input = input_id, error = %e, "input fetch failed"),
            })?;
        tracing::info!(input = input_id, url = %url_shown, path = %path.display(), "input fetched");
        Ok(path)
    }

    /// Reads a stored object into a new file in `dest_dir`, named with `ext_hint` when given,
    /// else the extension the object was named with, else its own format's.
    pub async fn fetch_object(
        &self,
        input_id: &str,
        object: &StoredObject,
        dest_dir: &Path,
        ext_hint: Option<&str>,
    ) -> Result<PathBuf, FetchError> {
        let id = object.id;
        let href = format!("stored object {id}");
        let ext = ext_hint
            .and_then(valid_ext)
            .or_else(|| valid_ext(&object.extension));
        let href = href.as_str();
        let Some(client) = self.storage.clone() else {
            return Err(FetchError::NoStorage {
                input: input_id.to_owned(),
            });
        };
        tracing::debug!(input = input_id, %id, "reading input from storage");
        let target = storage::Target {
            input: input_id,
            href,
            dest_dir,
            ext,
            max_bytes: self.config.max_bytes,
        };
        let timeout = Duration::from_secs(self.config.storage_timeout_secs);
        let (path, info) = tokio::time::timeout(timeout, storage::download(client, id, target))
            .await
            .map_err(|_| FetchError::Storage {
                input: input_id.to_owned(),
                id: id.to_string(),
                code: tonic::Code::DeadlineExceeded,
                message: format!(
                    "{STORAGE} unavailable: timed out after {} s",
                    self.config.storage_timeout_secs
                ),
            })
            .and_then(|r| r)
            .inspect_err(|e| tracing::info!(input = input_id, %id, error = %e, "input read from storage failed"))?;
        tracing::info!(input = input_id, %id, bytes = info.length, path = %path.display(), "input read from storage");
        Ok(path)
    }

    /// [`unzip_shapefiles`] with this fetcher's limits, off the async runtime.
    pub async fn unzip_shapefiles(
        &self,
        input_id: &str,
        zip_path: &Path,
        dest_dir: &Path,
        several: bool,
    ) -> Result<Vec<PathBuf>, FetchError> {
        let (input, zip_path, dest_dir) = (
            input_id.to_owned(),
            zip_path.to_owned(),
            dest_dir.to_owned(),
        );
        let limits = self.config.zip.clone();
        tokio::task::spawn_blocking(move || {
            unzip_shapefiles(&input, &zip_path, &dest_dir, &limits, several)
        })
        .await
        .map_err(|e| FetchError::io(input_id, "unzip task failed", std::io::Error::other(e)))?
    }
}

pub(crate) use wpsmesh_proto::storage::valid_extension as valid_ext;

/// The extension for an http download: the caller's hint, else one implied by a specific
/// content type, else the URL path's, else [`DEFAULT_EXT`].
pub(crate) fn choose_ext(hint: Option<&str>, content_type: Option<&str>, path: &str) -> String {
    hint.and_then(valid_ext)
        .or_else(|| {
            content_type
                .and_then(ext_for_content_type)
                .map(str::to_owned)
        })
        .or_else(|| wpsmesh_proto::storage::extension_of(path).and_then(|e| valid_ext(&e)))
        .unwrap_or_else(|| DEFAULT_EXT.to_owned())
}

/// The extension a server's content type implies, when it names a specific geodata format
/// (not `text/plain` or `application/octet-stream`, which servers send for anything).
fn ext_for_content_type(content_type: &str) -> Option<&'static str> {
    wpsmesh_proto::media::extension_for(content_type)
        .filter(|e| wpsmesh_proto::media::is_recognisable(e) || *e == "csv")
}

/// A fresh, safe file name: random hex and the extension.
pub(crate) fn file_name(ext: &str) -> String {
    format!("{}.{ext}", ObjectId::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_chosen_and_checked() {
        assert_eq!(choose_ext(Some("GeoJSON"), None, "/x.zip"), "geojson");
        assert_eq!(choose_ext(Some("../x"), None, "/x.zip"), "zip");
        assert_eq!(
            choose_ext(None, Some("application/zip; charset=binary"), "/dl.php"),
            "zip"
        );
        assert_eq!(
            choose_ext(None, Some("application/octet-stream"), "/data/a.TIF"),
            "tif"
        );
        assert_eq!(choose_ext(None, None, "/download"), "dat");
        assert_eq!(valid_ext(".shp"), Some("shp".into()));
        assert_eq!(valid_ext("a/b"), None);
        let name = file_name("gpkg");
        assert_eq!(name.len(), 32 + 5);
        assert!(name.ends_with(".gpkg"));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let bad_allow = FetchConfig {
            allow: vec!["?".into()],
            ..FetchConfig::default()
        };
        assert!(matches!(
            Fetcher::new(bad_allow, None),
            Err(FetchError::Config(_))
        ));
        assert!(Fetcher::new(FetchConfig::default(), None).is_ok());
    }
}
