//! Fetch settings: size and time limits, the address allowlist, this deployment's public URLs
//! and the limits for unpacking zips.

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// How input references are fetched (the node's `[fetch]` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Largest input read from a reference, in bytes (http and storage alike).
    pub max_bytes: u64,
    /// Total time for one http(s) fetch: connecting, redirects and the whole body.
    pub timeout_secs: u64,
    /// Redirects followed at most; each hop is checked against the address policy.
    pub max_redirects: usize,
    /// Destinations admitted although the address policy refuses them: CIDRs (`10.1.0.0/16`),
    /// addresses (`127.0.0.1`) or host names (`files.internal`).
    pub allow: Vec<String>,
    /// Total time for reading one object from the storage service.
    pub storage_timeout_secs: u64,
    pub zip: ZipLimits,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            max_bytes: 512 * MIB,
            timeout_secs: 60,
            max_redirects: 5,
            allow: Vec::new(),
            storage_timeout_secs: 600,
            zip: ZipLimits::default(),
        }
    }
}

/// Limits for unpacking a zip archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipLimits {
    /// Entries (files and folders) at most.
    pub max_entries: usize,
    /// Bytes actually written for all entries together, at most.
    pub max_total_bytes: u64,
    /// Largest expansion of an entry over its compressed size, and of the whole archive over
    /// the zip file's size; checked once an entry (or the archive) has written 1 MiB, so small
    /// highly compressible files such as `.cpg` or `.prj` pass.
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_bytes: 2048 * MIB,
            max_ratio: 200,
        }
    }
}

impl FetchConfig {
    /// Checks the numbers; the allowlist and URLs are checked by [`super::Fetcher::new`].
    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_bytes", self.max_bytes),
            ("timeout_secs", self.timeout_secs),
            ("storage_timeout_secs", self.storage_timeout_secs),
            ("zip.max_entries", self.zip.max_entries as u64),
            ("zip.max_total_bytes", self.zip.max_total_bytes),
            ("zip.max_ratio", self.zip.max_ratio),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("{name} must be greater than zero")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields_and_unknown_fields_are_refused() {
        let config: FetchConfig =
            serde_json::from_str(r#"{"max_bytes": 10, "zip": {"max_ratio": 50}}"#)
                .expect("partial config");
        assert_eq!(config.max_bytes, 10);
        assert_eq!(config.timeout_secs, 60);
        assert_eq!(config.max_redirects, 5);
        assert_eq!(config.zip.max_ratio, 50);
        assert_eq!(config.zip.max_entries, 10_000);
        assert_eq!(config.zip.max_total_bytes, 2 * 1024 * MIB);
        assert_eq!(FetchConfig::default().max_bytes, 512 * MIB);
        let err = serde_json::from_str::<FetchConfig>(r#"{"max_byte": 1}"#).expect_err("typo");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let back: FetchConfig =
            serde_json::from_str(&serde_json::to_string(&config).expect("serialize"))
                .expect("round trip");
        assert_eq!(back, config);
        let zero = FetchConfig {
            timeout_secs: 0,
            ..FetchConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err("timeout_secs must be greater than zero".into())
        );
    }
}
