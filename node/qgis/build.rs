//! Fixes the embedded interpreter at build time: the home and executable of the Python pyo3
//! links against (`PYO3_PYTHON`, Debian's `/usr/bin/python3.11` in `.cargo/config.toml`), so
//! the worker never takes its prefix from the caller's PATH, virtualenv or PYTHONHOME.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-I",
            "-c",
            "import sys; print(sys.base_prefix); print(sys.executable)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{python} failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8 paths");
    let mut lines = text.lines();
    let (Some(home), Some(executable)) = (lines.next(), lines.next()) else {
        panic!("{python} did not print its prefix and executable: {text:?}");
    };
    println!("cargo:rustc-env=WPSMESH_PYTHON_HOME={home}");
    println!("cargo:rustc-env=WPSMESH_PYTHON_EXECUTABLE={executable}");
}
