//! Response compression end to end, over loopback against a real edge (a [`Mesh`]: Redis,
//! storage, one node with a real QGIS worker, the edge): cached documents (WPS capabilities and
//! descriptions, the OGC API process list and description, the OpenAPI document) come gzip or
//! br as negotiated and decode, with reference decoders, to exactly the identity bytes; no
//! `Accept-Encoding` and `gzip;q=0` get identity; answers made per request (an Execute
//! response document, a description of several processes) are compressed per response; file
//! downloads and raw outputs never are, and ranges still get 206 with the right bytes; 32
//! concurrent clients with mixed encodings all get the right bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};

use reqwest::header::{self, HeaderMap};
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec, buffer_kvp, feature_count, upload};

/// One mesh at a time: QGIS workers of two meshes would fight over the same two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn mesh() -> (tokio::sync::MutexGuard<'static, ()>, Mesh) {
    let turn = ONE_AT_A_TIME.lock().await;
    (
        turn,
        Mesh::start(MeshSpec::new(1)).await.expect("mesh starts"),
    )
}

/// An answer as sent: status, headers and the body bytes not decoded (the harness's reqwest
/// has no decompression, so it sends no `Accept-Encoding` of its own either).
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn coding(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap())
    }

    fn varies(&self) -> bool {
        self.headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        })
    }

    fn etag(&self) -> &str {
        self.headers[header::ETAG].to_str().unwrap()
    }

    /// The body decoded by its Content-Encoding with the reference decoders.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.coding() {
            None => out.clone_from(&self.body),
            Some("gzip") => {
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("gzip decodes");
            }
            Some("br") => {
                brotli::Decompressor::new(&self.body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("br decodes");
            }
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

async fn get(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.expect("request to the edge");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.bytes().await.expect("body").to_vec();
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        assert_eq!(length.to_str().unwrap(), body.len().to_string(), "{url}");
    }
    Got {
        status,
        headers,
        body,
    }
}

fn accept(value: &str) -> [(&str, &str); 1] {
    [("accept-encoding", value)]
}

/// The cached documents of a mesh whose edge is at `edge`.
fn cached_documents(edge: &str) -> Vec<String> {
    let wps = format!("{edge}/api/wps?service=WPS");
    vec![
        format!("{wps}&request=GetCapabilities&version=1.0.0"),
        format!("{wps}&request=GetCapabilities&AcceptVersions=2.0.0"),
        format!("{wps}&request=DescribeProcess&version=1.0.0&identifier=native:buffer"),
        format!("{wps}&request=DescribeProcess&version=2.0.0&identifier=native:buffer"),
        format!("{edge}/processes"),
        format!("{edge}/processes/native:buffer"),
        format!("{edge}/api"),
    ]
}

