//! Zip checks made before anything is extracted: safe entry names, entry types from unix mode
//! bits, and the entry count an archive declares at its end.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// File type bits of a unix mode, and the types that may be extracted.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// What a unix mode says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryType {
    /// A regular file or folder (or no type bits at all, as Windows tools write).
    Plain,
    Symlink,
    /// A device, fifo or socket.
    Special,
}

pub(crate) fn entry_type(unix_mode: Option<u32>) -> EntryType {
    match unix_mode.map(|m| m & S_IFMT) {
        None | Some(0) | Some(S_IFREG) | Some(S_IFDIR) => EntryType::Plain,
        Some(S_IFLNK) => EntryType::Symlink,
        Some(_) => EntryType::Special,
    }
}

/// The relative path an entry name stands for, or why it is refused. Refused: empty names,
/// absolute paths, `..` components, backslashes, drive prefixes and colons, control characters.
/// `.` components and repeated slashes are dropped.
pub(crate) fn safe_relative(name: &str) -> Result<PathBuf, &'static str> {
    if name.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if name.contains('\\') {
        return Err("it contains a backslash");
    }
    if name.starts_with('/') {
        return Err("it is an absolute path");
    }
    if name.contains(':') {
        return Err("it has a drive prefix or a colon");
    }
    let mut path = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("it has a '..' component"),
            part => path.push(part),
        }
    }
    if path.as_os_str().is_empty() {
        return Err("it has an empty name");
    }
    Ok(path)
}

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const EOCD64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const EOCD64_SIG: &[u8; 4] = b"PK\x06\x06";
const EOCD_LEN: usize = 22;
const MAX_COMMENT: usize = 65_535;

/// The largest entry count declared by any end-of-central-directory record (and its zip64
/// form) at the end of the file, read without parsing the central directory, so a huge
/// directory is refused before the zip reader allocates for it. `None` when no record is
/// found (the zip reader then reports the archive as invalid).
pub(crate) fn declared_entries(file: &mut File, len: u64) -> io::Result<Option<u64>> {
    let tail_len = len.min((EOCD_LEN + MAX_COMMENT) as u64);
    let tail_start = len - tail_len;
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(tail_start))?;
    file.read_exact(&mut tail)?;
    let mut most: Option<u64> = None;
    let mut pos = tail.len().saturating_sub(EOCD_LEN) + 1;
    while pos > 0 {
        pos -= 1;
        if tail.get(pos..pos + 4) != Some(EOCD_SIG.as_slice()) {
            continue;
        }
        let Some(record) = tail.get(pos..pos + EOCD_LEN) else {
            continue;
        };
        let mut count = u64::from(u16_at(record, 10));
        if count == 0xffff
            && pos >= 20
            && let Some(n) = zip64_entries(file, &tail[pos - 20..pos])?
        {
            count = count.max(n);
        }
        most = Some(most.map_or(count, |m| m.max(count)));
    }
    Ok(most)
}

/// Reads the zip64 record that a 20-byte locator points at: its total entry count.
fn zip64_entries(file: &mut File, locator: &[u8]) -> io::Result<Option<u64>> {
    if locator.get(..4) != Some(EOCD64_LOCATOR_SIG.as_slice()) {
        return Ok(None);
    }
    let offset = u64_at(locator, 8);
    let mut record = [0u8; 56];
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut record).is_err() {
        return Ok(None);
    }
    if &record[..4] != EOCD64_SIG {
        return Ok(None);
    }
    Ok(Some(u64_at(&record, 32)))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut raw = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        raw.copy_from_slice(s);
    }
    u16::from_le_bytes(raw)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        raw.copy_from_slice(s);
    }
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn entry_names_are_checked() {
        assert_eq!(safe_relative("a.shp"), Ok(PathBuf::from("a.shp")));
        assert_eq!(
            safe_relative("./data//a.shp"),
            Ok(PathBuf::from("data/a.shp"))
        );
        assert_eq!(safe_relative("data/"), Ok(PathBuf::from("data")));
        for (name, why) in [
            ("../evil.shp", "it has a '..' component"),
            ("a/../../evil.shp", "it has a '..' component"),
            ("a/..", "it has a '..' component"),
            ("/etc/evil.shp", "it is an absolute path"),
            ("C:/evil.shp", "it has a drive prefix or a colon"),
            ("C:evil.shp", "it has a drive prefix or a colon"),
            ("..\\evil.shp", "it contains a backslash"),
            ("a\0.shp", "it contains a control character"),
            ("", "it has an empty name"),
            ("./", "it has an empty name"),
        ] {
            assert_eq!(safe_relative(name), Err(why), "{name:?}");
        }
    }

    #[test]
    fn entry_types_come_from_mode_bits() {
        assert_eq!(entry_type(None), EntryType::Plain);
        assert_eq!(entry_type(Some(0o100_644)), EntryType::Plain);
        assert_eq!(entry_type(Some(0o040_755)), EntryType::Plain);
        assert_eq!(entry_type(Some(0o644)), EntryType::Plain);
        assert_eq!(entry_type(Some(0o120_777)), EntryType::Symlink);
        assert_eq!(entry_type(Some(0o020_644)), EntryType::Special);
        assert_eq!(entry_type(Some(0o010_644)), EntryType::Special);
    }

    #[test]
    fn declared_entry_count_is_read_from_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.zip");
        let mut eocd = Vec::from(*EOCD_SIG);
        eocd.extend_from_slice(&[0, 0, 0, 0]); // disk numbers
        eocd.extend_from_slice(&60_000u16.to_le_bytes()); // entries on this disk
        eocd.extend_from_slice(&60_000u16.to_le_bytes()); // entries in total
        eocd.extend_from_slice(&[0; 8]); // directory size and offset
        eocd.extend_from_slice(&0u16.to_le_bytes()); // comment length
        let mut f = File::create(&path).expect("create");
        f.write_all(b"junk").expect("write");
        f.write_all(&eocd).expect("write");
        drop(f);
        let mut f = File::open(&path).expect("open");
        let len = f.metadata().expect("metadata").len();
        assert_eq!(declared_entries(&mut f, len).expect("read"), Some(60_000));
        std::fs::write(&path, b"not a zip").expect("write");
        let mut f = File::open(&path).expect("open");
        assert_eq!(declared_entries(&mut f, 9).expect("read"), None);
    }
}
