//! The node's ProcessService over real gRPC with real QGIS workers and a real storage service:
//! descriptions, results equal to `qgis_process`, progress, dismiss, timeouts, and bad input.

#[path = "node_common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{DATA, complex, execute, leftovers, literal, mesh, reference};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::Code;
use wpsmesh_proto::wire::process::v1::{
    self as wire, ExecuteRequest, Format, Input, JobState, input, input_description,
};
use wpsmesh_tests::formats::{assert_close, qgis_process, raster_checksum, stats, zip_of};

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

/// A tiny HTTP server on loopback answering every request with `reply` (a whole HTTP/1.1
/// answer); its port.
async fn answering(reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(&reply).await;
            });
        }
    });
    port
}

/// Answers every request with a redirect to `location`.
async fn redirector(location: String) -> u16 {
    let reply = format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    answering(reply.into_bytes()).await
}

/// Answers every request with `body`.
async fn file_server(body: Vec<u8>) -> u16 {
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    answering(reply).await
}

/// The parts of the points shapefile (`.shp`, `.shx`, `.dbf`, `.prj`) under `prefix` in a zip.
fn shapefile_entries(prefix: &str) -> Vec<(String, Vec<u8>)> {
    ["shp", "shx", "dbf", "prj"]
        .iter()
        .map(|ext| {
            let part = DATA.points_shp.with_extension(ext);
            let bytes = std::fs::read(&part).expect("shapefile part");
            (format!("{prefix}points.{ext}"), bytes)
        })
        .collect()
}

/// [`reference`] with a declared media type.
fn typed_reference(id: &str, target: &str, mime_type: &str) -> Input {
    let mut input = reference(id, target);
    if let Some(input::Value::Reference(r)) = &mut input.value {
        r.format = Some(Format {
            mime_type: mime_type.into(),
            ..Default::default()
        });
    }
    input
}

