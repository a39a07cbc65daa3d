//! End to end: `POST /processes/{id}/execution` over a real mesh (storage, a node with a QGIS
//! worker, an edge): synchronous document and raw answers with inputs by reference (uploaded
//! through the file API) and by value (GeoJSON), outputs by value and by reference, results
//! equal to `qgis_process.bin run` for native:buffer, native:dissolve and gdal:slope;
//! `Prefer: respond-async` followed through its Location; bad requests refused with the reason
//! beside their valid form, alone and fired concurrently with good ones.

#[path = "ogcapi_common/mod.rs"]
mod common;

use std::process::Command;

use common::{Answer, DATA, MAX_BODY, execute, follow, get, link, mesh, mesh_with, save};
use serde_json::{Value, json};
use wpsmesh_tests::data::WORLD_MAP;
use wpsmesh_tests::formats::{assert_close, qgis_process, raster_checksum, stats};
use wpsmesh_tests::mesh::{Mesh, feature_count};

/// native:buffer (0.5) of `input`, the output as `mode`.
fn buffer(input: Value, mode: &str, response: &str) -> Value {
    json!({
        "inputs": {"INPUT": input, "DISTANCE": 0.5},
        "outputs": {"OUTPUT": {"format": {"mediaType": "application/geo+json"}, "transmissionMode": mode}},
        "response": response,
    })
}

/// native:buffer (0.5) of `input` executed with `headers`, the output as `mode`.
async fn run_buffer(
    m: &Mesh,
    input: &Value,
    mode: &str,
    response: &str,
    headers: &[(&str, &str)],
) -> Answer {
    execute(
        m,
        "native:buffer",
        &buffer(input.clone(), mode, response),
        headers,
    )
    .await
}

/// The output file a results document links to, fetched and saved as `name`.
async fn fetched(m: &Mesh, results: &Value, name: &str) -> std::path::PathBuf {
    let href = results["OUTPUT"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("OUTPUT by reference: {results}"));
    assert!(
        href.starts_with(&format!("{}/api/file/retrieve/", m.edges[0].uri())),
        "{href}"
    );
    let (status, bytes) = m.fetch(0, href).await;
    assert_eq!(status, 200, "{href}");
    save(m.dir(), name, &bytes)
}

/// Fails unless the GeoJSON at `ours` has the features and measure of `reference`.
fn same_as(ours: &std::path::Path, reference: &std::path::Path, what: &str) {
    let ((n, measure), (n_ref, measure_ref)) = (stats(ours), stats(reference));
    assert!(n > 0, "{what}: no features");
    assert_eq!(n, n_ref, "{what} feature count");
    assert_close(measure, measure_ref, what);
}