/// gzip at level 1, the per-response level: what a document compressed per request would be.
fn fast_gzip(data: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_documents_come_precompressed_and_decode_to_the_identity_bytes() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    for url in cached_documents(&edge) {
        let identity = get(&m.http, &url, &[]).await;
        assert_eq!(identity.status, 200, "{url}");
        assert_eq!(
            identity.coding(),
            None,
            "{url}: no Accept-Encoding is identity"
        );
        assert!(identity.varies(), "{url}");
        assert!(
            identity.body.len() > 1024,
            "{url}: {} bytes",
            identity.body.len()
        );
        let refused = get(&m.http, &url, &accept("gzip;q=0")).await;
        assert_eq!(refused.coding(), None, "{url}: gzip;q=0");
        assert_eq!(refused.body, identity.body, "{url}: gzip;q=0");
        assert_eq!(refused.etag(), identity.etag(), "{url}");
        for (asked, coding) in [
            ("gzip", "gzip"),
            ("br", "br"),
            ("gzip, deflate, br", "br"),
            ("br;q=0.5, gzip", "gzip"),
            ("identity;q=0, *", "br"),
        ] {
            let got = get(&m.http, &url, &accept(asked)).await;
            assert_eq!(got.status, 200, "{url} {asked}");
            assert_eq!(got.coding(), Some(coding), "{url} {asked}");
            assert!(got.varies(), "{url} {asked}");
            assert_eq!(got.decoded(), identity.body, "{url} {asked}");
            assert!(got.body.len() * 2 < identity.body.len(), "{url} {asked}");
            assert_ne!(
                got.etag(),
                identity.etag(),
                "{url} {asked}: another representation"
            );
            // The same bytes again: the form kept, not one encoded for each request.
            let again = get(&m.http, &url, &accept(asked)).await;
            assert_eq!(again.body, got.body, "{url} {asked}");
            assert_eq!(again.etag(), got.etag(), "{url} {asked}");
            if asked == coding {
                eprintln!(
                    "{url}: {} bytes, {coding} {}",
                    identity.body.len(),
                    got.body.len()
                );
            }
            if coding == "gzip" {
                // Compressed at the high level when rendered, not at the per-response one.
                assert!(got.body.len() < fast_gzip(&identity.body), "{url}");
            }
        }
        // Revalidation of the negotiated form: 304; control: the other form's tag is 200.
        let gz = get(&m.http, &url, &accept("gzip")).await;
        let tag = gz.etag();
        let not_modified = get(
            &m.http,
            &url,
            &[("accept-encoding", "gzip"), ("if-none-match", tag)],
        )
        .await;
        assert_eq!(not_modified.status, 304, "{url}");
        assert!(not_modified.body.is_empty());
        let other = get(
            &m.http,
            &url,
            &[("accept-encoding", "br"), ("if-none-match", tag)],
        )
        .await;
        assert_eq!(other.status, 200, "{url}");
        assert_eq!(other.coding(), Some("br"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_description_of_several_processes_is_compressed_per_response() {
    let (_turn, m) = mesh().await;
    let url = format!(
        "{}/api/wps?service=WPS&request=DescribeProcess&version=1.0.0\
         &identifier=native:buffer,native:centroids",
        m.edges[0].uri()
    );
    let identity = get(&m.http, &url, &[]).await;
    assert_eq!(identity.status, 200);
    assert_eq!(identity.coding(), None);
    assert!(identity.varies());
    let got = get(&m.http, &url, &accept("gzip, br")).await;
    assert_eq!(got.coding(), Some("gzip"), "per response gzip goes first");
    assert!(got.varies());
    assert_eq!(got.decoded(), identity.body);
    // Encoded for this request at the fast level (this document is not kept).
    assert_eq!(got.body.len(), fast_gzip(&identity.body));
    let br = get(&m.http, &url, &accept("br")).await;
    assert_eq!(br.coding(), Some("br"));
    assert_eq!(br.decoded(), identity.body);
    // Control: one of them alone is a kept document, compressed once at the high level.
    let one = url.replace(",native:centroids", "");
    let kept = get(&m.http, &one, &accept("gzip")).await;
    let kept_identity = get(&m.http, &one, &[]).await;
    assert_eq!(kept.decoded(), kept_identity.body);
    assert!(kept.body.len() < fast_gzip(&kept_identity.body));
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_and_raw_outputs_stay_uncompressed_and_ranged() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    let points = data::derive(m.dir(), "points.geojson", data::POINTS_SQL);
    let file = std::fs::read(&points).unwrap();
    let href = upload(&m.http, &edge, &points).await;
    let both = accept("gzip, br");

    // A GeoJSON download (a JSON type) with gzip and br accepted: the file's own bytes.
    let whole = get(&m.http, &href, &both).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.coding(), None);
    assert!(!whole.varies());
    assert_eq!(whole.headers[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.body, file);
    let ranged = get(
        &m.http,
        &href,
        &[("accept-encoding", "gzip"), ("range", "bytes=100-1123")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.coding(), None);
    assert_eq!(
        ranged.headers[header::CONTENT_RANGE],
        format!("bytes 100-1123/{}", file.len()).as_str()
    );
    assert_eq!(ranged.body, file[100..1124]);

    // A raw output of an Execute (GeoJSON streamed from storage): never compressed.
    let raw = get(
        &m.http,
        &buffer_kvp(&edge, &href, 1.5, "RawDataOutput=OUTPUT"),
        &both,
    )
    .await;
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    assert_eq!(raw.coding(), None);
    assert!(!raw.varies());
    assert_eq!(feature_count(&raw.body), 240);

    // Control: the response document of the same Execute (XML made for this request) is
    // compressed per response, and decodes to an ExecuteResponse.
    let form = "ResponseDocument=OUTPUT@asReference=true&lineage=true";
    let document = get(&m.http, &buffer_kvp(&edge, &href, 1.5, form), &both).await;
    assert_eq!(document.status, 200);
    assert_eq!(
        document.coding(),
        Some("gzip"),
        "per response gzip goes first"
    );
    assert!(document.varies());
    let xml = String::from_utf8(document.decoded()).unwrap();
    assert!(
        xml.contains("ExecuteResponse") && xml.contains("ProcessSucceeded"),
        "{xml}"
    );
    assert!(xml.len() > 1024, "{} bytes", xml.len());
    // And the same without Accept-Encoding is identity.
    let plain = get(&m.http, &buffer_kvp(&edge, &href, 1.5, form), &[]).await;
    assert_eq!(plain.coding(), None);
    assert!(String::from_utf8_lossy(&plain.body).contains("ProcessSucceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_clients_with_mixed_encodings_all_get_the_right_bytes() {
    let (_turn, m) = mesh().await;
    let edge = m.edges[0].uri();
    let mut urls = cached_documents(&edge);
    // The landing page: made per request.
    urls.push(format!("{edge}/"));
    let mut identities = Vec::new();
    for url in &urls {
        identities.push(get(&m.http, url, &[]).await.body);
    }
    let asked = [
        None,
        Some("gzip"),
        Some("br"),
        Some("gzip;q=0"),
        Some("br;q=0.2, gzip;q=0.1"),
    ];
    let expected = [None, Some("gzip"), Some("br"), None, Some("br")];
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..32 {
        let (urls, identities) = (urls.clone(), identities.clone());
        clients.spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = Vec::new();
            for round in 0..urls.len() {
                let i = (c + round) % urls.len();
                let e = (c + round) % asked.len();
                let headers: Vec<(&str, &str)> = asked[e]
                    .map(|a| ("accept-encoding", a))
                    .into_iter()
                    .collect();
                let got = get(&http, &urls[i], &headers).await;
                assert_eq!(got.status, 200, "{}", urls[i]);
                assert_eq!(got.decoded(), identities[i], "{} {:?}", urls[i], asked[e]);
                if identities[i].len() >= 1024 || i < urls.len() - 1 {
                    assert_eq!(got.coding(), expected[e], "{} {:?}", urls[i], asked[e]);
                }
                seen.push(got.coding().map(str::to_owned));
            }
            seen
        });
    }
    let mut codings = std::collections::BTreeMap::new();
    while let Some(seen) = clients.join_next().await {
        for coding in seen.unwrap() {
            *codings.entry(coding).or_insert(0) += 1;
        }
    }
    assert_eq!(codings.values().sum::<i32>(), 32 * urls.len() as i32);
    for coding in [None, Some("gzip".to_owned()), Some("br".to_owned())] {
        assert!(
            codings.get(&coding).is_some_and(|n| *n > 0),
            "{coding:?}: {codings:?}"
        );
    }
}
