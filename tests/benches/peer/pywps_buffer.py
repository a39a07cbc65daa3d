"""The peer of bench fastpath: PyWPS 4.8.1 under gunicorn serving native:buffer through PyQGIS,
the setup the issue measured the best peer with (19.0 Executes/s, p99 548 ms at 8 clients).

One process, `buffer`: INPUT (GeoJSON, by reference or value), DISTANCE (float), OUTPUT
(GeoJSON). Each gunicorn worker initialises QGIS once at import (no --preload: QGIS is not
fork-safe) and runs `processing.run` per request, as a PyWPS deployment wrapping QGIS does.
Settings lean the peer's way: log level WARNING, the in-memory job database, no validation.

Run by the bench: gunicorn -w N -b HOST:PORT --chdir tests/benches/peer pywps_buffer:application,
with PYWPS_CFG naming the configuration file the bench writes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import qgis_headless  # noqa: E402

_app = qgis_headless.start()

import processing  # noqa: E402
from pywps import ComplexInput, ComplexOutput, Format, LiteralInput, Process, Service  # noqa: E402
from pywps.validator.mode import MODE  # noqa: E402

GEOJSON = Format("application/geo+json", extension=".geojson")


class Buffer(Process):
    def __init__(self):
        super().__init__(
            self._handler,
            identifier="buffer",
            title="native:buffer",
            inputs=[
                ComplexInput("INPUT", "Input layer", supported_formats=[GEOJSON], mode=MODE.NONE),
                LiteralInput("DISTANCE", "Distance", data_type="float"),
            ],
            outputs=[ComplexOutput("OUTPUT", "Buffered", supported_formats=[GEOJSON])],
            store_supported=False,
            status_supported=False,
        )

    @staticmethod
    def _handler(request, response):
        out = os.path.join(os.path.dirname(request.inputs["INPUT"][0].file), "buffered.geojson")
        processing.run("native:buffer", {
            "INPUT": request.inputs["INPUT"][0].file,
            "DISTANCE": request.inputs["DISTANCE"][0].data,
            "OUTPUT": out,
        })
        response.outputs["OUTPUT"].file = out
        return response


application = Service([Buffer()], [os.environ["PYWPS_CFG"]])
