//! End to end: `wpsmesh up` (edge, storage, a node with a real QGIS worker) as a user runs it,
//! driven over HTTP from the moment it prints its ready line: the first requests after it
//! succeed. Every WPS document it answers with validates against the official schemas; bad
//! requests get the right exception code, status and reason beside the same request in its
//! valid form; asynchronous jobs through WPS 1.0.0 (statusLocation), WPS 2.0 (GetStatus,
//! GetResult, Dismiss) and the JSON job API; with no node, ServerBusy and not ready until one
//! comes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wpsmesh_tests::{ChildGuard, data, free_port, free_ports, workspace_binary};

/// The largest request body the meshes here accept (`edge.max_body_bytes`).
const MAX_BODY: usize = 1024 * 1024;

/// A running `wpsmesh up` that printed its ready line, and its URL.
struct Mesh {
    url: String,
    dir: tempfile::TempDir,
    /// What it wrote to stderr (its logs).
    log: PathBuf,
    _child: ChildGuard,
}

/// Ports of a mesh: edge HTTP, storage, first node.
struct Ports {
    edge: u16,
    storage: u16,
    node: u16,
}

impl Ports {
    fn free() -> Self {
        Self {
            edge: free_port(),
            storage: free_port(),
            // `wpsmesh up` puts its nodes on consecutive ports from this one.
            node: free_ports(3),
        }
    }
}

/// Starts `wpsmesh up` with `nodes` nodes of one worker each and waits for its ready line.
async fn start(nodes: u16) -> Mesh {
    start_on(nodes, &Ports::free()).await
}

/// Starts `wpsmesh up` on `ports`; returns once it printed `ready: {url}/api/wps` on stdout
/// (read line by line as it comes: no polling), after its listing.
async fn start_on(nodes: u16, ports: &Ports) -> Mesh {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("wpsmesh.log");
    let mut child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
        .args(["up", "--nodes", &nodes.to_string(), "--workers", "1"])
        .args([
            "--port",
            &ports.edge.to_string(),
            "--storage-port",
            &ports.storage.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WPSMESH_NODE__LISTEN", format!("127.0.0.1:{}", ports.node))
        // Metrics ports of their own: tests run side by side.
        .envs(wpsmesh_tests::up_metrics_env())
        .env("WPSMESH_EDGE__MAX_BODY_BYTES", MAX_BODY.to_string())
        .env("RUST_LOG", "warn,wpsmesh::up=info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn wpsmesh up");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = ChildGuard(child);
    let (tx, rx) = tokio::sync::oneshot::channel::<(Vec<String>, String)>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut listing = Vec::new();
        // Read to the end, so the child never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match tx.take() {
                Some(tx) if line.starts_with("ready:") => {
                    let _ = tx.send((std::mem::take(&mut listing), line));
                }
                Some(other) => {
                    listing.push(line);
                    tx = Some(other);
                }
                None => {}
            }
        }
    });
    let (listing, ready) = match tokio::time::timeout(Duration::from_secs(240), rx).await {
        Ok(Ok(lines)) => lines,
        Ok(Err(_)) => panic!("wpsmesh up ended before its ready line:\n{}", tail(&log)),
        Err(_) => panic!("no ready line within 240 s:\n{}", tail(&log)),
    };
    let url = format!("http://localhost:{}", ports.edge);
    assert_eq!(ready, format!("ready: {url}/api/wps"));
    assert_eq!(
        listing.first().map(String::as_str),
        Some("wpsmesh local mesh"),
        "{listing:?}"
    );
    assert!(
        listing.last().is_some_and(|l| l.starts_with("  edge ")),
        "{listing:?}"
    );
    Mesh {
        url,
        dir,
        log,
        _child: child,
    }
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Validates documents with `../shared/schemas/validate`, failing with xmllint's words.
fn validate(version: &str, dir: &Path, docs: &[(&str, String)]) {
    let validate = std::env::var("WPSMESH_SCHEMAS").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/schemas/validate"),
        |d| PathBuf::from(d).join("validate"),
    );
    let files: Vec<PathBuf> = docs
        .iter()
        .map(|(name, doc)| {
            let path = dir.join(format!("{version}-{name}.xml"));
            std::fs::write(&path, doc).expect("write document");
            path
        })
        .collect();
    let out = Command::new("bash")
        .arg(&validate)
        .arg(version)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", validate.display()));
    assert!(
        out.status.success(),
        "documents do not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Uploads the 240 country points through the file API; their href.
async fn upload_points(http: &reqwest::Client, mesh: &Mesh) -> String {
    upload(http, mesh, "points.geojson", data::POINTS_SQL).await
}

/// Uploads the result of `sql` over the world map as `name` through the file API; its href.
async fn upload(http: &reqwest::Client, mesh: &Mesh, name: &str, sql: &str) -> String {
    let path = data::derive(mesh.dir.path(), name, sql);
    upload_file(http, mesh, &path).await
}

/// Uploads `path` through the file API (once: no retry); the answer's `data.url`, checked to
/// be the file's absolute retrieve URL on the mesh.
async fn upload_file(http: &reqwest::Client, mesh: &Mesh, path: &Path) -> String {
    let name = path.file_name().expect("file name").to_string_lossy();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(path).expect("derived data"))
            .file_name(name.into_owned()),
    );
    let response = http
        .put(format!("{}/api/file/upload", mesh.url))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    let uploaded: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{uploaded}");
    let id = uploaded["data"]["name"].as_str().expect("id");
    let ext = uploaded["data"]["format"].as_str().expect("format");
    let url = uploaded["data"]["url"].as_str().expect("data.url");
    assert_eq!(url, format!("{}/api/file/retrieve/{id}.{ext}", mesh.url));
    url.to_owned()
}

