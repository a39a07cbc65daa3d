//! Size-limited output files that are removed unless the download completes.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// Why a write to a [`Sink`] failed.
#[derive(Debug)]
pub(crate) enum SinkError {
    /// Writing would pass the limit; nothing past the limit was written.
    TooLarge,
    Io(io::Error),
}

/// A fresh file that accepts at most `limit` bytes. Dropped before [`Sink::finish`] (an error,
/// a timeout, a cancelled job), it removes its file.
pub(crate) struct Sink {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    limit: u64,
}

impl Sink {
    /// Creates `path`, which must not exist yet (no clobbering, no following a planted link).
    pub(crate) async fn create(path: PathBuf, limit: u64) -> io::Result<Self> {
        // Made in place (a directory entry in the job's folder, microseconds); the writes go
        // through the blocking pool, as they may wait on the disk.
        let file = File::from_std(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?,
        );
        Ok(Self {
            path,
            file: Some(file),
            written: 0,
            limit,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`, refusing before the limit would be passed.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let len = bytes.len() as u64;
        if self.written.saturating_add(len) > self.limit {
            return Err(SinkError::TooLarge);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| SinkError::Io(io::Error::other("sink already finished")))?;
        file.write_all(bytes).await.map_err(SinkError::Io)?;
        self.written += len;
        Ok(())
    }

    /// Flushes and keeps the file: its path and size.
    pub(crate) async fn finish(mut self) -> io::Result<(PathBuf, u64)> {
        if let Some(file) = self.file.as_mut() {
            // tokio completes writes in the background: flush waits for the last one.
            file.flush().await?;
        }
        self.file = None;
        Ok((std::mem::take(&mut self.path), self.written))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.file.take().is_some()
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a partial input file");
        }
    }
}
