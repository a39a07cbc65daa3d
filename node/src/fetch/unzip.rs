//! Zip archives (zipped ESRI shapefiles above all) unpacked into a fresh directory under
//! limits on entries, bytes actually written and compression ratio; unsafe entries are refused
//! and a failed unpack leaves nothing behind.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use wpsmesh_proto::storage::ObjectId;
use wpsmesh_proto::text;
use zip::ZipArchive;
use zip::result::ZipError;

use super::FetchError;
use super::config::ZipLimits;
use super::zipsafe::{EntryType, declared_entries, entry_type, safe_relative};

/// Ratios are enforced once this many bytes were written (per entry, and for the archive), so
/// small, very compressible files pass.
const RATIO_GRACE: u64 = 1024 * 1024;
const BUF: usize = 64 * 1024;

/// Why a zip is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipRefusal {
    #[error("not a valid zip archive: {0}")]
    Invalid(String),
    #[error("zip has more than {0} entries")]
    TooManyEntries(u64),
    #[error("zip expands to more than {0} bytes")]
    TooLarge(u64),
    #[error("zip entry {name:?} expands more than {limit} times its compressed size")]
    Ratio { name: String, limit: u64 },
    #[error("zip expands more than {0} times its own size")]
    ArchiveRatio(u64),
    #[error("zip entry {name:?} is refused: {why}")]
    UnsafePath { name: String, why: &'static str },
    #[error("zip entry {0:?} is a symbolic link")]
    Symlink(String),
    #[error("zip entry {0:?} is not a regular file or folder")]
    Special(String),
    #[error("zip entry {0:?} appears more than once")]
    Duplicate(String),
    #[error("zip entry {0:?} conflicts with another entry or cannot be a file name")]
    Conflict(String),
    #[error("zip entry {0:?} is encrypted")]
    Encrypted(String),
    #[error("zip contains no .shp file")]
    NoShapefile,
    #[error("zip holds {count} shapefiles ({names}) and this input takes one layer")]
    SeveralShapefiles { count: usize, names: String },
}

/// An unpacked archive: its fresh directory and the files written, relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unzipped {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Unpacks `zip_path` into a fresh directory created inside `dest_dir`. On any refusal or
/// error the fresh directory is removed again. Blocking: run it off the async runtime.
pub fn unzip(
    input_id: &str,
    zip_path: &Path,
    dest_dir: &Path,
    limits: &ZipLimits,
) -> Result<Unzipped, FetchError> {
    let refuse = |reason| FetchError::Zip {
        input: input_id.to_owned(),
        reason,
    };
    let io_err = |context, e| FetchError::io(input_id, context, e);
    let mut file = File::open(zip_path).map_err(|e| io_err("opening the zip failed", e))?;
    let zip_len = file
        .metadata()
        .map_err(|e| io_err("opening the zip failed", e))?
        .len();
    let max_entries = limits.max_entries as u64;
    let declared = declared_entries(&mut file, zip_len)
        .map_err(|e| refuse(ZipRefusal::Invalid(e.to_string())))?;
    if declared.is_some_and(|n| n > max_entries) {
        return Err(refuse(ZipRefusal::TooManyEntries(max_entries)));
    }
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| refuse(ZipRefusal::Invalid(e.to_string())))?;
    if archive.len() as u64 > max_entries {
        return Err(refuse(ZipRefusal::TooManyEntries(max_entries)));
    }
    let dir = dest_dir.join(format!("unzip-{}", ObjectId::random()));
    fs::create_dir(&dir).map_err(|e| io_err("creating the unzip folder failed", e))?;
    match extract(&mut archive, &dir, limits, zip_len) {
        Ok(files) => {
            tracing::debug!(input = input_id, dir = %dir.display(), files = files.len(), "zip unpacked");
            Ok(Unzipped { dir, files })
        }
        Err(e) => {
            if let Err(rm) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %rm, "could not remove a failed unzip folder");
            }
            Err(match e {
                Failure::Refused(reason) => refuse(reason),
                Failure::Io(e) => io_err("unpacking the zip failed", e),
            })
        }
    }
}