/// Raw, one output asked for by value that the node stored (over its inline limit, 1 KiB
/// here): 200 with the file's bytes streamed in place from storage, its media type and length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_value_stored_by_the_node_is_streamed_in_place() {
    let (_turn, m) = mesh_with(&[("WPSMESH_NODE__MAX_INLINE_BYTES", "1024")]).await;
    let points = m.upload(&DATA.points).await;
    let input = json!({"href": points, "type": "application/geo+json"});
    // The same request as a document shows the node stored the output: a link, not a value.
    let doc = run_buffer(&m, &input, "value", "document", &[]).await;
    assert_eq!(doc.status, 200, "{}", doc.json());
    assert!(
        doc.json()["OUTPUT"]["href"].is_string(),
        "stored, not inlined: {}",
        doc.json()
    );

    // Redirects not followed: a 303 to the file would be seen as such.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = format!("{}/processes/native:buffer/execution", m.edges[0].uri());
    let request = client.post(url).json(&buffer(input, "value", "raw"));
    let a = Answer::of(request.send().await.expect("execute")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("location"), None);
    assert_eq!(a.header("content-type"), Some("application/geo+json"));
    let length = a.body.len().to_string();
    assert_eq!(a.header("content-length"), Some(length.as_str()));
    assert!(a.body.len() > 1024, "{} bytes", a.body.len());
    assert_eq!(feature_count(&a.body), 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_document_and_raw_equal_qgis_process() {
    let (_turn, m) = mesh().await;
    let dir = m.dir().to_owned();
    let points = m.upload(&DATA.points).await;
    let countries = m.upload(&DATA.countries).await;
    let reference = qgis_process(
        "native:buffer",
        &[
            ("INPUT", DATA.points.display().to_string()),
            ("DISTANCE", "0.5".into()),
        ],
        dir.join("buffer-ref.geojson"),
    );

    // Document, input by reference, output by reference.
    let by_ref = json!({"href": points, "type": "application/geo+json"});
    let a = run_buffer(&m, &by_ref, "reference", "document", &[]).await;
    assert_eq!(a.status, 200, "{}", a.json());
    assert_eq!(a.header("content-type"), Some("application/json"));
    let ours = fetched(&m, &a.json(), "buffer-ref-doc.geojson").await;
    same_as(&ours, &reference, "document, reference in and out");

    // Document, input by value (a GeoJSON qualified value), output by value.
    let geojson: Value = serde_json::from_slice(&std::fs::read(&DATA.points).expect("points"))
        .expect("points are GeoJSON");
    let by_value = json!({"value": geojson, "mediaType": "application/geo+json"});
    let a = run_buffer(&m, &by_value, "value", "document", &[]).await;
    assert_eq!(a.status, 200, "{}", a.json());
    let out = &a.json()["OUTPUT"];
    assert_eq!(out["mediaType"], "application/geo+json", "{out}");
    assert_eq!(out["value"]["type"], "FeatureCollection", "{out}");
    let ours = save(
        &dir,
        "buffer-value.geojson",
        out["value"].to_string().as_bytes(),
    );
    same_as(&ours, &reference, "document, values in and out");

    // Raw, one output by value: the GeoJSON itself.
    let a = run_buffer(&m, &by_ref, "value", "raw", &[]).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/geo+json"));
    let ours = save(&dir, "buffer-raw.geojson", &a.body);
    same_as(&ours, &reference, "raw value");

    // Raw, one output by reference: 204 and a Link to the file.
    let a = run_buffer(&m, &by_ref, "reference", "raw", &[]).await;
    assert_eq!(a.status, 204, "{}", String::from_utf8_lossy(&a.body));
    let link_header = a.header("link").expect("Link header").to_owned();
    let href = link_header
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(href, _)| href)
        .unwrap_or_else(|| panic!("{link_header}"));
    assert!(link_header.contains("title=\"OUTPUT\""), "{link_header}");
    let (status, bytes) = m.fetch(0, href).await;
    assert_eq!(status, 200);
    same_as(
        &save(&dir, "buffer-link.geojson", &bytes),
        &reference,
        "raw reference",
    );

    // native:dissolve of the countries.
    let body = json!({
        "inputs": {"INPUT": {"href": countries}},
        "outputs": {"OUTPUT": {"transmissionMode": "reference"}},
    });
    let a = execute(&m, "native:dissolve", &body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.json());
    let ours = fetched(&m, &a.json(), "dissolve.geojson").await;
    let reference_dissolve = qgis_process(
        "native:dissolve",
        &[("INPUT", DATA.countries.display().to_string())],
        dir.join("dissolve-ref.geojson"),
    );
    same_as(&ours, &reference_dissolve, "native:dissolve");

    // gdal:slope of a small GeoTIFF made here from the world map: same checksum.
    let tif = dir.join("land.tif");
    let made = Command::new("gdal_rasterize")
        .args([
            "-burn", "100", "-tr", "0.5", "0.5", "-te", "-10", "35", "30", "60",
        ])
        .args(["-ot", "Float32", "-l", "countries"])
        .arg(WORLD_MAP)
        .arg(&tif)
        .output()
        .expect("gdal_rasterize runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let raster = m.upload(&tif).await;
    let body = json!({
        "inputs": {"INPUT": {"href": raster, "type": "image/tiff; application=geotiff"}, "BAND": 1},
        "outputs": {"OUTPUT": {"transmissionMode": "reference"}},
    });
    let a = execute(&m, "gdal:slope", &body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.json());
    let href = a.json()["OUTPUT"]["href"]
        .as_str()
        .expect("slope href")
        .to_owned();
    let (status, bytes) = m.fetch(0, &href).await;
    assert_eq!(status, 200);
    let ours = save(&dir, "slope.tif", &bytes);
    let reference_slope = qgis_process(
        "gdal:slope",
        &[("INPUT", tif.display().to_string()), ("BAND", "1".into())],
        dir.join("slope-ref.tif"),
    );
    assert_eq!(raster_checksum(&ours), raster_checksum(&reference_slope));

    // Asynchronous: 201, Location, statusInfo; followed to successful, results fetched.
    let a = run_buffer(
        &m,
        &by_ref,
        "reference",
        "document",
        &[("Prefer", "respond-async")],
    )
    .await;
    let info = a.json();
    assert_eq!(a.status, 201, "{info}");
    assert_eq!(a.header("preference-applied"), Some("respond-async"));
    let id = info["jobID"].as_str().expect("jobID");
    assert_eq!(
        (info["type"].as_str(), info["processID"].as_str()),
        (Some("process"), Some("native:buffer"))
    );
    assert!(
        matches!(
            info["status"].as_str(),
            Some("accepted" | "running" | "successful")
        ),
        "{info}"
    );
    let location = a.header("location").expect("Location").to_owned();
    assert_eq!(location, format!("{}/jobs/{id}", m.edges[0].uri()));
    let done = follow(&m, &location, "successful").await;
    assert_eq!(done["progress"], 100, "{done}");
    let results_url = link(&done, "http://www.opengis.net/def/rel/ogc/1.0/results")
        .expect("results link")
        .to_owned();
    let results = get(&m, &results_url).await;
    assert_eq!(results.status, 200, "{}", results.json());
    let ours = fetched(&m, &results.json(), "buffer-async.geojson").await;
    same_as(&ours, &reference, "asynchronous");
}

/// A small GeoJSON of three points, inline: a quick good request.
fn small_good() -> Value {
    let points = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [0, 0]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [5, 5]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [10, 0]}},
    ]});
    json!({
        "inputs": {"INPUT": {"value": points, "mediaType": "application/geo+json"}, "DISTANCE": 1},
        "outputs": {"OUTPUT": {"transmissionMode": "value"}},
    })
}

