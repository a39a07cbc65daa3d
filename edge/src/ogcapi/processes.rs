//! `GET /processes` (summaries, paged) and `GET /processes/{id}` (ogc-process-description).

use axum::Router;

use super::Shared;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
}