/// Unpacks zipped shapefiles and returns the paths of their `.shp` files, at the top level
/// or in folders, sorted by path. Without `several`, a zip holding more than one shapefile is
/// refused (which one was meant cannot be guessed). On refusal nothing unpacked remains.
/// Blocking: run it off the async runtime.
pub fn unzip_shapefiles(
    input_id: &str,
    zip_path: &Path,
    dest_dir: &Path,
    limits: &ZipLimits,
    several: bool,
) -> Result<Vec<PathBuf>, FetchError> {
    let unzipped = unzip(input_id, zip_path, dest_dir, limits)?;
    let mut found: Vec<&PathBuf> = unzipped.files.iter().filter(|p| is_shapefile(p)).collect();
    found.sort();
    let refusal = match found.len() {
        0 => Some(ZipRefusal::NoShapefile),
        n if n > 1 && !several => Some(ZipRefusal::SeveralShapefiles {
            count: n,
            names: found
                .iter()
                .take(5)
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        _ => None,
    };
    if let Some(reason) = refusal {
        if let Err(rm) = fs::remove_dir_all(&unzipped.dir) {
            tracing::warn!(dir = %unzipped.dir.display(), error = %rm, "could not remove a refused unzip folder");
        }
        return Err(FetchError::Zip {
            input: input_id.to_owned(),
            reason,
        });
    }
    Ok(found.into_iter().map(|p| unzipped.dir.join(p)).collect())
}

/// A `.shp` that is not macOS metadata (`__MACOSX/`, `._name.shp`).
fn is_shapefile(path: &Path) -> bool {
    let shp = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("shp"));
    let name_ok = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with("._"));
    let macos = path.components().any(|c| c.as_os_str() == "__MACOSX");
    shp && name_ok && !macos
}

enum Failure {
    Refused(ZipRefusal),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ZipRefusal> for Failure {
    fn from(r: ZipRefusal) -> Self {
        Self::Refused(r)
    }
}

fn extract<R: Read + io::Seek>(
    archive: &mut ZipArchive<R>,
    dir: &Path,
    limits: &ZipLimits,
    zip_len: u64,
) -> Result<Vec<PathBuf>, Failure> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; BUF];
    for index in 0..archive.len() {
        let name = text::shown(archive.name_for_index(index).unwrap_or_default()).into_owned();
        let mut entry = archive.by_index(index).map_err(|e| match e {
            ZipError::UnsupportedArchive(m) if m == ZipError::PASSWORD_REQUIRED => {
                ZipRefusal::Encrypted(name.clone())
            }
            e => ZipRefusal::Invalid(e.to_string()),
        })?;
        let rel = safe_relative(entry.name()).map_err(|why| ZipRefusal::UnsafePath {
            name: name.clone(),
            why,
        })?;
        match entry_type(entry.unix_mode()) {
            EntryType::Plain => {}
            EntryType::Symlink => return Err(ZipRefusal::Symlink(name).into()),
            EntryType::Special => return Err(ZipRefusal::Special(name).into()),
        }
        if !seen.insert(rel.clone()) {
            return Err(ZipRefusal::Duplicate(name).into());
        }
        // Inside the fresh folder, failing to create a path means the archive is at fault:
        // a file where a folder should be (or the reverse), or a name the system refuses.
        let conflict = |e: io::Error| match e.kind() {
            io::ErrorKind::AlreadyExists
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::InvalidFilename => {
                Failure::Refused(ZipRefusal::Conflict(name.clone()))
            }
            _ => Failure::Io(e),
        };
        let path = dir.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&path).map_err(conflict)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(conflict)?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(conflict)?;
        let compressed = entry.compressed_size().max(1);
        let mut written: u64 = 0;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ZipRefusal::Invalid(format!("entry {name:?}: {e}")).into()),
            };
            written += n;
            total += n;
            if total > limits.max_total_bytes {
                return Err(ZipRefusal::TooLarge(limits.max_total_bytes).into());
            }
            if written > RATIO_GRACE && written > compressed.saturating_mul(limits.max_ratio) {
                return Err(ZipRefusal::Ratio {
                    name,
                    limit: limits.max_ratio,
                }
                .into());
            }
            if total > RATIO_GRACE && total > zip_len.saturating_mul(limits.max_ratio) {
                return Err(ZipRefusal::ArchiveRatio(limits.max_ratio).into());
            }
            let chunk = buf.get(..n as usize).unwrap_or_default();
            out.write_all(chunk)?;
        }
        files.push(rel);
    }
    Ok(files)
}
