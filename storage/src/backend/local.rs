//! The local directory backend: each object is a data file plus a JSON metadata file, both
//! written under temporary names and renamed into place, metadata last, so a half-written
//! object is never visible. Synced uploads are flushed before the answer, buffered ones (job
//! outputs) by the background [`Flusher`]; a read checks the data file's length against the
//! metadata, so an object a machine crash cut short reads as missing, never as partial.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use tracing::{debug, warn};
use wpsmesh_proto::storage::{ByteRange, Durability, NewObject, ObjectId, ObjectInfo};

use super::ChunkStream;
use super::flush::{Flusher, sync_dir};
use crate::config::LocalConfig;
use crate::error::StorageError;

const READ_CHUNK: usize = 256 * 1024;

/// Objects under `root/objects/<first two hex>/<id>`, staging under `root/tmp`.
pub struct Local {
    root: PathBuf,
    flusher: Flusher,
}

/// The metadata file's content.
#[derive(Serialize, Deserialize)]
struct Meta {
    name: String,
    format: String,
    length: u64,
    etag: String,
    content_type: String,
    created_at_ms: u64,
}

/// Removes staged files unless the upload completed.
struct Staged(Vec<PathBuf>);

impl Drop for Staged {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(path = %p.display(), error = %e, "cannot remove staged file");
            }
        }
    }
}

impl Local {
    /// Opens (creating if needed) the directory and clears staging left by a crash; buffered
    /// objects are flushed every `config.sync_interval`.
    pub async fn open(config: &LocalConfig) -> anyhow::Result<Self> {
        let root = &config.root;
        let tmp = root.join("tmp");
        if tmp.exists() {
            tokio::fs::remove_dir_all(&tmp).await?;
        }
        tokio::fs::create_dir_all(&tmp).await?;
        tokio::fs::create_dir_all(root.join("objects")).await?;
        Ok(Self {
            root: root.to_owned(),
            flusher: Flusher::start(config.sync_interval),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_path(&self, id: ObjectId) -> PathBuf {
        let id = id.as_str();
        self.root.join("objects").join(&id[..2]).join(id)
    }

    fn meta_path(&self, id: ObjectId) -> PathBuf {
        self.data_path(id).with_extension("json")
    }

    fn object_name(id: ObjectId) -> String {
        let id = id.as_str();
        format!("objects/{}/{id}", &id[..2])
    }

    pub async fn put(
        &self,
        id: ObjectId,
        meta: &NewObject,
        mut body: ChunkStream,
    ) -> Result<ObjectInfo, StorageError> {
        let stage_data = self.root.join("tmp").join(format!("{id}.data"));
        let stage_meta = self.root.join("tmp").join(format!("{id}.json"));
        let staged = Staged(vec![stage_data.clone(), stage_meta.clone()]);

        let mut file = tokio::fs::File::create(&stage_data).await?;
        let mut md5 = Md5::new();
        let mut length = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            length += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        let synced = meta.durability == Durability::Synced;
        if synced {
            file.sync_data().await?;
        }
        drop(file);

        let created_at = SystemTime::now();
        let record = Meta {
            name: meta.name.clone(),
            format: meta.format.clone(),
            length,
            etag: hex::encode(md5.finalize()),
            content_type: meta.content_type.clone(),
            created_at_ms: created_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| StorageError::Backend(e.to_string()))?;
        let mut file = tokio::fs::File::create(&stage_meta).await?;
        file.write_all(&json).await?;
        if synced {
            file.sync_data().await?;
        } else {
            file.flush().await?;
        }
        drop(file);

        let data_path = self.data_path(id);
        let meta_path = self.meta_path(id);
        let dir = data_path.parent().unwrap_or(&self.root).to_owned();
        let created = !tokio::fs::try_exists(&dir).await?;
        if created {
            tokio::fs::create_dir_all(&dir).await?;
        }
        tokio::fs::rename(&stage_data, &data_path).await?;
        // The metadata file is the commit point: an object without it does not exist.
        tokio::fs::rename(&stage_meta, &meta_path).await?;
        drop(staged);
        if synced {
            let objects = self.root.join("objects");
            tokio::task::spawn_blocking(move || {
                sync_dir(&dir)?;
                if created { sync_dir(&objects) } else { Ok(()) }
            })
            .await
            .map_err(std::io::Error::other)??;
        } else {
            self.flusher.add([data_path, meta_path], &dir);
            if created {
                self.flusher.add([], &self.root.join("objects"));
            }
        }
        debug!(%id, length, ?meta.durability, "object written");
        Ok(to_info(id, record))
    }

    pub async fn stat(&self, id: ObjectId) -> Result<ObjectInfo, StorageError> {
        let raw = match tokio::fs::read(self.meta_path(id)).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(id));
            }
            Err(e) => return Err(e.into()),
        };
        // A machine crash can leave a committed but unflushed object's files empty or short:
        // such an object is lost, and reads as missing rather than as partial bytes.
        let lost = |why: String| {
            warn!(%id, %why, "object lost before it reached the disk");
            StorageError::NotFound(id)
        };
        let meta: Meta =
            serde_json::from_slice(&raw).map_err(|e| lost(format!("unreadable metadata: {e}")))?;
        let on_disk = match tokio::fs::metadata(self.data_path(id)).await {
            Ok(m) => m.len(),
            // Deleted meanwhile (delete removes the metadata first), or lost.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(id));
            }
            Err(e) => return Err(e.into()),
        };
        if on_disk != meta.length {
            return Err(lost(format!(
                "data file has {on_disk} bytes, metadata says {}",
                meta.length
            )));
        }
        Ok(to_info(id, meta))
    }

    /// Flushes every buffered object written so far (what the background task does on its
    /// interval); returns how many files and directories it flushed.
    pub async fn flush(&self) -> Result<usize, StorageError> {
        Ok(self.flusher.flush().await?)
    }

    /// Files and directories of buffered objects not flushed yet.
    pub fn unflushed(&self) -> usize {
        self.flusher.pending()
    }

    pub async fn get(
        &self,
        id: ObjectId,
        range: ByteRange,
    ) -> Result<(ObjectInfo, ChunkStream), StorageError> {
        let info = self.stat(id).await?;
        let (start, len) = range.resolve(info.length)?;
        let mut file = match tokio::fs::File::open(self.data_path(id)).await {
            Ok(f) => f,
            // Deleted between stat and open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(id));
            }
            Err(e) => return Err(e.into()),
        };
        file.seek(SeekFrom::Start(start)).await?;
        let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK)
            .map(|r| r.map_err(StorageError::from))
            .boxed();
        Ok((info, stream))
    }

    pub async fn delete(&self, id: ObjectId) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.meta_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(id));
            }
            Err(e) => return Err(e.into()),
        }
        match tokio::fs::remove_file(self.data_path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn to_info(id: ObjectId, m: Meta) -> ObjectInfo {
    ObjectInfo {
        id,
        name: m.name,
        format: m.format,
        length: m.length,
        object_name: Local::object_name(id),
        etag: m.etag,
        content_type: m.content_type,
        created_at: SystemTime::UNIX_EPOCH + Duration::from_millis(m.created_at_ms),
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
