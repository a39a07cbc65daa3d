//! GeoJSON outputs against the real QGIS: a feature sink the worker writes with its native writer
//! (node/qgis/src/geojson.rs) holds the same features as `qgis_process` writes through GDAL, with
//! every coordinate in its shortest exact form; a layer that writer leaves to GDAL (a date
//! attribute) still comes out whole through GDAL, and so does the output of a job whose inputs
//! are too large to hold its output in memory.
//!
//! Run with `cargo test -p wpsmesh-node --test geojson`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use common::Data;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wpsmesh_node::pool::{OutputValue, Pool, PoolConfig, PoolError, RunJob};
use wpsmesh_tests::formats::qgis_process;

static DATA: LazyLock<Data> = LazyLock::new(|| Data::make("geojson"));

static WORKER_BUILT: LazyLock<()> = LazyLock::new(common::build_worker);

async fn pool() -> Pool {
    LazyLock::force(&WORKER_BUILT);
    LazyLock::force(&DATA);
    let config = PoolConfig {
        workers: 1,
        ..PoolConfig::default()
    };
    Pool::start(config).await.expect("pool starts")
}

/// Runs `process` on the points with `literals`; the GeoJSON file of its OUTPUT.
async fn run(pool: &Pool, dir: &Path, process: &str, literals: &[(&str, &str)]) -> PathBuf {
    run_on(pool, dir, &DATA.points, process, literals).await
}

async fn run_on(
    pool: &Pool,
    dir: &Path,
    input: &Path,
    process: &str,
    literals: &[(&str, &str)],
) -> PathBuf {
    let mut job = RunJob::new(process, dir).file("INPUT", input);
    for (id, value) in literals {
        job = job.literal(id, *value);
    }
    let (tx, _events) = mpsc::channel(64);
    let outcome = pool.run(job, tx, CancellationToken::new()).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{process}: {e}"));
    match outcome.output("OUTPUT") {
        Some(OutputValue::File { path, format }) => {
            assert_eq!(format.mime_type, "application/geo+json");
            path.clone()
        }
        other => panic!("{process}: OUTPUT is {other:?}"),
    }
}

