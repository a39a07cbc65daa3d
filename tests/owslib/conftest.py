"""Fixtures shared by the client tests: a running local mesh (`wpsmesh up` with three nodes, on
free ports) and the country points uploaded through its file API."""

import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORLD_MAP = "/usr/share/qgis/resources/data/world_map.gpkg"


_NEXT = [20000 + (os.getpid() * 7919 + time.time_ns()) % 12000]


def free_port():
    """A free port below Linux's ephemeral range (32768-60999), so no outgoing connection's
    local port can take it before the mesh binds it; never the same twice in this run."""
    for _ in range(12000):
        port = 20000 + (_NEXT[0] - 20000) % 12000
        _NEXT[0] = port + 1
        if _free(port):
            return port
    raise RuntimeError("no free port in 20000-32000")


@pytest.fixture(scope="module")
def mesh():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    binary = os.path.join(target, "debug", "wpsmesh")
    assert os.path.exists(binary), "build first: cargo build --bins"
    data = tempfile.mkdtemp()
    port, storage, node = free_port(), free_port(), free_port()
    # Three consecutive free ports for the nodes.
    while any(not _free(node + i) for i in range(3)):
        node = free_port()
    env = dict(os.environ, WPSMESH_NODE__LISTEN=f"127.0.0.1:{node}", RUST_LOG="info")
    log = open(os.path.join(data, "mesh.log"), "w")
    proc = subprocess.Popen(
        [binary, "up", "--nodes", "3", "--workers", "1", "--port", str(port),
         "--storage-port", str(storage), "--data-dir", data],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        wait_ready(url, proc, os.path.join(data, "mesh.log"), nodes=3)
        yield {"url": url, "data": data}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_ready(url, proc, log_path, nodes, timeout=180):
    """Polls until the mesh is ready: `GET /ready` answers 200 (or the edge has no /ready yet,
    404) and `/metrics` shows all `nodes` healthy (the load test needs every node, /ready only
    one). Fails at once, with the log's end, if `wpsmesh up` exits."""
    deadline = time.monotonic() + timeout

    def status(path):
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return None, ""

    while True:
        if proc.poll() is not None:
            with open(log_path) as f:
                pytest.fail(f"wpsmesh up exited with {proc.returncode}:\n{f.read()[-3000:]}")
        ready, _ = status("/ready")
        if ready in (200, 404):
            code, metrics = status("/metrics")
            if code == 200 and re.search(rf"^wpsmesh_edge_nodes {nodes}$", metrics, re.M):
                return
        if time.monotonic() > deadline:
            with open(log_path) as f:
                pytest.fail(f"mesh not ready with {nodes} nodes within {timeout} s:\n{f.read()[-3000:]}")
        time.sleep(0.2)


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def points(mesh):
    path = os.path.join(mesh["data"], "points.geojson")
    subprocess.run(["ogr2ogr", path, WORLD_MAP, "-dialect", "sqlite", "-sql",
                    "SELECT ST_PointOnSurface(geom) AS geom, name FROM countries"], check=True)
    with open(path, "rb") as f:
        answer = requests.put(f"{mesh['url']}/api/file/upload",
                              files={"file": ("points.geojson", f)}, timeout=30).json()
    assert answer["success"] is True, answer
    assert re.fullmatch(r"[0-9a-f]{32}", answer["data"]["name"])
    assert answer["data"]["format"] == "geojson"
    return f"{mesh['url']}/api/file/retrieve/{answer['data']['name']}.geojson"
