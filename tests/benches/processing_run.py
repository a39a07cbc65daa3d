"""Baseline for the node benchmark: native:buffer through processing.run in one warm PyQGIS
process (the physical limit). Prints the median milliseconds per run as `median_ms=<x>`.

Usage: /usr/bin/python3 processing_run.py POINTS.geojson OUTDIR RUNS
"""
import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import QgsApplication  # noqa: E402

app = QgsApplication([], False)
app.setPrefixPath("/usr", True)
app.initQgis()
import processing  # noqa: E402
from processing.core.Processing import Processing  # noqa: E402

Processing.initialize()

points, outdir, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for i in range(runs + 3):
    out = os.path.join(outdir, f"buffer-{i}.geojson")
    started = time.perf_counter()
    processing.run("native:buffer", {"INPUT": points, "DISTANCE": 1.5, "OUTPUT": out})
    if i >= 3:
        times.append((time.perf_counter() - started) * 1000)
    os.remove(out)
print(f"median_ms={statistics.median(times):.3f}")
