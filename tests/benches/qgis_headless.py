"""Headless QGIS with Processing for the benches' Python baselines (processing_run.py and the
PyWPS peer): `start()` once per process, then `processing.run` as a QGIS user would."""
import os
import sys


def start():
    """Initialise QgsApplication (offscreen) and Processing; returns the application, which must
    be kept alive as long as QGIS is used."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.append("/usr/share/qgis/python/plugins")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.setPrefixPath("/usr", True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    return app
