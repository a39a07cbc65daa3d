"""Kinds of QGIS Processing parameters that wpsmesh can publish.

`input_kind` sorts a parameter into one kind; describe.py turns the kind into a WPS input and
run.py converts client values by it. Parameters without a kind cannot be expressed over WPS.
"""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsSymbolLayerUtils,
)
from qgis.PyQt.QtGui import QColor

# Literal kinds.
NUMBER = "number"
BOOLEAN = "boolean"
STRING = "string"  # plain text QGIS parses itself (points, colors, matrices, SQL, ...)
ENUM = "enum"
FIELD = "field"
EXPRESSION = "expression"
CRS = "crs"
BAND = "band"
JSON = "json"  # a JSON array (field mappings, aggregates)
# Complex kinds: files on disk.
VECTOR = "vector"
RASTER = "raster"
LAYER = "layer"  # vector or raster
FILE = "file"
# Bounding box kind.
EXTENT = "extent"

COMPLEX_KINDS = (VECTOR, RASTER, LAYER, FILE)

# Upper bound published as max_occurs for inputs QGIS accepts any number of.
MAX_OCCURS = 1000

_KIND_BY_TYPE = {
    "number": NUMBER,
    "distance": NUMBER,
    "scale": NUMBER,
    "duration": NUMBER,
    "boolean": BOOLEAN,
    "string": STRING,
    "color": STRING,
    "point": STRING,
    "matrix": STRING,
    "coordinateoperation": STRING,
    "execute_sql": STRING,
    "enum": ENUM,
    "field": FIELD,
    "expression": EXPRESSION,
    "crs": CRS,
    "band": BAND,
    "fields_mapping": JSON,
    "aggregates": JSON,
    "source": VECTOR,
    "vector": VECTOR,
    "raster": RASTER,
    "layer": LAYER,
    "file": FILE,
    "extent": EXTENT,
}

_KIND_BY_LAYER_TYPE = {
    QgsProcessing.TypeVectorAnyGeometry: VECTOR,
    QgsProcessing.TypeVectorPoint: VECTOR,
    QgsProcessing.TypeVectorLine: VECTOR,
    QgsProcessing.TypeVectorPolygon: VECTOR,
    QgsProcessing.TypeVector: VECTOR,
    QgsProcessing.TypeRaster: RASTER,
    QgsProcessing.TypeMapLayer: LAYER,
    QgsProcessing.TypeFile: FILE,
}

LITERAL_OUTPUT_TYPES = {"outputNumber": "LITERAL_TYPE_DOUBLE",
                        "outputString": "LITERAL_TYPE_STRING",
                        "outputBoolean": "LITERAL_TYPE_BOOLEAN"}


def input_kind(param):
    """The kind of an input parameter, or None when it cannot be expressed."""
    if param.type() == "multilayer":
        return _KIND_BY_LAYER_TYPE.get(param.layerType())
    if param.type() == "file" and param.behavior() != QgsProcessingParameterFile.File:
        return None  # folders cannot be uploaded
    return _KIND_BY_TYPE.get(param.type())


def is_optional(param) -> bool:
    return bool(param.flags() & QgsProcessingParameterDefinition.FlagOptional)


def is_hidden(param) -> bool:
    return bool(param.flags() & QgsProcessingParameterDefinition.FlagHidden)


def max_occurs(param) -> int:
    """How many values the parameter takes: 1, the number of enum options, or MAX_OCCURS."""
    if param.type() == "multilayer":
        return MAX_OCCURS
    if param.type() in ("enum", "field", "band") and param.allowMultiple():
        return len(param.options()) if param.type() == "enum" else MAX_OCCURS
    return 1


def default_value(param, kind):
    """The QGIS default run.py passes for a left-out required input, or None when it has none.

    Defaults QGIS resolves from a project at run time ("ProjectCrs") count as none: a service
    has no project.
    """
    value = param.defaultValue()
    if value is None or value == "" or value == [] or kind in COMPLEX_KINDS + (EXTENT,):
        return None
    if kind == CRS and not QgsCoordinateReferenceSystem(value).isValid():
        return None
    return value


def default_text(param, kind):
    """The default as the text a client would send; None without a default or when it is
    several values (a WPS default is one value)."""
    value = default_value(param, kind)
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if value is None:
        return None
    if kind == ENUM:
        return _enum_default(param, value)
    if kind == CRS:
        return QgsCoordinateReferenceSystem(value).authid() or None
    if isinstance(value, QColor):
        return QgsSymbolLayerUtils.encodeColor(value)
    return literal_text(value)


def _enum_default(param, value):
    if param.usesStaticStrings():
        return str(value)
    try:
        return param.options()[int(value)]
    except (ValueError, IndexError):
        return None


def literal_text(value):
    """A bool, number or string as WPS literal text ("true", "10", "0.5"); None for others."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    return None
