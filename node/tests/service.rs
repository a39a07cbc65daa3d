//! The node's ProcessService over real gRPC with real QGIS workers and a real storage service:
//! descriptions, results equal to `qgis_process`, progress, dismiss, timeouts, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    self as wire, ComplexValue, ExecuteRequest, Format, Input, JobState, LiteralValue, Reference,
    input, input_description, output,
};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{DownloadRequest, download_response};
use wpsmesh_runtime::grpc;
use wpsmesh_tests::data;

const PUBLIC_URL: &str = "http://localhost:9000";

/// Input files, made once per test binary.
struct Data {
    dir: PathBuf,
    points: PathBuf,
    countries: PathBuf,
    slow: PathBuf,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-service");
    std::fs::create_dir_all(&dir).expect("data dir");
    Data {
        points: data::derive(&dir, "points.geojson", data::POINTS_SQL),
        countries: data::derive(&dir, "countries.geojson", data::COUNTRIES_SQL),
        slow: data::derive(&dir, "slow.geojson", &data::slow_sql(2000)),
        dir,
    }
});

/// A storage service and a node, in-process on loopback, with real workers.
struct Mesh {
    node: ProcessServiceClient<Channel>,
    storage: StorageServiceClient<Channel>,
    _dir: tempfile::TempDir,
}

async fn mesh(workers: usize, tweak: impl FnOnce(&mut wpsmesh_node::Config)) -> Mesh {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wpsmesh=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let storage_uri = wpsmesh_storage::spawn_local(dir.path().join("storage"))
        .await
        .expect("storage starts");

    let mut config = wpsmesh_node::Config {
        storage: storage_uri.clone(),
        public_url: PUBLIC_URL.into(),
        work_dir: dir.path().join("work"),
        ..Default::default()
    };
    config.pool.workers = workers;
    config.pool.cancel_grace = Duration::from_secs(3);
    config.fetch.public_urls = vec![PUBLIC_URL.into()];
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let node_uri = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        wpsmesh_node::run(config, listener, std::future::pending())
            .await
            .expect("node runs");
    });
    let node = ProcessServiceClient::new(grpc::channel(&node_uri).expect("channel"))
        .max_decoding_message_size(64 * 1024 * 1024);
    // Ready once the catalog is loaded and the server answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut probe = node.clone();
    while probe
        .list_processes(wire::ListProcessesRequest {})
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storage = StorageServiceClient::new(grpc::channel(&storage_uri).expect("channel"))
        .max_decoding_message_size(grpc::MAX_MESSAGE);
    Mesh {
        node,
        storage,
        _dir: dir,
    }
}

