//! Metrics against a real Prometheus: storage, a node (real QGIS worker) and an edge run as
//! processes, scraped every second by a Prometheus this test starts. Counters are read back
//! through Prometheus's query API; every `/metrics` page passes `promtool check metrics`; the
//! alert rules pass `promtool check rules` and load into Prometheus; every expression of every
//! dashboard panel and alert evaluates without error, and the overview's panels return data.
//! Controls: a broken page, a broken rule file and a broken expression are refused by the same
//! checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wpsmesh_tests::data::{self, POINTS_SQL};
use wpsmesh_tests::mesh::{buffer_job as buffer, upload};
use wpsmesh_tests::prometheus::{Prometheus, promtool};
use wpsmesh_tests::{Launch, Service};

/// The repository's `observability/` directory.
fn observability(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../observability")
        .join(file)
}

/// Successful native:buffer jobs on the node, as Prometheus last scraped them.
const SUCCEEDED: &str =
    r#"sum(wpsmesh_jobs_total{job="wpsmesh-node",process="native:buffer",status="succeeded"})"#;

/// The alerts `alerts.yml` must define (the issue's list).
const ALERTS: [&str; 6] = [
    "WpsmeshEdge5xxRatio",
    "WpsmeshNoHealthyNode",
    "WpsmeshQueueWaitHigh",
    "WpsmeshJobFailureRatio",
    "WpsmeshWorkerCrashLoop",
    "WpsmeshStorageErrors",
];

/// Every PromQL expression of a dashboard's panels.
fn dashboard_exprs(file: &str) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(observability(file)).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    exprs
}

/// Grafana's variables as Grafana would fill them in for this test's hour.
fn with_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "5m")
        .replace("${process}", "native:buffer")
        .replace("$process", "native:buffer")
}

