"""Headless, idempotent initialisation of QgsApplication and QGIS Processing."""

import os
import sys
import time

PREFIX_PATH = "/usr"
PLUGINS_PATH = "/usr/share/qgis/python/plugins"

# The application must outlive every QGIS object: a collected QgsApplication crashes the process.
_app = None


def init() -> dict:
    """Initialise QGIS and Processing once per process.

    Returns {"seconds": time spent, "qgis_version": ...}; "seconds" is 0.0 on repeated calls.
    Algorithms must later run on the thread that called init().
    """
    global _app
    seconds = 0.0
    if _app is None:
        started = time.monotonic()
        _app = _start()
        seconds = time.monotonic() - started
    from qgis.core import Qgis

    return {"seconds": seconds, "qgis_version": Qgis.version()}


def _start():
    """Create and initialise the QgsApplication, then Processing and its providers."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if PLUGINS_PATH not in sys.path:
        sys.path.append(PLUGINS_PATH)
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath(PREFIX_PATH, True)
    app = QgsApplication([], False)
    app.initQgis()

    from processing.core.Processing import Processing

    Processing.initialize()
    _add_builtin_providers(QgsApplication.processingRegistry())
    return app


def _add_builtin_providers(registry) -> None:
    """Add the native and 3d C++ providers when Processing did not already add them."""
    from qgis.analysis import QgsNativeAlgorithms

    if registry.providerById("native") is None:
        registry.addProvider(QgsNativeAlgorithms(registry))
    if registry.providerById("3d") is None:
        from qgis._3d import Qgs3DAlgorithms

        registry.addProvider(Qgs3DAlgorithms(registry))
