//! Input formats and reference results for end-to-end tests: the 240 country points of the world
//! map in every vector format a client may send (GeoJSON, zipped shapefile flat and nested,
//! GeoPackage, GML, KML) and a small GeoTIFF, derived with `ogr2ogr` / `gdal_rasterize`; the
//! reference side runs `qgis_process.bin` and measures outputs (feature count and planar area,
//! `gdalinfo -checksum`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::data::{self, POINTS_SQL, WORLD_MAP};

/// What a sample holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vector,
    Raster,
}

/// How a sample's bytes may travel inline in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// Bytes only (base64 inline).
    Binary,
    /// A JSON document (GeoJSON).
    Json,
    /// An XML document (GML, KML), inline as elements where the protocol allows it.
    Xml,
}

/// One input file as a client sends it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Short name for case labels (`geojson`, `shp-zip-flat`, ...).
    pub name: &'static str,
    /// The file sent (uploaded or inlined).
    pub file: PathBuf,
    /// Its media type, when a client declares one.
    pub mime: &'static str,
    pub kind: Kind,
    pub text: Text,
    /// The file `qgis_process` reads for the reference result (the `.shp` for shapefile zips).
    pub local: PathBuf,
}

impl Sample {
    fn new(name: &'static str, file: PathBuf, mime: &'static str, kind: Kind, text: Text) -> Self {
        Self {
            name,
            local: file.clone(),
            file,
            mime,
            kind,
            text,
        }
    }

    /// The file name sent with an upload.
    pub fn file_name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.file)
            .unwrap_or_else(|e| panic!("read sample {}: {e}", self.file.display()))
    }
}

/// Derives every sample into `dir`: the country points as GeoJSON, zipped shapefile (files at
/// the zip root, and inside a `points/` folder), GeoPackage, GML and KML, and the countries
/// rasterized to a 1° GeoTIFF.
pub fn samples(dir: &Path) -> Vec<Sample> {
    let geojson = data::derive(dir, "points.geojson", POINTS_SQL);
    let shp_dir = dir.join("shp");
    std::fs::create_dir_all(&shp_dir).expect("shapefile dir");
    let shp = data::derive(&shp_dir, "points.shp", POINTS_SQL);
    let parts = shapefile_parts(&shp);
    let flat: Vec<(String, Vec<u8>)> = parts
        .iter()
        .map(|(name, bytes)| (name.clone(), bytes.clone()))
        .collect();
    let nested: Vec<(String, Vec<u8>)> = parts
        .iter()
        .map(|(name, bytes)| (format!("points/{name}"), bytes.clone()))
        .collect();
    let write_zip = |name: &str, entries: &[(String, Vec<u8>)]| {
        let path = dir.join(name);
        std::fs::write(&path, zip_of(entries)).expect("write zip");
        path
    };
    let zip_flat = write_zip("points.zip", &flat);
    let zip_nested = write_zip("points-nested.zip", &nested);
    let gpkg = derive_with(dir, "points.gpkg", &["-nln", "points"]);
    // With its .xsd beside it (sent without): GDAL's XSISCHEMA=OFF drops the xmlns:xsi
    // declaration but still writes xsi:nil for null fields, which is not namespace-well-formed.
    let gml = derive_with(dir, "points.gml", &["-nln", "points"]);
    let kml = derive_with(dir, "points.kml", &["-nln", "points"]);
    let tif = rasterize(dir, "countries.tif");
    let zipped = |name, file, mime| {
        let mut s = Sample::new(name, file, mime, Kind::Vector, Text::Binary);
        s.local = shp.clone();
        s
    };
    vec![
        Sample::new(
            "geojson",
            geojson,
            "application/geo+json",
            Kind::Vector,
            Text::Json,
        ),
        zipped("shp-zip-flat", zip_flat, "application/x-zipped-shp"),
        zipped("shp-zip-nested", zip_nested, "application/zip"),
        Sample::new(
            "gpkg",
            gpkg,
            "application/geopackage+sqlite3",
            Kind::Vector,
            Text::Binary,
        ),
        Sample::new("gml", gml, "application/gml+xml", Kind::Vector, Text::Xml),
        Sample::new(
            "kml",
            kml,
            "application/vnd.google-earth.kml+xml",
            Kind::Vector,
            Text::Xml,
        ),
        Sample::new("geotiff", tif, "image/tiff", Kind::Raster, Text::Binary),
    ]
}

/// The country points written by `ogr2ogr` with extra options (format from the extension).
fn derive_with(dir: &Path, name: &str, options: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let status = Command::new("ogr2ogr")
        .args(options)
        .arg(&path)
        .arg(WORLD_MAP)
        .args(["-dialect", "sqlite", "-sql", POINTS_SQL])
        .status()
        .expect("ogr2ogr (gdal-bin) runs");
    assert!(status.success(), "ogr2ogr failed for {}", path.display());
    path
}

