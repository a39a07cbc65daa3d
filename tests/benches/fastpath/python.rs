//! Bench fastpath: `processing_run.py --serve`, one warm PyQGIS process running native:buffer
//! through `processing.run` on request, so its runs interleave with the Executes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use wpsmesh_tests::{ChildGuard, cpu};

pub struct ProcessingRun {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    child: ChildGuard,
}

/// One run: its time (measured in Python around `processing.run`), the CPU the process used
/// for it and the GeoJSON it wrote.
pub struct Run {
    pub time: Duration,
    pub cpu_secs: f64,
    pub output: Vec<u8>,
}

impl ProcessingRun {
    /// Starts the process on `points` with `distance`, writing into `dir`; waits until it is
    /// ready (QGIS initialised).
    pub fn start(points: &Path, dir: &Path, distance: f64) -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/processing_run.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg("--serve")
            .arg(points)
            .arg(dir)
            .arg(distance.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("processing_run.log"))?)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut me = Self {
            stdin,
            stdout,
            child: ChildGuard(child),
        };
        anyhow::ensure!(me.line()? == "ready", "processing_run.py did not start");
        Ok(me)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        anyhow::ensure!(!line.is_empty(), "processing_run.py ended");
        Ok(line.trim().to_owned())
    }

    pub fn run(&mut self) -> anyhow::Result<Run> {
        let before = cpu::stat(self.child.id()).map(|s| s.own);
        writeln!(self.stdin, "run")?;
        self.stdin.flush()?;
        let line = self.line()?;
        let after = cpu::stat(self.child.id()).map(|s| s.own);
        let (ms, path) = line
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("processing_run.py answered {line:?}"))?;
        let path = PathBuf::from(path);
        let output = std::fs::read(&path)?;
        std::fs::remove_file(&path)?;
        let ticks = after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b));
        Ok(Run {
            time: Duration::from_secs_f64(ms.parse::<f64>()? / 1000.0),
            cpu_secs: ticks as f64 / cpu::TICKS_PER_SEC,
            output,
        })
    }
}
