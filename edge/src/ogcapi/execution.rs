//! `POST /processes/{id}/execution`: the execute request read into the domain request,
//! run synchronously (results document or raw output) or, with `Prefer: respond-async`,
//! submitted as a job (201, Location, statusInfo).

use axum::Router;

use super::Shared;

pub(super) fn routes(_max_body: usize) -> Router<Shared> {
    Router::new()
}