/// The countries burnt into a byte raster at 1° (360 × 160, ±80° latitude, deflate).
fn rasterize(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let out = Command::new("gdal_rasterize")
        .args([
            "-q", "-burn", "1", "-tr", "1", "1", "-te", "-180", "-80", "180", "80",
        ])
        .args(["-ot", "Byte", "-co", "COMPRESS=DEFLATE", "-l", "countries"])
        .arg(WORLD_MAP)
        .arg(&path)
        .output()
        .expect("gdal_rasterize (gdal-bin) runs");
    assert!(
        out.status.success(),
        "gdal_rasterize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The files `ogr2ogr` wrote for the shapefile `shp` (`points.shp`, `.shx`, `.dbf`, `.prj`,
/// ...), by file name.
fn shapefile_parts(shp: &Path) -> Vec<(String, Vec<u8>)> {
    let stem = shp.file_stem().expect("shapefile stem").to_owned();
    let dir = shp.parent().expect("shapefile dir");
    let mut parts: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list shapefile dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_stem() == Some(stem.as_os_str()))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read shapefile part"))
        })
        .collect();
    parts.sort();
    for ext in ["shp", "shx", "dbf", "prj"] {
        assert!(
            parts.iter().any(|(n, _)| n.ends_with(&format!(".{ext}"))),
            "ogr2ogr wrote no .{ext} beside {}",
            shp.display()
        );
    }
    parts
}

/// A zip archive of `(path in the zip, content)` entries.
pub fn zip_of<N: AsRef<str>, B: AsRef<[u8]>>(entries: &[(N, B)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(name.as_ref(), zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        w.write_all(bytes.as_ref()).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// Runs `/usr/bin/qgis_process.bin run` (the reference; the Debian `qgis_process` wrapper passes
/// a flag its binary rejects) headless, and returns the output path.
pub fn qgis_process(alg: &str, args: &[(&str, String)], out: PathBuf) -> PathBuf {
    let mut cmd = Command::new("/usr/bin/qgis_process.bin");
    cmd.env("QT_QPA_PLATFORM", "offscreen").args(["run", alg]);
    for (k, v) in args {
        cmd.arg(format!("--{k}={v}"));
    }
    cmd.arg(format!("--OUTPUT={}", out.display()));
    let result = cmd
        .output()
        .expect("qgis_process.bin runs (apt-get install qgis)");
    assert!(
        result.status.success(),
        "qgis_process {alg}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Feature count and a measure of a GeoJSON file: total planar area for polygons, coordinate
/// sum for points.
pub fn stats(path: &Path) -> (usize, f64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not GeoJSON ({e}): {}",
            path.display(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    });
    let features = doc["features"].as_array().expect("features");
    let ring_area = |ring: &Value| -> f64 {
        let pts: Vec<(f64, f64)> = ring
            .as_array()
            .expect("ring")
            .iter()
            .map(|p| (p[0].as_f64().expect("x"), p[1].as_f64().expect("y")))
            .collect();
        pts.windows(2)
            .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
            .sum::<f64>()
            .abs()
            / 2.0
    };
    let polygon_area = |rings: &Value| -> f64 {
        let rings = rings.as_array().expect("rings");
        ring_area(&rings[0]) - rings[1..].iter().map(ring_area).sum::<f64>()
    };
    let measure = features
        .iter()
        .map(|f| {
            let g = &f["geometry"];
            match g["type"].as_str().expect("type") {
                "Polygon" => polygon_area(&g["coordinates"]),
                "MultiPolygon" => g["coordinates"]
                    .as_array()
                    .expect("polygons")
                    .iter()
                    .map(polygon_area)
                    .sum(),
                "Point" => {
                    g["coordinates"][0].as_f64().expect("x")
                        + g["coordinates"][1].as_f64().expect("y")
                }
                other => panic!("unexpected geometry {other}"),
            }
        })
        .sum();
    (features.len(), measure)
}

/// Relative difference of `ours` from `reference`.
pub fn relative_difference(ours: f64, reference: f64) -> f64 {
    (ours - reference).abs() / reference.abs().max(f64::MIN_POSITIVE)
}

/// Fails unless `ours` is within 1e-9 (relative) of `reference`.
pub fn assert_close(ours: f64, reference: f64, what: &str) {
    let rel = relative_difference(ours, reference);
    assert!(
        rel <= 1e-9,
        "{what}: ours {ours} vs qgis_process {reference} (rel {rel:e})"
    );
}

/// `gdalinfo -checksum` of a raster's bands, `Checksum=` values joined by commas.
pub fn raster_checksum(path: &Path) -> String {
    let out = Command::new("gdalinfo")
        .arg("-checksum")
        .arg(path)
        .output()
        .expect("gdalinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Checksum="))
        .collect();
    assert!(
        !sums.is_empty(),
        "no checksum for {}: {text}{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    sums.join(",")
}
