//! The input fetcher against real servers on loopback: a tiny HTTP/1.1 server written here,
//! the real storage service over gRPC with its local backend, and zips built with the zip crate.
//! Nothing here sends traffic to a non-loopback address: those references must be refused
//! before any connection.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic::transport::Channel;
use wpsmesh_node::fetch::{FetchConfig, FetchError, Fetcher, ZipLimits, unzip_shapefiles};
use wpsmesh_proto::process::StoredObject;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{UploadMetadata, UploadRequest, upload_request};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const MIB: usize = 1024 * 1024;

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or("wpsmesh=debug,info".into()))
        .with_test_writer()
        .try_init();
}

/// Deterministic, poorly compressible bytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server: one request per connection, answers chosen by path.

#[derive(Clone)]
enum Reply {
    /// 200 with Content-Length and an optional content type.
    Body(Vec<u8>, Option<&'static str>),
    /// 200 without Content-Length: `n` bytes, then close.
    Unsized(usize),
    /// 200 declaring `n` bytes, sending none.
    Declared(u64),
    /// 302 to the location.
    Redirect(String),
    /// Headers, then nothing for a long time.
    Stall,
    Status(u16),
}

struct HttpServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    async fn start(
        bind: &str,
        route: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind(bind).await.expect("bind http");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let route = Arc::new(route);
        let (h, p) = (hits.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                let (route, p) = (route.clone(), p.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &*route, &p).await;
                });
            }
        });
        HttpServer { addr, hits, paths }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn answer(
    mut stream: TcpStream,
    route: &(dyn Fn(&str) -> Reply + Send + Sync),
    paths: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    paths.lock().expect("paths").push(path.clone());
    let ok = "HTTP/1.1 200 OK\r\nConnection: close\r\n";
    match route(&path) {
        Reply::Body(body, ctype) => {
            let ctype = ctype
                .map(|c| format!("Content-Type: {c}\r\n"))
                .unwrap_or_default();
            let head = format!("{ok}{ctype}Content-Length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Reply::Unsized(n) => {
            stream.write_all(format!("{ok}\r\n").as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                stream.write_all(&chunk[..k]).await?;
                left -= k;
            }
        }
        Reply::Declared(n) => {
            let head = format!("{ok}Content-Length: {n}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Reply::Redirect(to) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
        Reply::Stall => {
            stream
                .write_all(format!("{ok}Content-Length: 10\r\n\r\nab").as_bytes())
                .await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Reply::Status(code) => {
            let head =
                format!("HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
        }
    }
    stream.shutdown().await
}

/// A fetcher that admits 127.0.0.1 (where the test servers listen) and nothing else.
fn fetcher(tweak: impl FnOnce(&mut FetchConfig)) -> Fetcher {
    let mut config = FetchConfig {
        allow: vec!["127.0.0.1/32".into()],
        ..FetchConfig::default()
    };
    tweak(&mut config);
    Fetcher::new(config, None).expect("fetcher")
}

fn refused_message(result: Result<PathBuf, FetchError>) -> String {
    let err = result.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let status = tonic::Status::from(err);
    assert!(status.message().starts_with("input INPUT: "), "{status:?}");
    status.message().to_owned()
}

// ---------------------------------------------------------------------------------------------
// http(s)

#[tokio::test]
async fn allowed_fetch_writes_the_exact_bytes() {
    init_logs();
    let body = content(300 * 1024, 1);
    let served = body.clone();
    let server = HttpServer::start("127.0.0.1:0", move |path| match path {
        "/countries" => Reply::Body(served.clone(), Some("application/geo+json")),
        "/moved" => Reply::Redirect("/countries".into()),
        _ => Reply::Status(404),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = fetcher(|_| {});
    let path = fetcher
        .fetch("INPUT", &server.url("/countries"), dir.path(), None)
        .await
        .expect("fetched");
    assert_eq!(path.parent(), Some(dir.path()));
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("geojson"));
    assert_eq!(std::fs::read(&path).expect("read"), body);

    // A redirect on the same allowed server is followed; the hint names the extension.
    let hinted = fetcher
        .fetch("INPUT", &server.url("/moved"), dir.path(), Some("json"))
        .await
        .expect("fetched after redirect");
    assert_eq!(hinted.extension().and_then(|e| e.to_str()), Some("json"));
    assert_eq!(std::fs::read(&hinted).expect("read"), body);
    assert_eq!(files_under(dir.path()).len(), 2);

    let err = fetcher
        .fetch("INPUT", &server.url("/missing"), dir.path(), None)
        .await
        .expect_err("404");
    assert!(
        matches!(err, FetchError::HttpStatus { status: 404, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/missing"), "{err}");
    assert_eq!(files_under(dir.path()).len(), 2);
}

#[tokio::test]
async fn refused_references_never_connect() {
    init_logs();
    let server = HttpServer::start("127.0.0.1:0", |_| Reply::Body(b"secret".to_vec(), None)).await;
    let port = server.addr.port();
    let dir = tempfile::tempdir().expect("tempdir");
    let strict = fetcher(|c| c.allow.clear());
    let cases = [
        (
            format!("http://127.0.0.1:{port}/"),
            "address 127.0.0.1 is not allowed (loopback)",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "address 169.254.169.254 is not allowed (cloud metadata)",
        ),
        (
            format!("http://[::1]:{port}/"),
            "address ::1 is not allowed (loopback)",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "address ::ffff:127.0.0.1 is not allowed (ipv4-mapped 127.0.0.1: loopback)",
        ),
        (
            format!("http://2130706433:{port}/"),
            "address 127.0.0.1 is not allowed",
        ),
        (
            "http://10.0.0.1/".to_owned(),
            "address 10.0.0.1 is not allowed (private)",
        ),
        (
            "http://100.64.1.1/".to_owned(),
            "address 100.64.1.1 is not allowed",
        ),
        (
            "http://[fd00::1]/".to_owned(),
            "address fd00::1 is not allowed (unique local)",
        ),
        (
            "http://[fe80::1]/".to_owned(),
            "address fe80::1 is not allowed (link-local)",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
            "host metadata.google.internal is not allowed (cloud metadata service)",
        ),
        (
            "file:///etc/passwd".to_owned(),
            "scheme \"file\" is not allowed",
        ),
        ("ftp://x".to_owned(), "scheme \"ftp\" is not allowed"),
        ("gopher://x/".to_owned(), "scheme \"gopher\" is not allowed"),
        (
            "data:text/plain,hello".to_owned(),
            "scheme \"data\" is not allowed",
        ),
    ];
    for (href, expected) in &cases {
        let message = refused_message(strict.fetch("INPUT", href, dir.path(), None).await);
        assert!(message.contains(expected), "{href}: {message}");
    }
    // The allowlist admits 127.0.0.1 only: everything else stays refused.
    let listed = fetcher(|_| {});
    for href in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.2/",
    ] {
        let message = refused_message(listed.fetch("INPUT", href, dir.path(), None).await);
        assert!(message.contains("is not allowed"), "{href}: {message}");
    }
    let message = refused_message(strict.fetch("INPUT", "not a url", dir.path(), None).await);
    assert!(message.contains("invalid reference"), "{message}");
    assert_eq!(server.hits(), 0, "a refused reference reached the server");
    assert!(files_under(dir.path()).is_empty());
}

#[tokio::test]
async fn host_names_are_checked_after_resolution() {
    init_logs();
    let server = HttpServer::start("127.0.0.1:0", |_| Reply::Body(b"local".to_vec(), None)).await;
    let href = format!("http://localhost:{}/data.csv", server.addr.port());
    let dir = tempfile::tempdir().expect("tempdir");
    let message = refused_message(
        fetcher(|c| c.allow.clear())
            .fetch("INPUT", &href, dir.path(), None)
            .await,
    );
    assert!(
        message.contains("host localhost resolves only to addresses that are not allowed"),
        "{message}"
    );
    assert!(message.contains("127.0.0.1 (loopback)"), "{message}");
    assert_eq!(server.hits(), 0);

    // Allowlisting the name admits it.
    let by_name = fetcher(|c| c.allow = vec!["localhost".into()]);
    let path = by_name
        .fetch("INPUT", &href, dir.path(), None)
        .await
        .expect("allowlisted by name");
    assert_eq!(std::fs::read(&path).expect("read"), b"local");
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("csv"));
}

#[tokio::test]
async fn redirects_are_checked_on_every_hop() {
    init_logs();
    // 127.0.0.2 is loopback too, but not on the allowlist.
    let other = HttpServer::start("127.0.0.2:0", |_| Reply::Body(b"other".to_vec(), None)).await;
    let target = other.url("/");
    let server = HttpServer::start("127.0.0.1:0", move |path| {
        if path == "/away" {
            Reply::Redirect(target.clone())
        } else if path == "/file" {
            Reply::Redirect("file:///etc/passwd".into())
        } else if path == "/meta" {
            Reply::Redirect("http://169.254.169.254/latest/meta-data".into())
        } else if let Some(n) = path.strip_prefix("/loop/") {
            let n: u32 = n.parse().unwrap_or(0);
            Reply::Redirect(format!("/loop/{}", n + 1))
        } else {
            Reply::Body(b"done".to_vec(), None)
        }
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = fetcher(|c| c.max_redirects = 3);

    let message = refused_message(
        fetcher
            .fetch("INPUT", &server.url("/away"), dir.path(), None)
            .await,
    );
    let expected = format!(
        "redirect to http://{}/ refused: address 127.0.0.2 is not allowed (loopback)",
        other.addr
    );
    assert!(message.contains(&expected), "{message}");
    assert_eq!(other.hits(), 0, "the redirect target was contacted");

    let message = refused_message(
        fetcher
            .fetch("INPUT", &server.url("/file"), dir.path(), None)
            .await,
    );
    assert!(
        message.contains("redirect to file:///etc/passwd refused: scheme \"file\""),
        "{message}"
    );
    let message = refused_message(
        fetcher
            .fetch("INPUT", &server.url("/meta"), dir.path(), None)
            .await,
    );
    assert!(
        message.contains("address 169.254.169.254 is not allowed"),
        "{message}"
    );

    let message = refused_message(
        fetcher
            .fetch("INPUT", &server.url("/loop/0"), dir.path(), None)
            .await,
    );
    assert!(message.contains("more than 3 redirects"), "{message}");
    // Exactly three redirects are fine.
    let fine = HttpServer::start("127.0.0.1:0", |path| match path {
        "/a" => Reply::Redirect("/b".into()),
        "/b" => Reply::Redirect("/c".into()),
        "/c" => Reply::Redirect("/d".into()),
        _ => Reply::Body(b"d".to_vec(), None),
    })
    .await;
    let path = fetcher
        .fetch("INPUT", &fine.url("/a"), dir.path(), None)
        .await
        .expect("three redirects");
    assert_eq!(std::fs::read(&path).expect("read"), b"d");
    assert_eq!(
        fine.paths.lock().expect("paths").as_slice(),
        ["/a", "/b", "/c", "/d"]
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_removed() {
    init_logs();
    let server = HttpServer::start("127.0.0.1:0", |path| match path {
        "/unsized" => Reply::Unsized(3 * MIB),
        "/declared" => Reply::Declared(5 * MIB as u64),
        _ => Reply::Unsized(MIB),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = fetcher(|c| c.max_bytes = MIB as u64);

    let err = fetcher
        .fetch("INPUT", &server.url("/unsized"), dir.path(), None)
        .await
        .expect_err("too large");
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("is larger than the limit of 1048576 bytes"),
        "{err}"
    );
    assert!(
        files_under(dir.path()).is_empty(),
        "partial file left behind"
    );

    let started = Instant::now();
    let err = fetcher
        .fetch("INPUT", &server.url("/declared"), dir.path(), None)
        .await
        .expect_err("declared too large");
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not refused early"
    );
    assert!(files_under(dir.path()).is_empty());

    // Exactly the limit is fine.
    let path = fetcher
        .fetch("INPUT", &server.url("/exact"), dir.path(), None)
        .await
        .expect("at the limit");
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        MIB as u64
    );
}

#[tokio::test]
async fn slow_servers_time_out() {
    init_logs();
    let server = HttpServer::start("127.0.0.1:0", |_| Reply::Stall).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fetcher = fetcher(|c| c.timeout_secs = 1);
    let started = Instant::now();
    let err = fetcher
        .fetch("INPUT", &server.url("/slow"), dir.path(), None)
        .await
        .expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, FetchError::Timeout { secs: 1, .. }), "{err}");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("timed out after 1 s"), "{err}");
    assert!(files_under(dir.path()).is_empty());

    // A closed port: unreachable, naming the URL.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let err = fetcher
        .fetch("INPUT", &format!("http://{addr}/x"), dir.path(), None)
        .await
        .expect_err("unreachable");
    assert!(matches!(err, FetchError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("fetching http://{addr}/x failed")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// storage references

async fn start_storage(root: &Path) -> StorageServiceClient<Channel> {
    let mut config = wpsmesh_storage::Config::default();
    config.local.root = root.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind storage");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        wpsmesh_storage::run(config, listener, std::future::pending())
            .await
            .expect("storage runs");
    });
    let channel = wpsmesh_runtime::grpc::channel(&format!("http://{addr}")).expect("channel");
    StorageServiceClient::new(channel)
}

async fn upload(client: &mut StorageServiceClient<Channel>, name: &str, body: &[u8]) -> String {
    let mut messages = vec![UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            name: name.into(),
            length: Some(body.len() as u64),
            ..Default::default()
        })),
    }];
    messages.extend(body.chunks(MIB).map(|c| UploadRequest {
        part: Some(upload_request::Part::Chunk(Bytes::copy_from_slice(c))),
    }));
    // The service may still be starting: retry briefly.
    for _ in 0..100 {
        match client.upload(futures::stream::iter(messages.clone())).await {
            Ok(resp) => return resp.into_inner().object.expect("object").id,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("storage did not accept the upload");
}

/// A stored object (what the edge turns hrefs to its file API into) with its href's extension.
fn stored(id: &str, extension: &str) -> StoredObject {
    StoredObject {
        id: id.parse().expect("object id"),
        extension: extension.into(),
    }
}

#[tokio::test]
async fn stored_objects_are_read_over_grpc() {
    init_logs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut client = start_storage(&tmp.path().join("storage")).await;
    let body = content(2 * MIB + 123, 7);
    let id = upload(&mut client, "countries.geojson", &body).await;

    let dest = tmp.path().join("job");
    std::fs::create_dir(&dest).expect("mkdir");
    let config = FetchConfig {
        allow: vec!["127.0.0.1/32".into()],
        ..FetchConfig::default()
    };
    let fetcher = Fetcher::new(config.clone(), Some(client.clone())).expect("fetcher");
    let object = stored(&id, "geojson");
    let path = fetcher
        .fetch_object("INPUT", &object, &dest, None)
        .await
        .expect("from storage");
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("geojson"));

    let missing = stored("0123456789abcdef0123456789abcdef", "zip");
    let err = fetcher
        .fetch_object("INPUT", &missing, &dest, None)
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert_eq!(
        err.to_string(),
        "input INPUT: storage object 0123456789abcdef0123456789abcdef not found"
    );

    let small = Fetcher::new(
        FetchConfig {
            max_bytes: MIB as u64,
            ..config.clone()
        },
        Some(client.clone()),
    )
    .expect("fetcher");
    let err = small
        .fetch_object("INPUT", &object, &dest, None)
        .await
        .expect_err("too large");
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");

    let without = Fetcher::new(config, None).expect("fetcher");
    let err = without
        .fetch_object("INPUT", &object, &dest, None)
        .await
        .expect_err("no storage");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    assert_eq!(files_under(&dest), vec![path]);
}

// ---------------------------------------------------------------------------------------------
// zips

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// Writes a zip of `(name, bytes)` entries.
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = ZipWriter::new(std::fs::File::create(path).expect("create zip"));
    for (name, body) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, deflated()).expect("dir entry");
        } else {
            zip.start_file(*name, deflated()).expect("entry");
            zip.write_all(body).expect("write entry");
        }
    }
    zip.finish().expect("finish zip");
}

fn shapefile_parts(prefix: &str) -> Vec<(String, Vec<u8>)> {
    ["shp", "shx", "dbf", "prj", "cpg"]
        .iter()
        .enumerate()
        .map(|(i, ext)| {
            (
                format!("{prefix}countries.{ext}"),
                content(4096 + i, i as u64),
            )
        })
        .collect()
}

/// A temporary layout `root/{zip}` + `root/dest/`, to check nothing lands outside `dest`.
struct ZipCase {
    root: tempfile::TempDir,
}

impl ZipCase {
    fn new(entries: &[(&str, Vec<u8>)]) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("dest")).expect("mkdir");
        write_zip(&root.path().join("input.zip"), entries);
        Self { root }
    }

    fn zip(&self) -> PathBuf {
        self.root.path().join("input.zip")
    }

    fn dest(&self) -> PathBuf {
        self.root.path().join("dest")
    }

    /// The one shapefile of the zip.
    fn unzip(&self, limits: &ZipLimits) -> Result<PathBuf, FetchError> {
        let mut found = unzip_shapefiles("INPUT", &self.zip(), &self.dest(), limits, false)?;
        assert_eq!(found.len(), 1, "{found:?}");
        Ok(found.remove(0))
    }

    /// Every shapefile of the zip, as a multi-layer input takes them.
    fn unzip_all(&self, limits: &ZipLimits) -> Result<Vec<PathBuf>, FetchError> {
        unzip_shapefiles("INPUT", &self.zip(), &self.dest(), limits, true)
    }

    /// Asserts a refusal naming `expected`, and that only the zip itself remains.
    fn refused(&self, limits: &ZipLimits, expected: &str) {
        let err = self.unzip(limits).expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        let message = err.to_string();
        assert!(message.starts_with("input INPUT: "), "{message}");
        assert!(message.contains(expected), "{message}");
        assert_eq!(files_under(self.root.path()), vec![self.zip()], "{message}");
        assert!(!Path::new("/tmp/evil.shp").exists());
    }
}

