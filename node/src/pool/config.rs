//! Pool settings, and where the `wpsmesh-worker` binary is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PoolError;

/// The worker binary's file name.
pub const WORKER_BINARY: &str = "wpsmesh-worker";
/// Environment variable naming the worker binary, when the configuration does not.
pub const WORKER_BINARY_ENV: &str = "WPSMESH_WORKER_BIN";

/// Settings of the worker pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Worker processes; 0 means [`WORKERS_PER_CORE`] per core (one).
    pub workers: usize,
    /// The `wpsmesh-worker` binary. Unset: `$WPSMESH_WORKER_BIN`, else the binary next to the
    /// current executable (or one folder up, for test binaries in `target/*/deps`), else `PATH`.
    pub worker_binary: Option<PathBuf>,
    /// Jobs after which a worker is replaced by a fresh one; 0: never. The replacement is started
    /// when the worker reaches this count and takes over once ready (the old worker keeps serving
    /// meanwhile, so a few more jobs run on it); no job waits for the start.
    ///
    /// Default 10,000, from the ageing curve (`cargo bench -p wpsmesh-tests --bench worker_age`:
    /// native:buffer of 240 points, 3000 times on one worker): since a worker deletes each job's
    /// layers after the job (`run.release()`), CPU per job stays flat within the machine's
    /// noise (about 22 ms) and RSS grows 226 → 227 MiB over 3000 jobs, while a start costs
    /// about 1.5–1.7 s of CPU. Recycling is only a net for leaks of other algorithms: at 10,000
    /// jobs a start costs under 1 % of a worker's CPU. (Before that fix, every job kept its input open and
    /// workers slowed by +20 % after 500 jobs, so the default was 500.)
    pub max_jobs_per_worker: u32,
    /// How long a job may run when the request sets no timeout; the worker is killed after.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// How long a cancelled job may take to stop before its worker is killed.
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
    /// How long a worker may take to initialise QGIS and report ready.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// Jobs that may wait for a free worker; more are refused as busy.
    pub queue_limit: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            worker_binary: None,
            max_jobs_per_worker: 10_000,
            job_timeout: Duration::from_secs(3600),
            cancel_grace: Duration::from_secs(5),
            start_timeout: Duration::from_secs(60),
            queue_limit: 256,
        }
    }
}

/// Workers per core when their number is not configured. Measured with the fastpath bench (8
/// closed-loop clients, meshes with one and two workers per core loaded in turns): on a quiet
/// machine one per core served more (40.2 against 38.7 Executes/s) with a lower p99 (251
/// against 286 ms); two per core came out ahead only while other work shared the cores (it then
/// takes a larger share of them, it is not faster), and each worker costs about 230 MiB.
pub const WORKERS_PER_CORE: usize = 1;

/// [`WORKERS_PER_CORE`] workers for each core of this machine.
pub fn workers_for_this_machine() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) * WORKERS_PER_CORE
}

impl PoolConfig {
    /// The number of workers to run: `workers`, or [`workers_for_this_machine`] when it is 0.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        workers_for_this_machine()
    }

    /// The worker binary to start (see [`PoolConfig::worker_binary`]).
    pub fn resolve_worker_binary(&self) -> Result<PathBuf, PoolError> {
        let configured = self
            .worker_binary
            .clone()
            .or_else(|| std::env::var_os(WORKER_BINARY_ENV).map(PathBuf::from));
        if let Some(path) = configured {
            return if path.is_file() {
                Ok(path)
            } else {
                Err(PoolError::Unavailable(format!(
                    "worker binary {} not found",
                    path.display()
                )))
            };
        }
        let beside_exe = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .map(|dir| {
                let up = dir
                    .file_name()
                    .filter(|name| *name == "deps")
                    .and_then(|_| dir.parent().map(Path::to_path_buf));
                std::iter::once(dir).chain(up).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        beside_exe
            .into_iter()
            .chain(on_path)
            .map(|dir| dir.join(WORKER_BINARY))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                PoolError::Unavailable(format!(
                    "{WORKER_BINARY} not found next to this executable nor on PATH; \
                     set {WORKER_BINARY_ENV} or the worker_binary setting"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_human_text() {
        let config: PoolConfig = serde_json::from_value(serde_json::json!({
            "workers": 2, "job_timeout": "90s", "cancel_grace": "500ms"
        }))
        .expect("valid config");
        assert_eq!(config.worker_count(), 2);
        assert_eq!(config.job_timeout, Duration::from_secs(90));
        assert_eq!(config.cancel_grace, Duration::from_millis(500));
        assert_eq!(config.queue_limit, PoolConfig::default().queue_limit);
    }

    #[test]
    fn a_missing_configured_binary_is_reported() {
        let config = PoolConfig {
            worker_binary: Some("/nonexistent/wpsmesh-worker".into()),
            ..PoolConfig::default()
        };
        let error = config.resolve_worker_binary().expect_err("missing binary");
        assert!(error.to_string().contains("/nonexistent/wpsmesh-worker"));
    }
}
