//! Process summaries, descriptions and the rendered WPS documents (capabilities, process
//! descriptions) with their gzip and br forms, cached at the edge and dropped whenever the
//! set of healthy nodes changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;
use wpsmesh_proto::wire::process::v1::{
    self as wire, DescribeProcessRequest, ListProcessesRequest,
};

use crate::encoding::{Document, Slot, once};
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
    capabilities: HashMap<&'static str, Slot>,
    /// Rendered DescribeProcess documents of one identifier (or `ALL`) by version and
    /// identifier, at most [`MAX_DESCRIBE_DOCUMENTS`].
    described: HashMap<String, Slot>,
}

/// DescribeProcess documents kept per generation (one per version and process, and `ALL`);
/// others are rendered for each request.
pub const MAX_DESCRIBE_DOCUMENTS: usize = 4096;
/// Longest key (version and identifier) whose document is kept.
const MAX_KEY: usize = 2048;

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

    /// The capabilities document of `version` as `content_type`, rendered and compressed
    /// once per node-set generation.
    pub async fn capabilities(
        &self,
        nodes: &Nodes,
        version: Version,
        content_type: &'static str,
        render: impl FnOnce(&[wire::ProcessSummary]) -> String,
    ) -> Result<Arc<Document>, OwsError> {
        let slot = self
            .current()
            .capabilities
            .entry(version.as_str())
            .or_default()
            .clone();
        once(&slot, content_type, async {
            let summaries = self.summaries(nodes).await?;
            Ok(Bytes::from(render(&summaries)))
        })
        .await
    }

    /// The DescribeProcess document `key` (its version and identifier) as `content_type`,
    /// rendered by `render` and compressed once per generation. Only documents of one
    /// identifier (or `ALL`) are kept, at most [`MAX_DESCRIBE_DOCUMENTS`]: a `key` of `None`
    /// (a list of several), or one past the limit, is rendered for this request alone
    /// ([`Described::Once`], compressed per response).
    pub async fn described<F>(
        &self,
        key: Option<String>,
        content_type: &'static str,
        render: F,
    ) -> Result<Described, OwsError>
    where
        F: Future<Output = Result<String, OwsError>>,
    {
        let slot = key.as_ref().and_then(|key| {
            let mut cached = self.current();
            let full = cached.described.len() >= MAX_DESCRIBE_DOCUMENTS || key.len() > MAX_KEY;
            match cached.described.get(key) {
                Some(slot) => Some(slot.clone()),
                None if full => None,
                None => Some(cached.described.entry(key.clone()).or_default().clone()),
            }
        });
        let (Some(slot), Some(key)) = (slot, key) else {
            return Ok(Described::Once(Bytes::from(render.await?)));
        };
        match once(&slot, content_type, async { render.await.map(Bytes::from) }).await {
            Ok(doc) => Ok(Described::Kept(doc)),
            Err(e) => {
                // A refused request (an unknown process) keeps no place in the cache.
                let mut cached = self.current();
                if cached
                    .described
                    .get(&key)
                    .is_some_and(|s| Arc::ptr_eq(s, &slot))
                {
                    cached.described.remove(&key);
                }
                Err(e)
            }
        }
    }
}

/// A DescribeProcess document: kept with its compressed forms, or rendered for one request.
#[derive(Debug)]
pub enum Described {
    Kept(Arc<Document>),
    Once(Bytes),
}
