//! OGC API - Processes benchmark, in one run over one release mesh (storage, one node with one
//! worker, the edge; real binaries on loopback): `GET /processes` and
//! `GET /processes/native:buffer` requests/s at 1 and 32 keep-alive clients beside WPS 1.0.0
//! GetCapabilities', then the same native:buffer Execute (reference output) through OGC API
//! (results document) and WPS 1.0.0 KVP, alternating, and their p50 difference.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench ogcapi`
//! (`WPSMESH_BENCH_SECS=3` for a shorter run; `WPSMESH_BENCH_RUNS`, default 30 Executes each).

use std::time::{Duration, Instant};

use serde_json::json;
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::load::{Load, hammer, percentile};
use wpsmesh_tests::{data, mesh, release_mesh};

/// One timed request that must succeed; its body is read whole.
async fn timed(request: reqwest::RequestBuilder) -> anyhow::Result<(Duration, bytes::Bytes)> {
    let t = Instant::now();
    let r = request.send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((t.elapsed(), body))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = match std::env::var("WPSMESH_BENCH_SECS") {
        Ok(v) => v.parse::<u64>()?,
        Err(_) => 5,
    };
    let runs = setting("WPSMESH_BENCH_RUNS", 30);
    let dir = tempfile::tempdir()?;
    let (_storage, _node, edge) = release_mesh(dir.path(), &[]).await?;
    let edge = edge.uri();
    let http = reqwest::Client::new();

    let caps = format!("{edge}/api/wps?service=WPS&request=GetCapabilities&version=1.0.0");
    let list = format!("{edge}/processes");
    let describe = format!("{edge}/processes/native:buffer");
    println!("edge throughput, {secs} s per row, client and servers on the same 2 cores");
    println!("| request | clients | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, url) in [
        ("WPS 1.0.0 GetCapabilities", &caps),
        ("OGC API GET /processes", &list),
        ("OGC API GET /processes/native:buffer", &describe),
    ] {
        for clients in [1, 32] {
            let Load {
                requests_per_sec: rps,
                p50,
                p99,
            } = hammer(url, clients, secs).await?;
            println!(
                "| {name} | {clients} | {rps:.0} | {:.3} | {:.3} |",
                ms(p50),
                ms(p99)
            );
        }
    }

    // The same Execute through both protocols, alternating, after 3 warm-up rounds.
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let href = mesh::upload(&http, &edge, &points).await;
    let ogc_body = json!({
        "inputs": {
            "INPUT": {"href": href, "type": "application/geo+json"},
            "DISTANCE": 1.5,
        },
        "outputs": {"OUTPUT": {"transmissionMode": "reference"}},
        "response": "document",
    });
    let kvp = format!(
        "{edge}/api/wps?service=WPS&request=Execute&version=1.0.0&identifier=native:buffer\
         &DataInputs=INPUT=@xlink:href={href}@mimeType=application/geo%2Bjson;DISTANCE=1.5\
         &ResponseDocument=OUTPUT=@asReference=true"
    );
    let (mut ogc, mut wps) = (Vec::new(), Vec::new());
    for i in 0..runs + 3 {
        let (o, body) = timed(
            http.post(format!("{edge}/processes/native:buffer/execution"))
                .json(&ogc_body),
        )
        .await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(doc["OUTPUT"]["href"].is_string(), "no output href: {doc}");
        let (w, body) = timed(http.get(&kvp)).await?;
        anyhow::ensure!(
            String::from_utf8_lossy(&body).contains("ProcessSucceeded"),
            "wps execute failed: {}",
            String::from_utf8_lossy(&body)
        );
        if i >= 3 {
            ogc.push(o);
            wps.push(w);
        }
    }
    ogc.sort();
    wps.sort();
    let (o50, w50) = (percentile(&ogc, 0.5), percentile(&wps, 0.5));
    println!("\nnative:buffer on 240 points (reference output), {runs} runs each, alternating");
    println!("| path | p50 ms | p90 ms |");
    println!("|---|---|---|");
    println!(
        "| OGC API POST /processes/native:buffer/execution (document) | {:.2} | {:.2} |",
        ms(o50),
        ms(percentile(&ogc, 0.9))
    );
    println!(
        "| WPS 1.0.0 Execute (KVP GET) | {:.2} | {:.2} |",
        ms(w50),
        ms(percentile(&wps, 0.9))
    );
    println!(
        "OGC API minus WPS 1.0.0 at p50: {:.2} ms",
        ms(o50) - ms(w50)
    );
    Ok(())
}
