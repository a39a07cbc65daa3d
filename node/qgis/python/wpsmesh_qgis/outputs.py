"""Output files of a run: where QGIS writes them, and the results returned to the host.

Every complex output is written into the job's workdir as `<ID>.<ext>`. A zipped shapefile is
written into `<ID>_files/<ID>.shp` and a destination folder into `<ID>_files/`, then zipped into
`<ID>.zip`. Layers an algorithm changes in place are exported after the run.
"""

import os
import shutil
import zipfile
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import QgsMapLayerType, QgsProcessingUtils, QgsVectorFileWriter

from . import formats, params
from .errors import ExecutionError, ParameterError


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


def plan(alg, description: dict, requested: dict, workdir: str) -> list:
    """The complex outputs of a run; `requested` maps output ids to {"format"}, all when empty."""
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
        planned.append(_output(name, fmt, param if destination else None, workdir, wanted))
    return planned


def _output(name: str, fmt: dict, param, workdir: str, wanted: bool) -> Output:
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
    return Output(name, fmt, file, target, pack_dir, param is not None, wanted)


def destination_values(planned: list) -> dict:
    """The QGIS parameter values of the destination parameters."""
    return {o.id: o.target for o in planned if o.destination}


def collect(planned: list, description: dict, requested: dict, results: dict, context) -> dict:
    """{id: {"file", "format"} or {"literal"}} for the wanted outputs of a finished run."""
    collected = {}
    for output in planned:
        if not output.returned:
            continue
        if not output.destination:
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
    """Write the layer an algorithm changed in place (its result is a layer id or path)."""
    layer = QgsProcessingUtils.mapLayerFromString(str(value), context) if value else None
    if layer is None:
        raise ExecutionError(f"{output.id}: the algorithm returned no layer")
    if layer.type() != QgsMapLayerType.VectorLayer:
        gdal.Translate(output.target, layer.source(), format="GTiff",
                       creationOptions=["COPY_SRC_OVERVIEWS=YES"])
        return
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = QgsVectorFileWriter.driverForExtension(os.path.splitext(output.target)[1])
    options.fileEncoding = "UTF-8"
    error, message, _, _ = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, output.target, context.transformContext(), options)
    if error != QgsVectorFileWriter.NoError:
        raise ExecutionError(f"{output.id}: cannot write the layer: {message}")


def _zip(folder: str, path: str) -> None:
    """Zip a folder's tree into `path` with relative names, then remove the folder."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, names in os.walk(folder):
            for name in sorted(names):
                full = os.path.join(root, name)
                archive.write(full, os.path.relpath(full, folder))
    shutil.rmtree(folder)
