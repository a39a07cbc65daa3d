//! `GET /processes` (summaries, paged with `limit` and `offset`, `next`/`prev` links) and
//! `GET /processes/{processID}` (ogc-process-description). Both answer JSON rendered once per
//! node-set generation ([`Docs`]): the catalog's descriptions are turned into documents the
//! first time they are asked for, compressed once (gzip, br), and served as bytes after.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::watch;
use utoipa::IntoParams;
use wpsmesh_proto::wire::process::v1 as wire;

use super::model::{JobControl, Link, Process, ProcessList, ProcessSummary, Transmission};
use super::negotiate::{self, JSON};
use super::responses::{BadRequest, Format, NoSuchProcess, NotAcceptable, ProcessId, Unavailable};
use super::{Problem, Shared, schema};
use crate::encoding::{Slot, once};
use crate::nodes::Nodes;
use crate::ows::OwsCode;

/// Processes per page when the request gives no `limit`: every process QGIS publishes fits.
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;
/// Pages of the process list kept rendered per generation (distinct limit/offset pairs);
/// others are rendered for each request. Descriptions are all kept (one per process).
const MAX_PAGES: usize = 32;

/// Query parameters of the process list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Processes per page (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// How many processes to skip: the `next` and `prev` links set it.
    #[param(minimum = 0)]
    offset: Option<u32>,
}

/// The process list: summaries of the processes every node publishes, a page at a time.
#[utoipa::path(
    get,
    path = "/processes",
    tag = "Processes",
    operation_id = "getProcesses",
    params(ListParams, Format),
    responses(
        (status = 200, description = "A page of process summaries", body = ProcessList, content_type = "application/json"),
        BadRequest, NotAcceptable, Unavailable,
    )
)]
pub async fn list(
    State(state): State<Shared>,
    Extension(docs): Extension<Arc<Docs>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let params = negotiate::json_only(&headers, raw.as_deref())?;
    let limit = bounded(&params, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let offset = bounded(&params, "offset", 0, usize::MAX)?.unwrap_or(0);
    docs.get_or_render(Key::Page(limit, offset), || async {
        let summaries = state.catalog.summaries(&state.nodes).await?;
        Ok(page_of(&summaries, &state.public_url, limit, offset))
    })
    .await
}

/// One process's description: its inputs and outputs with their JSON Schemas.
#[utoipa::path(
    get,
    path = "/processes/{processID}",
    tag = "Processes",
    operation_id = "getProcessDescription",
    params(ProcessId, Format),
    responses(
        (status = 200, description = "The process description", body = Process, content_type = "application/json"),
        NoSuchProcess, NotAcceptable, Unavailable,
    )
)]
pub async fn describe(
    State(state): State<Shared>,
    Extension(docs): Extension<Arc<Docs>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    negotiate::json_only(&headers, raw.as_deref())?;
    docs.get_or_render(Key::Process(id.clone()), || async {
        let description = state
            .catalog
            .describe(&state.nodes, &id)
            .await
            .map_err(|e| match e.code {
                OwsCode::NoSuchProcess => Problem::no_such_process(&id),
                _ => Problem(e),
            })?;
        Ok(process(&description, &state.public_url))
    })
    .await
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, JSON)], body).into_response()
}

/// Query parameter `name` as a number in `min..=max`, if given; anything else is a 400
/// naming it.
fn bounded(
    params: &[(String, String)],
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, Problem> {
    let Some(text) = negotiate::param(params, name) else {
        return Ok(None);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ if max == usize::MAX => Err(Problem::invalid(
            name,
            format!("{name} must be an integer of at least {min}, not {text:?}"),
        )),
        _ => Err(Problem::invalid(
            name,
            format!("{name} must be an integer from {min} to {max}, not {text:?}"),
        )),
    }
}

/// The page of `limit` summaries from `offset`, linked to itself and its neighbours; each
/// description shortened to its first paragraph.
fn page_of(all: &[wire::ProcessSummary], base: &str, limit: usize, offset: usize) -> ProcessList {
    let processes = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| {
            let mut short = summary(s, base);
            short.description = first_paragraph(&short.description).to_owned();
            short
        })
        .collect();
    let href = |offset: usize| format!("{base}/processes?limit={limit}&offset={offset}");
    let mut links = vec![Link::new(
        href(offset),
        "self",
        JSON,
        "this page of processes",
    )];
    if offset.saturating_add(limit) < all.len() {
        links.push(Link::new(
            href(offset + limit),
            "next",
            JSON,
            "the next page",
        ));
    }
    if offset > 0 {
        let prev = offset
            .saturating_sub(limit)
            .min(all.len().saturating_sub(1));
        links.push(Link::new(href(prev), "prev", JSON, "the previous page"));
    }
    ProcessList { processes, links }
}

