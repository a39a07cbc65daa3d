//! End to end: `wpsmesh up` (edge, storage, a node with a real QGIS worker) as a user runs it,
//! driven over HTTP. Every WPS document it answers with validates against the official
//! schemas; bad requests get the right exception code and status and the next request works;
//! asynchronous jobs through WPS 1.0.0 (statusLocation), WPS 2.0 (GetStatus, GetResult,
//! Dismiss) and the JSON job API; with no node, ServerBusy with Retry-After.

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

/// Uploads the 240 country points through the file API; their href.
async fn upload_points(http: &reqwest::Client, mesh: &Mesh) -> String {
    upload(http, mesh, "points.geojson", data::POINTS_SQL).await
}

/// Uploads the result of `sql` over the world map as `name` through the file API; its href.
async fn upload(http: &reqwest::Client, mesh: &Mesh, name: &str, sql: &str) -> String {
    let path = data::derive(mesh.dir.path(), name, sql);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&path).expect("derived data"))
            .file_name(name.to_owned()),
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
    format!("{}/api/file/retrieve/{id}.geojson", mesh.url)
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
            "status without storeExecuteResponse",
            post(execute_v1(&href, r#"<wps:ResponseDocument status="true"><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument>"#)).await,
            ("InvalidParameterValue", 400),
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
    let (s, no_job) = get(&format!(
        "service=WPS&request=GetStatus&version=2.0.0&jobId={UNKNOWN_JOB}"
    ))
    .await;
    assert_eq!(s, 400, "{no_job}");
    assert!(no_job.contains("NoSuchJob"), "{no_job}");
    let (s, bad_job) = get("service=WPS&request=GetStatus&version=2.0.0&jobId=nope").await;
    assert_eq!(s, 400, "{bad_job}");
    assert!(
        bad_job.contains(r#"exceptionCode="InvalidParameterValue" locator="JobID""#),
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
    let mesh = start(1);
    let http = reqwest::Client::new();
    wait_for_nodes(&http, &mesh.url, 1).await;
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
    let (s, unknown) = get(format!("{}/api/wps/status/{UNKNOWN_JOB}", mesh.url)).await;
    assert_eq!(s, 404, "{unknown}");
    assert!(unknown.contains(r#"locator="JobID""#), "{unknown}");
    let (s, malformed) = get(format!("{}/api/wps/status/NOPE", mesh.url)).await;
    assert_eq!(s, 400, "{malformed}");
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
    // GetResult of the failed 1.0.0 job: its failure.
    let failed_job = failed_location.rsplit('/').next().expect("job id");
    let (s, failure) = get(format!(
        "{wps}?service=WPS&request=GetResult&version=2.0.0&jobId={failed_job}"
    ))
    .await;
    assert!(s >= 400, "{failure}");
    assert!(failure.contains("ows:ExceptionText"), "{failure}");
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
    let unknown = http
        .get(format!("{}/api/wps/jobs/{UNKNOWN_JOB}", mesh.url))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status().as_u16(), 404);
    let malformed = http
        .delete(format!("{}/api/wps/jobs/nope", mesh.url))
        .send()
        .await
        .expect("malformed");
    assert_eq!(malformed.status().as_u16(), 400);

    let (_, metrics) = get(format!("{}/metrics", mesh.url)).await;
    assert!(
        metrics.contains("wpsmesh_edge_job_requests_total{operation=\"submit\"} 6"),
        "{metrics}"
    );
}
