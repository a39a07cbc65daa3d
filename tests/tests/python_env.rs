//! A node started from a shell whose PATH puts a virtualenv's `python3` first (and with
//! `PYTHONHOME`/`PYTHONPATH` pointing elsewhere) still starts its PyQGIS workers: the embedded
//! interpreter is the one QGIS was built for, whatever the caller's environment says.

use std::process::Command;

use serde_json::json;
use wpsmesh_tests::mesh::{feature_count, upload};
use wpsmesh_tests::{Launch, data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ignore_the_callers_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A real virtualenv of Debian's Python, without QGIS in it.
    let venv = dir.path().join("venv");
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv (python3-venv) runs");
    assert!(made.success(), "venv creation failed");
    let bin = venv.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Whoever resolves python3 through this PATH gets an interpreter without QGIS.
    let probe = Command::new("python3")
        .args(["-c", "import qgis"])
        .env("PATH", &path)
        .output()
        .expect("python3 runs");
    assert!(
        !probe.status.success(),
        "the venv's python3 should not see qgis"
    );

    let storage = Launch::storage(dir.path(), "storage")
        .start()
        .await
        .expect("storage starts");
    let edge_port = wpsmesh_tests::free_port();
    let edge_url = format!("http://127.0.0.1:{edge_port}");
    let node = Launch::node(dir.path(), "node", &storage.uri())
        .env("PATH", &path)
        .env("VIRTUAL_ENV", venv.to_string_lossy())
        .env("PYTHONHOME", venv.to_string_lossy())
        .env("PYTHONPATH", bin.to_string_lossy())
        .start()
        .await
        .expect("node starts its workers with the venv first on PATH");
    let edge = Launch::edge(dir.path(), "edge", &storage.uri(), &[node.uri()])
        .port(edge_port)
        .env("WPSMESH_EDGE__PUBLIC_URL", &edge_url)
        .start()
        .await
        .expect("edge starts");

    let http = reqwest::Client::new();
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let href = upload(&http, &edge_url, &points).await;
    let body = json!({
        "identifier": "native:buffer",
        "inputs": {
            "INPUT": {"type": "reference", "href": href},
            "DISTANCE": {"type": "literal", "value": 0.5}
        }
    });
    let answer: serde_json::Value = http
        .post(format!("{edge_url}/api/wps/jobs"))
        .json(&body)
        .send()
        .await
        .expect("execute")
        .json()
        .await
        .expect("json answer");
    assert_eq!(answer["status"]["status"], "succeeded", "{answer}");
    let out = answer["outputs"]["OUTPUT"]["href"]
        .as_str()
        .expect("output href");
    let bytes = http
        .get(out)
        .send()
        .await
        .expect("output")
        .bytes()
        .await
        .expect("output bytes");
    assert_eq!(feature_count(&bytes), 240);
    // The node says at start-up which interpreter its workers embed.
    let log = node.log();
    let started = log
        .lines()
        .find(|l| l.contains("worker started"))
        .unwrap_or_else(|| panic!("no worker started line: {}", node.log_tail(20)));
    assert!(started.contains("python_home=\"/usr\""), "{started}");
    drop(edge);
}
