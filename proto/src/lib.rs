//! wpsmesh gRPC contracts: the generated wire types (`process::v1`, `storage::v1`) and the
//! checked domain types they are converted into on receipt.

pub mod framing;
pub mod media;
pub mod metadata;
pub mod ogcapi;
pub mod process;
pub mod storage;
pub mod text;
pub mod time;

/// Generated wire types, as checked in under `src/gen` (see `tests/drift.rs`).
pub mod wire {
    /// `wpsmesh.process.v1`
    pub mod process {
        #[allow(clippy::all, missing_docs)]
        pub mod v1 {
            include!("gen/wpsmesh.process.v1.rs");
        }
    }
    /// `wpsmesh.worker.v1`: the node ↔ PyQGIS worker channel (no gRPC service).
    pub mod worker {
        #[allow(clippy::all, missing_docs)]
        pub mod v1 {
            include!("gen/wpsmesh.worker.v1.rs");
        }
    }
    /// `wpsmesh.storage.v1`
    pub mod storage {
        #[allow(clippy::all, missing_docs)]
        pub mod v1 {
            include!("gen/wpsmesh.storage.v1.rs");
        }
    }
}

/// The encoded `FileDescriptorSet` of every wpsmesh proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");
