//! The two places files can live: a local directory or an S3 bucket, behind one interface.

mod flush;
mod local;
mod s3;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use wpsmesh_proto::storage::{ByteRange, NewObject, ObjectId, ObjectInfo};

use crate::config::{BackendKind, Config};
use crate::error::StorageError;

pub use local::Local;
pub use s3::{S3, client as s3_client};

/// The bytes of an upload, checked chunk by chunk; an `Err` aborts the upload.
pub type ChunkStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// A configured backend. Cloning is cheap.
#[derive(Clone)]
pub enum Backend {
    Local(Arc<Local>),
    S3(Arc<S3>),
}

impl Backend {
    /// Builds the backend `config` selects.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(match config.backend {
            BackendKind::Local => Self::Local(Arc::new(Local::open(&config.local).await?)),
            BackendKind::S3 => Self::S3(Arc::new(S3::new(&config.s3)?)),
        })
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(l) => format!("local:{}", l.root().display()),
            Self::S3(s) => format!("s3:{}/{}", s.endpoint(), s.bucket()),
        }
    }

    /// Succeeds once the backend can serve (the bucket exists or was created).
    pub async fn ready(&self) -> Result<(), StorageError> {
        match self {
            Self::Local(_) => Ok(()),
            Self::S3(s) => s.ready().await,
        }
    }

    /// Stores `body` as object `id`. Nothing is visible unless this returns `Ok`.
    pub async fn put(
        &self,
        id: ObjectId,
        meta: &NewObject,
        body: ChunkStream,
    ) -> Result<ObjectInfo, StorageError> {
        match self {
            Self::Local(l) => l.put(id, meta, body).await,
            Self::S3(s) => s.put(id, meta, body).await,
        }
    }

    /// An object's metadata and a stream of the requested range of its bytes.
    pub async fn get(
        &self,
        id: ObjectId,
        range: ByteRange,
    ) -> Result<(ObjectInfo, ChunkStream), StorageError> {
        match self {
            Self::Local(l) => l.get(id, range).await,
            Self::S3(s) => s.get(id, range).await,
        }
    }

    /// An object's metadata.
    pub async fn stat(&self, id: ObjectId) -> Result<ObjectInfo, StorageError> {
        match self {
            Self::Local(l) => l.stat(id).await,
            Self::S3(s) => s.stat(id).await,
        }
    }

    /// Removes an object.
    pub async fn delete(&self, id: ObjectId) -> Result<(), StorageError> {
        match self {
            Self::Local(l) => l.delete(id).await,
            Self::S3(s) => s.delete(id).await,
        }
    }
}
