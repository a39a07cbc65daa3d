//! GeoJSON outputs against the real QGIS: a feature sink the worker writes with its native writer
//! (node/qgis/src/geojson.rs) holds the same features as `qgis_process` writes through GDAL, with
//! every coordinate in its shortest exact form, and a layer that writer leaves to GDAL (a date
//! attribute) still comes out whole through GDAL.
//!
//! Run with `cargo test -p wpsmesh-node --test geojson`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use common::Data;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wpsmesh_node::pool::{OutputValue, Pool, PoolConfig, RunJob};
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
    let mut job = RunJob::new(process, dir).file("INPUT", &DATA.points);
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
    let shortest = |t: &&str| ryu::Buffer::new().format(t.parse::<f64>().expect("number")) == *t;
    let text = std::fs::read_to_string(&ours).expect("ours");
    let tokens = first_coordinates(&text);
    assert!(tokens.len() > 40, "{tokens:?}");
    assert!(tokens.iter().all(shortest), "not shortest: {tokens:?}");
    let gdal = std::fs::read_to_string(&reference).expect("reference");
    assert!(!first_coordinates(&gdal).iter().all(shortest));
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
