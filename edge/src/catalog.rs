//! Process summaries, descriptions and rendered capabilities, cached at the edge and dropped
//! whenever the set of healthy nodes changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;
use wpsmesh_proto::wire::process::v1::{
    self as wire, DescribeProcessRequest, ListProcessesRequest,
};

use crate::nodes::Nodes;
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::Version;

/// The cache; cheap to share behind an `Arc`.
pub struct Catalog {
    generation: watch::Receiver<u64>,
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    generation: u64,
    summaries: Option<Arc<Vec<wire::ProcessSummary>>>,
    descriptions: HashMap<String, Arc<wire::ProcessDescription>>,
    capabilities: HashMap<&'static str, Bytes>,
}

impl Catalog {
    pub fn new(nodes: &Nodes) -> Self {
        Self {
            generation: nodes.generation(),
            cached: Mutex::default(),
        }
    }

    /// The cache, emptied first if the node set changed since it was filled.
    fn current(&self) -> MutexGuard<'_, Cached> {
        let generation = *self.generation.borrow();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.generation != generation {
            *cached = Cached {
                generation,
                ..Cached::default()
            };
        }
        cached
    }

    pub async fn summaries(
        &self,
        nodes: &Nodes,
    ) -> Result<Arc<Vec<wire::ProcessSummary>>, OwsError> {
        if let Some(s) = self.current().summaries.clone() {
            return Ok(s);
        }
        let list = nodes
            .call_idempotent(|mut c| async move { c.list_processes(ListProcessesRequest {}).await })
            .await?;
        let summaries = Arc::new(list.processes);
        self.current().summaries = Some(summaries.clone());
        Ok(summaries)
    }

    /// One description; an unknown id is NoSuchProcess (InvalidParameterValue in 1.0.0)
    /// with the identifier as locator.
    pub async fn describe(
        &self,
        nodes: &Nodes,
        id: &str,
    ) -> Result<Arc<wire::ProcessDescription>, OwsError> {
        if let Some(d) = self.current().descriptions.get(id).cloned() {
            return Ok(d);
        }
        let request = DescribeProcessRequest { id: id.to_owned() };
        let answer = nodes
            .call_idempotent(|mut c| {
                let request = request.clone();
                async move { c.describe_process(request).await }
            })
            .await
            .map_err(|e| match e.code {
                OwsCode::NoSuchProcess | OwsCode::InvalidParameterValue => OwsError::new(
                    OwsCode::NoSuchProcess,
                    Some("Identifier"),
                    format!("no process {id:?}"),
                ),
                _ => e,
            })?;
        let description = Arc::new(
            answer
                .process
                .ok_or_else(|| OwsError::internal("node answered without a description"))?,
        );
        self.current()
            .descriptions
            .insert(id.to_owned(), description.clone());
        Ok(description)
    }

    /// A rendered capabilities document of `version`, rendered once per node-set generation.
    pub async fn capabilities(
        &self,
        nodes: &Nodes,
        version: Version,
        render: impl FnOnce(&[wire::ProcessSummary]) -> String,
    ) -> Result<Bytes, OwsError> {
        if let Some(doc) = self.current().capabilities.get(version.as_str()).cloned() {
            return Ok(doc);
        }
        let summaries = self.summaries(nodes).await?;
        let doc = Bytes::from(render(&summaries));
        self.current()
            .capabilities
            .insert(version.as_str(), doc.clone());
        Ok(doc)
    }
}
