"""Validation and conversion of client input values into QGIS parameter values.

Each input is a list of values: {"literal": text}, {"file": path, "format": {...}} or
{"bbox": {"crs", "lower": [x, y], "upper": [x, y]}}. Bounding boxes are in the CRS's x/y
(east/north) order, as QGIS stores extents. Every problem raises ParameterError naming the input;
a client's value appears in a message only through `shown` (at most 200 bytes).
"""

import json
import math
import os
from typing import NoReturn

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsExpression,
    QgsProcessingParameterNumber,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QFileInfo

from . import params
from .errors import ParameterError, shown

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def convert_inputs(alg, description: dict, inputs: dict, context) -> dict:
    """QGIS parameter values for the described inputs of `alg`.

    Left-out inputs that QGIS requires get their default; layers are opened (proving they are
    readable) and owned by the context's temporary layer store for the run.
    """
    described = {d["id"]: d for d in description["inputs"]}
    for name in inputs:
        if name not in described:
            raise ParameterError(shown(name), "unknown input")
    values = {}
    for name, spec in described.items():
        param = alg.parameterDefinition(name)
        given = inputs.get(name) or []
        if not given:
            if spec["min_occurs"] > 0:
                raise ParameterError(name, "missing required input")
            if not params.is_optional(param):
                values[name] = params.default_value(param, params.input_kind(param))
            continue
        if len(given) > spec["max_occurs"]:
            raise ParameterError(name, f"takes at most {spec['max_occurs']} value(s), "
                                       f"got {len(given)}")
        if len(given) < spec["min_occurs"]:
            raise ParameterError(name, f"needs at least {spec['min_occurs']} values, "
                                       f"got {len(given)}")
        converter = _Converter(param, context, values)
        converted = [converter.convert(value) for value in given]
        value = converted if spec["max_occurs"] > 1 else converted[0]
        if not param.checkValueIsAcceptable(value, context):
            raise ParameterError(name, "value not accepted by the algorithm")
        values[name] = value
    return values


class _Converter:
    """Converts the values of one parameter; `earlier` holds the inputs converted before it."""

    def __init__(self, param, context, earlier: dict):
        self.param = param
        self.name = param.name()
        self.kind = params.input_kind(param)
        self.context = context
        self.earlier = earlier

    def fail(self, message: str) -> NoReturn:
        raise ParameterError(self.name, message)

    def convert(self, value: dict):
        if self.kind in params.COMPLEX_KINDS:
            if "file" not in value:
                self.fail("expected a file reference")
            return self._file(value["file"])
        if self.kind == params.EXTENT:
            if "bbox" not in value:
                self.fail("expected a bounding box")
            return self._extent(value["bbox"])
        if "literal" not in value:
            self.fail("expected a literal value")
        return self._LITERALS[self.kind](self, str(value["literal"]))

    # Literal kinds, taking the text as sent: strings keep their whitespace (delimiters).
    def _number(self, text):
        text = text.strip()
        try:
            number = float(text)
        except ValueError:
            self.fail(f"expected a number, got {shown(text)!r}")
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {shown(text)!r}")
        if self.param.dataType() == QgsProcessingParameterNumber.Integer:
            if not number.is_integer():
                self.fail(f"expected an integer, got {shown(text)!r}")
            number = int(number)
        if number < self.param.minimum():
            self.fail(f"{shown(text)} is below the minimum {self.param.minimum():g}")
        if number > self.param.maximum():
            self.fail(f"{shown(text)} is above the maximum {self.param.maximum():g}")
        return number

    def _boolean(self, text):
        text = text.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return self.fail(f"expected true or false, got {shown(text)!r}")

    def _enum(self, text):
        """An option string (or, for compatibility, an option index)."""
        options = self.param.options()
        text = text.strip()
        if text in options:
            return text if self.param.usesStaticStrings() else options.index(text)
        if not self.param.usesStaticStrings() and text.isdigit() and int(text) < len(options):
            return int(text)
        return self.fail(f"{shown(text)!r} is not one of: {', '.join(options)}")

    def _field(self, text):
        parent = self.earlier.get(self.param.parentLayerParameterName())
        if isinstance(parent, QgsVectorLayer) and parent.fields().lookupField(text) < 0:
            self.fail(f"no field {shown(text)!r} in {self.param.parentLayerParameterName()}")
        return text

    def _expression(self, text):
        expression = QgsExpression(text)
        if expression.hasParserError():
            reason = " ".join(expression.parserErrorString().split())
            self.fail(f"invalid expression: {shown(reason)}")
        return text

    def _crs(self, text):
        crs = QgsCoordinateReferenceSystem(text.strip())
        if not crs.isValid():
            self.fail(f"unknown CRS {shown(text)!r}")
        return crs

    def _band(self, text):
        text = text.strip()
        if not text.isdigit():
            self.fail(f"expected a band number, got {shown(text)!r}")
        return int(text)

    def _json(self, text):
        try:
            value = json.loads(text)
        except ValueError as e:
            self.fail(f"invalid JSON: {shown(str(e))}")
        if not isinstance(value, list):
            self.fail("expected a JSON array")
        return value

    def _string(self, text):
        return text

    _LITERALS = {
        params.NUMBER: _number,
        params.BOOLEAN: _boolean,
        params.ENUM: _enum,
        params.FIELD: _field,
        params.EXPRESSION: _expression,
        params.CRS: _crs,
        params.BAND: _band,
        params.JSON: _json,
        params.STRING: _string,
    }

    # Other kinds.
    def _extent(self, bbox: dict):
        """QGIS's extent text "xmin,xmax,ymin,ymax [crs]"."""
        try:
            lower = [float(v) for v in bbox.get("lower") or []]
            upper = [float(v) for v in bbox.get("upper") or []]
        except (TypeError, ValueError):
            lower = upper = []
        if len(lower) != 2 or len(upper) != 2:
            self.fail("expected two-dimensional lower and upper corners")
        if lower[0] > upper[0] or lower[1] > upper[1]:
            self.fail("the lower corner is above or right of the upper corner")
        text = f"{lower[0]!r},{upper[0]!r},{lower[1]!r},{upper[1]!r}"
        crs = bbox.get("crs") or ""
        if crs:
            if not QgsCoordinateReferenceSystem(crs).isValid():
                self.fail(f"unknown CRS {shown(crs)!r}")
            text += f" [{crs}]"
        return text

    def _file(self, path: str):
        """A readable layer or file; a zipped shapefile is read in place through /vsizip/."""
        if not os.path.exists(path):
            self.fail("input file not found")
        if self.kind == params.FILE:
            return path
        layer = None
        if self.kind in (params.VECTOR, params.LAYER):
            uri = "/vsizip/" + path if path.lower().endswith(".zip") else path
            layer = QgsVectorLayer(uri, QFileInfo(path).baseName(), "ogr")
        if self.kind == params.RASTER or (self.kind == params.LAYER and not layer.isValid()):
            layer = QgsRasterLayer(path, QFileInfo(path).baseName(), "gdal")
        if not layer.isValid():
            noun = {params.VECTOR: "vector", params.RASTER: "raster"}.get(self.kind, "GIS")
            self.fail(f"not a readable {noun} dataset")
        self.context.temporaryLayerStore().addMapLayer(layer)
        return layer