/// Zipped shapefiles, flat, nested or several for a multi-layer input, by reference and by
/// value, with and without a declared media type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipped_shapefiles_are_layers() {
    let mut m = mesh(1, |_| {}).await;
    let flat = zip_of(&shapefile_entries(""));
    let nested = zip_of(&shapefile_entries("export/layers/"));
    let mut two = shapefile_entries("");
    two.extend(shapefile_entries("b/"));
    let two = zip_of(&two);
    let flat_href = m.upload_bytes("points.zip", &flat).await;
    let nested_href = m.upload_bytes("nested.zip", &nested).await;
    // An href without the .zip: the content's signature decides.
    let unnamed = m.upload_bytes("points", &flat).await;
    let two_href = m.upload_bytes("two.zip", &two).await;
    let buffer = |input: Input| execute("native:buffer", vec![input, literal("DISTANCE", "0.5")]);
    for (what, input) in [
        ("flat, no media type", reference("INPUT", &flat_href)),
        (
            "flat, application/x-zipped-shp",
            typed_reference("INPUT", &flat_href, "application/x-zipped-shp"),
        ),
        ("nested folders", reference("INPUT", &nested_href)),
        ("href without extension", reference("INPUT", &unnamed)),
        (
            "by value, application/zip",
            complex("INPUT", "application/zip", &flat),
        ),
        ("by value, no media type", complex("INPUT", "", &nested)),
    ] {
        assert_eq!(m.features(buffer(input), what).await, 240, "{what}");
    }
    // Several layers: every shapefile of the zip is one.
    let merged = m
        .features(
            execute(
                "native:mergevectorlayers",
                vec![
                    reference("LAYERS", &two_href),
                    reference("LAYERS", &flat_href),
                ],
            ),
            "merge",
        )
        .await;
    assert_eq!(merged, 3 * 240);
    assert!(leftovers(&m.work).is_empty(), "{:?}", leftovers(&m.work));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_parameter() {
    let mut m = mesh(1, |c| {
        c.fetch.allow = vec!["localhost".into()];
        c.fetch.zip.max_entries = 8;
        c.fetch.max_bytes = 1024 * 1024;
    })
    .await;
    let points_bytes = std::fs::read(&DATA.points).expect("points");
    let points = m.upload(&DATA.points).await;
    let shp = shapefile_entries("");
    let good_zip = m.upload_bytes("good.zip", &zip_of(&shp)).await;
    let mut with_readme = shp.clone();
    with_readme.push(("readme.txt".into(), b"hello".to_vec()));
    let no_shp = m
        .upload_bytes("noshp.zip", &zip_of(&[("readme.txt", b"hello")]))
        .await;
    let mut slip = shp.clone();
    slip.push(("../evil.txt".into(), b"x".to_vec()));
    let slip = m.upload_bytes("slip.zip", &zip_of(&slip)).await;
    let mut bomb = shp.clone();
    bomb.push(("padding.txt".into(), vec![0u8; 50 * 1024 * 1024]));
    let bomb = m.upload_bytes("bomb.zip", &zip_of(&bomb)).await;
    let mut crowded = shp.clone();
    crowded.extend((0..5).map(|i| (format!("extra{i}.txt"), vec![1u8])));
    let crowded = m.upload_bytes("crowded.zip", &zip_of(&crowded)).await;
    let mut two = shp.clone();
    two.extend(shapefile_entries("b/"));
    let two = m.upload_bytes("two.zip", &zip_of(&two)).await;
    let big = m
        .upload_bytes("big.geojson", &vec![b' '; 1024 * 1024 + 1])
        .await;
    let served = file_server(points_bytes.clone()).await;
    let to_allowed = redirector(format!("http://localhost:{served}/points.geojson")).await;
    let to_loopback = redirector("http://127.0.0.1:9/x".into()).await;
    let buffer = |extra: Vec<Input>| execute("native:buffer", extra);
    let truncated = br#"{"type": "FeatureCollection", "features": [{"type": "#;

    // Positive controls: the valid form of every kind of input refused below succeeds.
    let with_readme = m.upload_bytes("readme.zip", &zip_of(&with_readme)).await;
    for (what, req) in [
        (
            "valid values",
            buffer(vec![
                reference("INPUT", &good_zip),
                literal("DISTANCE", "1.5"),
                literal("SEGMENTS", "3"),
                literal("END_CAP_STYLE", "Flat"),
            ]),
        ),
        (
            "zip with a readme beside the shapefile (5 entries, limit 8)",
            buffer(vec![reference("INPUT", &with_readme)]),
        ),
        (
            "complete geojson by value",
            buffer(vec![complex(
                "INPUT",
                "application/geo+json",
                &points_bytes,
            )]),
        ),
        (
            "allowed loopback host",
            buffer(vec![reference(
                "INPUT",
                &format!("http://localhost:{served}/points.geojson"),
            )]),
        ),
        (
            "redirect to an allowed host",
            buffer(vec![reference(
                "INPUT",
                &format!("http://localhost:{to_allowed}/data.geojson"),
            )]),
        ),
    ] {
        assert_eq!(m.features(req, what).await, 240, "{what}");
    }

    let cases: Vec<(&str, ExecuteRequest, Code, &str, &str)> = vec![
        (
            "unknown algorithm",
            execute("native:nope", vec![]),
            Code::NotFound,
            "Identifier",
            "native:nope",
        ),
        (
            "missing input",
            buffer(vec![literal("DISTANCE", "1")]),
            Code::InvalidArgument,
            "INPUT",
            "missing required input",
        ),
        (
            "text for a number",
            buffer(vec![
                reference("INPUT", &points),
                literal("DISTANCE", "abc"),
            ]),
            Code::InvalidArgument,
            "DISTANCE",
            "expected a number, got 'abc'",
        ),
        (
            "number out of range",
            buffer(vec![reference("INPUT", &points), literal("SEGMENTS", "0")]),
            Code::InvalidArgument,
            "SEGMENTS",
            "below the minimum",
        ),
        (
            "enum value not allowed",
            buffer(vec![
                reference("INPUT", &points),
                literal("END_CAP_STYLE", "Hexagon"),
            ]),
            Code::InvalidArgument,
            "END_CAP_STYLE",
            "'Hexagon' is not one of",
        ),
        (
            "malformed geojson",
            buffer(vec![complex("INPUT", "application/geo+json", truncated)]),
            Code::InvalidArgument,
            "INPUT",
            "not a readable vector dataset",
        ),
        (
            "declared type contradicting the content",
            buffer(vec![complex(
                "INPUT",
                "application/x-zipped-shp",
                &points_bytes,
            )]),
            Code::InvalidArgument,
            "INPUT",
            "declared as application/x-zipped-shp but the content is GeoJSON",
        ),
        (
            "zip without .shp",
            buffer(vec![reference("INPUT", &no_shp)]),
            Code::InvalidArgument,
            "INPUT",
            "zip contains no .shp file",
        ),
        (
            "zip slip",
            buffer(vec![reference("INPUT", &slip)]),
            Code::InvalidArgument,
            "INPUT",
            "zip entry \"../evil.txt\" is refused: it has a '..' component",
        ),
        (
            "zip bomb",
            buffer(vec![reference("INPUT", &bomb)]),
            Code::InvalidArgument,
            "INPUT",
            "zip entry \"padding.txt\" expands more than",
        ),
        (
            "zip with too many entries",
            buffer(vec![reference("INPUT", &crowded)]),
            Code::InvalidArgument,
            "INPUT",
            "zip has more than 8 entries",
        ),
        (
            "several shapefiles for one layer",
            buffer(vec![reference("INPUT", &two)]),
            Code::InvalidArgument,
            "INPUT",
            "zip holds 2 shapefiles (b/points.shp, points.shp) and this input takes one layer",
        ),
        (
            "input over the size limit",
            buffer(vec![reference("INPUT", &big)]),
            Code::InvalidArgument,
            "INPUT",
            "larger than the limit of 1048576 bytes",
        ),
        (
            "loopback address",
            buffer(vec![reference(
                "INPUT",
                &format!("http://127.0.0.1:{served}/points.geojson"),
            )]),
            Code::InvalidArgument,
            "INPUT",
            "address 127.0.0.1 is not allowed (loopback)",
        ),
        (
            "metadata href",
            buffer(vec![reference(
                "INPUT",
                "http://169.254.169.254/latest/meta-data/",
            )]),
            Code::InvalidArgument,
            "INPUT",
            "address 169.254.169.254 is not allowed",
        ),
        (
            "ipv6 loopback href",
            buffer(vec![reference("INPUT", "http://[::1]/x.geojson")]),
            Code::InvalidArgument,
            "INPUT",
            "address ::1 is not allowed (loopback)",
        ),
        (
            "file href",
            buffer(vec![reference("INPUT", "file:///etc/passwd")]),
            Code::InvalidArgument,
            "INPUT",
            "scheme \"file\" is not allowed",
        ),
        (
            "redirect to loopback",
            buffer(vec![reference(
                "INPUT",
                &format!("http://localhost:{to_loopback}/data.geojson"),
            )]),
            Code::InvalidArgument,
            "INPUT",
            "redirect to http://127.0.0.1:9/x refused",
        ),
    ];
    for (what, req, code, locator, reason) in cases {
        let err = m.node.execute(req).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        let got = err
            .metadata()
            .get(wpsmesh_proto::metadata::LOCATOR_KEY)
            .and_then(|v| v.to_str().ok());
        assert_eq!(got, Some(locator), "{what}: locator of {err:?}");
        assert!(
            err.message().contains(reason),
            "{what}: the message gives the reason {reason:?}: {}",
            err.message()
        );
        assert!(
            leftovers(&m.work).is_empty(),
            "{what}: left behind {:?}",
            leftovers(&m.work)
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
