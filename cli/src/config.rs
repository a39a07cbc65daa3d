//! The wpsmesh configuration, loaded in layers: defaults → TOML file → `WPSMESH_` environment
//! (`__` nests: `WPSMESH_STORAGE__BACKEND=s3`) → command-line flags.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Every section of the configuration; each service reads its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    /// Trace export (OTLP gRPC); the `OTEL_*` variables win over it.
    pub telemetry: wpsmesh_telemetry::TelemetryConfig,
    pub edge: wpsmesh_edge::Config,
    pub storage: wpsmesh_storage::Config,
    pub node: wpsmesh_node::Config,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl LogConfig {
    /// Installs logging alone (no traces).
    pub fn init(&self) {
        wpsmesh_telemetry::init(self.format(), &self.filter);
    }

    /// Installs logging and, when `telemetry` (or `OTEL_*`) names a collector, trace export
    /// as `service` (the default `service.name`). Keep the guard while serving: dropping it
    /// exports what is queued and stops.
    pub fn install(
        &self,
        telemetry: &wpsmesh_telemetry::TelemetryConfig,
        service: &str,
    ) -> wpsmesh_telemetry::Telemetry {
        wpsmesh_telemetry::install(self.format(), &self.filter, telemetry, service)
    }

    fn format(&self) -> wpsmesh_telemetry::LogFormat {
        if self.format == "json" {
            wpsmesh_telemetry::LogFormat::Json
        } else {
            wpsmesh_telemetry::LogFormat::Text
        }
    }
}

/// Default address of a node's `/metrics` server.
pub const NODE_METRICS: &str = "0.0.0.0:9101";
/// Default address of the storage service's `/metrics` server.
pub const STORAGE_METRICS: &str = "0.0.0.0:9102";

/// Loads the configuration. `overrides` are dotted keys from flags, applied last.
pub fn load(file: Option<&Path>, overrides: Figment) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()))
        // The binary serves metrics by default; the libraries only when told (tests).
        .merge(Serialized::default("node.metrics_listen", NODE_METRICS))
        .merge(Serialized::default(
            "storage.metrics_listen",
            STORAGE_METRICS,
        ));
    if let Some(file) = file {
        anyhow::ensure!(file.is_file(), "config file {} not found", file.display());
        figment = figment.merge(Toml::file(file));
    }
    // Only nested keys: WPSMESH_<SECTION>__<KEY>. Other WPSMESH_ variables are not config.
    let env = Env::prefixed("WPSMESH_")
        .filter(|k| k.as_str().contains("__"))
        .split("__");
    figment
        .merge(env)
        .merge(overrides)
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// The configuration as TOML, for `--dump-config`; secrets are masked.
pub fn dump(config: &Config) -> anyhow::Result<String> {
    let mut shown = config.clone();
    if !shown.storage.s3.secret_key.is_empty() {
        shown.storage.s3.secret_key = "<redacted>".into();
    }
    for token in [
        &mut shown.node.consul.token,
        &mut shown.node.storage_discovery.consul.token,
        &mut shown.storage.consul.token,
        &mut shown.edge.discovery.consul.token,
        &mut shown.edge.storage_discovery.consul.token,
    ] {
        if !token.is_empty() {
            *token = "<redacted>".into();
        }
    }
    Ok(toml::to_string_pretty(&shown)?)
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wpsmesh.toml",
                "[storage]\nlisten = \"127.0.0.1:1000\"\nbackend = \"s3\"\n[storage.s3]\nbucket = \"from-file\"\n",
            )?;
            jail.set_env("WPSMESH_STORAGE__S3__BUCKET", "from-env");
            jail.set_env("WPSMESH_UPDATE_PROTO", "1");
            let flags = Figment::new().merge(("storage.listen", "127.0.0.1:2000"));
            let c = load(Some(Path::new("wpsmesh.toml")), flags).map_err(|e| e.to_string())?;
            assert_eq!(c.storage.listen.port(), 2000);
            assert_eq!(c.storage.metrics_listen, STORAGE_METRICS.parse().ok());
            assert_eq!(c.node.metrics_listen, NODE_METRICS.parse().ok());
            assert_eq!(c.storage.backend, wpsmesh_storage::BackendKind::S3);
            assert_eq!(c.storage.s3.bucket, "from-env");
            assert_eq!(c.storage.s3.region, "us-east-1");
            Ok(())
        });
    }

    #[test]
    fn discovery_sections_keep_their_keys_and_storage_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wpsmesh.toml",
                "[edge]\nstorage = \"http://s:1\"\n\
                 [edge.discovery]\nkind = \"consul\"\nnodes = [\"http://n:2\"]\n\
                 [edge.discovery.consul]\naddress = \"http://consul:8500\"\n\
                 [edge.storage_discovery]\nkind = \"consul\"\n\
                 [edge.storage_discovery.consul]\naddress = \"http://consul:8500\"\n\
                 [storage.consul]\naddress = \"http://consul:8500\"\ncheck_interval = \"5s\"\n",
            )?;
            jail.set_env("WPSMESH_NODE__STORAGE_DISCOVERY__KIND", "dns");
            jail.set_env("WPSMESH_NODE__STORAGE_DISCOVERY__DNS__NAME", "storage.ns");
            let c =
                load(Some(Path::new("wpsmesh.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(c.edge.discovery.nodes, ["http://n:2"]);
            assert_eq!(c.edge.discovery.consul.service, "wps-node");
            assert_eq!(c.edge.storage, "http://s:1");
            assert_eq!(c.edge.storage_discovery.consul.service, "wps-file-storage");
            assert_eq!(
                c.edge.storage_discovery.consul.address,
                "http://consul:8500"
            );
            assert_eq!(c.storage.consul.service, "wps-file-storage");
            assert_eq!(c.storage.consul.check_interval.as_secs(), 5);
            assert_eq!(c.node.storage_discovery.dns.name, "storage.ns");
            assert_eq!(c.node.storage_discovery.dns.port, 8800);
            assert_eq!(c.node.consul.service, "wps-node");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[edge.storage_discovery]\nmembrs = []\n")?;
            let err = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("typo");
            assert!(err.to_string().contains("membrs"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_telemetry_section_layers_like_the_others() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wpsmesh.toml",
                "[telemetry]\nendpoint = \"http://jaeger:4317\"\nsample_ratio = 0.1\n",
            )?;
            jail.set_env("WPSMESH_TELEMETRY__SERVICE_NAME", "edge-eu");
            let c =
                load(Some(Path::new("wpsmesh.toml")), Figment::new()).map_err(|e| e.to_string())?;
            assert_eq!(c.telemetry.endpoint, "http://jaeger:4317");
            assert_eq!(c.telemetry.sample_ratio, 0.1);
            assert_eq!(c.telemetry.service_name, "edge-eu");
            assert_eq!(c.telemetry.max_queue, 2048);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[storage]\nlisten_on = \"x\"\n")?;
            let err = load(Some(Path::new("bad.toml")), Figment::new()).expect_err("typo");
            assert!(err.to_string().contains("listen_on"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn dump_masks_secrets() {
        let mut c = Config::default();
        c.storage.s3.secret_key = "hunter2".into();
        c.storage.consul.token = "consul-secret-1".into();
        c.edge.storage_discovery.consul.token = "consul-secret-2".into();
        let text = dump(&c).expect("dump");
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("consul-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn dump_round_trips() {
        let c = Config::default();
        let text = dump(&c).expect("dump");
        let back: Config = toml::from_str(&text).expect("parse dump");
        assert_eq!(back, c);
    }
}
