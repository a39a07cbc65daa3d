//! Media types and file formats: the one table of media type ↔ file extension every service
//! uses, and recognition of a geodata file from its first bytes.

/// Bytes of a file's start that [`sniff`] looks at (more are ignored).
pub const SNIFF_LEN: usize = 4096;

/// The media type wpsmesh uses for a file extension.
pub fn content_type_for(format: &str) -> &'static str {
    match format {
        "geojson" => "application/geo+json",
        "json" => "application/json",
        "gml" => "application/gml+xml",
        "kml" => "application/vnd.google-earth.kml+xml",
        "gpkg" => "application/geopackage+sqlite3",
        "zip" | "shz" => "application/zip",
        "tif" | "tiff" => "image/tiff",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "xml" => "application/xml",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// The file extension wpsmesh uses for a media type, if it knows one. Parameters are ignored
/// except the WPS 1.0 habit `text/xml; subtype=gml/3.1.1`, which is GML.
pub fn extension_for(media_type: &str) -> Option<&'static str> {
    let mut parts = media_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let gml_subtype = parts.any(|p| {
        p.trim()
            .to_ascii_lowercase()
            .strip_prefix("subtype=")
            .is_some_and(|s| s.trim_matches('"').starts_with("gml"))
    });
    Some(match essence.as_str() {
        "text/xml" | "application/xml" if gml_subtype => "gml",
        "application/geo+json" | "application/vnd.geo+json" => "geojson",
        "application/json" => "json",
        "application/gml+xml" => "gml",
        "application/xml" | "text/xml" => "xml",
        "application/vnd.google-earth.kml+xml" => "kml",
        "application/geopackage+sqlite3" => "gpkg",
        "application/zip"
        | "application/x-zip-compressed"
        | "application/x-zipped-shp"
        | "application/x-esri-shapefile" => "zip",
        "image/tiff" | "image/geotiff" | "image/tiff; application=geotiff" => "tif",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "text/csv" => "csv",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/pdf" => "pdf",
        _ => return None,
    })
}

/// A geodata container recognised from its content's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A zip archive (a zipped shapefile, most often).
    Zip,
    /// A JSON object: GeoJSON.
    GeoJson,
    /// An SQLite database: GeoPackage.
    Sqlite,
    /// A TIFF or BigTIFF image: GeoTIFF.
    Tiff,
    /// An XML document whose root element is `kml`.
    Kml,
    /// An XML document in the GML namespace.
    Gml,
    /// Some other XML document.
    Xml,
}

impl Sniffed {
    /// The extension a file of this kind is stored and opened under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Zip => "zip",
            Self::GeoJson => "geojson",
            Self::Sqlite => "gpkg",
            Self::Tiff => "tif",
            Self::Kml => "kml",
            Self::Gml => "gml",
            Self::Xml => "xml",
        }
    }

    /// What the content is, for messages ("the content is a zip archive").
    pub fn describe(self) -> &'static str {
        match self {
            Self::Zip => "a zip archive",
            Self::GeoJson => "GeoJSON",
            Self::Sqlite => "a GeoPackage (SQLite) database",
            Self::Tiff => "a TIFF image",
            Self::Kml => "KML",
            Self::Gml => "GML",
            Self::Xml => "XML",
        }
    }

    /// Whether a file claimed to have `extension` may have this content.
    pub fn fits(self, extension: &str) -> bool {
        let fitting: &[&str] = match self {
            Self::Zip => &["zip", "shz"],
            Self::GeoJson => &["geojson", "json"],
            Self::Sqlite => &["gpkg", "sqlite", "db"],
            Self::Tiff => &["tif", "tiff"],
            Self::Kml => &["kml", "xml"],
            Self::Gml => &["gml", "xml"],
            Self::Xml => &["xml"],
        };
        fitting.contains(&extension)
    }
}

/// Whether [`sniff`] can tell files of this extension from others: a claim of such an
/// extension that the content contradicts is an error worth reporting.
pub fn is_recognisable(extension: &str) -> bool {
    matches!(
        extension,
        "zip" | "shz" | "geojson" | "gpkg" | "tif" | "tiff" | "kml" | "gml"
    )
}