async fn page(http: &reqwest::Client, service: &Service) -> String {
    http.get(format!("http://{}/metrics", service.metrics_addr()))
        .send()
        .await
        .expect("metrics page")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_the_mesh_and_evaluates_dashboards_and_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let points = data::derive(dir.path(), "points.geojson", POINTS_SQL);
    let storage = Launch::storage(dir.path(), "storage")
        .start()
        .await
        .expect("storage");
    let node = Launch::node(dir.path(), "node", &storage.uri())
        .start()
        .await
        .expect("node");
    let edge = Launch::edge(dir.path(), "edge", &storage.uri(), &[node.uri()])
        .start()
        .await
        .expect("edge");
    let alerts = observability("alerts.yml");
    let prometheus = Prometheus::start(
        dir.path(),
        &[
            ("wpsmesh-edge", vec![edge.metrics_addr()]),
            ("wpsmesh-node", vec![node.metrics_addr()]),
            ("wpsmesh-storage", vec![storage.metrics_addr()]),
        ],
        std::slice::from_ref(&alerts),
    )
    .await
    .expect("prometheus");
    prometheus
        .wait_up(3, Duration::from_secs(30))
        .await
        .expect("every target up");

    // The evaluation helper: a known series has data, a broken expression is an error.
    let up = prometheus.query("up").await.expect("up evaluates");
    assert_eq!(up.len(), 3, "{up:?}");
    let broken = prometheus
        .query("sum(rate(wpsmesh_jobs_total[5m]) by (")
        .await
        .expect_err("a broken expression is refused");
    assert!(broken.contains("parse error"), "{broken}");

    // One queued job first, so the queue wait has a sample; then the baseline.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let href = upload(&http, &edge.uri(), &points).await;
    let mut job = buffer(&href);
    job["mode"] = json!("async");
    let submitted: Value = http
        .post(format!("{}/api/wps/jobs", edge.uri()))
        .json(&job)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("submit answer");
    let id = submitted["jobID"].as_str().expect("jobID").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = http
            .get(format!("{}/api/wps/jobs/{id}", edge.uri()))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status answer");
        match status["status"]["status"].as_str() {
            Some("succeeded") => break,
            Some("accepted" | "running") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => panic!("async job {id}: {status}"),
        }
    }
    let before = prometheus
        .wait_value(SUCCEEDED, |v| v >= 1.0, Duration::from_secs(30))
        .await
        .expect("the async job counted");
    assert_eq!(before, 1.0);

    // Three synchronous Executes: the counter grows by exactly three.
    for i in 0..3 {
        let r = http
            .post(format!("{}/api/wps/jobs", edge.uri()))
            .json(&buffer(&href))
            .send()
            .await
            .expect("execute");
        let status = r.status().as_u16();
        assert_eq!(
            status,
            200,
            "execute {i}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let after = prometheus
        .wait_value(SUCCEEDED, |v| v >= before + 3.0, Duration::from_secs(30))
        .await
        .expect("the executes counted");
    assert_eq!(after - before, 3.0);

    // promtool accepts every page, and refuses a broken one.
    for service in [&edge, &node, &storage] {
        let text = page(&http, service).await;
        let (ok, out) = promtool(&["check", "metrics"], Some(text.as_bytes())).expect("promtool");
        assert!(ok, "{}: {out}\n{text}", service.name());
    }
    let node_page = page(&http, &node).await;
    for name in [
        "wpsmesh_jobs_total",
        "wpsmesh_job_duration_seconds_bucket",
        "wpsmesh_job_queue_wait_seconds_bucket",
        "wpsmesh_workers_busy",
        "wpsmesh_worker_crashes_total",
        "wpsmesh_fetch_refused_total",
        "wpsmesh_grpc_server_handling_seconds_bucket",
    ] {
        assert!(node_page.contains(name), "{name} in\n{node_page}");
    }
    let broken_page = "# TYPE wpsmesh_broken counter\nwpsmesh_broken 1\n";
    let (ok, out) =
        promtool(&["check", "metrics"], Some(broken_page.as_bytes())).expect("promtool");
    assert!(!ok && out.contains("_total"), "{out}");

    // The rules and the Prometheus configurations pass promtool; a broken rule file does not.
    for args in [
        vec!["check", "rules", alerts.to_str().unwrap()],
        vec![
            "check",
            "config",
            observability("prometheus.yml").to_str().unwrap(),
        ],
    ] {
        let (ok, out) = promtool(&args, None).expect("promtool");
        assert!(ok, "promtool {args:?}: {out}");
    }
    // Debian builds Prometheus without Consul discovery: the Consul variant passes, or its only
    // complaints are the `consul_sd_configs` this build does not know.
    let consul = observability("prometheus-consul.yml");
    let (ok, out) =
        promtool(&["check", "config", consul.to_str().unwrap()], None).expect("promtool");
    let complaints: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .collect();
    assert!(
        ok || (!complaints.is_empty()
            && complaints
                .iter()
                .all(|l| l.contains("field consul_sd_configs not found"))),
        "{out}"
    );
    let broken_rules = dir.path().join("broken.yml");
    std::fs::write(
        &broken_rules,
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(up[5m]) by (\n",
    )
    .unwrap();
    let (ok, out) =
        promtool(&["check", "rules", broken_rules.to_str().unwrap()], None).expect("promtool");
    assert!(!ok, "{out}");

    // Every alert loaded into Prometheus evaluates, there and through the query API.
    let rules = prometheus.rules().await.expect("rules");
    for name in ALERTS {
        assert!(
            rules.iter().any(|r| r["name"] == name),
            "{name} in {rules:#?}"
        );
    }
    for rule in &rules {
        let expr = rule["query"].as_str().expect("rule query");
        prometheus
            .query(expr)
            .await
            .unwrap_or_else(|e| panic!("alert {}: {expr}: {e}", rule["name"]));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rules = prometheus.rules().await.expect("rules");
        if rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(
            Instant::now() < deadline && rules.iter().all(|r| r["health"] != "err"),
            "{rules:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every panel's expression evaluates; the overview's return data.
    for (file, with_data) in [
        ("grafana/dashboards/overview.json", true),
        ("grafana/dashboards/process.json", false),
    ] {
        let exprs = dashboard_exprs(file);
        assert!(exprs.len() >= 5, "{file}: {exprs:?}");
        for expr in exprs {
            let query = with_variables(&expr);
            assert!(!query.contains('$'), "{file}: a variable left in {query}");
            let samples = prometheus
                .query(&query)
                .await
                .unwrap_or_else(|e| panic!("{file}: {query}: {e}"));
            assert!(
                !with_data || !samples.is_empty(),
                "{file}: no data for {query}"
            );
        }
    }
    // The drill-down's process variable lists the process that ran.
    let values = prometheus
        .query("count by (process) (wpsmesh_jobs_total)")
        .await
        .expect("process values");
    assert!(
        values
            .iter()
            .any(|v| v["metric"]["process"] == "native:buffer"),
        "{values:?}"
    );
}
