//! OGC API - Processes 1.0 at the edge's root: landing page, conformance, OpenAPI document,
//! process list and descriptions, execution, and jobs — over the same nodes, job store and
//! file API as WPS, so a job is one job whatever protocol started it. JSON only (HTML is a
//! separate issue); errors are `application/problem+json` ([`problem`]).

mod documents;
mod execute_body;
mod execution;
mod job_query;
mod jobs;
mod landing;
mod model;
mod negotiate;
mod openapi;
mod problem;
mod processes;
mod raw;
mod responses;
mod routes;
mod schema;
pub(crate) mod values;

use std::sync::Arc;

use axum::{Extension, Router};

use crate::catalog::Catalog;
use crate::files::Storage;
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
    /// The edge's storage client (the file API's): raw outputs stored as files stream from it.
    pub storage: Storage,
}

type Shared = Arc<OgcState>;

/// Every OGC API route.
pub fn router(state: OgcState) -> Router {
    let docs = Arc::new(processes::Docs::new(&state.nodes));
    routes::router(state.max_body)
        .layer(Extension(docs))
        .with_state(Arc::new(state))
}
