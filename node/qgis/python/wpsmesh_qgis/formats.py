"""File formats of complex inputs and outputs, as proto `Format` dicts; the first is the default."""

import re

from . import params
from .errors import ParameterError, shown


def fmt(mime_type: str, extension: str) -> dict:
    """A proto `Format` dict."""
    return {"mime_type": mime_type, "encoding": "", "schema": "", "extension": extension}


GEOJSON = fmt("application/geo+json", "geojson")
SHAPEFILE_ZIP = fmt("application/zip", "zip")  # an ESRI shapefile's files, zipped flat
# The same, under the media type the original service and many WPS clients use.
SHAPEFILE_ZIP_LEGACY = fmt("application/x-zipped-shp", "zip")
GEOPACKAGE = fmt("application/geopackage+sqlite3", "gpkg")
GML = fmt("application/gml+xml", "gml")
KML = fmt("application/vnd.google-earth.kml+xml", "kml")
GEOTIFF = fmt("image/tiff", "tif")
FOLDER_ZIP = fmt("application/zip", "zip")  # a destination folder, zipped
OCTET_STREAM = fmt("application/octet-stream", "")

VECTOR_FORMATS = [GEOJSON, SHAPEFILE_ZIP, SHAPEFILE_ZIP_LEGACY, GEOPACKAGE, GML, KML]
RASTER_FORMATS = [GEOTIFF]

# Formats of layers an algorithm changes in place (gdal:assignprojection), by QGIS output type.
LAYER_OUTPUT_FORMATS = {"outputVector": VECTOR_FORMATS, "outputRaster": RASTER_FORMATS}

# The QGIS file extension each vector format is written with.
VECTOR_WRITE_EXTENSION = {"geojson": "geojson", "zip": "shp", "gpkg": "gpkg", "gml": "gml",
                          "kml": "kml"}

# Explicit rather than the mimetypes module, whose answers depend on the host's /etc/mime.types.
_MIME_BY_EXTENSION = {
    "csv": "text/csv",
    "dxf": "image/vnd.dxf",
    "geojson": "application/geo+json",
    "gml": "application/gml+xml",
    "gpkg": "application/geopackage+sqlite3",
    "gpx": "application/gpx+xml",
    "html": "text/html",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "json": "application/json",
    "kml": "application/vnd.google-earth.kml+xml",
    "mbtiles": "application/vnd.sqlite3",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "pdf": "application/pdf",
    "png": "image/png",
    "qml": "application/xml",
    "sqlite": "application/vnd.sqlite3",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "txt": "text/plain",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xml": "application/xml",
    "zip": "application/zip",
}


def by_extension(extension: str) -> dict:
    """The format of files with this extension; application/octet-stream when unknown."""
    extension = extension.lower()
    return fmt(_MIME_BY_EXTENSION.get(extension, "application/octet-stream"), extension)


def input_formats(kind: str, param) -> list:
    """Formats a complex input of this kind accepts."""
    if kind == params.VECTOR:
        return VECTOR_FORMATS
    if kind == params.RASTER:
        return RASTER_FORMATS
    if kind == params.LAYER:
        return VECTOR_FORMATS + RASTER_FORMATS
    if param.type() != "file":
        return [OCTET_STREAM]  # files of a multiple-layers input
    if param.extension():
        return [by_extension(param.extension())]
    return _filter_formats(param.fileFilter())


def output_formats(param) -> list:
    """Formats a destination parameter can be written in."""
    param_type = param.type()
    if param_type in ("sink", "vectorDestination"):
        return _layer_formats(param, VECTOR_FORMATS, param.supportedOutputVectorLayerExtensions())
    if param_type == "rasterDestination":
        return _layer_formats(param, RASTER_FORMATS, param.supportedOutputRasterLayerExtensions())
    if param_type == "fileDestination":
        # A shapefile is several files: hand it back zipped, like vector destinations do.
        return [SHAPEFILE_ZIP if f["extension"] == "shp" else f
                for f in _filter_formats(param.fileFilter(), param.defaultFileExtension())]
    return [FOLDER_ZIP]


def _layer_formats(param, formats, supported) -> list:
    """Our formats QGIS can write for this destination.

    A destination whose default is none of them (gdal:buildvirtualraster writes .vrt) gets its
    default only.
    """
    default = param.defaultFileExtension()
    if default not in {VECTOR_WRITE_EXTENSION.get(f["extension"], f["extension"]) for f in formats}:
        return [by_extension(default)]
    return [f for f in formats
            if VECTOR_WRITE_EXTENSION.get(f["extension"], f["extension"]) in supported]


def _filter_formats(file_filter: str, default: str = "") -> list:
    """Formats named by a Qt file filter such as "HTML files (*.html *.HTML);;CSV (*.csv)".

    A filter that admits any file ("*.*") gives application/octet-stream.
    """
    patterns = re.findall(r"\*(\.[^\s;()*]*)?", file_filter)
    if not patterns or "" in patterns or ".*" in patterns:
        return [by_extension(default)] if default and default != "file" else [OCTET_STREAM]
    extensions = list(dict.fromkeys(p[1:].lower() for p in patterns))
    if default in extensions:
        extensions.remove(default)
        extensions.insert(0, default)
    return [by_extension(e) for e in extensions]


def choose(requested, formats: list, name: str) -> dict:
    """The format matching a requested {"mime_type", "extension"}; the default when none asked.

    Raises ParameterError naming `name` when no format matches.
    """
    mime = (requested or {}).get("mime_type") or ""
    extension = ((requested or {}).get("extension") or "").lower()
    if not mime and not extension:
        return formats[0]
    for candidate in formats:
        if mime and candidate["mime_type"] != mime:
            continue
        if extension and candidate["extension"] != extension:
            continue
        return candidate
    offered = ", ".join(sorted({f["mime_type"] for f in formats}))
    raise ParameterError(name, f"format {shown(mime or extension)} is not supported; "
                               f"use one of {offered}")
