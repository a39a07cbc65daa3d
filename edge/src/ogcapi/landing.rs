//! `GET /` (landing page with its links) and `GET /conformance` (the classes implemented).

use axum::Router;

use super::Shared;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
}
