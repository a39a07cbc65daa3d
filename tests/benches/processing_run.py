"""Baseline for the benches: native:buffer through processing.run in one warm PyQGIS process (the
physical limit), writing GeoJSON to a file.

Batch mode (bench buffer): runs RUNS times after 3 warm-up runs and prints the median
milliseconds per run as `median_ms=<x>`.

Serve mode (bench fastpath): prints `ready`, then runs once per line read on stdin and answers
each with one line `<ms> <path>` (the run's milliseconds and its output file, which the bench
checks and removes), so the bench can interleave these runs with its own requests. Ends at end
of input.

Usage: /usr/bin/python3 processing_run.py POINTS.geojson OUTDIR RUNS [DISTANCE]
       /usr/bin/python3 processing_run.py --serve POINTS.geojson OUTDIR DISTANCE
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgis_headless  # noqa: E402

app = qgis_headless.start()
import processing  # noqa: E402


def run(points, out, distance):
    """One timed processing.run; its milliseconds."""
    started = time.perf_counter()
    processing.run("native:buffer", {"INPUT": points, "DISTANCE": distance, "OUTPUT": out})
    return (time.perf_counter() - started) * 1000


def serve(points, outdir, distance):
    print("ready", flush=True)
    for i, _ in enumerate(sys.stdin):
        out = os.path.join(outdir, f"buffer-serve-{i}.geojson")
        ms = run(points, out, distance)
        print(f"{ms:.3f} {out}", flush=True)


def batch(points, outdir, runs, distance):
    times = []
    for i in range(runs + 3):
        out = os.path.join(outdir, f"buffer-{i}.geojson")
        ms = run(points, out, distance)
        if i >= 3:
            times.append(ms)
        os.remove(out)
    print(f"median_ms={statistics.median(times):.3f}")


if sys.argv[1] == "--serve":
    serve(sys.argv[2], sys.argv[3], float(sys.argv[4]))
else:
    distance = float(sys.argv[4]) if len(sys.argv) > 4 else 1.5
    batch(sys.argv[1], sys.argv[2], int(sys.argv[3]), distance)
