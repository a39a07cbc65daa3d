#!/usr/bin/env bash
# Sets up what is missing, then runs the local mesh on embedded defaults until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wpsmesh/target}"
cargo build --release --bins --locked
exec "$CARGO_TARGET_DIR/release/wpsmesh" up "$@"
