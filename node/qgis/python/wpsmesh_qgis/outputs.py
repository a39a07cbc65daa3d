"""Output files of a run: where QGIS writes them, and the results returned to the host.

Every complex output is written into the job's workdir as `<ID>.<ext>`. A zipped shapefile is
written into `<ID>_files/<ID>.shp` and a destination folder into `<ID>_files/`, then zipped into
`<ID>.zip`. Layers an algorithm changes in place are exported after the run.

A GeoJSON feature sink of an algorithm that can write to memory goes to a memory layer, written
after the run by the worker's native writer (`wpsmesh_native.write_geojson`: GDAL's document,
numbers in their shortest exact form, several times faster than GDAL's coordinate formatting);
what that writer does not handle (dates, lists, curves, a CRS without an EPSG code) is written
by GDAL, as before. A memory layer holds the whole output, so only jobs with file inputs of at
most MEMORY_SINK_MAX_INPUT in all take that way; the others (large inputs, or outputs made from
parameters alone, like a grid) stream to disk through GDAL.
"""

import os
import shutil
import zipfile
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import QgsMapLayerType, QgsProcessingUtils, QgsVectorFileWriter

from . import formats, params
from .errors import ExecutionError, ParameterError

try:
    import wpsmesh_native  # the worker's own module (node/qgis/src/geojson/)
except ImportError:  # outside the worker (selfcheck.py): GDAL writes every layer
    wpsmesh_native = None


MEMORY_SINK_MAX_INPUT = 64 * 1024 * 1024


def memory_sinks_allowed(inputs: dict) -> bool:
    """Whether a job's GeoJSON sinks may go through memory: it reads files, MEMORY_SINK_MAX_INPUT
    bytes at most in all (outputs of vector algorithms grow with their inputs)."""
    sizes = [os.path.getsize(value["file"])
             for values in inputs.values() for value in values if "file" in value]
    return bool(sizes) and sum(sizes) <= MEMORY_SINK_MAX_INPUT


@dataclass
class Output:
    """One complex output of a run."""

    id: str
    format: dict
    file: str  # the file handed back
    target: str  # the path QGIS writes (or the export is written to)
    pack_dir: str | None  # a folder zipped into `file` after the run
    destination: bool  # False for a layer changed in place, exported after the run
    returned: bool  # False for a required destination the client did not ask for
    via_memory: bool  # a GeoJSON sink run into a memory layer, written after the run


def plan(alg, description: dict, requested: dict, workdir: str, via_memory: bool) -> list:
    """The complex outputs of a run; `requested` maps output ids to {"format"}, all when empty.
    `via_memory`: GeoJSON sinks may go through a memory layer (see memory_sinks_allowed)."""
    described = {spec["id"]: spec for spec in description["outputs"]}
    for name in requested:
        if name not in described:
            raise ParameterError(name, "unknown output")
    planned = []
    for name, spec in described.items():
        if "complex" not in spec:
            continue
        param = alg.parameterDefinition(name)
        destination = param is not None and param.isDestination()
        wanted = not requested or name in requested
        required = destination and not params.is_optional(param)
        if not wanted and not required:
            continue  # a required destination is written anyway, and not returned
        choices = spec["complex"]["formats"]
        fmt = formats.choose((requested.get(name) or {}).get("format"), choices, name) \
            if wanted else choices[0]
        memory = via_memory and destination and fmt["extension"] == "geojson" \
            and _to_memory(alg, param)
        planned.append(_output(name, fmt, param if destination else None, workdir, wanted, memory))
    return planned


def _to_memory(alg, param) -> bool:
    """Whether the algorithm can write this sink to a memory layer (not GDAL's own tools)."""
    provider = alg.provider()
    return (param.type() == "sink" and param.supportsNonFileBasedOutput()
            and provider is not None and provider.supportsNonFileBasedOutput())


