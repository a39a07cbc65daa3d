//! `GET /api`: the OpenAPI 3.0 document, generated from the handlers' and types' annotations.

use axum::Router;

use super::Shared;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
}
