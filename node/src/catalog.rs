//! The process catalog: descriptions read once from a worker (the PyQGIS `describe_all()` JSON)
//! into wire types, indexed by id, so List and Describe never touch Python per request.

use std::collections::HashMap;

use serde::Deserialize;
use wpsmesh_proto::wire::process::v1 as wire;

/// Every published process, by id, in registry order.
#[derive(Debug, Default)]
pub struct Catalog {
    summaries: Vec<wire::ProcessSummary>,
    by_id: HashMap<String, wire::ProcessDescription>,
    skipped: Vec<(String, String)>,
}

impl Catalog {
    /// Parses the worker's JSON: `{"processes": [...], "skipped": [{"id", "reason"}]}`.
    pub fn from_json(json: &str) -> anyhow::Result<Self> {
        let doc: Doc = serde_json::from_str(json)
            .map_err(|e| anyhow::anyhow!("invalid process descriptions from worker: {e}"))?;
        let mut catalog = Self {
            skipped: doc.skipped.into_iter().map(|s| (s.id, s.reason)).collect(),
            ..Self::default()
        };
        for p in doc.processes {
            let description = p.into_wire()?;
            let summary = description.summary.clone().unwrap_or_default();
            catalog.summaries.push(summary.clone());
            catalog.by_id.insert(summary.id, description);
        }
        Ok(catalog)
    }

    pub fn summaries(&self) -> &[wire::ProcessSummary] {
        &self.summaries
    }

    pub fn get(&self, id: &str) -> Option<&wire::ProcessDescription> {
        self.by_id.get(id)
    }

    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    /// Algorithms left out, with the reason.
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }
}

#[derive(Deserialize)]
struct Doc {
    processes: Vec<Process>,
    #[serde(default)]
    skipped: Vec<Skipped>,
}

#[derive(Deserialize)]
struct Skipped {
    id: String,
    reason: String,
}

#[derive(Deserialize)]
struct Process {
    summary: Summary,
    inputs: Vec<Param>,
    outputs: Vec<Param>,
}

#[derive(Deserialize)]
struct Summary {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    async_supported: bool,
}

/// An input or an output: exactly one of `literal`, `complex`, `bounding_box`.
#[derive(Deserialize)]
struct Param {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    min_occurs: u32,
    #[serde(default)]
    max_occurs: u32,
    literal: Option<Literal>,
    complex: Option<Complex>,
    bounding_box: Option<BoundingBox>,
}

#[derive(Deserialize)]
struct Literal {
    data_type: String,
    #[serde(default)]
    role: String,
    default_value: Option<String>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    #[serde(default)]
    allowed_values: Vec<String>,
    #[serde(default)]
    uom: String,
}

#[derive(Deserialize)]
struct Complex {
    formats: Vec<Format>,
    #[serde(default)]
    maximum_megabytes: u64,
}

#[derive(Deserialize)]
struct Format {
    mime_type: String,
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    extension: String,
}

#[derive(Deserialize)]
struct BoundingBox {
    crs: Vec<String>,
}

impl Process {
    fn into_wire(self) -> anyhow::Result<wire::ProcessDescription> {
        let id = self.summary.id.clone();
        let inputs = self
            .inputs
            .into_iter()
            .map(|p| p.into_input())
            .collect::<anyhow::Result<_>>()
            .map_err(|e| anyhow::anyhow!("process {id}: {e}"))?;
        let outputs = self
            .outputs
            .into_iter()
            .map(|p| p.into_output())
            .collect::<anyhow::Result<_>>()
            .map_err(|e| anyhow::anyhow!("process {id}: {e}"))?;
        let s = self.summary;
        Ok(wire::ProcessDescription {
            summary: Some(wire::ProcessSummary {
                id: s.id,
                title: s.title,
                description: s.description,
                version: s.version,
                provider: s.provider,
                async_supported: s.async_supported,
            }),
            inputs,
            outputs,
        })
    }
}

fn literal_type(name: &str) -> anyhow::Result<i32> {
    wire::LiteralType::from_str_name(name)
        .map(|t| t as i32)
        .ok_or_else(|| anyhow::anyhow!("unknown literal type {name:?}"))
}

fn formats(c: Complex) -> wire::ComplexDescription {
    wire::ComplexDescription {
        formats: c
            .formats
            .into_iter()
            .map(|f| wire::Format {
                mime_type: f.mime_type,
                encoding: f.encoding,
                schema: f.schema,
                extension: f.extension,
            })
            .collect(),
        maximum_megabytes: c.maximum_megabytes,
    }
}

