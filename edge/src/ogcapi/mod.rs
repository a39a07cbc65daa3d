//! OGC API - Processes 1.0 at the edge's root: landing page, conformance, OpenAPI document,
//! process list and descriptions, execution, and jobs — over the same nodes, job store and
//! file API as WPS, so a job is one job whatever protocol started it. JSON only (HTML is a
//! separate issue); errors are `application/problem+json` ([`problem`]).

mod execute_body;
mod execution;
mod job_query;
mod jobs;
mod jobs_doc;
mod landing;
mod model;
mod negotiate;
mod openapi;
mod problem;
mod processes;
mod raw;
mod responses;
mod schema;
pub(crate) mod values;

use std::sync::Arc;

use axum::Router;

use crate::catalog::Catalog;
use crate::jobs::OwnFiles;
use crate::nodes::Nodes;

pub use problem::Problem;

/// What every OGC API handler needs.
#[allow(missing_debug_implementations)]
pub struct OgcState {
    pub nodes: Nodes,
    /// The process list and descriptions, shared with WPS.
    pub catalog: Arc<Catalog>,
    /// This edge's own file hrefs (made storage references) and output URLs.
    pub files: OwnFiles,
    /// The URL clients reach the edge at, without a trailing slash: every link is built on it.
    pub public_url: String,
    /// Largest execute body accepted, in bytes; more gets 413.
    pub max_body: usize,
}

type Shared = Arc<OgcState>;

/// Every OGC API route.
pub fn router(state: OgcState) -> Router {
    let docs = Arc::new(processes::Docs::new(&state.nodes));
    Router::new()
        .merge(landing::routes())
        .merge(openapi::routes())
        .merge(processes::routes(docs))
        .merge(execution::routes(state.max_body))
        .merge(jobs::routes())
        .with_state(Arc::new(state))
}
