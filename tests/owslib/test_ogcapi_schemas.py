"""The OGC API answers of a running local mesh against the OGC schemas (OGC API - Processes 1.0,
`../shared/schemas/ogcapi-processes-1.0`, read offline with a referencing registry over their
YAML files) and against the mesh's own `/api` components: landing page, conformance, process
list, process descriptions, statusInfo, job list and results; then Schemathesis over the mesh's own `/api`: every operation, a bounded number of
examples, no 5xx and every response matching the schema the document gives it."""

import glob
import os
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

import jsonschema
import pytest
import referencing
import requests
import yaml
from referencing.jsonschema import DRAFT4

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.environ.get("OGCAPI_SCHEMAS") or os.path.join(
    os.path.dirname(ROOT), "shared", "schemas", "ogcapi-processes-1.0", "openapi", "schemas")


@pytest.fixture(scope="module")
def ogc():
    """A validator factory over the OGC schemas: `ogc("statusInfo")(document)`."""
    files = glob.glob(os.path.join(SCHEMAS, "*.yaml"))
    if not files:
        pytest.skip(f"no OGC schemas at {SCHEMAS}")
    resources = []
    for path in files:
        with open(path) as f:
            contents = yaml.safe_load(f)
        resources.append((f"file://{path}",
                          referencing.Resource.from_contents(contents, default_specification=DRAFT4)))
    registry = referencing.Registry().with_resources(resources)

    def validator(name):
        uri = f"file://{os.path.join(SCHEMAS, name)}.yaml"
        v = jsonschema.Draft4Validator({"$ref": uri}, registry=registry)

        def check(document):
            errors = sorted(v.iter_errors(document), key=lambda e: list(e.path))
            assert not errors, f"{name}: " + "; ".join(
                f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
        return check
    return validator


@pytest.fixture(scope="module")
def documented(mesh):
    """A validator factory over the mesh's own `/api` components: `documented("StatusInfo")`."""
    components = get(mesh, "/api")["components"]

    def validator(name):
        v = jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{name}",
                                        "components": components})

        def check(document):
            errors = list(v.iter_errors(document))
            assert not errors, f"{name}: " + "; ".join(e.message[:200] for e in errors[:5])
        return check
    return validator


def get(mesh, path, **params):
    answer = requests.get(f"{mesh['url']}{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_core_documents_match_the_ogc_schemas(mesh, ogc, documented):
    ogc("landingPage")(get(mesh, "/"))
    documented("LandingPage")(get(mesh, "/"))
    ogc("confClasses")(get(mesh, "/conformance"))
    page = get(mesh, "/processes", limit=50)
    ogc("processList")(page)
    documented("ProcessList")(page)
    documented("Process")(get(mesh, "/processes/native:buffer"))
    # Negative control: the validator does refuse a summary without its id.
    broken = dict(page, processes=[{k: v for k, v in page["processes"][0].items() if k != "id"}])
    with pytest.raises(AssertionError):
        ogc("processList")(broken)


def test_every_process_description_matches(mesh, ogc):
    check = ogc("process")
    ids = [s["id"] for s in get(mesh, "/processes")["processes"]]
    assert len(ids) >= 300
    for pid in ids:
        check(get(mesh, f"/processes/{pid}"))


def test_job_documents_match_the_ogc_schemas(mesh, ogc, documented, points):
    answer = requests.post(
        f"{mesh['url']}/processes/native:buffer/execution",
        json={"inputs": {"INPUT": {"href": points, "type": "application/geo+json"},
                         "DISTANCE": 1.0},
              "outputs": {"OUTPUT": {"transmissionMode": "reference"}}},
        headers={"Prefer": "respond-async"}, timeout=60)
    assert answer.status_code == 201, answer.text
    status = answer.json()
    ogc("statusInfo")(status)
    documented("StatusInfo")(status)
    location = answer.headers["Location"]
    deadline = time.monotonic() + 120
    while status["status"] in {"accepted", "running"}:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
        status = requests.get(location, timeout=10).json()
        ogc("statusInfo")(status)
    assert status["status"] == "successful", status
    documented("StatusInfo")(status)
    results = get(mesh, f"/jobs/{status['jobID']}/results")
    ogc("results")(results)
    documented("Results")(results)
    jobs = get(mesh, "/jobs", limit=10)
    ogc("jobList")(jobs)
    documented("JobList")(jobs)
    assert status["jobID"] in {j["jobID"] for j in jobs["jobs"]}


def test_schemathesis_over_the_live_api(mesh):
    """Every operation of `/api`, a few examples each: no 5xx, every answer as documented."""
    binary = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    api = get(mesh, "/api")
    operations = {f"{method.upper()} {path}" for path, ops in api["paths"].items() for method in ops}
    with tempfile.TemporaryDirectory() as work:
        run = subprocess.run(
            [binary, "run", f"{mesh['url']}/api", "--url", mesh["url"],
             "--checks", "not_a_server_error,response_schema_conformance",
             "--phases", "examples,coverage,fuzzing", "--max-examples", "10",
             "--workers", "2", "--seed", "1", "--generation-database", "none",
             "--request-timeout", "30", "--no-color",
             "--report", "junit", "--report-dir", work],
            cwd=work, capture_output=True, text=True, timeout=600)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-6000:]
        suite = ElementTree.parse(glob.glob(os.path.join(work, "*.xml"))[0]).getroot()
    tested = {case.get("name") for case in suite.iter("testcase")}
    # Schemathesis leaves out the operation serving the document it reads (GET /api).
    assert tested == operations - {"GET /api"}, (tested, operations)
    assert len(tested) >= 9
    assert "passed" in out and "failed" not in out.split("Test cases:")[-1], out[-3000:]
