"""Self-check of wpsmesh_qgis against the real QGIS.

Run with Debian's interpreter: `/usr/bin/python3 node/qgis/python/selfcheck.py`.

Initialises QGIS, describes every process, derives points from the world map that ships with
QGIS (package qgis-common; WPSMESH_WORLD_MAP overrides the path), buffers them and checks that
bad input raises ParameterError naming the parameter. Exits non-zero on the first failure.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wpsmesh_qgis import bootstrap  # noqa: E402

WORLD_MAP = os.environ.get("WPSMESH_WORLD_MAP",
                           "/usr/share/qgis/resources/data/world_map.gpkg")


def main() -> None:
    if not os.path.exists(WORLD_MAP):
        sys.exit(f"selfcheck: {WORLD_MAP} is missing: install qgis-common or set WPSMESH_WORLD_MAP")
    timing = bootstrap.init()
    print(f"init: {timing['seconds']:.2f} s, QGIS {timing['qgis_version']}")
    check_descriptions()
    with tempfile.TemporaryDirectory(prefix="wpsmesh-selfcheck-") as tmp:
        points = make_points(tmp)
        check_buffer(tmp, points)
        check_parameter_errors(tmp, points)
        check_cancel(tmp, points)
    print("selfcheck: ok")


def check_descriptions() -> None:
    from wpsmesh_qgis import describe

    described = describe.describe_all()
    processes, skipped = described["processes"], described["skipped"]
    print(f"described: {len(processes)} processes, {len(skipped)} skipped")
    assert len(processes) >= 300, len(processes)
    buffer = next(p for p in processes if p["summary"]["id"] == "native:buffer")
    inputs = {i["id"]: i for i in buffer["inputs"]}
    assert "complex" in inputs["INPUT"], inputs["INPUT"]
    distance = inputs["DISTANCE"]["literal"]
    assert distance["data_type"] == "LITERAL_TYPE_DOUBLE", distance
    assert float(distance["default_value"]) == 10, distance
    outputs = {o["id"]: o for o in buffer["outputs"]}
    assert "complex" in outputs["OUTPUT"], outputs


def make_points(tmp: str) -> str:
    """Country centroids as GeoJSON: ogr2ogr extracts the countries, native:centroids runs
    through run()."""
    countries = os.path.join(tmp, "countries.gpkg")
    subprocess.run(["ogr2ogr", "-f", "GPKG", countries, WORLD_MAP, "countries"], check=True)
    result = run_job(tmp, "native:centroids", {"INPUT": [{"file": countries}]})
    points = result["outputs"]["OUTPUT"]["file"]
    assert count_features(points, "Point") == count_features(countries, "Polygon") == 240
    return points


def check_buffer(tmp: str, points: str) -> None:
    result = run_job(tmp, "native:buffer", {"INPUT": [{"file": points}],
                                            "DISTANCE": [{"literal": "0.5"}]})
    polygons = count_features(result["outputs"]["OUTPUT"]["file"], "Polygon")
    print(f"native:buffer: {polygons} polygons from 240 points")
    assert polygons == 240, polygons
    result = run_job(tmp, "native:buffer", {"INPUT": [{"file": points}]},
                     {"OUTPUT": {"format": {"mime_type": "application/zip"}}})
    zipped = result["outputs"]["OUTPUT"]["file"]
    assert count_features("/vsizip/" + zipped, "Polygon") == 240, zipped


def check_parameter_errors(tmp: str, points: str) -> None:
    from wpsmesh_qgis.errors import ParameterError

    malformed = os.path.join(tmp, "malformed.geojson")
    with open(malformed, "w") as f:
        f.write('{"type": "FeatureCollection", "features": [')
    source = [{"file": points}]
    cases = [
        ("native:nosuchthing", {"INPUT": source}, "Identifier"),
        ("native:buffer", {"DISTANCE": [{"literal": "1"}]}, "INPUT"),
        ("native:buffer", {"INPUT": source, "DISTANCE": [{"literal": "far"}]}, "DISTANCE"),
        ("native:buffer", {"INPUT": source, "SEGMENTS": [{"literal": "0"}]}, "SEGMENTS"),
        ("native:buffer", {"INPUT": source, "END_CAP_STYLE": [{"literal": "Pointy"}]},
         "END_CAP_STYLE"),
        ("native:buffer", {"INPUT": [{"file": malformed}]}, "INPUT"),
        # A client's value is shown cut to 200 bytes, whatever its size.
        ("native:buffer", {"INPUT": source, "DISTANCE": [{"literal": "x" * 2_000_000}]},
         "DISTANCE"),
    ]
    for process_id, inputs, name in cases:
        try:
            run_job(tmp, process_id, inputs)
        except ParameterError as e:
            assert e.name == name, (e.name, name, str(e))
            assert len(str(e)) < 1024, (name, len(str(e)))
            print(f"rejected as expected: {e}")
        else:
            raise AssertionError(f"{process_id} {inputs} was accepted")


def check_cancel(tmp: str, points: str) -> None:
    from wpsmesh_qgis.errors import Cancelled

    try:
        run_job(tmp, "native:buffer", {"INPUT": [{"file": points}]}, cancelled=True)
    except Cancelled:
        print("cancelled as expected")
    else:
        raise AssertionError("a cancelled job finished")


def run_job(tmp: str, process_id: str, inputs: dict, outputs=None, cancelled=False) -> dict:
    from wpsmesh_qgis import run

    workdir = tempfile.mkdtemp(dir=tmp)
    return run.run(process_id, inputs, outputs or {}, workdir,
                   on_progress=lambda percent: None, on_log=lambda line: None,
                   is_cancelled=lambda: cancelled)


def count_features(path: str, geometry: str) -> int:
    """The number of features, asserting they all have the given geometry type."""
    from qgis.core import QgsVectorLayer, QgsWkbTypes

    layer = QgsVectorLayer(path, "check", "ogr")
    assert layer.isValid(), path
    assert QgsWkbTypes.geometryDisplayString(layer.geometryType()) == geometry, path
    return layer.featureCount()


if __name__ == "__main__":
    main()
