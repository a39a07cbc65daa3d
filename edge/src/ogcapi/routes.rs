//! Every OGC API route, listed once in [`ROUTES`]: the router registers exactly these, and the
//! OpenAPI test checks that `/api` documents exactly these (paths are OpenAPI's templates,
//! which axum reads too).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{Shared, execution, jobs, landing, openapi, processes};

/// One operation of the API; each has its handler in [`handler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Landing,
    Conformance,
    Api,
    Processes,
    Process,
    Execute,
    Jobs,
    Status,
    Dismiss,
    Results,
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    /// The method as OpenAPI names it in a path item.
    #[cfg(test)]
    pub(super) fn openapi(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Delete => "delete",
        }
    }
}

/// The routes: operation, method and path.
pub(super) const ROUTES: [(Operation, Verb, &str); 10] = [
    (Operation::Landing, Verb::Get, "/"),
    (Operation::Conformance, Verb::Get, "/conformance"),
    (Operation::Api, Verb::Get, "/api"),
    (Operation::Processes, Verb::Get, "/processes"),
    (Operation::Process, Verb::Get, "/processes/{processID}"),
    (
        Operation::Execute,
        Verb::Post,
        "/processes/{processID}/execution",
    ),
    (Operation::Jobs, Verb::Get, "/jobs"),
    (Operation::Status, Verb::Get, "/jobs/{jobID}"),
    (Operation::Dismiss, Verb::Delete, "/jobs/{jobID}"),
    (Operation::Results, Verb::Get, "/jobs/{jobID}/results"),
];

/// The handler of `operation` answering `verb`; execute bodies are limited to `max_body` bytes.
fn handler(operation: Operation, verb: Verb, max_body: usize) -> MethodRouter<Shared> {
    let filter = verb.filter();
    match operation {
        Operation::Landing => on(filter, landing::landing),
        Operation::Conformance => on(filter, landing::conformance),
        Operation::Api => on(filter, openapi::api),
        Operation::Processes => on(filter, processes::list),
        Operation::Process => on(filter, processes::describe),
        Operation::Execute => on(filter, execution::execute).layer(DefaultBodyLimit::max(max_body)),
        Operation::Jobs => on(filter, jobs::list),
        Operation::Status => on(filter, jobs::status),
        Operation::Dismiss => on(filter, jobs::dismiss),
        Operation::Results => on(filter, jobs::job_results),
    }
}

/// A router of every route in [`ROUTES`] (two methods on one path share it).
pub(super) fn router(max_body: usize) -> Router<Shared> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, &(operation, verb, path)| {
            router.route(path, handler(operation, verb, max_body))
        })
}
