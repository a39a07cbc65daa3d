//! The file API over a real storage service (local directory backend in a tempdir) and a real
//! HTTP listener, driven with reqwest: upload (0 B, small, 64 MiB streamed), find, retrieve
//! (whole and ranges), delete, and the error answers (400, 404, 413 with nothing stored, 503).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wpsmesh_edge::files::{FilesState, router};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_tests::{content, eventually, files_under};

const MIB: usize = 1024 * 1024;

/// A storage service and the file API in front of it.
struct Api {
    base: String,
    http: reqwest::Client,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(max_upload: u64) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or("wpsmesh=debug,info".into()))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("storage");
        let mut config = wpsmesh_storage::Config::default();
        config.local.root = root.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let storage_uri = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(wpsmesh_storage::run(
            config,
            listener,
            std::future::pending(),
        ));
        let base = serve(&storage_uri, max_upload).await;
        Self {
            base,
            http: reqwest::Client::new(),
            root,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Files in storage (objects, metadata, staging).
    fn stored(&self) -> Vec<PathBuf> {
        let mut files = files_under(&self.root);
        files.sort();
        files
    }

    async fn upload(&self, part: Part) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.url("/api/file/upload"))
            .multipart(Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn get(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send().await.unwrap()
    }
}

/// The file router on a free port, over storage at `storage_uri`.
async fn serve(storage_uri: &str, max_upload: u64) -> String {
    let channel = wpsmesh_runtime::grpc::channel(storage_uri).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The public URL ends in a slash, as configured URLs sometimes do.
    let state = FilesState::new(
        StorageServiceClient::new(channel),
        max_upload,
        &format!("{base}/"),
    );
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    base
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not json: {body:?}"));
    (status, value)
}

