//! Process contract helpers over the `wpsmesh.process.v1` wire types shared by the node and the
//! job store.

use crate::wire::process::v1 as wire;

/// The storage objects among a job's outputs (those returned by reference).
pub fn object_ids(outputs: &[wire::Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match &o.value {
            Some(wire::output::Value::Reference(r)) => Some(r.object_id.clone()),
            _ => None,
        })
        .collect()
}
