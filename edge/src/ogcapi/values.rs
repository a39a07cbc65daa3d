//! JSON input values both JSON APIs read alike (OGC API - Processes' execute body and the
//! original job API): bounding boxes and inline data (text, JSON, base64).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value};
use wpsmesh_proto::process::BoundingBox;

/// `{"bbox": [minx, miny, maxx, maxy], "crs": ...}` or `lowerCorner`/`upperCorner` (2D); an
/// OGC CRS URI (`http://www.opengis.net/def/crs/EPSG/0/4326`) becomes `EPSG:4326`.
pub(crate) fn parse_bbox(map: &Map<String, Value>) -> Result<BoundingBox, String> {
    let numbers = |key: &str| -> Result<Vec<f64>, String> {
        match map.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| format!("{key} must hold numbers")))
                .collect(),
            Some(_) => Err(format!("{key} must be a list of numbers")),
            None => Ok(Vec::new()),
        }
    };
    let (lower, upper) = match numbers("bbox")? {
        corners if corners.is_empty() => (numbers("lowerCorner")?, numbers("upperCorner")?),
        corners if corners.len() % 2 == 0 => {
            let (l, u) = corners.split_at(corners.len() / 2);
            (l.to_vec(), u.to_vec())
        }
        _ => return Err("bbox needs an even number of coordinates".into()),
    };
    if lower.len() < 2 || lower.len() != upper.len() {
        return Err("a bounding box needs two corners of the same dimension".into());
    }
    let crs = match map.get("crs") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(crs)) => crs_code(crs),
        Some(_) => return Err("crs must be a string".into()),
    };
    wpsmesh_proto::wire::process::v1::BoundingBox {
        crs,
        lower_corner: lower,
        upper_corner: upper,
    }
    .try_into()
    .map_err(|e: wpsmesh_proto::process::Invalid| e.message)
}

/// `http://www.opengis.net/def/crs/EPSG/0/N` as `EPSG:N`, the CRS84 URI as `OGC:CRS84`;
/// anything else as given.
fn crs_code(crs: &str) -> String {
    const OGC_CRS: &str = "http://www.opengis.net/def/crs/";
    match crs.strip_prefix(OGC_CRS).map(|rest| rest.split('/')) {
        Some(mut parts) => match (parts.next(), parts.next(), parts.next()) {
            (Some("EPSG"), Some(_), Some(code)) => format!("EPSG:{code}"),
            (Some("OGC"), Some(_), Some(code)) => format!("OGC:{code}"),
            _ => crs.to_owned(),
        },
        None => crs.to_owned(),
    }
}

/// The bytes of an inline value: a string as its text (base64-decoded when `base64`), JSON
/// objects and arrays as their JSON text; `None` for any other kind of value.
pub(crate) fn inline_data(value: &Value, base64: bool) -> Option<Result<Bytes, String>> {
    let data = match value {
        Value::String(s) => s.clone().into_bytes(),
        v @ (Value::Object(_) | Value::Array(_)) => v.to_string().into_bytes(),
        _ => return None,
    };
    if !base64 {
        return Some(Ok(data.into()));
    }
    Some(
        BASE64
            .decode(data.trim_ascii())
            .map(Bytes::from)
            .map_err(|e| format!("invalid base64: {e}")),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bbox(v: Value) -> Result<BoundingBox, String> {
        parse_bbox(v.as_object().unwrap())
    }

    #[test]
    fn bboxes_read_corners_and_ogc_crs_uris() {
        let b = bbox(
            json!({"bbox": [1, 2, 3, 4], "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}),
        )
        .unwrap();
        assert_eq!(
            (b.lower, b.upper, b.crs.as_str()),
            ([1.0, 2.0], [3.0, 4.0], "EPSG:3857")
        );
        let b = bbox(json!({"lowerCorner": [1, 2], "upperCorner": [3, 4]})).unwrap();
        assert_eq!(b.crs, "");
        let b = bbox(
            json!({"bbox": [1, 2, 3, 4], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}),
        )
        .unwrap();
        assert_eq!(b.crs, "OGC:CRS84");
        assert!(
            bbox(json!({"bbox": [1, 2, 3]}))
                .unwrap_err()
                .contains("even")
        );
        assert!(
            bbox(json!({"bbox": [1, "a", 3, 4]}))
                .unwrap_err()
                .contains("numbers")
        );
        assert!(
            bbox(json!({"bbox": [1, 2, 3, 4], "crs": 4326}))
                .unwrap_err()
                .contains("crs")
        );
    }

    #[test]
    fn inline_data_is_text_json_or_base64() {
        assert_eq!(
            &inline_data(&json!("abc"), false).unwrap().unwrap()[..],
            b"abc"
        );
        assert_eq!(
            &inline_data(&json!("aGVsbG8="), true).unwrap().unwrap()[..],
            b"hello"
        );
        assert_eq!(
            &inline_data(&json!({"a": 1}), false).unwrap().unwrap()[..],
            br#"{"a":1}"#
        );
        assert!(
            inline_data(&json!("!"), true)
                .unwrap()
                .unwrap_err()
                .contains("base64")
        );
        assert!(inline_data(&json!(3), false).is_none());
    }
}
