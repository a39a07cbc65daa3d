//! What the pool tests share: their input files and the worker binary they run.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use wpsmesh_node::pool::WORKER_BINARY_ENV;
use wpsmesh_tests::data;

/// Copies of one country in the slow layer: buffering it takes about a minute and reports
/// progress every ~0.6 s (one feature takes ~30 ms).
pub const SLOW_COPIES: u32 = 2000;

/// Input files, made once per test binary under cargo's target tmp dir.
pub struct Data {
    pub dir: PathBuf,
    /// 240 country points (GeoJSON).
    pub points: PathBuf,
    /// France, SLOW_COPIES times (GeoPackage).
    pub slow: PathBuf,
}

impl Data {
    /// Makes the files in a folder of their own, `name` (one per test binary: they run at once).
    pub fn make(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::create_dir_all(&dir).expect("data dir");
        let points = data::derive(&dir, "points.geojson", data::POINTS_SQL);
        let slow = data::derive(&dir, "slow.gpkg", &data::slow_sql(SLOW_COPIES));
        Self { dir, points, slow }
    }
}

/// Builds `wpsmesh-worker` (the pool finds it next to the test's `deps` folder), unless
/// `$WPSMESH_WORKER_BIN` names one.
pub fn build_worker() {
    if std::env::var_os(WORKER_BINARY_ENV).is_some() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "wpsmesh-qgis", "--bin", "wpsmesh-worker"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "cannot build wpsmesh-worker"
    );
}
