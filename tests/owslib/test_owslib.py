"""OWSLib, a real WPS client no one here wrote, against a running local mesh (`wpsmesh up`):
capabilities, a description, an Execute of native:buffer on a file uploaded through the file
API, the output downloaded by reference; an asynchronous Execute followed at its
statusLocation (checkStatus and monitorExecution); a zipped shapefile uploaded through the file
API and buffered with and without a declared mimeType; then the original service's demo load: 12
concurrent clients x 3 Executes over 3 nodes, every one succeeding and every node serving some."""

import json
import os
import re
import subprocess
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from owslib.wps import ASYNC, SYNC, ComplexDataInput, WebProcessingService, monitorExecution

WORLD_MAP = "/usr/share/qgis/resources/data/world_map.gpkg"


@pytest.fixture(scope="module")
def zipped_points(mesh):
    """The country points as a shapefile (.shp, .shx, .dbf, .prj at the zip root), uploaded
    through the file API; its href (the answer's `data.url` when the edge gives one)."""
    folder = os.path.join(mesh["data"], "shp")
    os.makedirs(folder, exist_ok=True)
    shp = os.path.join(folder, "points.shp")
    subprocess.run(["ogr2ogr", shp, WORLD_MAP, "-dialect", "sqlite", "-sql",
                    "SELECT ST_PointOnSurface(geom) AS geom, name FROM countries"], check=True)
    archive = os.path.join(mesh["data"], "points.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(os.listdir(folder)):
            z.write(os.path.join(folder, name), arcname=name)
        assert {n.rsplit(".", 1)[1] for n in z.namelist()} >= {"shp", "shx", "dbf", "prj"}
    with open(archive, "rb") as f:
        answer = requests.put(f"{mesh['url']}/api/file/upload",
                              files={"file": ("points.zip", f)}, timeout=30).json()
    assert answer["success"] is True, answer
    data = answer["data"]
    assert data["format"] == "zip", answer
    return data.get("url") or f"{mesh['url']}/api/file/retrieve/{data['name']}.zip"


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


@pytest.mark.parametrize("mime_type", ["application/x-zipped-shp", None],
                         ids=["declared", "undeclared"])
def test_execute_buffer_on_a_zipped_shapefile(mesh, zipped_points, mime_type):
    wps = WebProcessingService(f"{mesh['url']}/api/wps", version="1.0.0", skip_caps=True)
    execution = wps.execute(
        "native:buffer",
        inputs=[("INPUT", ComplexDataInput(zipped_points, mimeType=mime_type)),
                ("DISTANCE", "0.5")],
        output=[("OUTPUT", True)],
        mode=SYNC)
    assert execution.isSucceded(), [e.text for e in execution.errors]
    reference = execution.processOutputs[0].reference
    assert reference.startswith(f"{mesh['url']}/api/file/retrieve/")
    doc = requests.get(reference, timeout=30)
    assert doc.status_code == 200
    assert len(doc.json()["features"]) == 240


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