fn literal(id: &str, value: &str) -> Input {
    Input {
        id: id.into(),
        value: Some(input::Value::Literal(LiteralValue {
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn reference(id: &str, href: &str) -> Input {
    Input {
        id: id.into(),
        value: Some(input::Value::Reference(Reference {
            href: href.into(),
            format: None,
        })),
    }
}

fn execute(process: &str, inputs: Vec<Input>) -> ExecuteRequest {
    ExecuteRequest {
        process_id: process.into(),
        inputs,
        ..Default::default()
    }
}

impl Mesh {
    /// Uploads a file through the node's own output path and returns its public href.
    async fn upload(&mut self, path: &Path) -> String {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let info = wpsmesh_node::outputs::upload_file(&mut self.storage, path, &name)
            .await
            .expect("upload");
        format!("{PUBLIC_URL}/api/file/retrieve/{}.{}", info.id, info.format)
    }

    async fn upload_bytes(&mut self, name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        self.upload(&path).await
    }

    async fn download(&mut self, id: &str) -> Vec<u8> {
        let mut stream = self
            .storage
            .download(DownloadRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .expect("download")
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await.expect("chunk") {
            if let Some(download_response::Part::Chunk(c)) = m.part {
                out.extend_from_slice(&c);
            }
        }
        out
    }

    /// Runs a job and downloads its OUTPUT file into `dir`.
    async fn run_to_file(&mut self, req: ExecuteRequest, dir: &Path, ext: &str) -> PathBuf {
        let process = req.process_id.clone();
        let resp = self
            .node
            .execute(req)
            .await
            .unwrap_or_else(|e| panic!("{process}: {e:?}"))
            .into_inner();
        assert_eq!(
            resp.job.as_ref().map(|j| j.state),
            Some(JobState::Successful as i32)
        );
        let out = resp
            .outputs
            .iter()
            .find(|o| o.id == "OUTPUT")
            .expect("OUTPUT");
        let Some(output::Value::Reference(r)) = &out.value else {
            panic!("OUTPUT is a reference: {out:?}");
        };
        assert!(
            r.href
                .starts_with(&format!("{PUBLIC_URL}/api/file/retrieve/{}.", r.object_id))
        );
        let bytes = self.download(&r.object_id).await;
        assert_eq!(bytes.len() as u64, r.size);
        let path = dir.join(format!("{}-ours.{ext}", process.replace(':', "_")));
        std::fs::write(&path, bytes).expect("write output");
        path
    }
}

/// Runs `/usr/bin/qgis_process.bin run` (the reference) and returns the output path.
fn qgis_process(alg: &str, args: &[(&str, String)], out: PathBuf) -> PathBuf {
    let mut cmd = Command::new("/usr/bin/qgis_process.bin");
    cmd.env("QT_QPA_PLATFORM", "offscreen").args(["run", alg]);
    for (k, v) in args {
        cmd.arg(format!("--{k}={v}"));
    }
    cmd.arg(format!("--OUTPUT={}", out.display()));
    let result = cmd
        .output()
        .expect("qgis_process.bin runs (apt-get install qgis)");
    assert!(
        result.status.success(),
        "qgis_process {alg}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Feature count and a measure: total planar area for polygons, coordinate sum for points.
fn stats(path: &Path) -> (usize, f64) {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    let features = doc["features"].as_array().expect("features");
    let ring_area = |ring: &Value| -> f64 {
        let pts: Vec<(f64, f64)> = ring
            .as_array()
            .expect("ring")
            .iter()
            .map(|p| (p[0].as_f64().expect("x"), p[1].as_f64().expect("y")))
            .collect();
        pts.windows(2)
            .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
            .sum::<f64>()
            .abs()
            / 2.0
    };
    let polygon_area = |rings: &Value| -> f64 {
        let rings = rings.as_array().expect("rings");
        ring_area(&rings[0]) - rings[1..].iter().map(ring_area).sum::<f64>()
    };
    let measure = features
        .iter()
        .map(|f| {
            let g = &f["geometry"];
            match g["type"].as_str().expect("type") {
                "Polygon" => polygon_area(&g["coordinates"]),
                "MultiPolygon" => g["coordinates"]
                    .as_array()
                    .expect("polygons")
                    .iter()
                    .map(polygon_area)
                    .sum(),
                "Point" => {
                    g["coordinates"][0].as_f64().expect("x")
                        + g["coordinates"][1].as_f64().expect("y")
                }
                other => panic!("unexpected geometry {other}"),
            }
        })
        .sum();
    (features.len(), measure)
}

fn assert_close(ours: f64, reference: f64, what: &str) {
    let rel = (ours - reference).abs() / reference.abs().max(f64::MIN_POSITIVE);
    assert!(
        rel <= 1e-9,
        "{what}: ours {ours} vs qgis_process {reference} (rel {rel:e})"
    );
}

fn raster_checksum(path: &Path) -> String {
    let out = Command::new("gdalinfo")
        .arg("-checksum")
        .arg(path)
        .output()
        .expect("gdalinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Checksum="))
        .unwrap_or_else(|| panic!("no checksum in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_describes_processes() {
    let mut m = mesh(1, |_| {}).await;
    let list = m
        .node
        .list_processes(wire::ListProcessesRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(
        list.processes.len() >= 300,
        "{} processes",
        list.processes.len()
    );
    let buffer = m
        .node
        .describe_process(wire::DescribeProcessRequest {
            id: "native:buffer".into(),
        })
        .await
        .expect("describe")
        .into_inner()
        .process
        .expect("description");
    let input = |id: &str| {
        buffer
            .inputs
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.kind.clone())
            .unwrap_or_else(|| panic!("{id}"))
    };
    let input_description::Kind::Complex(c) = input("INPUT") else {
        panic!("INPUT is complex");
    };
    assert!(
        c.formats
            .iter()
            .any(|f| f.mime_type == "application/geo+json")
    );
    let input_description::Kind::Literal(d) = input("DISTANCE") else {
        panic!("DISTANCE is literal");
    };
    assert_eq!(d.data_type, wire::LiteralType::Double as i32);
    assert_eq!(d.default_value.as_deref(), Some("10"));
    assert!(matches!(
        buffer
            .outputs
            .iter()
            .find(|o| o.id == "OUTPUT")
            .and_then(|o| o.kind.clone()),
        Some(wire::output_description::Kind::Complex(_))
    ));
    let err = m
        .node
        .describe_process(wire::DescribeProcessRequest {
            id: "native:nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_equal_qgis_process() {
    let mut m = mesh(2, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let points = m.upload(&DATA.points).await;
    let countries = m.upload(&DATA.countries).await;
    let p = DATA.points.display().to_string();
    let c = DATA.countries.display().to_string();

    // native:buffer: one polygon per point.
    let ours = m
        .run_to_file(
            execute(
                "native:buffer",
                vec![reference("INPUT", &points), literal("DISTANCE", "1.5")],
            ),
            dir.path(),
            "geojson",
        )
        .await;
    let reference_out = qgis_process(
        "native:buffer",
        &[("INPUT", p.clone()), ("DISTANCE", "1.5".into())],
        dir.path().join("buffer-ref.geojson"),
    );
    let (n, area) = stats(&ours);
    assert_eq!(n, 240, "one polygon per point");
    let (n_ref, area_ref) = stats(&reference_out);
    assert_eq!(n, n_ref);
    assert_close(area, area_ref, "native:buffer area");

    for (alg, input, href, extra) in [
        ("native:centroids", &c, &countries, vec![]),
        ("native:dissolve", &c, &countries, vec![]),
        (
            "native:reprojectlayer",
            &c,
            &countries,
            vec![("TARGET_CRS", "EPSG:3857".to_owned())],
        ),
    ] {
        let mut inputs = vec![reference("INPUT", href)];
        inputs.extend(extra.iter().map(|(k, v)| literal(k, v)));
        let ours = m
            .run_to_file(execute(alg, inputs), dir.path(), "geojson")
            .await;
        let mut args = vec![("INPUT", input.clone())];
        args.extend(extra);
        let reference_out = qgis_process(
            alg,
            &args,
            dir.path()
                .join(format!("{}-ref.geojson", alg.replace(':', "_"))),
        );
        let ((n, measure), (n_ref, measure_ref)) = (stats(&ours), stats(&reference_out));
        assert_eq!(n, n_ref, "{alg} feature count");
        assert_close(measure, measure_ref, alg);
    }

    // A GDAL raster algorithm: same checksum.
    let raster_args = [
        ("BURN", "1"),
        ("UNITS", "1"),
        ("WIDTH", "0.5"),
        ("HEIGHT", "0.5"),
        ("DATA_TYPE", "0"),
    ];
    let mut inputs = vec![reference("INPUT", &countries)];
    inputs.extend(raster_args.iter().map(|(k, v)| literal(k, v)));
    let ours = m
        .run_to_file(execute("gdal:rasterize", inputs), dir.path(), "tif")
        .await;
    let mut args = vec![("INPUT", c.clone())];
    args.extend(raster_args.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let reference_out = qgis_process(
        "gdal:rasterize",
        &args,
        dir.path().join("rasterize-ref.tif"),
    );
    assert_eq!(raster_checksum(&ours), raster_checksum(&reference_out));
}

/// A tiny HTTP server that answers every request with a redirect to `location`.
async fn redirector(location: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        w.write_all(bytes).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_parameter() {
    let mut m = mesh(1, |c| c.fetch.allow = vec!["localhost".into()]).await;
    let points = m.upload(&DATA.points).await;
    let no_shp = m
        .upload_bytes("noshp.zip", &zip_of(&[("readme.txt", b"hello")]))
        .await;
    let slip = m
        .upload_bytes("slip.zip", &zip_of(&[("../evil.shp", b"x")]))
        .await;
    let bomb = m
        .upload_bytes(
            "bomb.zip",
            &zip_of(&[("a.shp", &vec![0u8; 50 * 1024 * 1024])]),
        )
        .await;
    let redirect_port = redirector("http://127.0.0.1:9/x".into()).await;
    let buffer = |extra: Vec<Input>| execute("native:buffer", extra);
    let malformed = Input {
        id: "INPUT".into(),
        value: Some(input::Value::Complex(ComplexValue {
            format: Some(Format {
                mime_type: "application/geo+json".into(),
                ..Default::default()
            }),
            data: br#"{"type": "FeatureCollection", "features": [{"type": "#
                .to_vec()
                .into(),
        })),
    };
    let cases: Vec<(&str, ExecuteRequest, Code, &str)> = vec![
        (
            "unknown algorithm",
            execute("native:nope", vec![]),
            Code::NotFound,
            "Identifier",
        ),
        (
            "missing input",
            buffer(vec![literal("DISTANCE", "1")]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "text for a number",
            buffer(vec![
                reference("INPUT", &points),
                literal("DISTANCE", "abc"),
            ]),
            Code::InvalidArgument,
            "DISTANCE",
        ),
        (
            "number out of range",
            buffer(vec![reference("INPUT", &points), literal("SEGMENTS", "0")]),
            Code::InvalidArgument,
            "SEGMENTS",
        ),
        (
            "enum value not allowed",
            buffer(vec![
                reference("INPUT", &points),
                literal("END_CAP_STYLE", "Hexagon"),
            ]),
            Code::InvalidArgument,
            "END_CAP_STYLE",
        ),
        (
            "malformed geojson",
            buffer(vec![malformed]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "zip without .shp",
            buffer(vec![reference("INPUT", &no_shp)]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "zip slip",
            buffer(vec![reference("INPUT", &slip)]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "zip bomb",
            buffer(vec![reference("INPUT", &bomb)]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "loopback href",
            buffer(vec![reference("INPUT", "http://127.0.0.1:9000/x.geojson")]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "metadata href",
            buffer(vec![reference(
                "INPUT",
                "http://169.254.169.254/latest/meta-data/",
            )]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "ipv6 loopback href",
            buffer(vec![reference("INPUT", "http://[::1]/x.geojson")]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "file href",
            buffer(vec![reference("INPUT", "file:///etc/passwd")]),
            Code::InvalidArgument,
            "INPUT",
        ),
        (
            "redirect to loopback",
            buffer(vec![reference(
                "INPUT",
                &format!("http://localhost:{redirect_port}/data.geojson"),
            )]),
            Code::InvalidArgument,
            "INPUT",
        ),
    ];
    for (what, req, code, locator) in cases {
        let err = m.node.execute(req).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        let got = err
            .metadata()
            .get(wpsmesh_node::error::LOCATOR_KEY)
            .and_then(|v| v.to_str().ok());
        assert_eq!(got, Some(locator), "{what}: locator of {err:?}");
        assert!(
            err.message().contains(locator) || locator == "Identifier",
            "{what}: message names {locator}: {}",
            err.message()
        );
    }
    // The node keeps serving.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = m
        .run_to_file(
            buffer(vec![reference("INPUT", &points)]),
            dir.path(),
            "geojson",
        )
        .await;
    assert_eq!(stats(&out).0, 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_watched_and_dismiss_stops_the_job() {
    let mut m = mesh(1, |_| {}).await;
    let slow = m.upload(&DATA.slow).await;
    let accepted = m
        .node
        .submit(wire::SubmitRequest {
            execute: Some(execute("native:buffer", vec![reference("INPUT", &slow)])),
        })
        .await
        .expect("submit")
        .into_inner()
        .job
        .expect("job");
    assert_eq!(accepted.state, JobState::Accepted as i32);
    let mut watch = m
        .node
        .watch_job(wire::WatchJobRequest {
            job_id: accepted.job_id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    // Live progress while it runs.
    loop {
        let update = watch.message().await.expect("update").expect("not ended");
        let job = update.job.expect("status");
        assert_ne!(job.state, JobState::Failed as i32, "{}", job.message);
        if job.state == JobState::Running as i32 && job.percent_done > 0 {
            break;
        }
    }
    let dismissed = Instant::now();
    let status = m
        .node
        .dismiss(wire::DismissRequest {
            job_id: accepted.job_id.clone(),
        })
        .await
        .expect("dismiss")
        .into_inner()
        .job
        .expect("status");
    assert_eq!(status.state, JobState::Dismissed as i32);
    let err = m
        .node
        .get_result(wire::GetResultRequest {
            job_id: accepted.job_id.clone(),
        })
        .await
        .expect_err("no result");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("dismissed"), "{}", err.message());
    // The worker is free again within the grace period: a quick job runs.
    let points = m.upload(&DATA.points).await;
    let dir = tempfile::tempdir().expect("tempdir");
    m.run_to_file(
        execute("native:buffer", vec![reference("INPUT", &points)]),
        dir.path(),
        "geojson",
    )
    .await;
    assert!(
        dismissed.elapsed() < Duration::from_secs(3 + 10),
        "{:?}",
        dismissed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_ends_a_long_job() {
    let mut m = mesh(1, |_| {}).await;
    let slow = m.upload(&DATA.slow).await;
    let mut req = execute("native:buffer", vec![reference("INPUT", &slow)]);
    req.timeout = Some(prost_types::Duration {
        seconds: 2,
        nanos: 0,
    });
    let started = Instant::now();
    let err = m.node.execute(req).await.expect_err("timed out");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("timed out"), "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(2 + 10),
        "{:?}",
        started.elapsed()
    );
    let _ = &DATA.dir;
}
