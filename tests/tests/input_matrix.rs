//! End to end, the input matrix: every input format (GeoJSON, zipped shapefile flat and nested,
//! GeoPackage, GML, KML, GeoTIFF), by reference (file API) and by value, with and without a
//! declared media type, through WPS 1.0.0 KVP, WPS 1.0.0 XML, WPS 2.0 XML and the JSON job API
//! of a running `wpsmesh up`; each output equals `qgis_process` on the same file. A declared type
//! the content contradicts is refused (400 InvalidParameterValue, locator INPUT) beside the same
//! input without it succeeding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;
use wpsmesh_tests::formats::{self, Kind, Sample};
use wpsmesh_tests::{ChildGuard, free_port, workspace_binary};

#[path = "input_matrix/protocols.rs"]
mod protocols;

use protocols::{Execute, Protocol, Transport, error_of, exception_of, one_line, output_href};

/// Cases in flight at once.
const CONCURRENCY: usize = 4;
const GEOJSON: &str = "application/geo+json";
const TIFF: &str = "image/tiff";
const ZIPPED_SHP: &str = "application/x-zipped-shp";

/// A running `wpsmesh up` (one node, two workers), killed on drop.
struct Up {
    url: String,
    dir: tempfile::TempDir,
    child: ChildGuard,
}