fn small(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn small_file_round_trip_with_ranges() {
    let api = Api::start(16 * MIB as u64).await;
    let data = small(1000);
    let (status, body) = api
        .upload(Part::bytes(data.clone()).file_name("Countries.GeoJSON"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert!(body["message"].is_string());
    let id = body["data"]["name"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["data"]["format"], "geojson");
    assert_eq!(body["data"]["length"], 1000);
    assert!(
        body["data"]["objectName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert!(body["data"]["etag"].as_str().is_some_and(|e| !e.is_empty()));
    // The absolute retrieve URL under the public URL, used as-is.
    let url = body["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{}/api/file/retrieve/{id}.geojson", api.base));
    let fetched = api.http.get(&url).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap(), data);

    let (status, found) = json_of(api.get(&format!("/api/file/find/{id}"), None).await).await;
    assert_eq!(status, StatusCode::OK);
    let mut uploaded = body["data"].clone();
    uploaded.as_object_mut().unwrap().remove("url");
    assert_eq!(found["data"], uploaded);

    let path = format!("/api/file/retrieve/{id}.geojson");
    let whole = api.get(&path, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(header(&whole, "content-type"), "application/geo+json");
    assert_eq!(header(&whole, "content-length"), "1000");
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(whole.bytes().await.unwrap(), data);

    for (range, from, to) in [
        ("bytes=0-99", 0, 99),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ] {
        let part = api.get(&path, Some(range)).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&part, "content-range"),
            format!("bytes {from}-{to}/1000")
        );
        assert_eq!(header(&part, "content-length"), (to - from + 1).to_string());
        assert_eq!(part.bytes().await.unwrap(), data[from..=to], "{range}");
    }
    let beyond = api.get(&path, Some("bytes=1000-")).await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&beyond, "content-range"), "bytes */1000");
    let (_, refused) = json_of(beyond).await;
    assert_eq!(refused["success"], false);
    assert_eq!(
        refused["message"],
        "range not satisfiable for an object of 1000 bytes"
    );
    // Several ranges are not supported: the whole file comes back.
    let multi = api.get(&path, Some("bytes=0-1,5-6")).await;
    assert_eq!(multi.status(), StatusCode::OK);
    assert_eq!(multi.bytes().await.unwrap().len(), 1000);
    // Another extension is another file.
    let (status, body) =
        json_of(api.get(&format!("/api/file/retrieve/{id}.zip"), None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("object {id}.zip not found"));

    let deleted = api
        .http
        .delete(api.url(&format!("/api/file/delete/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(deleted).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    for path in [format!("/api/file/find/{id}"), path] {
        let (status, body) = json_of(api.get(&path, None).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["success"], false);
        assert_eq!(body["message"], format!("object {id} not found"), "{path}");
    }
    let again = api
        .http
        .delete(api.url(&format!("/api/file/delete/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(again).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("object {id} not found"));
}

#[tokio::test]
async fn empty_file() {
    let api = Api::start(MIB as u64).await;
    let (status, body) = api
        .upload(Part::bytes(Vec::new()).file_name("empty.txt"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["length"], 0);
    assert_eq!(body["data"]["format"], "txt");
    let id = body["data"]["name"].as_str().unwrap();
    let path = format!("/api/file/retrieve/{id}.txt");
    let whole = api.get(&path, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(header(&whole, "content-type"), "text/plain");
    assert_eq!(header(&whole, "content-length"), "0");
    assert!(whole.bytes().await.unwrap().is_empty());
    let range = api.get(&path, Some("bytes=0-")).await;
    assert_eq!(range.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&range, "content-range"), "bytes */0");
    let (_, refused) = json_of(range).await;
    assert_eq!(
        refused["message"],
        "range not satisfiable for an object of 0 bytes"
    );
    // A file without an extension: its url has none either, and serves the bytes.
    let (status, body) = api
        .upload(Part::bytes(b"plain".to_vec()).file_name("README"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["data"]["name"].as_str().unwrap();
    assert_eq!(body["data"]["format"], "");
    let url = body["data"]["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/api/file/retrieve/{id}", api.base));
    let fetched = api.http.get(url).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap(), &b"plain"[..]);
}

/// Compares a streamed body with `content(len, seed)` as it arrives.
struct Expected {
    chunks: Box<dyn Iterator<Item = Bytes>>,
    current: Bytes,
    seen: usize,
}

impl Expected {
    fn new(len: usize, seed: u64) -> Self {
        Self {
            chunks: Box::new(content(len, seed)),
            current: Bytes::new(),
            seen: 0,
        }
    }

    fn skip(&mut self, mut n: usize) {
        while n > 0 {
            if self.current.is_empty() {
                self.current = self.chunks.next().expect("enough content");
            }
            let k = n.min(self.current.len());
            let _ = self.current.split_to(k);
            n -= k;
        }
    }

    fn check(&mut self, mut got: &[u8]) {
        while !got.is_empty() {
            if self.current.is_empty() {
                self.current = self.chunks.next().expect("no more bytes than uploaded");
            }
            let k = got.len().min(self.current.len());
            assert_eq!(
                &got[..k],
                &self.current[..k],
                "bytes differ after {}",
                self.seen
            );
            let _ = self.current.split_to(k);
            got = &got[k..];
            self.seen += k;
        }
    }
}

#[tokio::test]
async fn large_file_streams_both_ways() {
    let len = 64 * MIB;
    let api = Api::start(80 * MIB as u64).await;
    let stream = futures::stream::iter(content(len, 42).map(Ok::<_, std::io::Error>));
    let part = Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.bin");
    let (status, body) = api.upload(part).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["length"], len as u64);
    assert_eq!(body["data"]["format"], "bin");
    let id = body["data"]["name"].as_str().unwrap().to_owned();
    let path = format!("/api/file/retrieve/{id}.bin");

    let whole = api.get(&path, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(header(&whole, "content-type"), "application/octet-stream");
    assert_eq!(header(&whole, "content-length"), len.to_string());
    let mut expected = Expected::new(len, 42);
    let mut body = whole.bytes_stream();
    while let Some(chunk) = body.next().await {
        expected.check(&chunk.unwrap());
    }
    assert_eq!(expected.seen, len);

    let (from, to) = (32 * MIB + 12_345, 40 * MIB);
    let part = api.get(&path, Some(&format!("bytes={from}-{to}"))).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes {from}-{to}/{len}")
    );
    let mut expected = Expected::new(len, 42);
    expected.skip(from);
    let mut body = part.bytes_stream();
    while let Some(chunk) = body.next().await {
        expected.check(&chunk.unwrap());
    }
    assert_eq!(expected.seen, to - from + 1);
}

#[tokio::test]
async fn oversize_upload_is_refused_and_nothing_is_stored() {
    let api = Api::start(MIB as u64).await;
    let before = api.stored();
    let stream = futures::stream::iter(content(3 * MIB, 7).map(Ok::<_, std::io::Error>));
    let part = Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.zip");
    let (status, body) = api.upload(part).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["success"], false);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("maximum upload size")
    );
    // A declared length far over the limit is refused before the body is read.
    let mut socket = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "PUT /api/file/upload HTTP/1.1\r\nHost: edge\r\n\
                Content-Type: multipart/form-data; boundary=XYZ\r\n\
                Content-Length: 10737418240\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("the edge answers and closes at once")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("maximum upload size"), "{answer}");
    eventually(
        "storage to drop the aborted upload",
        Duration::from_secs(5),
        || api.stored() == before,
    )
    .await
    .unwrap();
    // Exactly the limit is fine, and stored: the same bytes come back.
    let (status, body) = api
        .upload(Part::bytes(vec![1u8; MIB]).file_name("x.zip"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["length"], MIB);
    assert_ne!(api.stored(), before);
    let stored = api
        .http
        .get(body["data"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.bytes().await.unwrap(), vec![1u8; MIB]);
}

#[tokio::test]
async fn client_gone_mid_upload_leaves_nothing() {
    let api = Api::start(64 * MIB as u64).await;
    let before = api.stored();
    let chunks = content(4 * MIB, 9)
        .map(Ok::<_, std::io::Error>)
        .chain(std::iter::once(Err(std::io::Error::other(
            "client gave up",
        ))));
    let part = Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .file_name("broken.tif");
    let result = api
        .http
        .put(api.url("/api/file/upload"))
        .multipart(Form::new().part("file", part))
        .send()
        .await;
    assert!(result.is_err(), "the request cannot complete");
    tokio::time::sleep(Duration::from_millis(300)).await;
    eventually(
        "storage to drop the broken upload",
        Duration::from_secs(5),
        || api.stored() == before,
    )
    .await
    .unwrap();
    // The same upload carried through is stored.
    let chunks = content(4 * MIB, 9).map(Ok::<_, std::io::Error>);
    let part = Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .file_name("whole.tif");
    let (status, body) = api.upload(part).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["length"], 4 * MIB);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let api = Api::start(MIB as u64).await;
    // The valid forms first: an upload, then find, retrieve and delete by its id.
    let (status, body) = api
        .upload(Part::bytes(b"kept".to_vec()).file_name("kept.txt"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kept = body["data"]["name"].as_str().unwrap().to_owned();
    let (status, _) = json_of(api.get(&format!("/api/file/find/{kept}"), None).await).await;
    assert_eq!(status, StatusCode::OK);
    let whole = api
        .get(&format!("/api/file/retrieve/{kept}.txt"), None)
        .await;
    assert_eq!(whole.bytes().await.unwrap(), &b"kept"[..]);
    let before = api.stored();

    for path in [
        "/api/file/find/not-an-id",
        "/api/file/find/0123456789ABCDEF0123456789abcdef",
        "/api/file/retrieve/..%2F..%2Fetc%2Fpasswd.txt",
        "/api/file/retrieve/xyz.zip",
    ] {
        let (status, body) = json_of(api.get(path, None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["success"], false, "{path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("invalid object id"),
            "{body}"
        );
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    for path in [
        format!("/api/file/find/{unknown}"),
        format!("/api/file/retrieve/{unknown}.zip"),
    ] {
        let (status, body) = json_of(api.get(&path, None).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["message"], format!("object {unknown} not found"));
    }
    let deleted = api
        .http
        .delete(api.url("/api/file/delete/nope"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(deleted).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid object id"),
        "{body}"
    );

    // Missing field, wrong field name, not multipart at all.
    let form = Form::new().text("other", "value");
    let response = api
        .http
        .put(api.url("/api/file/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing multipart field file")
    );
    let response = api
        .http
        .put(api.url("/api/file/upload"))
        .body("plain")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], false);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("expected a multipart/form-data body with a field named file"),
        "{body}"
    );
    // Nothing stored by any of it, and the valid upload is still there.
    assert_eq!(api.stored(), before);
    let deleted = api
        .http
        .delete(api.url(&format!("/api/file/delete/{kept}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
}

#[tokio::test]
async fn storage_down_is_503() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let port = wpsmesh_tests::free_port();
    let base = serve(&format!("http://127.0.0.1:{port}"), MIB as u64).await;
    let http = reqwest::Client::new();
    let find = format!("{base}/api/file/find/0123456789abcdef0123456789abcdef");
    let upload = || {
        http.put(format!("{base}/api/file/upload"))
            .multipart(Form::new().part("file", Part::bytes(vec![1u8; 10]).file_name("a.txt")))
            .send()
    };
    let response = http.get(&find).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = json_of(response).await;
    assert_eq!(body["success"], false);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("file storage is unavailable: "),
        "{body}"
    );
    let (status, body) = json_of(upload().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("file storage is unavailable: "),
        "{body}"
    );

    // Storage comes up on that port: the same requests are answered by it.
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let storage = wpsmesh_storage::spawn_local_on(listener, dir.path().join("storage")).unwrap();
    let service = "wpsmesh.storage.v1.StorageService";
    wpsmesh_tests::until_serving(&storage, service, Duration::from_secs(10))
        .await
        .unwrap();
    let (status, body) = json_of(http.get(&find).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = json_of(upload().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["length"], 10);
}
