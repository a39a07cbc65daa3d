//! Drift test: the checked-in generated code must equal what the `.proto` sources generate.
//!
//! Regenerate after editing a `.proto` file with
//! `WPSMESH_UPDATE_PROTO=1 cargo test -p wpsmesh-proto --test drift`.

use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "wpsmesh/process/v1/process.proto",
    "wpsmesh/storage/v1/storage.proto",
    "wpsmesh/worker/v1/worker.proto",
];

fn generate(out: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(PROTOS, [&root]).expect("protos compile");
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("write descriptor");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".")
        .emit_rerun_if_changed(false)
        .out_dir(out)
        .compile_fds(fds)
        .expect("tonic codegen");
}

#[test]
fn generated_code_matches_protos() {
    let checked_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/gen");
    if std::env::var_os("WPSMESH_UPDATE_PROTO").is_some() {
        std::fs::create_dir_all(&checked_in).expect("create src/gen");
        generate(&checked_in);
        return;
    }
    let fresh = tempfile::tempdir().expect("tempdir");
    generate(fresh.path());
    let mut names: Vec<_> = std::fs::read_dir(fresh.path())
        .expect("read fresh")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 3, "codegen produced {names:?}");
    for name in names {
        let want = std::fs::read(fresh.path().join(&name)).expect("read fresh file");
        let have = std::fs::read(checked_in.join(&name)).unwrap_or_default();
        assert!(
            want == have,
            "proto/src/gen/{} is stale: run WPSMESH_UPDATE_PROTO=1 cargo test -p wpsmesh-proto --test drift",
            name.to_string_lossy()
        );
    }
}