impl Param {
    fn into_input(self) -> anyhow::Result<wire::InputDescription> {
        use wire::input_description::Kind;
        let kind = match (self.literal, self.complex, self.bounding_box) {
            (Some(l), None, None) => Kind::Literal(wire::LiteralInputDescription {
                data_type: literal_type(&l.data_type)?,
                role: wire::LiteralRole::from_str_name(&l.role).unwrap_or(wire::LiteralRole::Plain)
                    as i32,
                default_value: l.default_value,
                minimum: l.minimum,
                maximum: l.maximum,
                allowed_values: l.allowed_values,
                uom: l.uom,
            }),
            (None, Some(c), None) => Kind::Complex(formats(c)),
            (None, None, Some(b)) => Kind::BoundingBox(wire::BoundingBoxDescription { crs: b.crs }),
            _ => anyhow::bail!(
                "input {} must be exactly one of literal, complex, bounding_box",
                self.id
            ),
        };
        Ok(wire::InputDescription {
            id: self.id,
            title: self.title,
            description: self.description,
            min_occurs: self.min_occurs,
            max_occurs: self.max_occurs.max(1),
            kind: Some(kind),
        })
    }

    fn into_output(self) -> anyhow::Result<wire::OutputDescription> {
        use wire::output_description::Kind;
        let kind = match (self.literal, self.complex, self.bounding_box) {
            (Some(l), None, None) => Kind::Literal(wire::LiteralOutputDescription {
                data_type: literal_type(&l.data_type)?,
                uom: l.uom,
            }),
            (None, Some(c), None) => Kind::Complex(formats(c)),
            (None, None, Some(b)) => Kind::BoundingBox(wire::BoundingBoxDescription { crs: b.crs }),
            _ => anyhow::bail!(
                "output {} must be exactly one of literal, complex, bounding_box",
                self.id
            ),
        };
        Ok(wire::OutputDescription {
            id: self.id,
            title: self.title,
            description: self.description,
            kind: Some(kind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUFFER: &str = r#"{"processes": [{"summary": {"id": "native:buffer", "title": "Buffer",
      "description": "d", "version": "3.22.16", "provider": "native", "async_supported": true},
      "inputs": [
        {"id": "INPUT", "title": "Input layer", "min_occurs": 1, "max_occurs": 1,
         "complex": {"formats": [{"mime_type": "application/geo+json", "extension": "geojson"}]}},
        {"id": "DISTANCE", "title": "Distance", "min_occurs": 0, "max_occurs": 1,
         "literal": {"data_type": "LITERAL_TYPE_DOUBLE", "role": "LITERAL_ROLE_PLAIN",
                     "allowed_values": [], "uom": "", "default_value": "10"}},
        {"id": "END_CAP_STYLE", "min_occurs": 0, "max_occurs": 1,
         "literal": {"data_type": "LITERAL_TYPE_STRING", "role": "LITERAL_ROLE_ENUM",
                     "allowed_values": ["Round", "Flat", "Square"], "default_value": "Round"}}],
      "outputs": [{"id": "OUTPUT", "title": "Buffered",
         "complex": {"formats": [{"mime_type": "application/geo+json", "extension": "geojson"}]}}]}],
      "skipped": [{"id": "native:setlayerstyle", "reason": "needs the QGIS desktop application"}]}"#;

    #[test]
    fn parses_worker_descriptions_into_wire_types() {
        let c = Catalog::from_json(BUFFER).expect("parse");
        assert_eq!(c.len(), 1);
        assert_eq!(c.skipped().len(), 1);
        let d = c.get("native:buffer").expect("buffer");
        let distance = &d.inputs[1];
        let Some(wire::input_description::Kind::Literal(l)) = &distance.kind else {
            panic!("DISTANCE is a literal");
        };
        assert_eq!(l.data_type, wire::LiteralType::Double as i32);
        assert_eq!(l.default_value.as_deref(), Some("10"));
        let Some(wire::input_description::Kind::Literal(e)) = &d.inputs[2].kind else {
            panic!("END_CAP_STYLE is a literal");
        };
        assert_eq!(e.role, wire::LiteralRole::Enum as i32);
        assert_eq!(e.allowed_values, ["Round", "Flat", "Square"]);
        assert!(matches!(
            d.outputs[0].kind,
            Some(wire::output_description::Kind::Complex(_))
        ));
    }

    #[test]
    fn refuses_ambiguous_parameters() {
        let bad = BUFFER.replace(
            r#""complex": {"formats": [{"mime_type": "application/geo+json", "extension": "geojson"}]}},
        {"id": "DISTANCE""#,
            r#""complex": {"formats": []}, "bounding_box": {"crs": []}},
        {"id": "DISTANCE""#,
        );
        let err = Catalog::from_json(&bad).expect_err("two kinds");
        assert!(err.to_string().contains("exactly one of"), "{err}");
    }
}
