//! Compression benchmark, in one run over one release mesh (storage, one node with one worker,
//! the edge; real binaries on loopback): WPS 1.0.0 GetCapabilities requests/s, latency and
//! bytes per answer at 1 and 32 keep-alive clients, identity against gzip against br side by
//! side. The compressed forms are the edge's cached ones (computed once per node-set change),
//! so compression should cost nothing per request and save most of the bytes.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-tests --bench compression`
//! (`WPSMESH_BENCH_SECS=3` for a shorter run).

use std::time::Duration;

use wpsmesh_tests::bench::ms;
use wpsmesh_tests::load::{Load, Sent, hammer_with};
use wpsmesh_tests::release_mesh;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = match std::env::var("WPSMESH_BENCH_SECS") {
        Ok(v) => v.parse::<u64>()?,
        Err(_) => 5,
    };
    let dir = tempfile::tempdir()?;
    let (_storage, _node, edge) = release_mesh(dir.path(), &[]).await?;
    let caps = format!(
        "{}/api/wps?service=WPS&request=GetCapabilities&version=1.0.0",
        edge.uri()
    );
    let encodings = [
        ("identity", None),
        ("gzip", Some("gzip")),
        ("br", Some("br")),
    ];
    // Warm up: the document rendered and compressed once before anything is timed.
    for (name, accept) in encodings {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let (_, sent) = hammer_with(&caps, 1, Duration::from_millis(300), &headers).await?;
        anyhow::ensure!(
            sent.content_encoding.as_deref() == accept,
            "{name}: answered {:?}",
            sent.content_encoding
        );
    }
    println!("WPS 1.0.0 GetCapabilities, {secs} s per row, client and servers on the same 2 cores");
    println!("| Accept-Encoding | clients | requests/s | p50 ms | p99 ms | bytes per answer |");
    println!("|---|---|---|---|---|---|");
    for clients in [1, 32] {
        for (name, accept) in encodings {
            let headers: Vec<(&str, &str)> =
                accept.map(|a| ("accept-encoding", a)).into_iter().collect();
            let (
                Load {
                    requests_per_sec: rps,
                    p50,
                    p99,
                },
                Sent {
                    bytes_per_response: bytes,
                    ..
                },
            ) = hammer_with(&caps, clients, Duration::from_secs(secs), &headers).await?;
            println!(
                "| {name} | {clients} | {rps:.0} | {:.3} | {:.3} | {bytes:.0} |",
                ms(p50),
                ms(p99)
            );
        }
    }
    Ok(())
}