fn owned(entries: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect()
}

#[test]
fn shapefile_zips_unpack() {
    let parts = shapefile_parts("");
    let case = ZipCase::new(&owned(&parts));
    let shp = case.unzip(&ZipLimits::default()).expect("unzipped");
    assert_eq!(
        shp.file_name().and_then(|n| n.to_str()),
        Some("countries.shp")
    );
    assert!(shp.starts_with(case.dest()));
    for (name, body) in &parts {
        let path = shp.with_file_name(name);
        assert_eq!(std::fs::read(path).expect("read part"), *body);
    }

    // In one subfolder, next to macOS metadata that must not be taken for the layer.
    let mut nested = vec![("layer/".to_owned(), Vec::new())];
    nested.extend(shapefile_parts("layer/"));
    nested.push(("__MACOSX/layer/._countries.shp".into(), vec![0; 10]));
    let case = ZipCase::new(&owned(&nested));
    let shp = case.unzip(&ZipLimits::default()).expect("unzipped");
    assert!(shp.ends_with("layer/countries.shp"), "{}", shp.display());

    // Deeper folders too.
    let case = ZipCase::new(&owned(&shapefile_parts("data/shapes/")));
    let shp = case.unzip(&ZipLimits::default()).expect("unzipped");
    assert!(
        shp.ends_with("data/shapes/countries.shp"),
        "{}",
        shp.display()
    );
}

