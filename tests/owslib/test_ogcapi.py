"""OGC API - Processes at the edge's root through OWSLib's `ogcapi.processes.Processes`, a real
client no one here wrote, against a running local mesh: conformance, the API definition, the
process list and native:buffer's description checked for real content; the list's pages; the
refusals (unknown process, bad limit, a request accepting only HTML) beside their positive
controls; then native:buffer executed synchronously (results document, raw output) with its
input by reference (uploaded through the file API) and by value, and asynchronously, the job
followed through its Location until successful and its results fetched."""

import time

import requests
from owslib.ogcapi.processes import Processes

NO_SUCH_PROCESS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process"
INVALID_PARAMETER = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/invalid-parameter"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


def client(mesh):
    return Processes(mesh["url"])


def problem(response, status, kind=None):
    """The problem document of `response`, checked: status, media type and members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    if kind:
        assert body["type"] == kind, body
    return body


def test_landing_conformance_and_api(mesh):
    p = client(mesh)
    rels = {(link["rel"], link.get("type")) for link in p.links}
    assert ("service-desc", OPENAPI_JSON) in rels
    for rel in ["self", "service-doc", "conformance",
                "http://www.opengis.net/def/rel/ogc/1.0/processes",
                "http://www.opengis.net/def/rel/ogc/1.0/job-list"]:
        assert rel in {r for r, _ in rels}, rel
    conf = p.conformance()["conformsTo"]
    assert set(conf) == {CONF + c for c in ["core", "ogc-process-description", "json", "oas30",
                                            "job-list", "dismiss", "callback"]}
    assert CONF + "html" not in conf
    api = p.api()
    assert api["openapi"].startswith("3.0.")
    assert {"/processes", "/processes/{processID}", "/processes/{processID}/execution",
            "/jobs", "/jobs/{jobID}", "/jobs/{jobID}/results"} <= api["paths"].keys()
    answer = requests.get(f"{mesh['url']}/api", timeout=10)
    assert answer.headers["content-type"] == OPENAPI_JSON


def test_process_list_and_buffer_description(mesh):
    p = client(mesh)
    processes = {s["id"]: s for s in p.processes()}
    assert len(processes) >= 300, "the default page holds every process"
    buffer = processes["native:buffer"]
    assert buffer["title"] and buffer["version"]
    assert set(buffer["jobControlOptions"]) >= {"sync-execute", "async-execute"}
    assert buffer["outputTransmission"] == ["value", "reference"]
    assert buffer["links"][0]["href"] == f"{mesh['url']}/processes/native:buffer"

    d = p.process("native:buffer")
    assert d["id"] == "native:buffer"
    distance = d["inputs"]["DISTANCE"]
    assert distance["schema"]["type"] == "number"
    assert isinstance(distance["schema"]["default"], (int, float))
    media = {alt["contentMediaType"] for alt in d["inputs"]["INPUT"]["schema"]["oneOf"]}
    assert "application/geo+json" in media
    assert d["inputs"]["INPUT"]["minOccurs"] == 1
    join = d["inputs"]["JOIN_STYLE"]["schema"]
    assert join["type"] == "string" and len(join["enum"]) == 3 and join["default"] in join["enum"]
    assert d["inputs"]["DISSOLVE"]["schema"]["type"] == "boolean"
    assert "OUTPUT" in d["outputs"]
    assert any(link["rel"].endswith("/execute") for link in d["links"])


def test_pages_follow_next_and_prev(mesh):
    url = f"{mesh['url']}/processes"
    first = requests.get(url, params={"limit": 5}, timeout=10).json()
    assert len(first["processes"]) == 5
    links = {link["rel"]: link["href"] for link in first["links"]}
    assert "prev" not in links
    second = requests.get(links["next"], timeout=10).json()
    assert len(second["processes"]) == 5
    assert not {s["id"] for s in first["processes"]} & {s["id"] for s in second["processes"]}
    back = {link["rel"]: link["href"] for link in second["links"]}["prev"]
    assert requests.get(back, timeout=10).json()["processes"] == first["processes"]


def test_refusals_name_the_reason(mesh):
    url = mesh["url"]
    body = problem(requests.get(f"{url}/processes/nope:nothing", timeout=10), 404,
                   NO_SUCH_PROCESS)
    assert "nope:nothing" in body["detail"]
    for bad in ["0", "10001", "many"]:
        body = problem(requests.get(f"{url}/processes", params={"limit": bad}, timeout=10), 400,
                       INVALID_PARAMETER)
        assert body["parameter"] == "limit" and "limit" in body["detail"]
    # Positive control: the largest limit is fine.
    assert requests.get(f"{url}/processes", params={"limit": 10000}, timeout=10).ok
    body = problem(requests.get(f"{url}/conformance", headers={"Accept": "text/html"},
                                timeout=10), 406)
    assert "text/html" in body["detail"]
    assert requests.get(f"{url}/conformance", headers={"Accept": "application/json"},
                        timeout=10).ok


def buffered(mesh, href):
    """The features of the GeoJSON at `href` (an output on the file API)."""
    assert href.startswith(f"{mesh['url']}/api/file/retrieve/"), href
    answer = requests.get(href, timeout=30)
    assert answer.status_code == 200
    return answer.json()["features"]


def test_execute_sync_document_by_reference(mesh, points):
    p = client(mesh)
    results = p.execute("native:buffer",
                        inputs={"INPUT": {"href": points, "type": "application/geo+json"},
                                "DISTANCE": 1.5},
                        outputs={"OUTPUT": {"transmissionMode": "reference"}})
    output = results["OUTPUT"]
    features = buffered(mesh, output["href"])
    assert len(features) == 240
    assert {f["geometry"]["type"] for f in features} <= {"Polygon", "MultiPolygon"}


def test_execute_sync_raw_by_value(mesh):
    three = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"n": i},
         "geometry": {"type": "Point", "coordinates": [i, i]}} for i in range(3)]}
    p = client(mesh)
    # OWSLib's own execute, response raw: the GeoJSON output itself comes back (OWSLib parses
    # the JSON body), its media type in the response headers.
    answer = p.execute("native:buffer",
                       inputs={"INPUT": {"value": three, "mediaType": "application/geo+json"},
                               "DISTANCE": 0.5},
                       outputs={"OUTPUT": {"transmissionMode": "value",
                                           "format": {"mediaType": "application/geo+json"}}},
                       response="raw")
    assert p.response_headers["Content-Type"].startswith("application/geo+json")
    assert answer["type"] == "FeatureCollection", answer
    features = answer["features"]
    assert len(features) == 3
    assert {f["geometry"]["type"] for f in features} <= {"Polygon", "MultiPolygon"}
    # Each ring lies 0.5 around its point.
    for f in features:
        n = f["properties"]["n"]
        rings = f["geometry"]["coordinates"]
        if f["geometry"]["type"] == "MultiPolygon":
            rings = [r for polygon in rings for r in polygon]
        for x, y in (c[:2] for ring in rings for c in ring):
            assert abs(((x - n) ** 2 + (y - n) ** 2) ** 0.5 - 0.5) < 0.01, (n, x, y)


def test_execute_async_followed_through_location(mesh, points):
    p = client(mesh)
    status = p.execute("native:buffer",
                       inputs={"INPUT": {"href": points, "type": "application/geo+json"},
                               "DISTANCE": 1.5},
                       outputs={"OUTPUT": {"transmissionMode": "reference"}}, async_=True)
    location = p.response_headers["Location"]
    assert location == f"{mesh['url']}/jobs/{status['jobID']}"
    assert status["status"] in {"accepted", "running", "successful"}
    deadline = time.monotonic() + 120
    while status["status"] in {"accepted", "running"}:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
        status = requests.get(location, timeout=10).json()
    assert status["status"] == "successful", status
    results_link = [link["href"] for link in status["links"] if link["rel"].endswith("/results")]
    assert results_link == [f"{location}/results"]
    results = requests.get(results_link[0], timeout=10).json()
    assert len(buffered(mesh, results["OUTPUT"]["href"])) == 240
