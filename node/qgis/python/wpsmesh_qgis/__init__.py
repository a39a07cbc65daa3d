"""Python side of the wpsmesh QGIS worker: headless QGIS, process descriptions and execution.

The Rust worker (pyo3, Debian's /usr/bin/python3.11) calls, all on one thread:

- `bootstrap.init()` once per worker process;
- `describe.describe_all()` once, to publish every process;
- `run.run(...)` once per job.

Client mistakes raise `errors.ParameterError` (naming the parameter); failed or cancelled runs
raise `errors.ExecutionError` / `errors.Cancelled`.
"""
