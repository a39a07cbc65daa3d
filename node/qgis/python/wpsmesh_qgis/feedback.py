"""A QgsProcessingFeedback that reports to the Rust host and cancels when the host asks."""

import time

from qgis.core import QgsProcessingFeedback

# How often the host's is_cancelled() is asked, at most.
POLL_SECONDS = 0.1


class JobFeedback(QgsProcessingFeedback):
    """Forwards progress (whole percents, on change) and log lines, and keeps the log.

    Cancellation is polled: whenever QGIS reports progress or a log line, is_cancelled() is asked
    (at most every POLL_SECONDS) and a true answer calls cancel(). An algorithm that reports
    nothing cannot be cancelled this way; the host kills the worker after its grace period.
    """

    def __init__(self, on_progress, on_log, is_cancelled):
        super().__init__()
        self.log = []
        # The first exception raised by a host callback; the run stops and re-raises it.
        self.callback_error = None
        self._on_progress = on_progress
        self._on_log = on_log
        self._is_cancelled = is_cancelled
        self._percent = -1
        self._polled_at = float("-inf")
        self.progressChanged.connect(self._progress)

    def poll(self) -> None:
        """Cancel when the host asks to; throttled to one question every POLL_SECONDS."""
        now = time.monotonic()
        if self.isCanceled() or now - self._polled_at < POLL_SECONDS:
            return
        self._polled_at = now
        if self._call(self._is_cancelled):
            self.cancel()

    def add_line(self, line: str) -> None:
        """Record a log line and forward it to the host."""
        self.log.append(line)
        self._call(self._on_log, line)
        self.poll()

    def _progress(self, value: float) -> None:
        percent = min(100, max(0, int(value)))
        if percent != self._percent:
            self._percent = percent
            self._call(self._on_progress, percent)
        self.poll()

    def _call(self, callback, *args):
        # An exception escaping a Qt slot or virtual override aborts the whole process.
        try:
            return callback(*args)
        except Exception as error:  # noqa: BLE001 - re-raised by run() after QGIS returns
            if self.callback_error is None:
                self.callback_error = error
            self.cancel()
            return None

    # QgsProcessingFeedback's reporting methods, all funnelled into the log.
    def setProgressText(self, text):
        self.add_line(text)

    def pushInfo(self, info):
        self.add_line(info)

    def pushCommandInfo(self, info):
        self.add_line(info)

    def pushDebugInfo(self, info):
        self.add_line(info)

    def pushConsoleInfo(self, info):
        self.add_line(info)

    def pushWarning(self, warning):
        self.add_line(f"WARNING: {warning}")

    def reportError(self, error, fatalError=False):
        self.add_line(f"ERROR: {error}")