def _output(name: str, fmt: dict, param, workdir: str, wanted: bool, memory: bool) -> Output:
    ext = fmt["extension"]
    file = os.path.join(workdir, f"{name}.{ext}" if ext else name)
    target, pack_dir = file, None
    if param is not None and param.type() == "folderDestination":
        pack_dir = target = os.path.join(workdir, f"{name}_files")
    elif fmt["extension"] == "zip":  # a zipped shapefile
        pack_dir = os.path.join(workdir, f"{name}_files")
        target = os.path.join(pack_dir, f"{name}.shp")
    if pack_dir:
        os.makedirs(pack_dir, exist_ok=True)
    return Output(name, fmt, file, target, pack_dir, param is not None, wanted, memory)


def destination_values(planned: list) -> dict:
    """The QGIS parameter values of the destination parameters."""
    return {o.id: "memory:" if o.via_memory else o.target for o in planned if o.destination}


def collect(planned: list, description: dict, requested: dict, results: dict, context) -> dict:
    """{id: {"file", "format"} or {"literal"}} for the wanted outputs of a finished run."""
    collected = {}
    for output in planned:
        if not output.returned:
            continue
        if not output.destination or output.via_memory:
            _export(output, results.get(output.id), context)
        if output.pack_dir:
            _zip(output.pack_dir, output.file)
        if not os.path.exists(output.file):
            raise ExecutionError(f"{output.id}: the algorithm wrote no file")
        collected[output.id] = {"file": output.file, "format": output.format}
    for spec in description["outputs"]:
        value = results.get(spec["id"])
        if "literal" in spec and value is not None and (not requested or spec["id"] in requested):
            text = params.literal_text(value)
            collected[spec["id"]] = {"literal": str(value) if text is None else text}
    return collected


def _export(output: Output, value, context) -> None:
    """Write the layer an algorithm changed in place or wrote to memory (a layer id or path)."""
    layer = QgsProcessingUtils.mapLayerFromString(str(value), context) if value else None
    if layer is None:
        raise ExecutionError(f"{output.id}: the algorithm returned no layer")
    if layer.type() != QgsMapLayerType.VectorLayer:
        gdal.Translate(output.target, layer.source(), format="GTiff",
                       creationOptions=["COPY_SRC_OVERVIEWS=YES"])
        return
    if output.target.endswith(".geojson"):
        try:
            _write_geojson(layer, output.target)
            return
        except TypeError:  # something the native writer leaves to GDAL
            if os.path.isfile(output.target):
                os.remove(output.target)
        except OSError as e:
            raise ExecutionError(f"{output.id}: cannot write the layer: {e}") from None
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = QgsVectorFileWriter.driverForExtension(os.path.splitext(output.target)[1])
    options.fileEncoding = "UTF-8"
    error, message, _, _ = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, output.target, context.transformContext(), options)
    if error != QgsVectorFileWriter.NoError:
        raise ExecutionError(f"{output.id}: cannot write the layer: {message}")


def _write_geojson(layer, path: str) -> None:
    """The layer as GDAL's GeoJSON document, by the native writer; TypeError if it cannot."""
    if wpsmesh_native is None:
        raise TypeError("no native writer outside the worker")
    crs = layer.crs()
    urn = None
    if crs.isValid():
        auth = crs.authid()
        if not auth.startswith("EPSG:"):
            raise TypeError(f"CRS {auth or crs.description()} has no EPSG code")
        urn = "urn:ogc:def:crs:OGC:1.3:CRS84" if auth == "EPSG:4326" \
            else f"urn:ogc:def:crs:EPSG::{auth[5:]}"
    features = ((f.geometry().asWkb().data() if f.hasGeometry() else None, f.attributes())
                for f in layer.getFeatures())
    name = os.path.splitext(os.path.basename(path))[0]
    wpsmesh_native.write_geojson(path, name, urn, layer.fields().names(), features)


def _zip(folder: str, path: str) -> None:
    """Zip a folder's tree into `path` with relative names, then remove the folder."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, names in os.walk(folder):
            for name in sorted(names):
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, folder))
    shutil.rmtree(folder)
