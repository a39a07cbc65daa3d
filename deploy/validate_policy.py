"""Deployment rules the schema checks cannot see, for deploy/validate.sh.

    python validate_policy.py compose RAW_COMPOSE RESOLVED_COMPOSE
    python validate_policy.py k8s RENDERED_MANIFESTS...
    python validate_policy.py self-test RAW_COMPOSE RESOLVED_COMPOSE RENDERED_MANIFESTS...
    python validate_policy.py config-keys WPSMESH_BIN RESOLVED_COMPOSE RENDERED_MANIFESTS...

Compose: every long-running service has a healthcheck, every dependency waits on a condition,
images are pinned, credentials come from the environment file. Kubernetes: every container has
probes, requests and limits and a locked-down securityContext; the node has a startup probe and
a grace period longer than its job lease; credentials only through Secret references, no Secret
committed; the HPA and PDBs point at existing workloads. `config-keys` runs `wpsmesh --dump-config`
with each wpsmesh container's command, environment and configuration file, so a key wpsmesh
does not know (it refuses unknown keys by name) fails here. `self-test` breaks copies of the inputs
and expects each rule to catch its breakage (the negative control). Exit 1 on any violation.
"""

import copy
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|REDIS_URL|CLI_AUTH$)", re.I)
ONE_SHOT = {"service_completed_successfully"}


def compose_problems(raw, resolved):
    problems = []
    services = resolved.get("services", {})
    one_shots = {
        name
        for svc in services.values()
        if isinstance(svc.get("depends_on"), dict)
        for name, dep in svc["depends_on"].items()
        if isinstance(dep, dict) and dep.get("condition") in ONE_SHOT
    }
    for name, svc in services.items():
        image = svc.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"compose: service {name}: image {image!r} is not pinned to a tag")
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if name not in one_shots and (not test or check.get("disable") or test == ["NONE"]):
            problems.append(f"compose: service {name} has no healthcheck")
        if name in one_shots and svc.get("restart", "no") != "no":
            problems.append(f"compose: one-shot {name} must not restart")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"compose: service {name}: depends_on without conditions")
            deps = {}
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            if condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"compose: {name} depends on {dep} without waiting for health")
    for name, svc in (raw.get("services") or {}).items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        for key, value in env.items():
            if SECRET_NAME.search(key) and value not in (None, "") and "${" not in str(value):
                problems.append(f"compose: {name}: {key} is written inline, not from .env")
    return problems


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*(ms|min|s|m|h)", text):
        total += int(number) * units[unit]
    return total