/// One bad request: what is sent, and the status and reason it must be refused with.
struct Bad {
    what: &'static str,
    process: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    status: u16,
    reason: &'static str,
    /// The `parameter` the problem names, when it names one.
    parameter: Option<&'static str>,
}

fn bad_requests() -> Vec<Bad> {
    let good = small_good();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        f(&mut body);
        serde_json::to_vec(&body).expect("json")
    };
    let good_bytes = serde_json::to_vec(&good).expect("json");
    let mut oversized = good.clone();
    oversized["padding"] = json!("x".repeat(MAX_BODY));
    vec![
        Bad {
            what: "unknown process",
            process: "native:nope",
            body: good_bytes.clone(),
            content_type: Some("application/json"),
            status: 404,
            reason: "native:nope",
            parameter: None,
        },
        Bad {
            what: "malformed json",
            process: "native:buffer",
            body: b"{\"inputs\": {\"DISTANCE\": 1,}\n}".to_vec(),
            content_type: Some("application/json"),
            status: 400,
            reason: "at line 1 column 27",
            parameter: Some("body"),
        },
        Bad {
            what: "wrong type for an input",
            process: "native:buffer",
            body: with(&|b| b["inputs"]["DISTANCE"] = json!({"far": true})),
            content_type: Some("application/json"),
            status: 400,
            reason: "input DISTANCE expects a literal value",
            parameter: Some("DISTANCE"),
        },
        Bad {
            what: "unknown input",
            process: "native:buffer",
            body: with(&|b| b["inputs"]["RADIUS"] = json!(3)),
            content_type: Some("application/json"),
            status: 400,
            reason: "unknown input RADIUS",
            parameter: Some("RADIUS"),
        },
        Bad {
            what: "missing required input",
            process: "native:buffer",
            body: with(&|b| {
                b["inputs"].as_object_mut().expect("inputs").remove("INPUT");
            }),
            content_type: Some("application/json"),
            status: 400,
            reason: "missing required input INPUT",
            parameter: Some("INPUT"),
        },
        Bad {
            what: "body over the limit",
            process: "native:buffer",
            body: serde_json::to_vec(&oversized).expect("json"),
            content_type: Some("application/json"),
            status: 413,
            reason: "bytes",
            parameter: None,
        },
        Bad {
            what: "wrong content type",
            process: "native:buffer",
            body: good_bytes,
            content_type: Some("text/xml"),
            status: 415,
            reason: "text/xml",
            parameter: None,
        },
    ]
}

async fn send(m: &Mesh, process: &str, body: Vec<u8>, content_type: Option<&str>) -> Answer {
    let mut r = m
        .http
        .post(format!(
            "{}/processes/{process}/execution",
            m.edges[0].uri()
        ))
        .body(body);
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    Answer::of(r.send().await.expect("execute")).await
}

/// Fails unless `a` is the small good request's answer: three buffered points.
fn assert_good(a: &Answer) {
    let body = a.json();
    assert_eq!(a.status, 200, "{body}");
    let out = serde_json::to_vec(&body["OUTPUT"]["value"]).expect("json");
    assert_eq!(feature_count(&out), 3, "{body}");
}

fn assert_refused(bad: &Bad, a: &Answer) {
    let problem = a.problem(bad.status, bad.reason);
    if let Some(parameter) = bad.parameter {
        assert_eq!(problem["parameter"], parameter, "{}: {problem}", bad.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_the_reason() {
    let (_turn, m) = mesh().await;
    let good = serde_json::to_vec(&small_good()).expect("json");
    // Each beside its positive control: the same request in its valid form succeeds.
    for bad in bad_requests() {
        let a = send(&m, bad.process, bad.body.clone(), bad.content_type).await;
        assert_refused(&bad, &a);
        let control = send(&m, "native:buffer", good.clone(), Some("application/json")).await;
        assert_good(&control);
    }
    // No Content-Type at all is taken as JSON.
    assert_good(&send(&m, "native:buffer", good.clone(), None).await);

    // 16 bad and 16 good at once: every bad one refused for its reason, every good one run.
    let bad = bad_requests();
    let bad_answers = futures::future::join_all((0..16).map(|i| {
        let b = &bad[i % bad.len()];
        send(&m, b.process, b.body.clone(), b.content_type)
    }));
    let good_answers = futures::future::join_all(
        (0..16).map(|_| send(&m, "native:buffer", good.clone(), Some("application/json"))),
    );
    let (bad_answers, good_answers) = tokio::join!(bad_answers, good_answers);
    for (i, a) in bad_answers.iter().enumerate() {
        assert_refused(&bad[i % bad.len()], a);
    }
    good_answers.iter().for_each(assert_good);

    // Then a good request still succeeds.
    assert_good(&send(&m, "native:buffer", good, Some("application/json")).await);
}
