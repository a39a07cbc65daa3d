"""OWSLib, a real WPS client no one here wrote, against a running local mesh (`wpsmesh up`):
capabilities, a description, an Execute of native:buffer on a file uploaded through the file
API, the output downloaded by reference; an asynchronous Execute followed at its
statusLocation (checkStatus and monitorExecution); then the original service's demo load: 12
concurrent clients x 3 Executes over 3 nodes, every one succeeding and every node serving some."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from owslib.wps import ASYNC, SYNC, ComplexDataInput, WebProcessingService, monitorExecution

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORLD_MAP = "/usr/share/qgis/resources/data/world_map.gpkg"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mesh():
    binary = os.path.join(ROOT, "target", "debug", "wpsmesh")
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
    deadline = time.time() + 180
    while True:
        assert proc.poll() is None, open(os.path.join(data, "mesh.log")).read()[-3000:]
        try:
            metrics = urllib.request.urlopen(f"{url}/metrics", timeout=2).read().decode()
            if re.search(r"^wpsmesh_edge_nodes 3$", metrics, re.M):
                break
        except OSError:
            pass
        assert time.time() < deadline, "mesh did not come up with 3 nodes"
        time.sleep(0.2)
    yield {"url": url, "data": data}
    proc.terminate()
    proc.wait(timeout=30)


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
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


def test_capabilities_and_description(mesh):
    wps = WebProcessingService(f"{mesh['url']}/api/wps", version="1.0.0")
    ids = [p.identifier for p in wps.processes]
    assert len(ids) >= 300
    assert "native:buffer" in ids
    buffer = wps.describeprocess("native:buffer")
    inputs = {i.identifier: i for i in buffer.dataInputs}
    assert inputs["INPUT"].dataType == "ComplexData"
    assert inputs["DISTANCE"].dataType.endswith("double")
    assert [o.identifier for o in buffer.processOutputs] == ["OUTPUT"]


def buffer_once(url, href):
    wps = WebProcessingService(f"{url}/api/wps", version="1.0.0", skip_caps=True)
    execution = wps.execute(
        "native:buffer",
        inputs=[("INPUT", ComplexDataInput(href, mimeType="application/geo+json")),
                ("DISTANCE", "1.5")],
        output=[("OUTPUT", True)],
        mode=SYNC)
    assert execution.isSucceded(), [e.text for e in execution.errors]
    return execution.processOutputs[0].reference


def test_execute_buffer_and_download_output(mesh, points):
    reference = buffer_once(mesh["url"], points)
    assert reference.startswith(f"{mesh['url']}/api/file/retrieve/")
    doc = requests.get(reference, timeout=30)
    assert doc.status_code == 200
    assert doc.headers["content-type"].startswith("application/geo+json")
    features = doc.json()["features"]
    assert len(features) == 240
    assert {f["geometry"]["type"] for f in features} <= {"Polygon", "MultiPolygon"}


def submit_buffer(url, href):
    wps = WebProcessingService(f"{url}/api/wps", version="1.0.0", skip_caps=True)
    return wps.execute(
        "native:buffer",
        inputs=[("INPUT", ComplexDataInput(href, mimeType="application/geo+json")),
                ("DISTANCE", "1.5")],
        output=[("OUTPUT", True)],
        mode=ASYNC)


def test_async_execute_followed_at_its_status_location(mesh, points):
    execution = submit_buffer(mesh["url"], points)
    assert execution.status == "ProcessAccepted", execution.response
    assert re.fullmatch(re.escape(mesh["url"]) + r"/api/wps/status/[0-9a-f]{32}",
                        execution.statusLocation), execution.statusLocation
    deadline = time.time() + 120
    while not execution.isComplete():
        assert time.time() < deadline, execution.response
        execution.checkStatus(sleepSecs=0.2)
    assert execution.isSucceded(), [e.text for e in execution.errors]
    reference = execution.processOutputs[0].reference
    assert reference.startswith(f"{mesh['url']}/api/file/retrieve/")
    assert len(requests.get(reference, timeout=30).json()["features"]) == 240

    # monitorExecution polls until the end; bounded here so a stuck job fails the test.
    second = submit_buffer(mesh["url"], points)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(monitorExecution, second, sleepSecs=0.2).result(timeout=120)
    assert second.isSucceded(), [e.text for e in second.errors]
    assert second.percentCompleted == 100
    assert second.processOutputs[0].reference.startswith(f"{mesh['url']}/api/file/retrieve/")


def node_calls(url):
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return {m[0]: int(m[1]) for m in re.findall(
        r'^wpsmesh_edge_node_calls_total\{node="([^"]+)"\} (\d+)$', metrics, re.M)}


def test_twelve_clients_three_executes_each_over_three_nodes(mesh, points):
    before = node_calls(mesh["url"])
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(
            lambda _: [buffer_once(mesh["url"], points) for _ in range(3)], range(12)))
    assert sum(len(r) for r in results) == 36
    assert all(ref.startswith(mesh["url"]) for r in results for ref in r)
    after = node_calls(mesh["url"])
    assert len(after) == 3
    served = {node: after[node] - before.get(node, 0) for node in after}
    assert all(n > 0 for n in served.values()), served
