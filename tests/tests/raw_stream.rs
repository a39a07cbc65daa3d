//! Raw outputs (WPS 1.0.0 RawDataOutput, OGC API `"response": "raw"`) come streamed from the
//! node that ran the job (ExecuteStreamed), never through storage, whatever their size: the
//! node inlines at most 1 KiB here, so the 240 buffered points (about 250 KB) would have gone
//! through storage before. Real edge, node (QGIS worker), storage and Redis processes.

use serde_json::json;
use tonic::Code;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, ExecuteStreamedRequest, OutputRequest, StoredObject, reference,
};
use wpsmesh_tests::data;
use wpsmesh_tests::mesh::{Mesh, MeshSpec, buffer_execute, buffer_kvp, feature_count};

const POINTS: usize = 240;

async fn mesh() -> (Mesh, String) {
    let mesh = Mesh::start(MeshSpec::new(1).node_env("WPSMESH_NODE__MAX_INLINE_BYTES", "1024"))
        .await
        .expect("mesh starts");
    let points = data::derive(mesh.dir(), "points.geojson", data::POINTS_SQL);
    let href = mesh.upload(&points).await;
    (mesh, href)
}

/// GETs `url`: the status, the Content-Length header and the body.
async fn get(mesh: &Mesh, url: &str) -> (u16, Option<u64>, Vec<u8>) {
    let r = mesh.http.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    let length = r.content_length();
    (status, length, r.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_outputs_stream_from_the_node_and_never_touch_storage() {
    let (mesh, href) = mesh().await;
    let edge = mesh.edges[0].uri();
    let before = mesh.objects();

    // WPS 1.0.0 RawDataOutput, eight at once.
    let url = buffer_kvp(&edge, &href, 0.5, "RawDataOutput=OUTPUT");
    let answers = futures::future::join_all((0..8).map(|_| get(&mesh, &url))).await;
    for (status, length, body) in answers {
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(length, Some(body.len() as u64), "Content-Length announced");
        assert!(body.len() > 1024, "bigger than the node inlines");
        assert_eq!(feature_count(&body), POINTS);
    }

    // OGC API - Processes, one output by value, raw.
    let r = mesh
        .http
        .post(format!("{edge}/processes/native:buffer/execution"))
        .json(&json!({
            "inputs": {
                "INPUT": {"href": href, "type": "application/geo+json"},
                "DISTANCE": 0.5
            },
            "outputs": {"OUTPUT": {"transmissionMode": "value"}},
            "response": "raw"
        }))
        .send()
        .await
        .expect("execution");
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.expect("body");
    assert_eq!(feature_count(&body), POINTS);
    assert_eq!(mesh.objects(), before, "no raw output was stored");

    // The control: the same job with its output by reference is stored, once.
    let url = buffer_kvp(
        &edge,
        &href,
        0.5,
        "ResponseDocument=OUTPUT@asReference=true",
    );
    let (status, _, body) = get(&mesh, &url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(mesh.objects().difference(&before).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_an_output_not_asked_for_is_refused_naming_it() {
    let (mesh, href) = mesh().await;
    let object = wpsmesh_tests::mesh::object_of(&href);
    let source = reference::Source::Object(StoredObject {
        id: object,
        extension: "geojson".into(),
    });
    let execute = ExecuteRequest {
        outputs: vec![OutputRequest {
            id: "OUTPUT".into(),
            ..Default::default()
        }],
        ..buffer_execute(source, "0.5")
    };
    let call = |output: &str| {
        let mut node = mesh.node_client(0);
        let request = ExecuteStreamedRequest {
            execute: Some(execute.clone()),
            output: output.into(),
        };
        async move { node.execute_streamed(request).await }
    };
    // Refused at once (nothing runs), at the same time as valid calls that succeed.
    let bad = ["NOPE", "../../etc/passwd", ""];
    let (refused, good) = tokio::join!(
        futures::future::join_all(bad.iter().map(|o| call(o))),
        futures::future::join_all((0..2).map(|_| call("OUTPUT"))),
    );
    for (output, answer) in bad.iter().zip(refused) {
        let status = answer.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{output:?}: {status:?}"
        );
        assert!(
            status.message().contains("not among the requested outputs"),
            "{output:?}: {}",
            status.message()
        );
    }
    for answer in good {
        let mut stream = answer.expect("streamed").into_inner();
        let mut bytes = Vec::new();
        let mut described = None;
        while let Some(message) = stream.message().await.expect("message") {
            use wpsmesh_proto::wire::process::v1::execute_streamed_response::Part;
            match message.part.expect("part") {
                Part::Result(r) => described = r.streamed,
                Part::Chunk(c) => bytes.extend_from_slice(&c),
            }
        }
        let described = described.expect("the output described first");
        assert_eq!(described.size, bytes.len() as u64);
        assert_eq!(feature_count(&bytes), POINTS);
    }
}
