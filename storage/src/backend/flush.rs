//! Background flushing for the local backend: objects acknowledged before they reached the disk
//! (`Durability::Buffered`) have their files and directory entries flushed within the sync
//! interval, in batches, off the request's path.

use std::collections::BTreeSet;
use std::io;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{debug, warn};

/// Files and directories written but not yet flushed.
#[derive(Default)]
struct Pending {
    files: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

/// Flushes what [`Flusher::add`] is given every `interval`, and on drop.
pub(super) struct Flusher {
    pending: Arc<Mutex<Pending>>,
}

impl Flusher {
    /// Starts the flushing task on the current Tokio runtime; it ends with the flusher.
    pub(super) fn start(interval: Duration) -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let weak = Arc::downgrade(&pending);
        tokio::spawn(run(weak, interval));
        Self { pending }
    }

    /// Queues an object's files and the directories holding their names for the next flush.
    pub(super) fn add(&self, files: Vec<PathBuf>, dirs: Vec<PathBuf>) {
        let mut pending = lock(&self.pending);
        pending.files.extend(files);
        pending.dirs.extend(dirs);
    }

    /// Files and directories waiting for a flush.
    pub(super) fn pending(&self) -> usize {
        let pending = lock(&self.pending);
        pending.files.len() + pending.dirs.len()
    }

    /// Flushes everything queued so far; returns how many files and directories were flushed.
    pub(super) async fn flush(&self) -> io::Result<usize> {
        let batch = mem::take(&mut *lock(&self.pending));
        tokio::task::spawn_blocking(move || sync_batch(batch))
            .await
            .map_err(io::Error::other)
    }
}

impl Drop for Flusher {
    /// A clean shutdown leaves nothing unflushed.
    fn drop(&mut self) {
        let batch = mem::take(&mut *lock(&self.pending));
        if !batch.files.is_empty() {
            sync_batch(batch);
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run(pending: Weak<Mutex<Pending>>, interval: Duration) {
    // The first flush one interval from now (a plain interval would tick at once).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pending) = pending.upgrade() else {
            return;
        };
        let batch = mem::take(&mut *lock(&pending));
        drop(pending);
        if batch.files.is_empty() && batch.dirs.is_empty() {
            continue;
        }
        if let Err(e) = tokio::task::spawn_blocking(move || sync_batch(batch)).await {
            warn!(error = %e, "object flush task failed");
        }
    }
}

/// Flushes files (data only) then directories (their entries); a file deleted meanwhile is
/// skipped. Returns how many were flushed.
fn sync_batch(batch: Pending) -> usize {
    let mut flushed = 0;
    for file in &batch.files {
        match std::fs::File::open(file).and_then(|f| f.sync_data()) {
            Ok(()) => flushed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %file.display(), error = %e, "cannot flush object file"),
        }
    }
    for dir in &batch.dirs {
        match sync_dir(dir) {
            Ok(()) => flushed += 1,
            Err(e) => warn!(path = %dir.display(), error = %e, "cannot flush object directory"),
        }
    }
    debug!(flushed, "objects flushed");
    flushed
}

/// Flushes a directory's entries (the names renamed or created in it).
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
