#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: formatting, proto lint, the deploy/
# checks, clippy, the Rust test suites (unit, real-backend, end-to-end) and the PyQGIS self-check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# One target dir for every clone on this machine: a fresh clone (CI) rebuilds only our crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wpsmesh/target}"

step() { printf '\n== %s\n' "$*" >&2; }

step "format"
cargo fmt --all --check
step "proto lint (buf)"
.tools/node_modules/.bin/buf lint
step "unused dependencies (cargo machete)"
cargo machete
step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "build binaries for the end-to-end tests"
cargo build --workspace --bins --locked
step "deploy validation (Dockerfile, compose, kubernetes, their config keys; no container engine)"
WPSMESH_BIN="$CARGO_TARGET_DIR/debug/wpsmesh" bash deploy/validate.sh
step "tests"
cargo test --workspace --locked --no-fail-fast
step "WPS clients against a running mesh (OWSLib)"
.tools/venv/bin/python -m pytest tests/owslib -q
