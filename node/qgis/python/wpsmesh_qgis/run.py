"""Execution of one job: validate inputs, run the algorithm, write and return its outputs."""

import re

from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from . import convert, describe
from . import outputs as output_files
from .errors import Cancelled, ExecutionError, ParameterError
from .feedback import JobFeedback


def run(process_id: str, inputs: dict, outputs: dict, workdir: str,
        on_progress, on_log, is_cancelled) -> dict:
    """Run a published process and return {"outputs": {...}, "log": [...]}.

    - inputs: {name: [{"literal": text} | {"file": path, "format": {...}} | {"bbox": {...}}]}
    - outputs: {id: {"format": {"mime_type", "extension"}}}; every output when empty.
    - on_progress(percent: int), on_log(line: str): called as the algorithm reports.
    - is_cancelled() -> bool: polled while the algorithm reports (see feedback.JobFeedback).

    Returned outputs are {"file": path in workdir, "format": {...}} or {"literal": text}.
    Raises ParameterError for bad input, Cancelled when cancelled, ExecutionError on failure.
    """
    try:
        description = describe.describe(process_id)
    except describe.Unsupported as e:
        raise ParameterError("Identifier", str(e)) from None
    alg = QgsApplication.processingRegistry().algorithmById(process_id)
    # Like qgis_process: no invalid-geometry filtering; the (empty) project lets algorithms
    # that need one run.
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    parameters = convert.convert_inputs(alg, description, inputs, context)
    via_memory = output_files.memory_sinks_allowed(inputs)
    planned = output_files.plan(alg, description, outputs, workdir, via_memory)
    parameters.update(output_files.destination_values(planned))
    ok, message = alg.checkParameterValues(parameters, context)
    if not ok:
        raise ParameterError(_named_parameter(message, parameters), message)

    feedback = JobFeedback(on_progress, on_log, is_cancelled)
    feedback.poll()
    _raise_stopped(feedback)
    try:
        results, _ = alg.run(parameters, context, feedback, {}, False)
    except QgsProcessingException as e:
        _raise_stopped(feedback)
        raise ExecutionError(str(e)) from None
    _raise_stopped(feedback)
    collected = output_files.collect(planned, description, outputs, results, context)
    return {"outputs": collected, "log": feedback.log}


def release() -> None:
    """Delete what the last job left for the Qt event loop; call once its context is gone.

    QGIS deletes a job's layers with deleteLater() when its context goes. A worker runs no event
    loop, so without this they were never deleted: each kept its input file open (a descriptor,
    and a deleted input's disk space, per job) and its memory (~62 KiB), and every later dataset
    open got slower (QgsFileUtils::isCloseToLimitOfOpenedFiles lists /proc/self/fd).
    """
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def _raise_stopped(feedback: JobFeedback) -> None:
    """Raise why the run stopped early: a failing host callback, or cancellation."""
    if feedback.callback_error is not None:
        raise feedback.callback_error
    if feedback.isCanceled():
        raise Cancelled("cancelled")


def _named_parameter(message: str, parameters: dict) -> str:
    """The parameter a QGIS message names, or "" when it names none."""
    for name in parameters:
        if re.search(rf"\b{re.escape(name)}\b", message):
            return name
    return ""
