//! `GET /jobs` (filtered, paged, newest first), `GET /jobs/{id}` (statusInfo),
//! `GET /jobs/{id}/results` and `DELETE /jobs/{id}` (dismiss).

use axum::Router;

use super::Shared;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
}
