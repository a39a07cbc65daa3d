"""Typed descriptions of QGIS Processing algorithms, shaped like proto `ProcessDescription`.

Dicts use the .proto field names; enums are their proto value names ("LITERAL_TYPE_DOUBLE").
Optional fields (default_value, minimum, maximum) are left out when unset.

Enum inputs publish their option strings as allowed values; run.py also accepts an option's
index, which is what qgis_process and the original service's clients send.

An input is omittable (min_occurs 0) when QGIS marks it optional or it has a default a client
could send: run.py passes that default when the input is left out. Inputs that cannot be
expressed are dropped when omittable; otherwise the algorithm is skipped, as are algorithms
QGIS marks unavailable outside the desktop and those left without any output.
"""

import functools
import math

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingParameterNumber,
    QgsUnitTypes,
)

from . import formats, params
from .errors import shown

PROVIDERS = ("native", "qgis", "gdal", "3d")
VERSION = Qgis.version().split("-")[0]
# Extents are accepted in any CRS QGIS knows; these are advertised, the first is the default.
BBOX_CRS = ["EPSG:4326", "EPSG:3857"]

_LITERAL_TYPES = {
    params.BOOLEAN: "LITERAL_TYPE_BOOLEAN",
    params.BAND: "LITERAL_TYPE_INTEGER",
}
_ROLES = {
    params.ENUM: "LITERAL_ROLE_ENUM",
    params.FIELD: "LITERAL_ROLE_FIELD",
    params.EXPRESSION: "LITERAL_ROLE_EXPRESSION",
    params.CRS: "LITERAL_ROLE_CRS",
}
# How to write values QGIS parses from text, by QGIS parameter type.
_HINTS = {
    "point": "A point as 'x,y' or 'x,y [EPSG:code]'.",
    "matrix": "Table cells separated by commas, row by row.",
    "color": "A color as '#rrggbb' or 'r,g,b[,a]'.",
    "coordinateoperation": "A PROJ coordinate operation string.",
    "execute_sql": "An SQL query; the input layers are named input1, input2, ...",
    "fields_mapping": "A JSON array of field definitions "
                      "({\"name\", \"type\", \"length\", \"precision\", \"expression\"}).",
    "aggregates": "A JSON array of aggregate definitions ({\"aggregate\", \"input\", \"name\", "
                  "\"type\", \"length\", \"precision\", \"delimiter\"}).",
}


class Unsupported(Exception):
    """An algorithm cannot be published; the message says why."""


def describe_all() -> dict:
    """{"processes": [ProcessDescription dict], "skipped": [{"id", "reason"}]} for every
    algorithm of the published providers."""
    processes, skipped = [], []
    algorithms = QgsApplication.processingRegistry().algorithms()
    for alg in sorted(algorithms, key=lambda a: a.id()):
        if alg.provider().id() not in PROVIDERS:
            continue
        try:
            processes.append(describe(alg.id()))
        except Unsupported as e:
            skipped.append({"id": alg.id(), "reason": str(e)})
    return {"processes": processes, "skipped": skipped}


@functools.cache
def describe(process_id: str) -> dict:
    """The description of one process; raises Unsupported when it is unknown or not published."""
    alg = QgsApplication.processingRegistry().algorithmById(process_id)
    if alg is None or alg.provider().id() not in PROVIDERS:
        raise Unsupported(f"unknown process {shown(process_id)!r}")
    if alg.flags() & QgsProcessingAlgorithm.FlagNotAvailableInStandaloneTool:
        raise Unsupported("needs the QGIS desktop application")
    inputs = [d for d in map(_input, _visible_inputs(alg)) if d is not None]
    outputs = _outputs(alg)
    if not outputs:
        raise Unsupported("no output can be expressed")
    summary = {
        "id": alg.id(),
        "title": alg.displayName(),
        "description": alg.shortHelpString() or alg.shortDescription() or "",
        "version": VERSION,
        "provider": alg.provider().id(),
        "async_supported": True,
    }
    return {"summary": summary, "inputs": inputs, "outputs": outputs}


