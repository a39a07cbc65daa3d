//! A real `redis-server` on a free loopback port with its own directory (append-only file,
//! fsync on every write), and a tiny RESP client over a std TcpStream for tests and benches.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, find_binary, free_port};

/// Where scripts/setup.sh installs it (Debian's `redis-server`).
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A `redis-server` process; killed on drop. Data survives [`RedisServer::stop`] and
/// [`RedisServer::kill`] in the append-only file, so [`RedisServer::start_again`] finds it.
pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        let bin = Some(PathBuf::from(REDIS_SERVER))
            .filter(|p| p.is_file())
            .or_else(|| find_binary("redis-server"))
            .ok_or_else(|| anyhow::anyhow!("redis-server not installed: run scripts/setup.sh"))?;
        let mut last = None;
        for _ in 0..5 {
            let mut server = Self {
                bin: bin.clone(),
                port: free_port(),
                dir: tempfile::tempdir()?,
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut child = ChildGuard(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.0.try_wait()? {
                anyhow::bail!(
                    "redis-server exited with {status} on port {}: {}",
                    self.port,
                    self.log_tail()
                );
            }
            if self.try_command(&["PING"]).is_ok_and(|r| r == "PONG") {
                self.child = Some(child);
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s: {}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (append-only files, `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Stops it with SIGTERM (it flushes and exits) and waits for the exit, killing it after 10 s.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        crate::signal(child.id(), nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.0.try_wait()?.is_none() {
            if Instant::now() > deadline {
                anyhow::bail!("redis-server did not exit within 10 s of SIGTERM (killed)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills it with SIGKILL, no flush (every write was fsynced already).
    pub fn kill(&mut self) {
        drop(self.child.take());
    }

    /// Starts it again on the same port and directory; the data is read back from the AOF.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "redis-server is still running");
        self.spawn()
    }

    /// Runs one command and renders the reply: simple and bulk strings as they are, integers in
    /// decimal, nil as `(nil)`, arrays one element per line. Panics when it fails (tests).
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?} on port {}: {e:#}", self.port))
    }

    /// [`RedisServer::command`] returning errors (connection refused, `-ERR` replies).
    pub fn try_command(&self, args: &[&str]) -> anyhow::Result<String> {
        command(SocketAddr::from(([127, 0, 0, 1], self.port)), args)
    }
}

/// Sends one command to the Redis server at `addr` over a fresh connection.
pub fn command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;
    let mut reader = BufReader::new(stream);
    let mut out = String::new();
    read_reply(&mut reader, &mut out)?;
    Ok(out.trim_end_matches('\n').to_owned())
}

/// Reads one RESP2 reply into `out`.
fn read_reply(reader: &mut impl BufRead, out: &mut String) -> anyhow::Result<()> {
    let mut line = String::new();
    anyhow::ensure!(
        reader.read_line(&mut line)? > 0,
        "connection closed before the reply"
    );
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" | ":" => {
            out.push_str(rest);
            out.push('\n');
        }
        "-" => anyhow::bail!("redis error: {rest}"),
        "$" => {
            let len: i64 = rest.parse()?;
            if len < 0 {
                out.push_str("(nil)\n");
            } else {
                let mut data = vec![0; usize::try_from(len)? + 2];
                reader.read_exact(&mut data)?;
                data.truncate(data.len() - 2);
                out.push_str(&String::from_utf8_lossy(&data));
                out.push('\n');
            }
        }
        "*" => {
            let n: i64 = rest.parse()?;
            if n < 0 {
                out.push_str("(nil)\n");
            }
            for _ in 0..n.max(0) {
                read_reply(reader, out)?;
            }
        }
        _ => anyhow::bail!("unexpected reply line {line:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ping_and_keeps_data_across_a_restart() {
        let mut redis = RedisServer::start().expect("redis-server starts");
        assert!(redis.url().ends_with(&format!(":{}", redis.port())));
        assert_eq!(redis.command(&["PING"]), "PONG");
        assert_eq!(redis.command(&["SET", "greeting", "hello\r\nworld"]), "OK");
        assert_eq!(redis.command(&["GET", "greeting"]), "hello\r\nworld");
        assert_eq!(redis.command(&["GET", "missing"]), "(nil)");
        assert_eq!(redis.command(&["RPUSH", "list", "a", "b"]), "2");
        assert_eq!(redis.command(&["LRANGE", "list", "0", "-1"]), "a\nb");
        assert_eq!(redis.command(&["XADD", "events", "*", "k", "v"]).len(), 15);
        assert_eq!(redis.command(&["XLEN", "events"]), "1");
        assert!(
            redis
                .command(&["INFO", "commandstats"])
                .contains("cmdstat_set:calls=1")
        );
        let err = redis
            .try_command(&["NOSUCHCOMMAND"])
            .expect_err("error reply");
        assert!(err.to_string().contains("unknown command"), "{err}");

        let (port, pid) = (redis.port(), redis.pid().expect("running"));
        redis.stop().expect("stops on SIGTERM");
        assert!(redis.try_command(&["PING"]).is_err(), "stopped");
        redis.start_again().expect("starts again");
        assert_eq!(redis.port(), port);
        assert_ne!(redis.pid(), Some(pid));
        assert_eq!(redis.command(&["GET", "greeting"]), "hello\r\nworld");
        assert_eq!(redis.command(&["DBSIZE"]), "3");

        // SIGKILL loses nothing either: every write was fsynced.
        assert_eq!(redis.command(&["SET", "late", "1"]), "OK");
        redis.kill();
        redis.start_again().expect("starts after a kill");
        assert_eq!(redis.command(&["GET", "late"]), "1");
        assert!(redis.dir().join("appendonlydir").is_dir());
    }
}