fn execute_v1(href: &str, output: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>native:buffer</ows:Identifier>
<wps:DataInputs>
<wps:Input><ows:Identifier>INPUT</ows:Identifier><wps:Reference xlink:href="{href}" mimeType="application/geo+json"/></wps:Input>
<wps:Input><ows:Identifier>DISTANCE</ows:Identifier><wps:Data><wps:LiteralData>1.5</wps:LiteralData></wps:Data></wps:Input>
</wps:DataInputs>
<wps:ResponseForm>{output}</wps:ResponseForm>
</wps:Execute>"#
    )
}

fn execute_v2(href: &str, response: &str, distance: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="2.0.0" mode="sync" response="{response}" xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>native:buffer</ows:Identifier>
<wps:Input id="INPUT"><wps:Reference xlink:href="{href}" mimeType="application/geo+json"/></wps:Input>
<wps:Input id="DISTANCE"><wps:Data><wps:LiteralValue>{distance}</wps:LiteralValue></wps:Data></wps:Input>
<wps:Output id="OUTPUT" transmission="reference"/>
</wps:Execute>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requests_after_the_ready_line_succeed() {
    // The data is made before the mesh starts: the upload is the first request after the line.
    let data_dir = tempfile::tempdir().expect("tempdir");
    let points = data::derive(data_dir.path(), "points.geojson", data::POINTS_SQL);
    // Two nodes, as `wpsmesh up` runs by default: ready once one of them is.
    let mesh = start(2).await;
    let http = reqwest::Client::new();

    // No retries anywhere: each request must succeed the first time.
    let href = upload_file(&http, &mesh, &points).await;
    let kvp = format!(
        "{}/api/wps?service=WPS&request=Execute&version=1.0.0&identifier=native:buffer&DataInputs=INPUT=@xlink:href={href};DISTANCE=1.5&ResponseDocument=OUTPUT@asReference=true",
        mesh.url
    );
    let response = http.get(&kvp).send().await.expect("execute");
    let status = response.status().as_u16();
    let executed = response.text().await.expect("body");
    assert_eq!(status, 200, "{executed}");
    assert!(executed.contains("<wps:ProcessSucceeded>"), "{executed}");
    let output = attr(&executed, "wps:Reference href");
    assert!(output.starts_with(&format!("{}/api/file/retrieve/", mesh.url)));
    assert_eq!(buffered_features(&http, output).await, 240);
    // The upload's url serves the uploaded bytes as they were.
    let fetched = http.get(&href).send().await.expect("retrieve");
    assert_eq!(fetched.status().as_u16(), 200);
    let bytes = fetched.bytes().await.expect("bytes");
    assert_eq!(bytes, std::fs::read(&points).expect("points"));
    let ready = http
        .get(format!("{}/ready", mesh.url))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200);
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["storage"], "ok");
    assert!(ready["nodes"].as_u64().is_some_and(|n| n >= 1), "{ready}");

    // The ready log line, without colour codes: stderr is a file here.
    let log = std::fs::read_to_string(&mesh.log).expect("log");
    assert!(log.contains("local mesh ready"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_validates_and_bad_requests_get_exceptions() {
    let mesh = start(1).await;
    let http = reqwest::Client::new();
    let wps = format!("{}/api/wps", mesh.url);
    let get = |query: &str| {
        let url = format!("{wps}?{query}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("get");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let post = |body: String| {
        let http = http.clone();
        let wps = wps.clone();
        async move {
            let r = http.post(wps).body(body).send().await.expect("post");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };

    let href = upload_points(&http, &mesh).await;

    // WPS 1.0.0: every response kind.
    let (s, caps) = get("service=WPS&request=GetCapabilities&version=1.0.0").await;
    assert_eq!(s, 200);
    assert!(caps.contains("native:buffer"));
    let (s, describe) =
        get("service=WPS&request=DescribeProcess&version=1.0.0&identifier=native:buffer,native:centroids").await;
    assert_eq!(s, 200);
    let doc_output = r#"<wps:ResponseDocument lineage="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#;
    let (s, executed) = post(execute_v1(&href, doc_output)).await;
    assert_eq!(s, 200, "{executed}");
    assert!(executed.contains("wps:ProcessSucceeded"), "{executed}");
    assert!(executed.contains(&format!("{}/api/file/retrieve/", mesh.url)));
    let kvp_execute = format!(
        "service=WPS&request=Execute&version=1.0.0&identifier=native:buffer&DataInputs=INPUT=@xlink:href={href};DISTANCE=1.5&ResponseDocument=OUTPUT@asReference=true"
    );
    let (s, executed_kvp) = get(&kvp_execute).await;
    assert_eq!(s, 200, "{executed_kvp}");
    // RawDataOutput: the GeoJSON itself.
    let raw = http
        .post(&wps)
        .body(execute_v1(&href, r#"<wps:RawDataOutput mimeType="application/geo+json"><ows:Identifier>OUTPUT</ows:Identifier></wps:RawDataOutput>"#))
        .send()
        .await
        .expect("raw");
    assert_eq!(raw.status().as_u16(), 200);
    let geojson: serde_json::Value = raw.json().await.expect("geojson");
    assert_eq!(geojson["features"].as_array().map(Vec::len), Some(240));

    // The valid forms of the refused requests below that the requests above do not already
    // cover (DescribeProcess with an identifier, well-formed XML, the output OUTPUT, DISTANCE as
    // a number): POSTed XML without a DTD, a body at the size limit, status with storage.
    let caps_xml = r#"<?xml version="1.0"?><wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"></wps:GetCapabilities>"#;
    let (s, posted_caps) = post(caps_xml.into()).await;
    assert_eq!(s, 200, "{posted_caps}");
    assert!(posted_caps.contains("native:buffer"));
    let at_limit = execute_v1(&href, doc_output);
    let at_limit = at_limit.replacen(
        "<wps:DataInputs>",
        &format!("{}<wps:DataInputs>", " ".repeat(MAX_BODY - at_limit.len())),
        1,
    );
    assert_eq!(at_limit.len(), MAX_BODY);
    let (s, executed_at_limit) = post(at_limit).await;
    assert_eq!(s, 200, "{executed_at_limit}");
    assert!(executed_at_limit.contains("wps:ProcessSucceeded"));
    let stored = r#"<wps:ResponseDocument storeExecuteResponse="true" status="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#;
    let (s, accepted) = post(execute_v1(&href, stored)).await;
    assert_eq!(s, 200, "{accepted}");
    assert!(accepted.contains("<wps:ProcessAccepted>"), "{accepted}");

    let mut errors_v1 = Vec::new();
    // (what, answer, (exception code, HTTP status), words of the exception text)
    for (what, (status, body), code, reason) in [
        ("unknown operation", get("service=WPS&request=Frobnicate&version=1.0.0").await, ("OperationNotSupported", 501), "unknown operation"),
        ("missing service", get("request=GetCapabilities").await, ("MissingParameterValue", 400), "missing parameter service"),
        ("missing request", get("service=WPS&version=1.0.0").await, ("MissingParameterValue", 400), "missing parameter request"),
        ("missing identifier", get("service=WPS&request=DescribeProcess&version=1.0.0").await, ("MissingParameterValue", 400), "missing parameter identifier"),
        ("unknown process", get("service=WPS&request=DescribeProcess&version=1.0.0&identifier=native:nope").await, ("InvalidParameterValue", 400), "no process"),
        ("malformed xml", post("<wps:Execute service=\"WPS\" version=\"1.0.0\"".into()).await, ("InvalidParameterValue", 400), "malformed XML"),
        (
            "xxe",
            post(caps_xml.replace("?><wps:", r#"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><wps:"#).replace("></wps:Get", ">&xxe;</wps:Get")).await,
            ("InvalidParameterValue", 400),
            "DTDs and entity declarations are not accepted",
        ),
        (
            "billion laughs",
            post(caps_xml.replace("?><wps:", r#"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><wps:"#).replace("></wps:Get", ">&lol2;</wps:Get")).await,
            ("InvalidParameterValue", 400),
            "DTDs and entity declarations are not accepted",
        ),
        (
            "body over the limit",
            post(execute_v1(&href, doc_output).replacen("<wps:DataInputs>", &format!("{}<wps:DataInputs>", " ".repeat(MAX_BODY)), 1)).await,
            ("FileSizeExceeded", 413),
            "request body exceeds 1048576 bytes",
        ),
        (
            "unknown output",
            post(execute_v1(&href, r#"<wps:ResponseDocument><wps:Output asReference="true"><ows:Identifier>NOPE</ows:Identifier></wps:Output></wps:ResponseDocument>"#)).await,
            ("InvalidParameterValue", 400),
            "NOPE",
        ),
        (
            "literal of the wrong type",
            get(&format!("service=WPS&request=Execute&version=1.0.0&identifier=native:buffer&DataInputs=INPUT=@xlink:href={href};DISTANCE=far")).await,
            ("InvalidParameterValue", 400),
            "DISTANCE",
        ),
        (
            "status without storeExecuteResponse",
            post(execute_v1(&href, r#"<wps:ResponseDocument status="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#)).await,
            ("InvalidParameterValue", 400),
            "status=true requires storeExecuteResponse=true",
        ),
    ] {
        assert_eq!(status, code.1, "{what}: {body}");
        assert!(body.contains(&format!("exceptionCode=\"{}\"", code.0)), "{what}: {body}");
        assert!(exception_text(&body).contains(reason), "{what}: {body}");
        errors_v1.push((what, body));
        // The next request succeeds.
        let (s, _) = get("service=WPS&request=GetCapabilities&version=1.0.0").await;
        assert_eq!(s, 200, "after {what}");
    }
    let mut v1_docs = vec![
        ("capabilities", caps),
        ("capabilities-post", posted_caps),
        ("execute-at-limit", executed_at_limit),
        ("accepted", accepted),
        ("describe", describe),
        ("execute", executed),
        ("execute-kvp", executed_kvp),
    ];
    v1_docs.extend(errors_v1);
    validate("1.0.0", mesh.dir.path(), &v1_docs);

    // WPS 2.0: capabilities, offerings, result, status, exceptions.
    let (s, caps2) = get("service=WPS&request=GetCapabilities&AcceptVersions=2.0.0").await;
    assert_eq!(s, 200);
    assert!(caps2.contains("wps/2.0"));
    let (s, offerings) =
        get("service=WPS&request=DescribeProcess&version=2.0.0&identifier=native:buffer").await;
    assert_eq!(s, 200);
    let (s, result) = post(execute_v2(&href, "document", "1.5")).await;
    assert_eq!(s, 200, "{result}");
    let job = result
        .split("<wps:JobID>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .expect("job id")
        .to_owned();
    let (s, status) = get(&format!(
        "service=WPS&request=GetStatus&version=2.0.0&jobId={job}"
    ))
    .await;
    assert_eq!(s, 200);
    assert!(status.contains("Succeeded"), "{status}");
    // Refused beside the valid forms above: DISTANCE 1.5, AcceptVersions 2.0.0, a real job.
    let (s, refused) = post(execute_v2(&href, "document", "far")).await;
    assert_eq!(s, 400, "{refused}");
    assert!(
        refused.contains(r#"exceptionCode="InvalidParameterValue" locator="DISTANCE""#),
        "{refused}"
    );
    assert!(exception_text(&refused).contains("DISTANCE"), "{refused}");
    let (s, negotiation) = get("service=WPS&request=GetCapabilities&AcceptVersions=3.0.0").await;
    assert_eq!(s, 400);
    assert!(negotiation.contains("VersionNegotiationFailed"));
    assert!(
        exception_text(&negotiation).contains("this server speaks 2.0.0 and 1.0.0"),
        "{negotiation}"
    );
    let (s, no_job) = get(&format!(
        "service=WPS&request=GetStatus&version=2.0.0&jobId={UNKNOWN_JOB}"
    ))
    .await;
    assert_eq!(s, 400, "{no_job}");
    assert!(no_job.contains("NoSuchJob"), "{no_job}");
    assert!(exception_text(&no_job).contains("not found"), "{no_job}");
    let (s, bad_job) = get("service=WPS&request=GetStatus&version=2.0.0&jobId=nope").await;
    assert_eq!(s, 400, "{bad_job}");
    assert!(
        bad_job.contains(r#"exceptionCode="InvalidParameterValue" locator="JobID""#),
        "{bad_job}"
    );
    assert!(
        exception_text(&bad_job).contains("job ids are 32 lowercase hexadecimal digits"),
        "{bad_job}"
    );
    validate(
        "2.0",
        mesh.dir.path(),
        &[
            ("capabilities", caps2),
            ("offerings", offerings),
            ("result", result),
            ("status", status),
            ("refused", refused),
            ("no-job", no_job),
            ("bad-job", bad_job),
        ],
    );
    // VersionNegotiationFailed is answered in 1.0.0 (no version was agreed).
    validate("1.0.0", mesh.dir.path(), &[("negotiation", negotiation)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nodes_the_edge_answers_server_busy_until_one_comes() {
    // An edge alone, over a node and storage that are not there yet.
    let ports = Ports::free();
    let edge_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
        .args([
            "edge",
            "--listen",
            &format!("127.0.0.1:{edge_port}"),
            "--node",
            &format!("http://127.0.0.1:{}", ports.node),
        ])
        .current_dir(dir.path())
        .env(
            "WPSMESH_EDGE__STORAGE",
            format!("http://127.0.0.1:{}", ports.storage),
        )
        .env("WPSMESH_EDGE__DISCOVERY__HEALTH_INTERVAL", "200ms")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn wpsmesh edge");
    let _child = ChildGuard(child);
    let base = format!("http://127.0.0.1:{edge_port}");
    let url = format!("{base}/api/wps?service=WPS&request=GetCapabilities&version=1.0.0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    // Waiting for the listener: liveness answers as soon as it is up.
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "edge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = http.get(&url).send().await.expect("get");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.expect("body");
    assert!(body.contains("exceptionCode=\"ServerBusy\""), "{body}");
    assert!(
        exception_text(&body).contains("no processing node is available"),
        "{body}"
    );
    validate("1.0.0", dir.path(), &[("busy", body)]);
    let not_ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(not_ready.status().as_u16(), 503);
    assert!(not_ready.headers().contains_key("retry-after"));
    let not_ready: serde_json::Value = not_ready.json().await.expect("json");
    assert_eq!(not_ready["status"], "not ready");
    let reasons: Vec<&str> = not_ready["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{not_ready}");
    assert_eq!(reasons[0], "no healthy node");
    assert!(
        reasons[1].starts_with("storage unreachable: "),
        "{not_ready}"
    );

    // A mesh comes up on those ports: the edge gets ready and the same request is served.
    let _mesh = start_on(1, &ports).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(format!("{base}/ready"))
            .send()
            .await
            .expect("ready");
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge never ready: {:?}",
            r.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = http.get(&url).send().await.expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("native:buffer")
    );
}

/// A well-formed job id no node issued.
const UNKNOWN_JOB: &str = "00000000000000000000000000000000";

/// GETs `url` until `done` holds for the body (a readiness check with a deadline, not a fixed
/// wait); every body seen, the last one satisfying `done`.
async fn poll(http: &reqwest::Client, url: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let response = http.get(url).send().await.expect("poll");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let body = response.text().await.expect("body");
        let finished = done(&body);
        seen.push(body);
        if finished {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never finished: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first `attr="..."` in `doc`.
fn attr<'a>(doc: &'a str, attr: &str) -> &'a str {
    doc.split(&format!("{attr}=\""))
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("no {attr} in {doc}"))
}

/// The text of the first `<element>` in `doc`.
fn element<'a>(doc: &'a str, element: &str) -> &'a str {
    doc.split(&format!("<{element}>"))
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap_or_else(|| panic!("no {element} in {doc}"))
}

/// The text of the first `<ows:ExceptionText>` in an exception report (empty when none).
fn exception_text(doc: &str) -> String {
    doc.split("<ows:ExceptionText>")
        .nth(1)
        .and_then(|t| t.split("</ows:ExceptionText>").next())
        .unwrap_or_default()
        .to_owned()
}

async fn buffered_features(http: &reqwest::Client, href: &str) -> usize {
    let geojson: serde_json::Value = http
        .get(href)
        .send()
        .await
        .expect("output")
        .json()
        .await
        .expect("geojson output");
    geojson["features"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_through_wps_1_wps_2_and_json() {
    let mesh = start(1).await;
    let http = reqwest::Client::new();
    let href = upload_points(&http, &mesh).await;
    let wps = format!("{}/api/wps", mesh.url);
    let post = |body: String| {
        let (http, wps) = (http.clone(), wps.clone());
        async move {
            let r = http.post(wps).body(body).send().await.expect("post");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("get");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let finished =
        |doc: &str| doc.contains("wps:ProcessSucceeded") || doc.contains("wps:ProcessFailed");

    // WPS 1.0.0: stored response with status updates, followed at its statusLocation.
    let stored = r#"<wps:ResponseDocument storeExecuteResponse="true" status="true" lineage="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#;
    let (s, accepted) = post(execute_v1(&href, stored)).await;
    assert_eq!(s, 200, "{accepted}");
    assert!(accepted.contains("<wps:ProcessAccepted>"), "{accepted}");
    let location = attr(&accepted, "statusLocation").to_owned();
    let job = location
        .strip_prefix(&format!("{}/api/wps/status/", mesh.url))
        .unwrap_or_else(|| panic!("statusLocation {location}"));
    assert!(
        job.len() == 32 && job.bytes().all(|b| b.is_ascii_hexdigit()),
        "{job}"
    );
    let followed = poll(&http, &location, finished).await;
    let succeeded = followed.last().expect("a status").clone();
    assert!(succeeded.contains("<wps:ProcessSucceeded>"), "{succeeded}");
    assert_eq!(attr(&succeeded, "statusLocation"), location);
    let output = attr(&succeeded, "wps:Reference href");
    assert!(output.starts_with(&format!("{}/api/file/retrieve/", mesh.url)));
    assert_eq!(buffered_features(&http, output).await, 240);
    // storeExecuteResponse without status (KVP) is a job as well.
    let (s, kvp_accepted) = get(format!(
        "{wps}?service=WPS&request=Execute&version=1.0.0&identifier=native:buffer&DataInputs=INPUT=@xlink:href={href};DISTANCE=0.5&ResponseDocument=OUTPUT@asReference=true&storeExecuteResponse=true"
    ))
    .await;
    assert_eq!(s, 200, "{kvp_accepted}");
    assert!(
        kvp_accepted.contains("<wps:ProcessAccepted>"),
        "{kvp_accepted}"
    );
    // A job whose input cannot be read fails while it runs.
    let missing = format!("{}/api/file/retrieve/{UNKNOWN_JOB}.geojson", mesh.url);
    let (s, doomed) = post(execute_v1(&missing, stored)).await;
    assert_eq!(s, 200, "{doomed}");
    let failed_location = attr(&doomed, "statusLocation").to_owned();
    let failed = poll(&http, &failed_location, finished).await;
    let failed = failed.last().expect("a status").clone();
    assert!(failed.contains("<wps:ProcessFailed>"), "{failed}");
    assert!(exception_text(&failed).contains(UNKNOWN_JOB), "{failed}");
    // A long job seen running at its statusLocation, then dismissed through WPS 2.0.
    let slow = upload(&http, &mesh, "slow.geojson", &data::slow_sql(600)).await;
    let (s, long) = post(execute_v1(&slow, stored)).await;
    assert_eq!(s, 200, "{long}");
    let long_location = attr(&long, "statusLocation").to_owned();
    let started = poll(&http, &long_location, |doc| {
        doc.contains("<wps:ProcessStarted") || finished(doc)
    })
    .await;
    let started = started.last().expect("a status").clone();
    assert!(
        started.contains("<wps:ProcessStarted percentCompleted="),
        "{started}"
    );
    let long_job = long_location.rsplit('/').next().expect("job id");
    let (s, dismissed_long) = get(format!(
        "{wps}?service=WPS&request=Dismiss&version=2.0.0&jobId={long_job}"
    ))
    .await;
    assert_eq!(s, 200, "{dismissed_long}");
    let (s, dismissed_v1) = get(long_location.clone()).await;
    assert_eq!(s, 200, "{dismissed_v1}");
    assert!(
        dismissed_v1.contains("<wps:ProcessFailed>") && dismissed_v1.contains("job dismissed"),
        "{dismissed_v1}"
    );
    // Refused beside the valid form above (the statusLocation of a real job).
    let (s, unknown) = get(format!("{}/api/wps/status/{UNKNOWN_JOB}", mesh.url)).await;
    assert_eq!(s, 404, "{unknown}");
    assert!(unknown.contains(r#"locator="JobID""#), "{unknown}");
    assert!(exception_text(&unknown).contains("not found"), "{unknown}");
    let (s, malformed) = get(format!("{}/api/wps/status/NOPE", mesh.url)).await;
    assert_eq!(s, 400, "{malformed}");
    assert!(
        exception_text(&malformed).contains("job ids are 32 lowercase hexadecimal digits"),
        "{malformed}"
    );
    let mut v1_docs = vec![
        ("async-accepted", accepted),
        ("async-accepted-kvp", kvp_accepted),
        ("async-succeeded", succeeded),
        ("async-failed", failed),
        ("async-started", started),
        ("async-dismissed", dismissed_v1),
        ("async-unknown", unknown),
        ("async-malformed", malformed),
    ];
    for (i, doc) in followed.into_iter().enumerate() {
        v1_docs.push((
            ["async-followed-0", "async-followed-1", "async-followed-n"][i.min(2)],
            doc,
        ));
    }
    validate("1.0.0", mesh.dir.path(), &v1_docs);

    // WPS 2.0: StatusInfo, GetStatus until Succeeded, GetResult, Dismiss.
    let (s, accepted2) =
        post(execute_v2(&href, "document", "1.5").replace(r#"mode="sync""#, r#"mode="async""#))
            .await;
    assert_eq!(s, 200, "{accepted2}");
    assert!(
        accepted2.contains("<wps:Status>Accepted</wps:Status>"),
        "{accepted2}"
    );
    let job2 = element(&accepted2, "wps:JobID").to_owned();
    let kvp =
        |request: &str| format!("{wps}?service=WPS&request={request}&version=2.0.0&jobId={job2}");
    let statuses = poll(&http, &kvp("GetStatus"), |doc| {
        doc.contains("<wps:Status>Succeeded</wps:Status>")
            || doc.contains("<wps:Status>Failed</wps:Status>")
    })
    .await;
    let succeeded2 = statuses.last().expect("a status").clone();
    assert!(
        succeeded2.contains("<wps:Status>Succeeded</wps:Status>"),
        "{succeeded2}"
    );
    let (s, result) = get(kvp("GetResult")).await;
    assert_eq!(s, 200, "{result}");
    assert_eq!(element(&result, "wps:JobID"), job2);
    assert_eq!(
        buffered_features(&http, attr(&result, "xlink:href")).await,
        240
    );
    let (s, dismissed) = get(kvp("Dismiss")).await;
    assert_eq!(s, 200, "{dismissed}");
    assert!(
        dismissed.contains("<wps:Status>Dismissed</wps:Status>"),
        "{dismissed}"
    );
    let (s, gone) = get(kvp("GetResult")).await;
    assert_eq!(s, 400, "{gone}");
    assert!(gone.contains(r#"exceptionCode="NoSuchJob""#), "{gone}");
    assert!(exception_text(&gone).contains("dismissed"), "{gone}");
    // GetResult of the failed 1.0.0 job: its failure.
    let failed_job = failed_location.rsplit('/').next().expect("job id");
    let (s, failure) = get(format!(
        "{wps}?service=WPS&request=GetResult&version=2.0.0&jobId={failed_job}"
    ))
    .await;
    assert!(s >= 400, "{failure}");
    assert!(exception_text(&failure).contains(UNKNOWN_JOB), "{failure}");
    let mut v2_docs = vec![
        ("async-accepted", accepted2),
        ("async-succeeded", succeeded2),
        ("async-result", result),
        ("async-dismissed", dismissed),
        ("async-gone", gone),
        ("async-failure", failure),
    ];
    if statuses.len() > 1 {
        v2_docs.push(("async-pending", statuses[0].clone()));
    }
    validate("2.0", mesh.dir.path(), &v2_docs);

    // The JSON job API: 201 and Location, GET until it ends, DELETE.
    let submitted = http
        .post(format!("{}/api/wps/jobs", mesh.url))
        .json(&serde_json::json!({
            "identifier": "native:centroids",
            "inputs": {"INPUT": {"type": "reference", "href": href}},
            "mode": "async",
        }))
        .send()
        .await
        .expect("submit");
    assert_eq!(submitted.status().as_u16(), 201);
    let job_url = submitted.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let body: serde_json::Value = submitted.json().await.expect("json");
    let job3 = body["jobID"].as_str().expect("jobID");
    assert_eq!(job_url, format!("/api/wps/jobs/{job3}"));
    assert_eq!(body["status"]["status"], "accepted", "{body}");
    // Queued: no node may have claimed it yet.
    assert!(
        body["node"].is_string() && body["attempt"].is_u64(),
        "{body}"
    );
    let job_url = format!("{}{job_url}", mesh.url);
    let seen = poll(&http, &job_url, |text| {
        let v: serde_json::Value = serde_json::from_str(text).expect("json status");
        matches!(v["status"]["status"].as_str(), Some("succeeded" | "failed"))
    })
    .await;
    let done: serde_json::Value =
        serde_json::from_str(seen.last().expect("a status")).expect("json");
    assert_eq!(done["status"]["status"], "succeeded", "{done}");
    assert_eq!(done["status"]["percent_done"], "100");
    assert!(
        done["node"].as_str().is_some_and(|n| !n.is_empty()),
        "{done}"
    );
    assert!(done["attempt"].as_u64().is_some_and(|a| a >= 1), "{done}");
    let centroids = done["outputs"]["OUTPUT"]["href"]
        .as_str()
        .expect("output href");
    assert_eq!(buffered_features(&http, centroids).await, 240);
    let deleted = http.delete(&job_url).send().await.expect("delete");
    assert_eq!(deleted.status().as_u16(), 200);
    let deleted: serde_json::Value = deleted.json().await.expect("json");
    assert_eq!(deleted["status"]["status"], "dismissed", "{deleted}");
    // Refused beside the valid form above (the Location of a real job).
    let unknown = http
        .get(format!("{}/api/wps/jobs/{UNKNOWN_JOB}", mesh.url))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status().as_u16(), 404);
    let unknown: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(unknown["error"]["code"], "NoSuchJob", "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{unknown}"
    );
    let malformed = http
        .delete(format!("{}/api/wps/jobs/nope", mesh.url))
        .send()
        .await
        .expect("malformed");
    assert_eq!(malformed.status().as_u16(), 400);
    let malformed: serde_json::Value = malformed.json().await.expect("json");
    assert_eq!(
        malformed["error"]["message"],
        r#"invalid job id "nope": job ids are 32 lowercase hexadecimal digits"#
    );

    let (_, metrics) = get(format!("{}/metrics", mesh.url)).await;
    assert!(
        metrics.contains("wpsmesh_edge_job_requests_total{operation=\"submit\"} 6"),
        "{metrics}"
    );
}
