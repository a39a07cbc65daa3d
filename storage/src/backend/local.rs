//! The local directory backend: each object is a data file plus a JSON metadata file, both
//! written under temporary names and renamed into place, metadata last, so a half-written
//! object is never visible. Synced uploads are flushed before the answer, buffered ones (job
//! outputs) by the background [`Flusher`]; a read checks the data file's length against the
//! metadata, so an object a machine crash cut short reads as missing, never as partial.

use std::io::{SeekFrom, Write};
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

/// The end of a put, on a blocking thread: flush the data when synced, write the metadata,
/// rename both into place (metadata last: the commit point), then flush the directory entries
/// (synced) or hand back what the background flush must cover (buffered).
struct Commit {
    synced: bool,
    /// The written data file, its staging path and its final path.
    data: (std::fs::File, PathBuf, PathBuf),
    /// The metadata JSON, its staging path and its final path.
    meta: (Vec<u8>, PathBuf, PathBuf),
    dir: PathBuf,
    objects: PathBuf,
}

/// Files and directories a buffered object leaves to the flusher.
type FlushLater = (Vec<PathBuf>, Vec<PathBuf>);

impl Commit {
    fn run(self) -> std::io::Result<Option<FlushLater>> {
        let (file, stage_data, data_path) = self.data;
        let (json, stage_meta, meta_path) = self.meta;
        if self.synced {
            file.sync_data()?;
        }
        drop(file);
        let mut meta = std::fs::File::create(&stage_meta)?;
        meta.write_all(&json)?;
        if self.synced {
            meta.sync_data()?;
        }
        drop(meta);
        let created = !self.dir.exists();
        if created {
            std::fs::create_dir_all(&self.dir)?;
        }
        std::fs::rename(&stage_data, &data_path)?;
        // The metadata file is the commit point: an object without it does not exist.
        std::fs::rename(&stage_meta, &meta_path)?;
        let mut dirs = vec![self.dir];
        if created {
            dirs.push(self.objects);
        }
        if self.synced {
            dirs.iter().try_for_each(|d| sync_dir(d))?;
            return Ok(None);
        }
        Ok(Some((vec![data_path, meta_path], dirs)))
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

        // Made in place (microseconds); the writes go through the blocking pool.
        let mut file = tokio::fs::File::from_std(std::fs::File::create(&stage_data)?);
        let mut md5 = Md5::new();
        let mut length = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            length += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        // Waits for the last write.
        file.flush().await?;
        let file = file.into_std().await;

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
        let data_path = self.data_path(id);
        let commit = Commit {
            synced: meta.durability == Durability::Synced,
            data: (file, stage_data, data_path.clone()),
            meta: (json, stage_meta, self.meta_path(id)),
            dir: data_path.parent().unwrap_or(&self.root).to_owned(),
            objects: self.root.join("objects"),
        };
        // The commit in one hop to the blocking pool rather than one per step (on a busy
        // machine each hop waits for a time slice).
        let flush_later = tokio::task::spawn_blocking(move || commit.run())
            .await
            .map_err(std::io::Error::other)??;
        drop(staged);
        if let Some((files, dirs)) = flush_later {
            self.flusher.add(files, dirs);
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