fn read(path: &Path) -> Value {
    let bytes = std::fs::read(path).expect("read GeoJSON");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Numbers equal to 1e-9 (GDAL rounds to 15 decimals), everything else exactly.
fn assert_same(ours: &Value, theirs: &Value, at: &str) {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().expect("f64"), b.as_f64().expect("f64"));
            assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{at}: {a} vs {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: lengths");
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert_same(a, b, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{at}: members");
            for (k, v) in a {
                assert_same(v, &b[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(ours, theirs, "{at}"),
    }
}

/// The number tokens of the first `"coordinates"` member, as written.
fn first_coordinates(text: &str) -> Vec<&str> {
    let start = text.find("\"coordinates\"").expect("coordinates") + 14;
    let mut depth = 0;
    let end = start
        + text[start..]
            .char_indices()
            .find(|&(_, c)| {
                depth += i32::from(c == '[') - i32::from(c == ']');
                c == ']' && depth == 0
            })
            .expect("closing bracket")
            .0;
    text[start..end]
        .split(|c: char| c == '[' || c == ']' || c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_written_natively_equals_gdals_with_exact_coordinates() {
    let pool = pool().await;
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    let ours = run(&pool, dir.path(), "native:buffer", &[("DISTANCE", "0.5")]).await;
    let reference = qgis_process(
        "native:buffer",
        &[
            ("INPUT", DATA.points.display().to_string()),
            ("DISTANCE", "0.5".into()),
        ],
        dir.path().join("reference.geojson"),
    );
    let (ours_doc, theirs) = (read(&ours), read(&reference));
    assert_eq!(ours_doc["type"], "FeatureCollection");
    assert_eq!(ours_doc["name"], "OUTPUT");
    assert_eq!(ours_doc["crs"], theirs["crs"]);
    assert_eq!(ours_doc["features"].as_array().map(Vec::len), Some(240));
    assert_same(&ours_doc["features"], &theirs["features"], "features");
    // The native writer's mark: every coordinate is the shortest text of its double, where
    // GDAL's 15 decimals are not (the reference is the control).
    let text = std::fs::read_to_string(&ours).expect("ours");
    assert!(first_coordinates(&text).len() > 40);
    assert!(written_shortest(&text), "{:?}", first_coordinates(&text));
    let gdal = std::fs::read_to_string(&reference).expect("reference");
    assert!(!written_shortest(&gdal));
    pool.shutdown().await;
}

/// Whether every coordinate of the first geometry in `text` is written in its shortest form
/// (GDAL's 15 decimals are not, for numbers of 10 and over).
fn written_shortest(text: &str) -> bool {
    first_coordinates(text)
        .iter()
        .all(|t| ryu::Buffer::new().format(t.parse::<f64>().expect("number")) == *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_inputs_over_64_mib_streams_its_output_through_gdal() {
    const FEATURES: usize = 66;
    let pool = pool().await;
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    // 66 points carrying 1 MiB each: over the 64 MiB the worker holds an output in memory for.
    // Coordinates over 10, where GDAL's 15 decimals are 17 digits, longer than the shortest.
    let pad = "x".repeat(1 << 20);
    let features: Vec<Value> = (0..FEATURES)
        .map(|i| {
            serde_json::json!({"type": "Feature", "properties": {"n": i, "pad": pad},
                "geometry": {"type": "Point", "coordinates": [20.0 + i as f64 / 3.0, 40.0 + 1.0 / 7.0]}})
        })
        .collect();
    let big = dir.path().join("big.geojson");
    let doc = serde_json::json!({"type": "FeatureCollection", "features": features});
    std::fs::write(&big, doc.to_string()).expect("write the large input");
    assert!(std::fs::metadata(&big).expect("size").len() > 64 << 20);
    let out = run_on(
        &pool,
        dir.path(),
        &big,
        "native:buffer",
        &[("DISTANCE", "0.5")],
    )
    .await;
    let text = std::fs::read_to_string(&out).expect("output");
    let written: Value = serde_json::from_str(&text).expect("GeoJSON");
    let features = written["features"].as_array().expect("features");
    assert_eq!(features.len(), FEATURES);
    assert!(
        features
            .iter()
            .all(|f| f["properties"]["pad"] == pad.as_str())
    );
    assert!(
        !written_shortest(&text),
        "GDAL's own formatting: {:?}",
        first_coordinates(&text)
    );
    // The control: the same algorithm on the small points goes through memory.
    let small = run(&pool, dir.path(), "native:buffer", &[("DISTANCE", "0.5")]).await;
    assert!(written_shortest(
        &std::fs::read_to_string(small).expect("small")
    ));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_with_dates_is_written_by_gdal_whole() {
    let pool = pool().await;
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    // FIELD_TYPE 3: date, which the native writer leaves to GDAL.
    let args = [
        ("FIELD_NAME", "day"),
        ("FIELD_TYPE", "3"),
        ("FORMULA", "to_date('2020-01-02')"),
    ];
    let ours = run(&pool, dir.path(), "native:fieldcalculator", &args).await;
    let mut reference_args = vec![("INPUT", DATA.points.display().to_string())];
    reference_args.extend(args.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let reference = qgis_process(
        "native:fieldcalculator",
        &reference_args,
        dir.path().join("reference.geojson"),
    );
    let (ours_doc, theirs) = (read(&ours), read(&reference));
    assert_eq!(ours_doc["features"].as_array().map(Vec::len), Some(240));
    assert_eq!(ours_doc["features"][0]["properties"]["day"], "2020-01-02");
    assert_same(&ours_doc["features"], &theirs["features"], "features");
    pool.shutdown().await;
}

/// A GeoJSON output the worker cannot write fails the job with the output and the reason, and
/// the worker serves the next job (the buffer tests above are the positive control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_fails_the_job_with_the_reason() {
    let pool = pool().await;
    let dir = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    // Where the output file goes, a folder: creating the file fails.
    std::fs::create_dir(dir.path().join("OUTPUT.geojson")).expect("blocking folder");
    let job = RunJob::new("native:buffer", dir.path())
        .file("INPUT", &DATA.points)
        .literal("DISTANCE", "0.5");
    let (tx, _events) = mpsc::channel(64);
    let error = pool.run(job, tx, CancellationToken::new()).await;
    match error {
        Err(PoolError::Execution { message, .. }) => {
            assert!(
                message.contains("OUTPUT: cannot write the layer"),
                "{message}"
            );
            assert!(message.contains("Is a directory"), "{message}");
        }
        other => panic!("expected an execution failure, got {other:?}"),
    }
    let fresh = tempfile::tempdir_in(&DATA.dir).expect("workdir");
    let out = run(&pool, fresh.path(), "native:buffer", &[("DISTANCE", "0.5")]).await;
    assert_eq!(read(&out)["features"].as_array().map(Vec::len), Some(240));
    pool.shutdown().await;
}
