//! Failure isolation at the node (issue 10), with real QGIS workers: a huge client value comes
//! back as a short refusal naming the parameter (bounded message, metadata and log lines), and
//! storage that refuses or drops the connection while the node reads an input or writes an
//! output is UNAVAILABLE naming storage in one line. Each beside its positive control.

#[path = "node_common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DATA, complex, execute, leftovers, literal, mesh, reference};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tonic::Code;
use wpsmesh_proto::metadata::{DEPENDENCY_KEY, LOCATOR_KEY};
use wpsmesh_proto::wire::process::v1::{
    DescribeProcessRequest, ExecuteRequest, GetStatusRequest, OutputRequest,
};

/// The size of the hostile values: far above any header block a client accepts.
const HUGE: usize = 2 * 1024 * 1024;

/// The longest line logged by this test binary (the node in-process, at debug).
static LONGEST_LOG_LINE: AtomicUsize = AtomicUsize::new(0);

struct LineLengths;

impl Write for LineLengths {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in buf.split(|b| *b == b'\n') {
            LONGEST_LOG_LINE.fetch_max(line.len(), Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs go to [`LineLengths`]; called before [`mesh`], whose own subscriber is then left out.
fn measure_log_lines() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,wpsmesh_node=debug")
        .with_writer(|| LineLengths)
        .try_init();
}

/// Bytes of a status's metadata (names and values).
fn metadata_len(status: &tonic::Status) -> usize {
    let headers = status.metadata().clone().into_headers();
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

fn metadata<'s>(status: &'s tonic::Status, key: &str) -> Option<&'s str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

/// The current resident set size of this process (the node runs in it), in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_are_refused_with_short_text_naming_them() {
    measure_log_lines();
    let mut m = mesh(1, |_| {}).await;
    let points = m.upload(&DATA.points).await;
    let buffer = |inputs| execute("native:buffer", inputs);
    let valid = || {
        buffer(vec![
            reference("INPUT", &points),
            literal("DISTANCE", "1.5"),
        ])
    };
    // Positive control: the same request with a sane value succeeds.
    assert_eq!(m.features(valid(), "valid distance").await, 240);

    let huge = "x".repeat(HUGE);
    let cut = format!("... ({HUGE} bytes)");
    let huge_literal = || {
        buffer(vec![
            reference("INPUT", &points),
            literal("DISTANCE", &huge),
        ])
    };
    let huge_output = ExecuteRequest {
        outputs: vec![OutputRequest {
            id: huge.clone(),
            ..Default::default()
        }],
        ..buffer(vec![reference("INPUT", &points)])
    };
    let cases: Vec<(&str, ExecuteRequest, Code, Option<&str>, &str)> = vec![
        (
            "2 MB literal",
            huge_literal(),
            Code::InvalidArgument,
            Some("DISTANCE"),
            "invalid parameter DISTANCE: expected a number, got 'xxx",
        ),
        (
            "2 MB input id",
            buffer(vec![reference("INPUT", &points), literal(&huge, "1")]),
            Code::InvalidArgument,
            None,
            "unknown input",
        ),
        (
            "2 MB output id",
            huge_output,
            Code::InvalidArgument,
            None,
            "unknown output",
        ),
        (
            "2 MB process id",
            execute(&huge, vec![]),
            Code::NotFound,
            Some("Identifier"),
            "not found",
        ),
    ];
    for (what, req, code, locator, reason) in cases {
        let err = m.node.execute(req).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        let message = err.message();
        assert!(message.contains(reason), "{what}: {message}");
        assert!(
            message.contains(&format!("({HUGE} bytes)")),
            "{what}: {message}"
        );
        assert!(message.len() < 2048, "{what}: {} bytes", message.len());
        assert!(metadata_len(&err) < 1024, "{what}: {}", metadata_len(&err));
        let got = metadata(&err, LOCATOR_KEY).unwrap_or_default();
        match locator {
            Some(locator) => assert_eq!(got, locator, "{what}"),
            // The client's own identifier, cut and told in ASCII.
            None => assert!(
                got.starts_with("xxx") && got.ends_with(&cut),
                "{what}: {got}"
            ),
        }
        assert!(leftovers(&m.work).is_empty(), "{what}: job folders left");
    }
    let err = m
        .node
        .describe_process(DescribeProcessRequest { id: huge.clone() })
        .await
        .expect_err("describe");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().len() < 2048 && err.message().contains("not found"));
    let err = m
        .node
        .get_status(GetStatusRequest {
            job_id: huge.clone(),
        })
        .await
        .expect_err("status");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(metadata(&err, LOCATOR_KEY), Some("JobID"));
    assert!(err.message().len() < 2048 && err.message().contains("not found"));

    // Memory does not grow with every bad request (after the first ones warmed the allocator).
    let before = rss();
    for _ in 0..16 {
        let err = m.node.execute(huge_literal()).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    let grown = rss().saturating_sub(before);
    assert!(grown < 64 << 20, "rss grew by {} MiB", grown >> 20);
    // The node keeps serving, and no log line carried a value.
    assert_eq!(m.features(valid(), "valid distance after").await, 240);
    let longest = LONGEST_LOG_LINE.load(Ordering::Relaxed);
    assert!(longest < 4096, "longest log line: {longest} bytes");
}

/// A storage address where nothing listens.
async fn refusing_storage() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A storage address that accepts each connection and drops it as its first bytes arrive, with
/// the rest unread: the node's call breaks with the connection reset.
async fn dropping_storage() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.read(&mut [0; 1]).await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_mid_call_is_unavailable_naming_storage() {
    measure_log_lines();
    let mut up = mesh(1, |_| {}).await;
    let stored = up.upload(&DATA.points).await;
    assert!(
        url::Url::parse(&stored).is_err(),
        "a stored object, not an href: {stored}"
    );
    let points = std::fs::read(&DATA.points).expect("points");
    let buffer = |inputs| execute("native:buffer", inputs);
    // The node reads INPUT from storage; it writes OUTPUT to storage (INPUT given by value).
    let read_input = || buffer(vec![reference("INPUT", &stored)]);
    let write_output = || buffer(vec![complex("INPUT", "application/geo+json", &points)]);
    // Positive controls: with storage up, both succeed.
    assert_eq!(up.features(read_input(), "input from storage").await, 240);
    assert_eq!(up.features(write_output(), "output to storage").await, 240);
    drop(up);

    for (storage, cause) in [
        (refusing_storage().await, "connection refused"),
        (dropping_storage().await, "connection reset"),
    ] {
        let mut m = mesh(1, |c| c.storage = storage.clone()).await;
        for (what, req) in [("reading", read_input()), ("writing", write_output())] {
            let err = m.node.execute(req).await.expect_err(what);
            let message = err.message();
            assert_eq!(err.code(), Code::Unavailable, "{what} {cause}: {err:?}");
            assert_eq!(metadata(&err, DEPENDENCY_KEY), Some("storage"), "{what}");
            let said = format!("storage unavailable: {cause}");
            assert!(message.contains(&said), "{what}: {message}");
            for dump in ["tonic::", "hyper::", "Error(", "\n"] {
                assert!(!message.contains(dump), "{what}: {dump:?} in {message}");
            }
            assert!(leftovers(&m.work).is_empty(), "{what}: job folders left");
        }
    }
}