def k8s_problems(docs):
    problems = []
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    if by_kind.get("Secret"):
        problems.append("k8s: a Secret is part of the manifests (credentials must not be committed)")
    lease = 15.0
    for cm in by_kind.get("ConfigMap", []):
        for text in (cm.get("data") or {}).values():
            try:
                jobs = tomllib.loads(text).get("node", {}).get("jobs", {})
            except tomllib.TOMLDecodeError as e:
                problems.append(f"k8s: ConfigMap {cm['metadata']['name']}: invalid TOML: {e}")
                continue
            if "lease" in jobs:
                lease = duration_seconds(jobs["lease"])
    deployments = by_kind.get("Deployment", [])
    for dep in deployments:
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            problems.append(f"k8s: Deployment {name}: pod securityContext lacks runAsNonRoot")
        is_node = dep["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "wps-node"
        if is_node and pod.get("terminationGracePeriodSeconds", 30) <= lease:
            problems.append(
                f"k8s: Deployment {name}: terminationGracePeriodSeconds "
                f"{pod.get('terminationGracePeriodSeconds', 30)} is not above the job lease ({lease:g} s)"
            )
        for c in pod["containers"]:
            where = f"k8s: Deployment {name} container {c['name']}"
            for probe in ("readinessProbe", "livenessProbe") + (("startupProbe",) if is_node else ()):
                if probe not in c:
                    problems.append(f"{where}: no {probe}")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in (res.get(part) or {}):
                        problems.append(f"{where}: no {part}.{what}")
            sc = c.get("securityContext") or {}
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation", True):
                problems.append(f"{where}: root filesystem writable or privilege escalation allowed")
            for env in c.get("env") or []:
                if SECRET_NAME.search(env["name"]) and "value" in env:
                    problems.append(f"{where}: {env['name']} is a literal, not a secretKeyRef")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        if target not in {d["metadata"]["name"] for d in deployments}:
            problems.append(f"k8s: HPA {hpa['metadata']['name']} scales missing Deployment {target}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        want = pdb["spec"]["selector"]["matchLabels"].items()
        if not any(want <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments):
            problems.append(f"k8s: PDB {pdb['metadata']['name']} selects no Deployment's pods")
    return problems


def load_all(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    return docs


def self_test(raw, resolved, docs):
    """Each breakage must be caught: the rules can fail."""
    failures = []

    def expect(label, problems):
        if problems:
            print(f"negative control: {label}: rejected ({problems[0]})")
        else:
            failures.append(label)
            print(f"negative control: {label}: NOT rejected", file=sys.stderr)

    broken = copy.deepcopy(resolved)
    svc = next(n for n, s in broken["services"].items() if s.get("healthcheck"))
    del broken["services"][svc]["healthcheck"]
    expect(f"compose service {svc} without healthcheck", compose_problems(raw, broken))
    broken = copy.deepcopy(resolved)
    svc, spec = next((n, s) for n, s in broken["services"].items() if s.get("depends_on"))
    spec["depends_on"] = list(spec["depends_on"])
    expect(f"compose {svc} depends_on without condition", compose_problems(raw, broken))
    broken_raw = copy.deepcopy(raw)
    svc = next(n for n, s in broken_raw["services"].items() if isinstance(s.get("environment"), dict))
    broken_raw["services"][svc]["environment"]["REDIS_PASSWORD"] = "hunter2"
    expect("compose inline password", compose_problems(broken_raw, resolved))
    broken = copy.deepcopy(docs)
    node = next(d for d in broken if d["kind"] == "Deployment" and d["metadata"]["name"] == "node")
    node["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    expect("k8s node grace period under the lease", k8s_problems(broken))
    broken = copy.deepcopy(docs)
    node = next(d for d in broken if d["kind"] == "Deployment" and d["metadata"]["name"] == "node")
    del node["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    node["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    expect("k8s node without startup probe, writable root", k8s_problems(broken))
    broken = copy.deepcopy(docs) + [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}]
    expect("k8s Secret committed", k8s_problems(broken))
    return not failures


def wpsmesh_runs(resolved, docs, config_dir):
    """(label, argv, env) of every wpsmesh container: compose services and k8s Deployments."""
    runs = []
    for name, svc in resolved.get("services", {}).items():
        if not svc.get("image", "").startswith("wpsmesh/"):
            continue
        command = svc.get("command") or []
        command = command.split() if isinstance(command, str) else command
        env = {k: "" if v is None else str(v) for k, v in (svc.get("environment") or {}).items()}
        runs.append((f"compose service {name}", command, env))
    files = {}
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            path = os.path.join(config_dir, f"{cm['metadata']['name']}-{key}")
            with open(path, "w") as f:
                f.write(text)
            files[(cm["metadata"]["name"], key)] = path
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        mounts = {}
        for vol in pod.get("volumes") or []:
            if "configMap" in vol:
                mounts[vol["name"]] = vol["configMap"]["name"]
        for c in pod["containers"]:
            if not c["image"].startswith("wpsmesh/"):
                continue
            env = {}
            for e in c.get("env") or []:
                value = e.get("value", "placeholder")
                env[e["name"]] = value.replace("$(POD_IP)", "10.0.0.1")
            config = env.get("WPSMESH_CONFIG")
            if config:
                for m in c.get("volumeMounts") or []:
                    cm = mounts.get(m["name"])
                    prefix = m["mountPath"].rstrip("/") + "/"
                    if cm and config.startswith(prefix):
                        env["WPSMESH_CONFIG"] = files[(cm, config[len(prefix):])]
            label = f"k8s {dep['metadata'].get('namespace', '')}/{dep['metadata']['name']}"
            runs.append((label, list(c.get("command") or []) + list(c.get("args") or []), env))
    return runs


def config_keys(binary, resolved, docs):
    problems = []
    with tempfile.TemporaryDirectory() as config_dir:
        for label, command, env in wpsmesh_runs(resolved, docs, config_dir):
            run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
            out = subprocess.run(
                [binary, "--dump-config", *command], env=run_env, capture_output=True, text=True
            )
            if out.returncode != 0:
                problems.append(f"{label}: wpsmesh refuses its configuration: {out.stderr.strip()}")
            else:
                print(f"config keys: {label} ({' '.join(command)}): accepted")
    return problems


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "compose":
        with open(argv[2]) as f:
            raw = yaml.safe_load(f)
        with open(argv[3]) as f:
            resolved = yaml.safe_load(f)
        problems = compose_problems(raw, resolved)
    elif mode == "k8s":
        problems = k8s_problems(load_all(argv[2:]))
    elif mode == "self-test":
        with open(argv[2]) as f:
            raw = yaml.safe_load(f)
        with open(argv[3]) as f:
            resolved = yaml.safe_load(f)
        return 0 if self_test(raw, resolved, load_all(argv[4:])) else 1
    elif mode == "config-keys":
        with open(argv[3]) as f:
            resolved = yaml.safe_load(f)
        docs = load_all(argv[4:])
        problems = config_keys(argv[2], resolved, docs)
        # Negative control: a misspelt key must be refused.
        broken = copy.deepcopy(resolved)
        svc = next(s for s in broken["services"].values() if s.get("image", "").startswith("wpsmesh/"))
        svc.setdefault("environment", {})["WPSMESH_NODE__JOBS__STOR"] = "redis"
        if config_keys(argv[2], {"services": {"broken": svc}}, []):
            print("negative control: misspelt key WPSMESH_NODE__JOBS__STOR: rejected")
        else:
            problems.append("negative control: misspelt key WPSMESH_NODE__JOBS__STOR was accepted")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