#[test]
fn several_shapefiles_are_several_layers_or_refused_for_one() {
    let mut parts = shapefile_parts("");
    parts.extend(shapefile_parts("b/"));
    let case = ZipCase::new(&owned(&parts));
    // A multi-layer input takes every one, sorted by path.
    let all = case.unzip_all(&ZipLimits::default()).expect("unzipped");
    let rel: Vec<_> = all
        .iter()
        .map(|p| p.strip_prefix(case.dest()).expect("inside dest"))
        .map(|p| p.components().skip(1).collect::<PathBuf>())
        .collect();
    assert_eq!(
        rel,
        vec![
            PathBuf::from("b/countries.shp"),
            PathBuf::from("countries.shp")
        ]
    );
    assert!(all.iter().all(|p| p.is_file()));
    // A one-layer input cannot guess which: refused naming them, nothing left unpacked.
    let case = ZipCase::new(&owned(&parts));
    case.refused(
        &ZipLimits::default(),
        "zip holds 2 shapefiles (b/countries.shp, countries.shp) and this input takes one layer",
    );
}

#[tokio::test]
async fn fetcher_unzips_off_the_runtime() {
    let case = ZipCase::new(&owned(&shapefile_parts("")));
    let fetcher = fetcher(|_| {});
    let shp = fetcher
        .unzip_shapefiles("INPUT", &case.zip(), &case.dest(), false)
        .await
        .expect("unzipped");
    assert!(shp.len() == 1 && shp[0].is_file(), "{shp:?}");
}