impl Up {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, storage, node) = (free_port(), free_port(), free_port());
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
        let child = Command::new(workspace_binary("wpsmesh", false).expect("wpsmesh binary"))
            .args(["up", "--nodes", "1", "--workers", "2"])
            .args(["--port", &port.to_string()])
            .args(["--storage-port", &storage.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("mesh"))
            .env("WPSMESH_NODE__LISTEN", format!("127.0.0.1:{node}"))
            // Metrics ports of their own: tests run side by side.
            .envs(wpsmesh_tests::up_metrics_env())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log("up.out"))
            .stderr(log("up.err"))
            .spawn()
            .expect("spawn wpsmesh up");
        Self {
            url: format!("http://localhost:{port}"),
            dir,
            child: ChildGuard(child),
        }
    }

    /// The end of the mesh's logs, for failure messages.
    fn logs(&self) -> String {
        ["up.out", "up.err"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: String = text.chars().rev().take(3000).collect();
                format!("--- {name}\n{}", tail.chars().rev().collect::<String>())
            })
            .collect()
    }

    /// Waits until the mesh is ready: `GET /ready` answers 200. Fails at once if `wpsmesh up`
    /// exits.
    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!(
                    "wpsmesh up exited ({status}) before it was ready\n{}",
                    self.logs()
                );
            }
            if let Ok(r) = http.get(format!("{}/ready", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mesh not ready within 180 s\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Succeeds with the output `qgis_process` gives for the same file.
    Same,
    /// 400 InvalidParameterValue, locator INPUT, naming the declared and the actual type.
    Refused,
}

/// One request of the matrix.
#[derive(Debug, Clone)]
struct Case {
    sample: usize,
    protocol: Protocol,
    transport: Transport,
    /// The media type declared for the input, if any.
    mime: Option<&'static str>,
    expect: Expect,
    /// What it stands beside (refusals and their positive controls).
    note: &'static str,
}

/// What `qgis_process` made of a sample.
#[derive(Debug, Clone, PartialEq)]
enum Reference {
    Vector { features: usize, area: f64 },
    Raster { checksum: String },
}

/// Everything a case needs, shared by all.
struct Ctx {
    http: reqwest::Client,
    url: String,
    dir: PathBuf,
    samples: Vec<Sample>,
    hrefs: Vec<String>,
    references: Vec<Reference>,
}

/// How a case ended.
enum Outcome {
    /// With what is worth showing (a refusal's text).
    Passed(String),
    Skipped(String),
    Failed(String),
}

/// The algorithm run on a sample, its parameters besides INPUT and OUTPUT, and the output's
/// media type and extension.
fn algorithm(
    kind: Kind,
) -> (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
) {
    match kind {
        Kind::Vector => ("native:buffer", &[("DISTANCE", "0.5")], GEOJSON, "geojson"),
        Kind::Raster => (
            "gdal:warpreproject",
            &[("TARGET_CRS", "EPSG:3857")],
            TIFF,
            "tif",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_by_reference_and_by_value_through_every_protocol() {
    let started = Instant::now();
    let mut up = Up::start();
    let data = up.dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let samples = formats::samples(&data);
    // Reference results while the mesh starts: qgis_process once per distinct local file.
    let references = tokio::spawn(reference_results(samples.clone(), data.join("reference")));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("http client");
    up.wait_ready(&http).await;
    let ready = started.elapsed();
    let mut hrefs = Vec::new();
    for sample in &samples {
        hrefs.push(upload(&http, &up.url, sample).await);
    }
    let references = references.await.expect("reference results");
    for (sample, reference) in samples.iter().zip(&references) {
        eprintln!("qgis_process on {}: {reference:?}", sample.name);
    }
    let ctx = Arc::new(Ctx {
        http,
        url: up.url.clone(),
        dir: data.join("outputs"),
        samples,
        hrefs,
        references,
    });
    std::fs::create_dir_all(&ctx.dir).expect("outputs dir");
    let cases = cases(&ctx.samples);
    let results: Vec<(String, Outcome, Duration)> = futures::stream::iter(cases)
        .map(|case| {
            let ctx = ctx.clone();
            let label = case.label(&ctx.samples);
            async move {
                let t = Instant::now();
                let outcome = match tokio::spawn(async move { run(&ctx, &case).await }).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Failed(panic_text(e)),
                };
                (label, outcome, t.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut report = String::new();
    let (mut passed, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let mut sorted: Vec<&(String, Outcome, Duration)> = results.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (label, outcome, took) in sorted {
        let (word, detail) = match outcome {
            Outcome::Passed(detail) => {
                passed.push(label);
                ("ok", detail.clone())
            }
            Outcome::Skipped(why) => {
                skipped.push(label);
                ("skipped", why.clone())
            }
            Outcome::Failed(why) => {
                failed.push(label);
                ("FAILED", why.clone())
            }
        };
        report.push_str(&format!("{word:7} {label} ({took:.1?}) {detail}\n"));
    }
    eprintln!(
        "{report}\n{} passed, {} skipped, {} failed; mesh ready after {ready:.1?}, all done after {:.1?}",
        passed.len(),
        skipped.len(),
        failed.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        results.len(),
        report
            .lines()
            .filter(|l| l.starts_with("FAILED"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The matrix: each sample by reference without a media type through every protocol, and
/// with one through half of them; by value through every protocol, declaring the type in half;
/// plus refusals of a contradicting type beside their controls.
fn cases(samples: &[Sample]) -> Vec<Case> {
    let mut cases = Vec::new();
    let case = |sample, protocol, transport, mime, expect, note| Case {
        sample,
        protocol,
        transport,
        mime,
        expect,
        note,
    };
    for (s, sample) in samples.iter().enumerate() {
        for (p, &protocol) in Protocol::ALL.iter().enumerate() {
            let declared = (s + p) % 2 == 0;
            cases.push(case(
                s,
                protocol,
                Transport::Reference,
                None,
                Expect::Same,
                "",
            ));
            if !declared {
                let mime = Some(sample.mime);
                cases.push(case(
                    s,
                    protocol,
                    Transport::Reference,
                    mime,
                    Expect::Same,
                    "",
                ));
            }
            let mime = declared.then_some(sample.mime);
            cases.push(case(s, protocol, Transport::Value, mime, Expect::Same, ""));
        }
    }
    let geojson = samples
        .iter()
        .position(|s| s.name == "geojson")
        .expect("a geojson sample");
    for (protocol, transport) in [
        (Protocol::Xml1, Transport::Reference),
        (Protocol::Kvp1, Transport::Reference),
        (Protocol::Json, Transport::Value),
        (Protocol::Xml2, Transport::Value),
    ] {
        let refused = "refusal: GeoJSON declared as a zipped shapefile";
        let control = "control: the same without the wrong type";
        cases.push(case(
            geojson,
            protocol,
            transport,
            Some(ZIPPED_SHP),
            Expect::Refused,
            refused,
        ));
        cases.push(case(
            geojson,
            protocol,
            transport,
            None,
            Expect::Same,
            control,
        ));
    }
    cases
}

impl Case {
    fn label(&self, samples: &[Sample]) -> String {
        let mut label = format!(
            "{:14} {:9} {:4} mime={}",
            samples[self.sample].name,
            self.transport.name(),
            self.protocol.name(),
            self.mime.unwrap_or("-"),
        );
        if !self.note.is_empty() {
            label.push_str(&format!(" [{}]", self.note));
        }
        label
    }

    /// Whether the output comes back raw (in the answer's body) rather than as a reference.
    fn raw_output(&self) -> bool {
        self.transport == Transport::Value
            && matches!(self.protocol, Protocol::Xml1 | Protocol::Xml2)
    }
}

/// Runs one case; panics (caught by the caller) and failures become [`Outcome::Failed`].
async fn run(ctx: &Ctx, case: &Case) -> Outcome {
    let sample = &ctx.samples[case.sample];
    let request = match build_request(ctx, case) {
        Ok(request) => request,
        Err(skip) => return Outcome::Skipped(skip),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("request failed: {e}")),
    };
    let status = response.status().as_u16();
    let body = match response.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return Outcome::Failed(format!("reading the answer failed: {e}")),
    };
    match case.expect {
        Expect::Refused => match refusal(status, &body) {
            Ok(text) => Outcome::Passed(text),
            Err(e) => Outcome::Failed(e),
        },
        Expect::Same => {
            if status != 200 {
                return Outcome::Failed(format!("HTTP {status}: {}", error_of(&body)));
            }
            let output = if case.raw_output() {
                body
            } else {
                let href = match output_href(case.protocol, &body) {
                    Ok(href) => href,
                    Err(e) => return Outcome::Failed(e),
                };
                match download(&ctx.http, &href).await {
                    Ok(bytes) => bytes,
                    Err(e) => return Outcome::Failed(e),
                }
            };
            compare(ctx, case, sample, &output)
        }
    }
}

/// The HTTP request of a case, or why its protocol cannot carry it.
fn build_request(ctx: &Ctx, case: &Case) -> Result<reqwest::RequestBuilder, String> {
    let sample = &ctx.samples[case.sample];
    let (algorithm, literals, output_mime, _) = algorithm(sample.kind);
    let execute = Execute {
        algorithm,
        literals,
        output_mime,
        sample,
        href: &ctx.hrefs[case.sample],
        transport: case.transport,
        mime: case.mime,
        raw: case.raw_output(),
    };
    execute.request(&ctx.http, &ctx.url, case.protocol)
}

async fn download(http: &reqwest::Client, href: &str) -> Result<Vec<u8>, String> {
    let r = http
        .get(href)
        .send()
        .await
        .map_err(|e| format!("downloading {href}: {e}"))?;
    let status = r.status().as_u16();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| format!("downloading {href}: {e}"))?;
    if status != 200 {
        return Err(format!("downloading {href}: HTTP {status}"));
    }
    Ok(bytes.to_vec())
}

/// The output against `qgis_process`'s on the same file.
fn compare(ctx: &Ctx, case: &Case, sample: &Sample, output: &[u8]) -> Outcome {
    let (_, _, _, ext) = algorithm(sample.kind);
    let name = case.label(&ctx.samples);
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = ctx.dir.join(format!("{name}.{ext}"));
    std::fs::write(&path, output).expect("write output");
    match &ctx.references[case.sample] {
        Reference::Vector { features, area } => {
            let (n, ours) = formats::stats(&path);
            let rel = formats::relative_difference(ours, *area);
            if n != *features {
                Outcome::Failed(format!("{n} features, qgis_process made {features}"))
            } else if rel > 1e-9 {
                Outcome::Failed(format!("area {ours} vs qgis_process {area} (rel {rel:e})"))
            } else {
                Outcome::Passed(String::new())
            }
        }
        Reference::Raster { checksum } => {
            let ours = formats::raster_checksum(&path);
            if ours == *checksum {
                Outcome::Passed(String::new())
            } else {
                Outcome::Failed(format!("checksum {ours}, qgis_process {checksum}"))
            }
        }
    }
}

/// Checks a refusal: 400, InvalidParameterValue, locator INPUT, naming the declared type and
/// what the content is; the exception's text.
fn refusal(status: u16, body: &[u8]) -> Result<String, String> {
    if let Some(e) = exception_of(body)
        && status == 400
        && e.code == "InvalidParameterValue"
        && e.locator == "INPUT"
        && e.text.contains(ZIPPED_SHP)
        && e.text.to_ascii_lowercase().contains("geojson")
    {
        return Ok(e.text);
    }
    Err(format!(
        "wanted 400 InvalidParameterValue at INPUT naming {ZIPPED_SHP} and GeoJSON; got HTTP {status}: {}",
        error_of(body)
    ))
}

/// Runs `qgis_process` once per distinct local file (two at a time) and measures the outputs;
/// indexed like `samples`.
async fn reference_results(samples: Vec<Sample>, dir: PathBuf) -> Vec<Reference> {
    std::fs::create_dir_all(&dir).expect("reference dir");
    let mut locals: Vec<(PathBuf, Kind)> = Vec::new();
    for s in &samples {
        if !locals.iter().any(|(p, _)| *p == s.local) {
            locals.push((s.local.clone(), s.kind));
        }
    }
    let done: HashMap<PathBuf, Reference> = futures::stream::iter(locals)
        .map(|(local, kind)| {
            let dir = dir.clone();
            async move {
                let reference = tokio::task::spawn_blocking({
                    let local = local.clone();
                    move || reference_of(&local, kind, &dir)
                })
                .await
                .expect("qgis_process run");
                (local, reference)
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    samples.iter().map(|s| done[&s.local].clone()).collect()
}

fn reference_of(local: &Path, kind: Kind, dir: &Path) -> Reference {
    let (alg, params, _, ext) = algorithm(kind);
    let stem = local
        .file_name()
        .expect("name")
        .to_string_lossy()
        .replace('.', "_");
    let mut args = vec![("INPUT", local.display().to_string())];
    args.extend(params.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let out = formats::qgis_process(alg, &args, dir.join(format!("{stem}.{ext}")));
    match kind {
        Kind::Vector => {
            let (features, area) = formats::stats(&out);
            Reference::Vector { features, area }
        }
        Kind::Raster => Reference::Raster {
            checksum: formats::raster_checksum(&out),
        },
    }
}

/// Uploads a sample through the file API; the href to use (`data.url` when the edge gives
/// one, else built from the object id and format).
async fn upload(http: &reqwest::Client, url: &str, sample: &Sample) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(sample.bytes()).file_name(sample.file_name()),
    );
    let r = http
        .put(format!("{url}/api/file/upload"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 200, "upload of {}", sample.name);
    let answer: Value = r.json().await.expect("upload answer");
    let data = &answer["data"];
    if let Some(href) = data["url"].as_str() {
        return href.to_owned();
    }
    format!(
        "{url}/api/file/retrieve/{}.{}",
        data["name"].as_str().expect("object id"),
        data["format"].as_str().expect("format")
    )
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .map_or_else(
                || "panicked".to_owned(),
                |m| format!("panicked: {}", one_line(&m)),
            ),
        Err(e) => format!("task failed: {e}"),
    }
}
