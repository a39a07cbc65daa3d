//! The worker's Python side names media types itself (`formats.py`): its table by extension
//! and its format constants must agree with the one Rust table ([`wpsmesh_proto::media`]) the
//! node and edge use. Checked here against the embedded source.

#[cfg(test)]
mod tests {
    use wpsmesh_proto::media::{content_type_for, extension_for};

    const FORMATS_PY: &str = include_str!("../python/wpsmesh_qgis/formats.py");

    /// The `"extension": "media/type"` entries of `_MIME_BY_EXTENSION`.
    fn python_table() -> Vec<(String, String)> {
        let start = FORMATS_PY
            .find("_MIME_BY_EXTENSION = {")
            .expect("formats.py defines _MIME_BY_EXTENSION");
        let body = &FORMATS_PY[start..];
        let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
        body.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (ext, mime) = entry
                    .split_once(':')
                    .unwrap_or_else(|| panic!("entry {entry:?} is `\"ext\": \"type\"`"));
                (unquote(ext), unquote(mime))
            })
            .collect()
    }

    /// The `fmt("media/type", "extension")` constants with literal arguments.
    fn python_formats() -> Vec<(String, String)> {
        FORMATS_PY
            .match_indices("fmt(\"")
            .filter_map(|(at, _)| {
                let args = &FORMATS_PY[at + 4..];
                let args = &args[..args.find(')')?];
                let (mime, ext) = args.split_once(',')?;
                Some((unquote(mime), unquote(ext)))
            })
            .collect()
    }

    fn unquote(text: &str) -> String {
        let text = text.trim();
        let inner = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{text:?} is a string literal"));
        inner.to_owned()
    }

    #[test]
    fn the_python_table_agrees_with_the_rust_one() {
        let table = python_table();
        assert!(table.len() >= 10, "parsed {table:?}");
        let mut shared = 0;
        for (ext, mime) in &table {
            let rust = content_type_for(ext);
            if rust == "application/octet-stream" {
                continue; // only the worker knows it (dxf, gpx, xlsx, ...)
            }
            shared += 1;
            assert_eq!(rust, mime, "media type of .{ext}: Rust vs formats.py");
        }
        assert!(shared >= 10, "only {shared} extensions in common");
    }

    #[test]
    fn the_python_formats_agree_with_the_rust_table() {
        let formats = python_formats();
        assert!(formats.len() >= 5, "parsed {formats:?}");
        for (mime, ext) in formats {
            if ext.is_empty() {
                assert_eq!(mime, "application/octet-stream");
                continue;
            }
            assert_eq!(
                extension_for(&mime),
                Some(ext.as_str()),
                "extension of {mime}: Rust vs formats.py"
            );
        }
    }
}
