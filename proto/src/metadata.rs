//! The gRPC metadata a node's error status carries to the edge: the parameter an error is about
//! (`wpsmesh-locator`) and the shared dependency an UNAVAILABLE blames (`wpsmesh-dependency`,
//! one of [`STORAGE`] and [`JOB_STORE`]). Written by the node, read by the edge.

/// Metadata key naming the parameter an error is about.
pub const LOCATOR_KEY: &str = "wpsmesh-locator";

/// Metadata key naming the dependency that is unavailable ([`JOB_STORE`], [`STORAGE`]), so the
/// edge can tell "no node" from "a dependency of the nodes is down".
pub const DEPENDENCY_KEY: &str = "wpsmesh-dependency";

/// The `wpsmesh-dependency` value naming the storage service.
pub const STORAGE: &str = "storage";

/// The `wpsmesh-dependency` value naming the nodes' job store (Redis).
pub const JOB_STORE: &str = "job-store";

/// The parameter a status says its error is about (`wpsmesh-locator`), if any.
pub fn locator(status: &tonic::Status) -> Option<&str> {
    ascii(status, LOCATOR_KEY)
}

/// The shared dependency a status blames (`wpsmesh-dependency`), if any.
pub fn dependency(status: &tonic::Status) -> Option<&str> {
    ascii(status, DEPENDENCY_KEY)
}

fn ascii<'a>(status: &'a tonic::Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_status_carries() {
        let mut status = tonic::Status::unavailable("storage unavailable: connection refused");
        assert_eq!(locator(&status), None);
        assert_eq!(dependency(&status), None);
        status
            .metadata_mut()
            .insert(DEPENDENCY_KEY, STORAGE.parse().expect("ascii"));
        status
            .metadata_mut()
            .insert(LOCATOR_KEY, "INPUT".parse().expect("ascii"));
        assert_eq!(dependency(&status), Some(STORAGE));
        assert_eq!(locator(&status), Some("INPUT"));
    }
}
