//! Bench fastpath: the peer the issue measured, PyWPS 4.8.1 under gunicorn running native:buffer
//! through PyQGIS (`benches/peer/pywps_buffer.py`), one sync worker per core, so it is loaded in
//! turns with the mesh in the same run. Installed by `scripts/setup.sh` into `.tools/peer-venv`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use wpsmesh_tests::{free_port, signal};

/// PyWPS and gunicorn, pinned (scripts/setup.sh installs the same).
pub const LABEL: &str = "PyWPS 4.8.1 + gunicorn";

pub struct Peer {
    child: Child,
    base: String,
}

/// The peer's venv: `$WPSMESH_PEER_VENV`, else the one `scripts/setup.sh` makes.
fn venv() -> PathBuf {
    std::env::var_os("WPSMESH_PEER_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/peer-venv"),
        PathBuf::from,
    )
}

impl Peer {
    /// Starts gunicorn with `workers` workers under `dir` and waits until GetCapabilities
    /// answers (every worker imports QGIS first).
    pub async fn start(dir: &Path, workers: usize, http: &reqwest::Client) -> anyhow::Result<Self> {
        let gunicorn = venv().join("bin/gunicorn");
        anyhow::ensure!(
            gunicorn.exists(),
            "{} is missing: run scripts/setup.sh (it installs the peer's venv)",
            gunicorn.display()
        );
        let dir = dir.join("peer");
        for sub in ["work", "out"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = dir.join("pywps.cfg");
        std::fs::write(
            &config,
            format!(
                "[server]\nurl = {base}/wps\noutputurl = {base}/outputs\noutputpath = {out}\n\
                 workdir = {work}\nmaxsingleinputsize = 64mb\n\n\
                 [logging]\nlevel = WARNING\ndatabase = sqlite:///:memory:\n",
                out = dir.join("out").display(),
                work = dir.join("work").display(),
            ),
        )?;
        let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
        let child = Command::new(gunicorn)
            .args([
                "-w",
                &workers.to_string(),
                "-b",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--chdir")
            .arg(&app_dir)
            .arg("pywps_buffer:application")
            .env("PYWPS_CFG", &config)
            .stdout(std::fs::File::create(dir.join("gunicorn.log"))?)
            .stderr(std::fs::File::create(dir.join("gunicorn.err"))?)
            .spawn()?;
        let peer = Self { child, base };
        let capabilities = format!("{}/wps?service=WPS&request=GetCapabilities", peer.base);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match http.get(&capabilities).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => {
                    anyhow::bail!("the peer did not answer; see {}", dir.display())
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Ok(peer)
    }

    /// gunicorn's master; its workers are its children.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peer's WPS 1.0.0 KVP GET Execute of the buffer on the GeoJSON at `href`, raw output
    /// (its only format; PyWPS 4.8.1 does not parse `@mimeType` on a RawDataOutput).
    pub fn url(&self, href: &str, distance: f64) -> String {
        format!(
            "{}/wps?service=WPS&request=Execute&version=1.0.0&identifier=buffer\
             &DataInputs=INPUT=@xlink:href={href}@mimeType=application/geo%2Bjson;DISTANCE={distance}\
             &RawDataOutput=OUTPUT",
            self.base
        )
    }
}

impl Drop for Peer {
    /// gunicorn's quick shutdown (SIGINT) takes its workers with it.
    fn drop(&mut self) {
        let _ = signal(self.child.id(), Signal::SIGINT);
        let _ = self.child.wait();
    }
}
