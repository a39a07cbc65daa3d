//! A GeoJSON writer for vector outputs, called from Python as `wpsmesh_native.write_geojson`:
//! the same document GDAL's GeoJSON driver writes (layout, `name`, `crs`, properties, `null`
//! geometries, Z kept, M dropped), with coordinates and reals in their shortest exact form.
//!
//! Why: GDAL 3.6 formats each coordinate through a fresh `std::ostringstream`, which perf put at
//! over a third of a buffer job's CPU (18.8 ms of ~45 for 240 polygons). Values this writer does
//! not know (dates, lists, maps, bytes, curves...) raise `TypeError`, and the caller writes the
//! layer with GDAL instead, so nothing changes for them.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use wkb::geometry;

mod wkb;

/// A geometry or value this writer does not handle; the caller falls back to GDAL.
#[derive(Debug, PartialEq)]
pub struct Unsupported(pub String);

impl From<Unsupported> for PyErr {
    fn from(e: Unsupported) -> Self {
        PyTypeError::new_err(e.0)
    }
}

/// `write_geojson(path, name, crs, fields, features)`: writes a FeatureCollection to `path`.
/// `crs` is the URN GDAL names the layer's CRS with (None: no `crs` member); `features` yields
/// `(wkb: bytes | None, attributes: list)`, the attributes in `fields` order, each None, a
/// QVariant NULL, bool, int, float or str. Raises TypeError for anything else.
#[pyfunction]
pub fn write_geojson(
    path: &str,
    name: &str,
    crs: Option<&str>,
    fields: Vec<String>,
    features: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let file = File::create(path).map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let keys: Vec<String> = fields.iter().map(|f| json_string(f)).collect();
    header(&mut out, name, crs).map_err(io_error)?;
    let mut first = true;
    // One feature's text, reused from feature to feature.
    let mut line = Vec::with_capacity(4096);
    for feature in features.try_iter()? {
        let feature = feature?;
        let (wkb, attributes): (Option<Bound<'_, PyBytes>>, Vec<Bound<'_, PyAny>>) =
            feature.extract()?;
        line.clear();
        line.extend_from_slice(if first { b"{ " } else { b",\n{ " });
        first = false;
        line.extend_from_slice(b"\"type\": \"Feature\", \"properties\": { ");
        for (i, (key, value)) in keys.iter().zip(&attributes).enumerate() {
            if i > 0 {
                line.extend_from_slice(b", ");
            }
            line.extend_from_slice(key.as_bytes());
            line.extend_from_slice(b": ");
            value_json(value, &mut line)?;
        }
        line.extend_from_slice(b" }, \"geometry\": ");
        match wkb {
            Some(wkb) => geometry(wkb.as_bytes(), &mut line)?,
            None => line.extend_from_slice(b"null"),
        }
        line.extend_from_slice(b" }");
        out.write_all(&line).map_err(io_error)?;
    }
    out.write_all(b"\n]\n}\n").map_err(io_error)?;
    out.flush().map_err(io_error)
}

fn io_error(e: io::Error) -> PyErr {
    PyOSError::new_err(e.to_string())
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a str serialises")
}

fn header(out: &mut impl Write, name: &str, crs: Option<&str>) -> io::Result<()> {
    write!(
        out,
        "{{\n\"type\": \"FeatureCollection\",\n\"name\": {},\n",
        json_string(name)
    )?;
    if let Some(crs) = crs {
        writeln!(
            out,
            "\"crs\": {{ \"type\": \"name\", \"properties\": {{ \"name\": {} }} }},",
            json_string(crs)
        )?;
    }
    out.write_all(b"\"features\": [\n")
}

/// One attribute value as JSON; bool before int (a Python bool is an int).
fn value_json(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = value.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(i) = value.cast::<PyInt>() {
        let i: i64 = i
            .extract()
            .map_err(|_| Unsupported("an integer beyond 64 bits".into()))?;
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Ok(f) = value.cast::<PyFloat>() {
        number(f.value(), out);
    } else if let Ok(s) = value.cast::<PyString>() {
        out.extend_from_slice(json_string(&s.to_cow()?).as_bytes());
    } else if is_null_variant(value) {
        out.extend_from_slice(b"null");
    } else {
        let kind = value.get_type().name()?;
        return Err(Unsupported(format!("attribute of type {kind}")).into());
    }
    Ok(())
}

/// PyQGIS hands NULL attributes over as a null `QVariant`.
fn is_null_variant(value: &Bound<'_, PyAny>) -> bool {
    value.get_type().name().is_ok_and(|n| n == "QVariant")
        && value
            .call_method0("isNull")
            .and_then(|b| b.extract::<bool>())
            .unwrap_or(false)
}

/// A finite double in its shortest exact form (`1.0`, `0.1`, `1e300`); GDAL writes `null` in
/// place of NaN and infinities unless asked otherwise.
pub(crate) fn number(value: f64, out: &mut Vec<u8>) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Registers `wpsmesh_native` (this writer) in `sys.modules`, for `outputs.py` to import.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let module = PyModule::new(py, "wpsmesh_native")?;
    module.add_function(wrap_pyfunction!(write_geojson, &module)?)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("wpsmesh_native", module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_are_null() {
        let mut out = Vec::new();
        number(f64::INFINITY, &mut out);
        number(1e300, &mut out);
        assert_eq!(out, b"null1e300");
    }
}