/// The first paragraph of `text`: a list entry's description (the process's own document
/// has it whole), which keeps the list small.
fn first_paragraph(text: &str) -> &str {
    text.split("\n\n").next().unwrap_or_default().trim()
}

fn summary(s: &wire::ProcessSummary, base: &str) -> ProcessSummary {
    let mut job_control_options = vec![JobControl::SyncExecute];
    if s.async_supported {
        job_control_options.extend([JobControl::AsyncExecute, JobControl::Dismiss]);
    }
    ProcessSummary {
        id: s.id.clone(),
        title: s.title.clone(),
        description: s.description.clone(),
        version: s.version.clone(),
        job_control_options,
        output_transmission: vec![Transmission::Value, Transmission::Reference],
        links: vec![Link::new(
            format!("{base}/processes/{}", s.id),
            "self",
            JSON,
            "process description",
        )],
    }
}

/// The ogc-process-description of `d`.
fn process(d: &wire::ProcessDescription, base: &str) -> Process {
    let mut summary = summary(&d.summary.clone().unwrap_or_default(), base);
    let execute = format!("{base}/processes/{}/execution", summary.id);
    summary.links.push(Link::new(
        execute,
        "http://www.opengis.net/def/rel/ogc/1.0/execute",
        JSON,
        "execute this process",
    ));
    let inputs: BTreeMap<_, _> = d
        .inputs
        .iter()
        .map(|i| (i.id.clone(), schema::input(i)))
        .collect();
    let outputs: BTreeMap<_, _> = d
        .outputs
        .iter()
        .map(|o| (o.id.clone(), schema::output(o)))
        .collect();
    Process {
        summary,
        inputs,
        outputs,
    }
}

/// What a rendered document is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A page of the process list: limit and offset.
    Page(usize, usize),
    /// A process description.
    Process(String),
}

/// The rendered documents of one node-set generation.
pub struct Docs {
    generation: watch::Receiver<u64>,
    cached: Mutex<Rendered>,
}

#[derive(Default)]
struct Rendered {
    generation: u64,
    docs: HashMap<Key, Slot>,
}

impl Docs {
    pub fn new(nodes: &Nodes) -> Self {
        Self {
            generation: nodes.generation(),
            cached: Mutex::default(),
        }
    }

    /// The document `key` of the current generation, rendered by `render` and compressed
    /// (and kept) the first time; concurrent first requests wait for the one render. A
    /// document rendered while the node set changed is served, not kept; so are errors
    /// (nothing is kept for them). Past [`MAX_PAGES`] pages, a page is rendered for its
    /// request alone and compressed per response.
    async fn get_or_render<T, F, Fut>(&self, key: Key, render: F) -> Result<Response, Problem>
    where
        T: serde::Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Problem>>,
    {
        let generation = *self.generation.borrow();
        let slot = {
            let mut cached = self.cached(generation);
            let is_page = |k: &Key| matches!(k, Key::Page(..));
            let full =
                is_page(&key) && cached.docs.keys().filter(|k| is_page(k)).count() >= MAX_PAGES;
            match cached.docs.get(&key) {
                Some(slot) => Some(slot.clone()),
                None if full => None,
                None => Some(cached.docs.entry(key.clone()).or_default().clone()),
            }
        };
        let rendered = async {
            let doc = render().await?;
            serde_json::to_vec(&doc)
                .map(Bytes::from)
                .map_err(|e| Problem::internal(format!("document not rendered: {e}")))
        };
        let Some(slot) = slot else {
            return Ok(json(rendered.await?));
        };
        match once(&slot, JSON, rendered).await {
            Ok(doc) => Ok(doc.response()),
            Err(e) => {
                // An error keeps no place in the cache.
                let mut cached = self.cached(*self.generation.borrow());
                if cached.docs.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    cached.docs.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// The documents of `generation`, emptied first if they were of another.
    fn cached(&self, generation: u64) -> MutexGuard<'_, Rendered> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.generation != generation {
            *cached = Rendered {
                generation,
                ..Rendered::default()
            };
        }
        cached
    }
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
