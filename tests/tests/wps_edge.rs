//! End to end: `wpsmesh up` (edge, storage, a node with a real QGIS worker) as a user runs it,
//! driven over HTTP. Every WPS document it answers with validates against the official
//! schemas; bad requests get the right exception code and status and the next request works;
//! with no node, ServerBusy with Retry-After.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wpsmesh_tests::{ChildGuard, data, free_port, workspace_binary};

/// A running `wpsmesh up` and its URL.
struct Mesh {
    url: String,
    dir: tempfile::TempDir,
    _child: ChildGuard,
}

fn start(nodes: u16) -> Mesh {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, storage, node) = (free_port(), free_port(), free_port());
    let child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
        .args(["up", "--nodes", &nodes.to_string(), "--workers", "1"])
        .args([
            "--port",
            &port.to_string(),
            "--storage-port",
            &storage.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WPSMESH_NODE__LISTEN", format!("127.0.0.1:{node}"))
        .env("WPSMESH_EDGE__MAX_BODY_BYTES", "1048576")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn wpsmesh up");
    Mesh {
        url: format!("http://localhost:{port}"),
        dir,
        _child: ChildGuard(child),
    }
}

async fn wait_for_nodes(client: &reqwest::Client, url: &str, nodes: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let want = format!("\nwpsmesh_edge_nodes {nodes}\n");
    loop {
        if let Ok(r) = client.get(format!("{url}/metrics")).send().await
            && let Ok(text) = r.text().await
            && text.contains(&want)
        {
            return;
        }
        assert!(Instant::now() < deadline, "mesh never had {nodes} node(s)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
async fn every_answer_validates_and_bad_requests_get_exceptions() {
    let mesh = start(1);
    let http = reqwest::Client::new();
    wait_for_nodes(&http, &mesh.url, 1).await;
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

    // An input uploaded through the file API.
    let points = data::derive(mesh.dir.path(), "points.geojson", data::POINTS_SQL);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&points).expect("points"))
            .file_name("points.geojson"),
    );
    let uploaded: serde_json::Value = http
        .put(format!("{}/api/file/upload", mesh.url))
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let id = uploaded["data"]["name"].as_str().expect("id").to_owned();
    let href = format!("{}/api/file/retrieve/{id}.geojson", mesh.url);

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

    let mut errors_v1 = Vec::new();
    for (what, (status, body), code) in [
        ("unknown operation", get("service=WPS&request=Frobnicate&version=1.0.0").await, ("OperationNotSupported", 501)),
        ("missing service", get("request=GetCapabilities").await, ("MissingParameterValue", 400)),
        ("missing request", get("service=WPS&version=1.0.0").await, ("MissingParameterValue", 400)),
        ("missing identifier", get("service=WPS&request=DescribeProcess&version=1.0.0").await, ("MissingParameterValue", 400)),
        ("unknown process", get("service=WPS&request=DescribeProcess&version=1.0.0&identifier=native:nope").await, ("InvalidParameterValue", 400)),
        ("malformed xml", post("<wps:Execute service=\"WPS\" version=\"1.0.0\"".into()).await, ("InvalidParameterValue", 400)),
        (
            "xxe",
            post(r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0">&xxe;</wps:GetCapabilities>"#.into()).await,
            ("InvalidParameterValue", 400),
        ),
        (
            "billion laughs",
            post(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#.into()).await,
            ("InvalidParameterValue", 400),
        ),
        ("body over the limit", post(format!("<a>{}</a>", "x".repeat(2 * 1024 * 1024))).await, ("FileSizeExceeded", 413)),
        (
            "unknown output",
            post(execute_v1(&href, r#"<wps:ResponseDocument><wps:Output asReference="true"><ows:Identifier>NOPE</ows:Identifier></wps:Output></wps:ResponseDocument>"#)).await,
            ("InvalidParameterValue", 400),
        ),
        (
            "literal of the wrong type",
            get(&format!("service=WPS&request=Execute&version=1.0.0&identifier=native:buffer&DataInputs=INPUT=@xlink:href={href};DISTANCE=far")).await,
            ("InvalidParameterValue", 400),
        ),
        (
            "async not yet",
            post(execute_v1(&href, r#"<wps:ResponseDocument storeExecuteResponse="true" status="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#)).await,
            ("OptionNotSupported", 501),
        ),
    ] {
        assert_eq!(status, code.1, "{what}: {body}");
        assert!(body.contains(&format!("exceptionCode=\"{}\"", code.0)), "{what}: {body}");
        errors_v1.push((what, body));
        // The next request succeeds.
        let (s, _) = get("service=WPS&request=GetCapabilities&version=1.0.0").await;
        assert_eq!(s, 200, "after {what}");
    }
    let mut v1_docs = vec![
        ("capabilities", caps),
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
    let (s, refused) = post(execute_v2(&href, "document", "far")).await;
    assert_eq!(s, 400, "{refused}");
    let (s, negotiation) = get("service=WPS&request=GetCapabilities&AcceptVersions=3.0.0").await;
    assert_eq!(s, 400);
    assert!(negotiation.contains("VersionNegotiationFailed"));
    let (s, no_job) = get("service=WPS&request=GetStatus&version=2.0.0&jobId=nope").await;
    assert_eq!(s, 400, "{no_job}");
    assert!(no_job.contains("NoSuchJob"), "{no_job}");
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
        ],
    );
    // VersionNegotiationFailed is answered in 1.0.0 (no version was agreed).
    validate("1.0.0", mesh.dir.path(), &[("negotiation", negotiation)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nodes_the_edge_answers_server_busy() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
        .args([
            "edge",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--node",
            "http://127.0.0.1:9",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn wpsmesh edge");
    let _child = ChildGuard(child);
    let url = format!(
        "http://127.0.0.1:{port}/api/wps?service=WPS&request=GetCapabilities&version=1.0.0"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    let response = loop {
        if let Ok(r) = http.get(&url).send().await {
            break r;
        }
        assert!(Instant::now() < deadline, "edge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.expect("body");
    assert!(body.contains("exceptionCode=\"ServerBusy\""), "{body}");
    validate("1.0.0", dir.path(), &[("busy", body)]);
}
