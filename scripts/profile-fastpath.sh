#!/usr/bin/env bash
# Profiles the fast path of issue 14: runs bench fastpath's load alone (WPSMESH_BENCH_HOLD=1:
# release mesh, 8 keep-alive clients sending the RawDataOutput Execute of native:buffer) and
# `perf record` on the edge, the node, storage and every worker for SECONDS, into
# DIR/{edge,node,storage,worker-PID}.perf.data (bench output in DIR/bench.log).
#
# Usage: scripts/profile-fastpath.sh DIR [SECONDS]      (default 15 s)
# Env: WPSMESH_BENCH_CLIENTS (8), WPSMESH_BENCH_WORKERS (one per core),
#      PERF_CALLGRAPH (default `-g`; `--call-graph dwarf` for deeper Rust stacks, larger files).
# Then e.g. `perf report -i DIR/node.perf.data`.
set -euo pipefail
out=${1:?usage: scripts/profile-fastpath.sh DIR [SECONDS]}
secs=${2:-15}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wpsmesh/target}"
cargo build --release --bins
cargo bench -p wpsmesh-tests --bench fastpath --no-run

log="$out/bench.log"
# The load outlasts the recordings by a few seconds.
WPSMESH_BENCH_HOLD=1 WPSMESH_BENCH_SECS=$((secs + 5)) \
    cargo bench -p wpsmesh-tests --bench fastpath >"$log" 2>&1 &
bench=$!
until grep -qs '^pids ' "$log"; do
    if ! kill -0 "$bench" 2>/dev/null; then
        cat "$log"
        exit 1
    fi
    sleep 1
done

# pids edge=1 node=2 storage=3 workers=4,5
read -r -a fields <<<"$(grep '^pids ' "$log")"
recorders=()
record() {
    # shellcheck disable=SC2086 # PERF_CALLGRAPH is a list of perf options
    /usr/bin/perf record ${PERF_CALLGRAPH:--g} -p "$2" -o "$out/$1.perf.data" \
        -- sleep "$secs" >"$out/$1.perf.log" 2>&1 &
    recorders+=("$!")
}
for field in "${fields[@]:1}"; do
    name=${field%%=*}
    value=${field#*=}
    if [ "$name" = workers ]; then
        for pid in ${value//,/ }; do
            record "worker-$pid" "$pid"
        done
    else
        record "$name" "$value"
    fi
done
echo "recording ${#recorders[@]} processes for $secs s: ${fields[*]:1}"
wait "${recorders[@]}"
wait "$bench"
grep '^|' "$log"
ls -l "$out"/*.perf.data