#[test]
fn zips_without_shapefile_or_with_unsafe_entries_are_refused() {
    let limits = ZipLimits::default();
    // Positive control: the same kind of zip with its shapefile unpacks.
    let ok = ZipCase::new(&[("readme.txt", b"hi".to_vec()), ("a.shp", b"x".to_vec())]);
    assert!(ok.unzip(&limits).expect("unzipped").is_file());
    ZipCase::new(&[("readme.txt", b"hi".to_vec())]).refused(&limits, "zip contains no .shp file");
    ZipCase::new(&[("__MACOSX/._countries.shp", b"x".to_vec())])
        .refused(&limits, "zip contains no .shp file");
    ZipCase::new(&[("a.shp", b"x".to_vec()), ("../evil.shp", b"x".to_vec())]).refused(
        &limits,
        "zip entry \"../evil.shp\" is refused: it has a '..' component",
    );
    ZipCase::new(&[("/tmp/evil.shp", b"x".to_vec())]).refused(
        &limits,
        "zip entry \"/tmp/evil.shp\" is refused: it is an absolute path",
    );
    ZipCase::new(&[("C:/evil.shp", b"x".to_vec())]).refused(&limits, "drive prefix");
    ZipCase::new(&[("..\\evil.shp", b"x".to_vec())]).refused(&limits, "backslash");
    ZipCase::new(&[("a.shp", b"x".to_vec()), ("./a.shp", b"y".to_vec())])
        .refused(&limits, "zip entry \"./a.shp\" appears more than once");

    ZipCase::new(&[("layer", b"x".to_vec()), ("layer/a.shp", b"y".to_vec())]).refused(
        &limits,
        "zip entry \"layer/a.shp\" conflicts with another entry",
    );

    let case = ZipCase::new(&[]);
    let mut zip = ZipWriter::new(std::fs::File::create(case.zip()).expect("create"));
    zip.start_file("countries.shp", deflated()).expect("entry");
    zip.write_all(b"x").expect("write");
    zip.add_symlink("countries.dbf", "/etc/passwd", deflated())
        .expect("symlink");
    zip.finish().expect("finish");
    case.refused(&limits, "zip entry \"countries.dbf\" is a symbolic link");

    let case = ZipCase::new(&[]);
    std::fs::write(case.zip(), b"this is not a zip").expect("write");
    case.refused(&limits, "not a valid zip archive");
}