def _visible_inputs(alg):
    return [p for p in alg.parameterDefinitions()
            if not p.isDestination() and not params.is_hidden(p)]


def _input(param):
    """An InputDescription dict, or None to drop the parameter; raises Unsupported."""
    kind = params.input_kind(param)
    omittable = params.is_optional(param) or params.default_value(param, kind) is not None
    if kind is None:
        if omittable:
            return None
        raise Unsupported(f"required input {param.name()} of type {param.type()} "
                          "cannot be expressed")
    min_count = param.minimumNumberInputs() if param.type() == "multilayer" else 1
    description = {
        "id": param.name(),
        "title": param.description(),
        "description": _help(param),
        "min_occurs": 0 if omittable else max(1, min_count),
        "max_occurs": params.max_occurs(param),
    }
    if kind in params.COMPLEX_KINDS:
        description["complex"] = {"formats": formats.input_formats(kind, param)}
    elif kind == params.EXTENT:
        description["bounding_box"] = {"crs": BBOX_CRS}
    else:
        description["literal"] = _literal(param, kind, params.default_text(param, kind))
    return description


def _literal(param, kind, default) -> dict:
    literal = {
        "data_type": _LITERAL_TYPES.get(kind, "LITERAL_TYPE_STRING"),
        "role": _ROLES.get(kind, "LITERAL_ROLE_PLAIN"),
        "allowed_values": list(param.options()) if kind == params.ENUM else [],
        "uom": "",
    }
    if default is not None:
        literal["default_value"] = default
    if kind == params.NUMBER:
        integer = param.dataType() == QgsProcessingParameterNumber.Integer
        literal["data_type"] = "LITERAL_TYPE_INTEGER" if integer else "LITERAL_TYPE_DOUBLE"
        literal["uom"] = _unit(param)
        for key, bound in (("minimum", param.minimum()), ("maximum", param.maximum())):
            if math.isfinite(bound) and abs(bound) < 1e300:  # QGIS uses +-DBL_MAX for "none"
                literal[key] = bound
    return literal


def _unit(param) -> str:
    """Distances with a parent layer are in that layer's CRS units, unknown until run time."""
    if param.type() == "distance" and not param.parentParameterName():
        unit = param.defaultUnit()
        return "" if unit == QgsUnitTypes.DistanceUnknownUnit else QgsUnitTypes.toString(unit)
    if param.type() == "duration":
        return QgsUnitTypes.toString(param.defaultUnit())
    return ""


def _help(param) -> str:
    parts = [param.help(), _HINTS.get(param.type(), "")]
    if param.type() == "distance" and param.parentParameterName():
        parts.append(f"In the units of the CRS of {param.parentParameterName()}.")
    return " ".join(p for p in parts if p)


def _outputs(alg) -> list:
    """Outputs in QGIS's order: complex ones for destination parameters and for layers the
    algorithm changes in place (exported after the run), and literal ones."""
    destinations = {p.name(): p for p in alg.destinationParameterDefinitions()
                    if not params.is_hidden(p)}
    outputs = []
    for output in alg.outputDefinitions():
        if output.name() in destinations:
            param = destinations[output.name()]
            outputs.append({"id": param.name(), "title": param.description(),
                            "description": param.help(),
                            "complex": {"formats": formats.output_formats(param)}})
        elif output.type() in formats.LAYER_OUTPUT_FORMATS:
            outputs.append({"id": output.name(), "title": output.description(),
                            "description": "",
                            "complex": {"formats": formats.LAYER_OUTPUT_FORMATS[output.type()]}})
        elif output.type() in params.LITERAL_OUTPUT_TYPES:
            outputs.append({"id": output.name(), "title": output.description(),
                            "description": "",
                            "literal": {"data_type": params.LITERAL_OUTPUT_TYPES[output.type()],
                                        "uom": ""}})
    return outputs
