//! Test harness: starts real dependencies (s3s-fs, redis-server, the `wpsmesh` services) on free
//! loopback ports, waits until they answer, and stops them when dropped.

pub mod bench;
pub mod consul;
pub mod cpu;
pub mod formats;
pub mod load;
pub mod local_cluster;
pub mod mesh;
pub mod otlp;
pub mod prometheus;
mod redis;
mod service;

pub use redis::{RedisServer, command as redis_command};
pub use service::{
    Launch, Service, edge_ready, grpc_serving, object_ids, release_mesh, until_serving,
};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768–60999), so no
/// outgoing connection's local port can take one between the check and the child binding it.
const PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free port for a child to listen on: one of [`PORTS`] that binds on every address now,
/// never the same twice in this process, starting at a point drawn from the pid and the clock
/// so test processes running side by side walk different stretches.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive free ports (see [`free_port`]), e.g. for `wpsmesh up`, whose
/// nodes listen on the port after the first node's.
pub fn free_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORTS.end - PORTS.start;
    let n = u32::from(n.max(1));
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = std::process::id().wrapping_mul(7919).wrapping_add(nanos) % span;
        let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let first = NEXT.fetch_add(n, Ordering::Relaxed) % span;
        if first + n > span {
            continue;
        }
        let all_free = (first..first + n).all(|offset| {
            u16::try_from(PORTS.start + offset)
                .is_ok_and(|port| TcpListener::bind(("0.0.0.0", port)).is_ok())
        });
        if let (true, Ok(port)) = (all_free, u16::try_from(PORTS.start + first)) {
            return port;
        }
    }
    panic!("no {n} free ports in {PORTS:?}")
}

/// `127.0.0.1:{a free port}`, e.g. for a metrics port of a service under test.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Environment giving `wpsmesh up`'s node and storage metrics ports of their own, so meshes
/// run side by side.
pub fn up_metrics_env() -> [(&'static str, String); 2] {
    [
        // Nodes take consecutive metrics ports from this one (three at most in the tests).
        (
            "WPSMESH_NODE__METRICS_LISTEN",
            format!("127.0.0.1:{}", free_ports(3)),
        ),
        ("WPSMESH_STORAGE__METRICS_LISTEN", free_addr()),
    ]
}

/// Waits until `addr` accepts TCP connections, or fails after `timeout`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{addr} did not accept connections within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it returns true, or fails with `what` after `timeout`.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// Finds an installed binary on `PATH` or in cargo's bin directory.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_home.map(|h| h.join("bin")))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
    let pid = i32::try_from(pid)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .map_err(|e| anyhow::anyhow!("{signal} to process {pid}: {e}"))
}

/// A real S3 protocol server (`s3s-fs`) over a temporary directory.
pub struct S3sFs {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    root: tempfile::TempDir,
    _child: ChildGuard,
}

impl S3sFs {
    /// Starts s3s-fs on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let bin = find_binary("s3s-fs").ok_or_else(|| {
            anyhow::anyhow!("s3s-fs not installed: run scripts/setup.sh (cargo install s3s-fs@0.14.1 --features binary)")
        })?;
        let root = tempfile::tempdir()?;
        let (access_key, secret_key) =
            ("wpsmesh-test".to_owned(), "wpsmesh-test-secret".to_owned());
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut child = ChildGuard(child);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_for_tcp(addr, Duration::from_secs(10)).is_ok() && child.0.try_wait()?.is_none()
            {
                return Ok(Self {
                    endpoint: format!("http://{addr}"),
                    access_key,
                    secret_key,
                    root,
                    _child: child,
                });
            }
        }
        anyhow::bail!("s3s-fs did not start")
    }

    /// The directory s3s-fs serves (buckets are its subdirectories).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Files of open multipart uploads (`.upload-<id>*`, anywhere under the root).
    pub fn open_uploads(&self) -> Vec<PathBuf> {
        files_under(self.root.path())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".upload-"))
            })
            .collect()
    }

    /// Object files in `bucket` (hidden bookkeeping files excluded).
    pub fn objects(&self, bucket: &str) -> Vec<PathBuf> {
        files_under(&self.root.path().join(bucket))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            })
            .collect()
    }
}

/// Every regular file below `dir`, recursively (empty when `dir` is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// Deterministic pseudo-random content of `len` bytes in chunks of at most 1 MiB (xorshift),
/// generated as it is consumed so large test files never sit in memory.
pub fn content(len: usize, seed: u64) -> impl Iterator<Item = bytes::Bytes> {
    const MIB: usize = 1024 * 1024;
    let mut state = seed | 1;
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(MIB);
        left -= n;
        let mut chunk = Vec::with_capacity(n + 8);
        while chunk.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        chunk.truncate(n);
        Some(bytes::Bytes::from(chunk))
    })
}

/// Sends `GET path` as raw HTTP/1.1 to `base` (`http://host:port`) on a new connection, all of
/// it whatever its size (clients such as reqwest refuse URIs over 64 KiB), and reads the answer
/// to the end: its status and body. Fails when the connection is reset on the way.
pub async fn raw_get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.context("sending")?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .context("reading the answer")?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("no status line in {:?}", &answer[..answer.len().min(200)]))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_owned()))
}

/// Path of a binary of this workspace, built by `cargo build` (`release` picks the profile).
/// Fails with the command to run when it has not been built.
pub fn workspace_binary(name: &str, release: bool) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if release { "release" } else { "debug" };
    let path = target.join(profile).join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not built: run `cargo build{} --bins` first",
        path.display(),
        if release { " --release" } else { "" }
    );
    Ok(path)
}

/// Resident set size and its peak (VmRSS, VmHWM) of a process, in bytes (Linux).
pub fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Test data derived from the Natural Earth layers QGIS ships (`qgis-common`).
pub mod data {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    pub const WORLD_MAP: &str = "/usr/share/qgis/resources/data/world_map.gpkg";
    /// One point inside each of the 240 countries.
    pub const POINTS_SQL: &str = "SELECT ST_PointOnSurface(geom) AS geom, name FROM countries";
    /// The 240 country polygons.
    pub const COUNTRIES_SQL: &str = "SELECT geom, name FROM countries";

    /// France `copies` times: buffering it takes long and reports progress steadily.
    pub fn slow_sql(copies: u32) -> String {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
             SELECT c.geom AS geom, c.name AS name, n.i AS copy FROM countries c, n \
             WHERE c.name = 'France'"
        )
    }

    /// Writes the result of `sql` over the world map to `dir/name` (format from the extension).
    pub fn derive(dir: &Path, name: &str, sql: &str) -> PathBuf {
        assert!(
            Path::new(WORLD_MAP).is_file(),
            "{WORLD_MAP} is missing: run scripts/setup.sh (apt-get install qgis-common)"
        );
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let status = Command::new("ogr2ogr")
            .arg(&path)
            .arg(WORLD_MAP)
            .args(["-dialect", "sqlite", "-sql", sql])
            .status()
            .expect("ogr2ogr (gdal-bin) runs");
        assert!(status.success(), "ogr2ogr failed for {}", path.display());
        path
    }
}
