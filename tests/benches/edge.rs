//! Edge benchmark: GetCapabilities and DescribeProcess requests/s and latency percentiles under
//! concurrent keep-alive clients, and the edge's added latency on an Execute of native:buffer
//! against the same gRPC Execute sent straight to the node — storage, a node and the edge
//! in-process on loopback, in one run.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-edge --bench edge`
//! (`WPSMESH_BENCH_SECS=3` for a shorter run).

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, Input, ListProcessesRequest, LiteralValue, Reference, StoredObject, input,
    reference,
};
use wpsmesh_runtime::grpc;
use wpsmesh_tests::bench::{ms, setting};
use wpsmesh_tests::data;
use wpsmesh_tests::load::percentile;

async fn start(dir: &Path) -> anyhow::Result<(String, String, String)> {
    let storage_uri = wpsmesh_storage::spawn_local(dir.join("storage")).await?;

    let edge_listener = TcpListener::bind("127.0.0.1:0").await?;
    let edge_url = format!("http://{}", edge_listener.local_addr()?);
    let mut node = wpsmesh_node::Config {
        storage: storage_uri.clone(),
        work_dir: dir.join("work"),
        ..Default::default()
    };
    node.pool.workers = 1;
    let node_listener = TcpListener::bind("127.0.0.1:0").await?;
    let node_uri = format!("http://{}", node_listener.local_addr()?);
    tokio::spawn(wpsmesh_node::run(
        node,
        node_listener,
        std::future::pending(),
    ));
    let mut probe = ProcessServiceClient::new(grpc::channel(&node_uri)?);
    let deadline = Instant::now() + Duration::from_secs(120);
    while probe.list_processes(ListProcessesRequest {}).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut edge = wpsmesh_edge::Config {
        storage: storage_uri.clone(),
        ..Default::default()
    };
    edge.discovery.nodes = vec![node_uri.clone()];
    tokio::spawn(wpsmesh_edge::run(
        edge,
        edge_listener,
        std::future::pending(),
    ));
    Ok((edge_url, node_uri, storage_uri))
}

/// The node-side form of the edge's request: INPUT the stored object `id` (the edge turns the
/// href to its file API into it).
fn buffer_request(id: &str) -> ExecuteRequest {
    let input = |id: &str, value| Input {
        id: id.into(),
        value: Some(value),
    };
    ExecuteRequest {
        process_id: "native:buffer".into(),
        inputs: vec![
            input(
                "INPUT",
                input::Value::Reference(Reference {
                    source: Some(reference::Source::Object(StoredObject {
                        id: id.into(),
                        extension: "geojson".into(),
                    })),
                    format: None,
                }),
            ),
            input(
                "DISTANCE",
                input::Value::Literal(LiteralValue {
                    value: "1.5".into(),
                    ..Default::default()
                }),
            ),
        ],
        ..Default::default()
    }
}

fn wps_execute_xml(href: &str) -> String {
    format!(
        r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>native:buffer</ows:Identifier>
<wps:DataInputs>
<wps:Input><ows:Identifier>INPUT</ows:Identifier><wps:Reference xlink:href="{href}" mimeType="application/geo+json"/></wps:Input>
<wps:Input><ows:Identifier>DISTANCE</ows:Identifier><wps:Data><wps:LiteralData>1.5</wps:LiteralData></wps:Data></wps:Input>
</wps:DataInputs>
<wps:ResponseForm><wps:ResponseDocument><wps:Output asReference="true"><ows:Identifier>OUTPUT</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>"#
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = setting("WPSMESH_BENCH_SECS", 5);
    let runs = 30;
    let dir = tempfile::tempdir()?;
    let (edge, node_uri, storage_uri) = start(dir.path()).await?;
    let http = reqwest::Client::new();
    let caps = format!("{edge}/api/wps?service=WPS&request=GetCapabilities&version=1.0.0");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(&caps)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(Instant::now() < deadline, "edge did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let describe = format!(
        "{edge}/api/wps?service=WPS&request=DescribeProcess&version=1.0.0&identifier=native:buffer"
    );

    println!("edge throughput, {secs} s per row, client and servers on the same 2 cores");
    println!("| request | clients | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, url) in [
        ("GetCapabilities 1.0.0", &caps),
        ("DescribeProcess native:buffer", &describe),
    ] {
        for clients in [1, 32] {
            let wpsmesh_tests::load::Load {
                requests_per_sec: rps,
                p50,
                p99,
            } = wpsmesh_tests::load::hammer(url, clients, secs).await?;
            println!(
                "| {name} | {clients} | {rps:.0} | {:.3} | {:.3} |",
                ms(p50),
                ms(p99)
            );
        }
    }

    // Execute: the same job straight to the node over gRPC and through the edge (WPS XML).
    let points = data::derive(dir.path(), "points.geojson", data::POINTS_SQL);
    let storage = wpsmesh_node::outputs::Storage::new(grpc::channel(&storage_uri)?);
    let info = wpsmesh_node::outputs::store_file(&storage, &points, "points.geojson").await?;
    let href = format!("{edge}/api/file/retrieve/{}.geojson", info.id);
    let object = info.id.to_string();
    let mut node = ProcessServiceClient::new(grpc::channel(&node_uri)?);
    let body = wps_execute_xml(&href);
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..runs + 3 {
        let t = Instant::now();
        node.execute(buffer_request(&object)).await?;
        let d = t.elapsed();
        let t = Instant::now();
        let r = http
            .post(format!("{edge}/api/wps"))
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "edge execute: {}", r.text().await?);
        r.bytes().await?;
        let e = t.elapsed();
        if i >= 3 {
            direct.push(d);
            through.push(e);
        }
    }
    direct.sort();
    through.sort();
    let (d50, e50) = (percentile(&direct, 0.5), percentile(&through, 0.5));
    println!("\nnative:buffer on 240 points, median of {runs}, alternating");
    println!("| path | p50 ms | p90 ms |");
    println!("|---|---|---|");
    println!(
        "| gRPC Execute straight to the node | {:.2} | {:.2} |",
        ms(d50),
        ms(percentile(&direct, 0.9))
    );
    println!(
        "| WPS 1.0.0 Execute (XML POST) through the edge | {:.2} | {:.2} |",
        ms(e50),
        ms(percentile(&through, 0.9))
    );
    println!("edge added latency at p50: {:.2} ms", ms(e50) - ms(d50));
    Ok(())
}