#[test]
fn zip_bombs_and_limits_are_refused() {
    // Positive control: 1 MiB of zeros (within the ratio grace) and 10 entries at a limit of
    // 10 unpack.
    let ok = ZipCase::new(&[("fine.shp", vec![0u8; MIB])]);
    assert_eq!(
        std::fs::metadata(ok.unzip(&ZipLimits::default()).expect("unzipped"))
            .expect("stat")
            .len(),
        MIB as u64
    );
    let mut ten: Vec<(String, Vec<u8>)> = (0..9).map(|i| (format!("f{i}.txt"), vec![1])).collect();
    ten.push(("a.shp".into(), vec![1]));
    ZipCase::new(&owned(&ten))
        .unzip(&ZipLimits {
            max_entries: 10,
            ..ZipLimits::default()
        })
        .expect("10 entries at a limit of 10");
    // 50 MiB of zeros compress to about 50 KiB.
    let case = ZipCase::new(&[("bomb.shp", vec![0u8; 50 * MIB])]);
    assert!(std::fs::metadata(case.zip()).expect("zip").len() < 200 * 1024);
    case.refused(
        &ZipLimits::default(),
        "zip entry \"bomb.shp\" expands more than 200 times",
    );
    case.refused(
        &ZipLimits {
            max_ratio: 100_000,
            max_total_bytes: 10 * MIB as u64,
            ..ZipLimits::default()
        },
        "zip expands to more than 10485760 bytes",
    );

    // Bytes actually written count, whatever the headers say: incompressible parts.
    let parts: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("part{i}.shp"), content(MIB, i)))
        .collect();
    ZipCase::new(&owned(&parts)).refused(
        &ZipLimits {
            max_total_bytes: 2 * MIB as u64,
            ..ZipLimits::default()
        },
        "zip expands to more than 2097152 bytes",
    );

    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}.txt"), vec![1])).collect();
    ZipCase::new(&owned(&many)).refused(
        &ZipLimits {
            max_entries: 10,
            ..ZipLimits::default()
        },
        "zip has more than 10 entries",
    );
}
