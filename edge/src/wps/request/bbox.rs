//! Bounding boxes: from XML corners (`LowerCorner`/`UpperCorner`), from the KVP text form
//! `minx,miny,maxx,maxy[,crs]`, checked as 2D boxes ([`two_d`]), and the conversion of KVP
//! literals once the process description says an input is a bounding box.

use wpsmesh_proto::process::{self, ExecuteRequest, InputValue};
use wpsmesh_proto::wire::process::v1 as wire;

use super::values::quote;
use crate::ows::OwsError;

/// A bounding box from whitespace-separated corner coordinates.
pub(super) fn from_corners(
    crs: Option<&str>,
    lower: &str,
    upper: &str,
    locator: &str,
) -> Result<wire::BoundingBox, OwsError> {
    let lower = numbers(lower.split_whitespace(), locator)?;
    let upper = numbers(upper.split_whitespace(), locator)?;
    checked(crs.unwrap_or_default(), lower, upper, locator)
}

/// A bounding box from its KVP form: 2N comma-separated numbers (lower corner, then upper), then
/// optionally the CRS (OWS 1.1 §10.2.3), e.g. `-10,40,5,52,EPSG:4326`.
pub fn bbox_from_text(text: &str, locator: &str) -> Result<wire::BoundingBox, OwsError> {
    let mut parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let crs = match parts.last() {
        Some(last) if last.parse::<f64>().is_err() => parts.pop().unwrap_or_default(),
        _ => "",
    };
    let values = numbers(parts.into_iter(), locator)?;
    if values.len() % 2 != 0 {
        return Err(OwsError::invalid(
            locator,
            format!(
                "{locator}: a bounding box needs as many lower as upper coordinates, got {}",
                quote(text)
            ),
        ));
    }
    let upper = values[values.len() / 2..].to_vec();
    let mut lower = values;
    lower.truncate(upper.len());
    checked(crs, lower, upper, locator)
}

/// A parsed bounding box as the mesh takes one: two 2D corners.
pub(super) fn two_d(
    bbox: wire::BoundingBox,
    locator: &str,
) -> Result<process::BoundingBox, OwsError> {
    bbox.try_into().map_err(|e: process::Invalid| {
        OwsError::invalid(locator, format!("{locator}: {}", e.message))
    })
}

/// Turns literal inputs given for bounding-box inputs of `description` into bounding boxes
/// (WPS 1.0.0 KVP cannot tell them apart at parse time). A missing CRS stays empty.
pub fn resolve_bboxes(
    request: &mut ExecuteRequest,
    description: &wire::ProcessDescription,
) -> Result<(), OwsError> {
    for input in &mut request.inputs {
        let is_bbox = description.inputs.iter().any(|d| {
            d.id == input.id
                && matches!(d.kind, Some(wire::input_description::Kind::BoundingBox(_)))
        });
        if let (true, InputValue::Literal(literal)) = (is_bbox, &input.value) {
            let bbox = two_d(bbox_from_text(&literal.value, &input.id)?, &input.id)?;
            input.value = InputValue::BoundingBox(bbox);
        }
    }
    Ok(())
}

fn numbers<'a>(parts: impl Iterator<Item = &'a str>, locator: &str) -> Result<Vec<f64>, OwsError> {
    parts
        .map(|p| match p.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(OwsError::invalid(
                locator,
                format!("{locator}: {} is not a coordinate", quote(p)),
            )),
        })
        .collect()
}

fn checked(
    crs: &str,
    lower: Vec<f64>,
    upper: Vec<f64>,
    locator: &str,
) -> Result<wire::BoundingBox, OwsError> {
    if lower.is_empty() || lower.len() != upper.len() {
        return Err(OwsError::invalid(
            locator,
            format!(
                "{locator}: bounding box corners need the same number (at least one) of coordinates, got {} and {}",
                lower.len(),
                upper.len()
            ),
        ));
    }
    Ok(wire::BoundingBox {
        crs: crs.trim().to_owned(),
        lower_corner: lower,
        upper_corner: upper,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ows::OwsCode;

    #[test]
    fn kvp_text_with_and_without_crs() {
        let b = bbox_from_text("1,2,3,4,EPSG:4326", "BBOX").unwrap();
        assert_eq!(b.crs, "EPSG:4326");
        assert_eq!(b.lower_corner, vec![1.0, 2.0]);
        assert_eq!(b.upper_corner, vec![3.0, 4.0]);
        let b = bbox_from_text("1, 2, 3, 4, 5, 6", "BBOX").unwrap();
        assert_eq!((b.crs.as_str(), b.lower_corner.len()), ("", 3));
        for bad in ["1,2,3", "a,b,c,d", "1,2,nan,4", ""] {
            let err = bbox_from_text(bad, "BBOX").unwrap_err();
            assert_eq!(err.code, OwsCode::InvalidParameterValue, "{bad}");
            assert_eq!(err.locator.as_deref(), Some("BBOX"));
        }
    }

    #[test]
    fn corners() {
        let b = from_corners(Some("EPSG:3857"), " 1 2 ", "3\n4", "B").unwrap();
        assert_eq!(
            (b.lower_corner, b.upper_corner),
            (vec![1.0, 2.0], vec![3.0, 4.0])
        );
        assert!(from_corners(None, "1 2", "3", "B").is_err());
    }

    #[test]
    fn literals_become_bboxes_where_described() {
        let literal = |id: &str, value: &str| process::Input {
            id: id.into(),
            value: InputValue::Literal(process::LiteralValue::plain(value)),
        };
        let mut request = ExecuteRequest {
            process_id: "native:extractbyextent".into(),
            inputs: vec![
                literal("EXTENT", "0,0,1,1,EPSG:4326"),
                literal("NAME", "0,0,1,1"),
            ],
            outputs: vec![],
            timeout: None,
            subscriber: None,
        };
        let description = wire::ProcessDescription {
            inputs: vec![wire::InputDescription {
                id: "EXTENT".into(),
                kind: Some(wire::input_description::Kind::BoundingBox(
                    wire::BoundingBoxDescription::default(),
                )),
                ..Default::default()
            }],
            ..Default::default()
        };
        resolve_bboxes(&mut request, &description).unwrap();
        assert!(matches!(
            request.inputs[0].value,
            InputValue::BoundingBox(_)
        ));
        assert!(matches!(request.inputs[1].value, InputValue::Literal(_)));
        // A 3D box given for a bounding-box input is refused, naming the input.
        request.inputs[0] = literal("EXTENT", "0,0,0,1,1,1");
        let e = resolve_bboxes(&mut request, &description).unwrap_err();
        assert_eq!(e.locator.as_deref(), Some("EXTENT"));
        assert_eq!(e.text, "EXTENT: a bounding box needs two 2D corners");
    }
}