/// Recognises a geodata container from the first bytes of a file (see [`SNIFF_LEN`]).
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    const SIGNATURES: &[(&[u8], Sniffed)] = &[
        (b"PK\x03\x04", Sniffed::Zip),
        (b"PK\x05\x06", Sniffed::Zip),
        (b"SQLite format 3\0", Sniffed::Sqlite),
        (b"II*\0", Sniffed::Tiff),
        (b"MM\0*", Sniffed::Tiff),
        (b"II+\0", Sniffed::Tiff),
        (b"MM\0+", Sniffed::Tiff),
    ];
    if let Some((_, kind)) = SIGNATURES.iter().find(|(sig, _)| head.starts_with(sig)) {
        return Some(*kind);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = text.trim_ascii_start();
    match text.first()? {
        b'{' => Some(Sniffed::GeoJson),
        b'<' => Some(xml_kind(text)),
        _ => None,
    }
}

/// KML, GML or other XML, from the root element (past the prolog) and the namespaces in view.
fn xml_kind(text: &[u8]) -> Sniffed {
    let mut rest = text;
    // Skip the XML declaration, processing instructions, comments and a doctype.
    loop {
        rest = rest.trim_ascii_start();
        let close: &[u8] = if rest.starts_with(b"<?") {
            b"?>"
        } else if rest.starts_with(b"<!--") {
            b"-->"
        } else if rest.starts_with(b"<!") {
            b">"
        } else {
            break;
        };
        match find(rest, close) {
            Some(at) => rest = &rest[at + close.len()..],
            None => return Sniffed::Xml,
        }
    }
    let name: Vec<u8> = rest
        .iter()
        .skip(1)
        .take_while(|b| !b.is_ascii_whitespace() && !matches!(b, b'>' | b'/'))
        .copied()
        .collect();
    let local = name.rsplit(|b| *b == b':').next().unwrap_or_default();
    if local.eq_ignore_ascii_case(b"kml") {
        Sniffed::Kml
    } else if find(rest, b"http://www.opengis.net/gml").is_some() {
        Sniffed::Gml
    } else {
        Sniffed::Xml
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_media_types() {
        assert_eq!(extension_for("application/geo+json"), Some("geojson"));
        assert_eq!(extension_for("text/xml; subtype=gml/3.1.1"), Some("gml"));
        assert_eq!(extension_for("text/xml"), Some("xml"));
        assert_eq!(extension_for("Application/X-Zipped-Shp"), Some("zip"));
        assert_eq!(extension_for("application/x-unknown"), None);
        for ext in ["geojson", "gml", "kml", "gpkg", "zip", "tif", "csv", "xml"] {
            assert_eq!(extension_for(content_type_for(ext)), Some(ext), "{ext}");
        }
    }

    #[test]
    fn content_is_recognised_by_its_signature() {
        assert_eq!(sniff(b"PK\x03\x04\x14\0"), Some(Sniffed::Zip));
        assert_eq!(sniff(b"SQLite format 3\0\x10\0"), Some(Sniffed::Sqlite));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(Sniffed::Tiff));
        assert_eq!(sniff(b"MM\0*"), Some(Sniffed::Tiff));
        assert_eq!(
            sniff(b"\xEF\xBB\xBF\n  {\"type\": \"FeatureCollection\"}"),
            Some(Sniffed::GeoJson)
        );
        let kml = br#"<?xml version="1.0" encoding="utf-8" ?>
<!-- made by ogr2ogr -->
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>"#;
        assert_eq!(sniff(kml), Some(Sniffed::Kml));
        let gml = br#"<?xml version="1.0"?><ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">"#;
        assert_eq!(sniff(gml), Some(Sniffed::Gml));
        assert_eq!(sniff(b"<html><body>"), Some(Sniffed::Xml));
        assert_eq!(sniff(b"<?xml never closed"), Some(Sniffed::Xml));
        assert_eq!(sniff(b"id,name\n1,a\n"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn claims_are_checked_against_content() {
        assert!(Sniffed::GeoJson.fits("json"));
        assert!(Sniffed::Kml.fits("xml"));
        assert!(!Sniffed::GeoJson.fits("zip"));
        assert!(is_recognisable("zip") && is_recognisable("gpkg"));
        // Generic claims never contradict content: the content decides.
        assert!(!is_recognisable("xml") && !is_recognisable("json") && !is_recognisable("dat"));
    }
}
