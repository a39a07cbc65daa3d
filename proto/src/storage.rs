//! Storage domain types, checked when converted from the wire (`wire::storage::v1`).

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use crate::media::content_type_for;
use crate::wire::storage::v1 as wire;

pub mod client;
mod upload;

/// Largest chunk accepted in an upload stream and sent in a download stream.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// A wire message that failed validation; maps to `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMessage(pub String);

impl From<InvalidMessage> for tonic::Status {
    fn from(e: InvalidMessage) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}

/// An object id: exactly 32 lowercase hexadecimal characters, so it is always a safe file name
/// and object key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 32]);

impl ObjectId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut raw = [0u8; 16];
        fill_random(&mut raw);
        let mut out = [0u8; 32];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in raw.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 0xf) as usize];
        }
        Self(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Random bytes from the OS, with a time-and-counter fallback that still never repeats in-process.
fn fill_random(buf: &mut [u8; 16]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
    {
        return;
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    buf[..8].copy_from_slice(&nanos.to_le_bytes());
    buf[8..].copy_from_slice(&(n ^ u64::from(std::process::id())).to_le_bytes());
}

impl FromStr for ObjectId {
    type Err = InvalidMessage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            let shown: String = s.chars().take(64).collect();
            return Err(InvalidMessage(format!(
                "invalid object id {shown:?}: expected 32 lowercase hexadecimal characters"
            )));
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.as_str())
    }
}

/// What a client says about a file it is about to upload, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    /// Original file name (metadata only, never a path).
    pub name: String,
    /// Lowercase extension without the dot; may be empty.
    pub format: String,
    pub content_type: String,
    /// Declared length, when the client gave one.
    pub length: Option<u64>,
    /// What the acknowledged object must survive.
    pub durability: Durability,
}

/// What an acknowledged upload survives (the wire enum's meaning, see `storage.proto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the answer: survives a crash of the storage process and of the machine.
    #[default]
    Synced,
    /// Committed before the answer, on disk within the backend's sync interval: survives a
    /// storage process crash at once, a machine crash after the interval (job outputs).
    Buffered,
}

impl From<wire::Durability> for Durability {
    fn from(d: wire::Durability) -> Self {
        match d {
            wire::Durability::Buffered => Self::Buffered,
            wire::Durability::Unspecified | wire::Durability::Synced => Self::Synced,
        }
    }
}

impl From<Durability> for wire::Durability {
    fn from(d: Durability) -> Self {
        match d {
            Durability::Synced => Self::Synced,
            Durability::Buffered => Self::Buffered,
        }
    }
}

const MAX_NAME: usize = 255;

impl TryFrom<wire::UploadMetadata> for NewObject {
    type Error = InvalidMessage;

    fn try_from(m: wire::UploadMetadata) -> Result<Self, Self::Error> {
        if m.name.len() > MAX_NAME || m.name.chars().any(char::is_control) {
            return Err(InvalidMessage(format!(
                "invalid file name: at most {MAX_NAME} bytes without control characters"
            )));
        }
        let format = if m.format.is_empty() {
            extension_of(&m.name).unwrap_or_default()
        } else {
            valid_extension(&m.format).ok_or_else(|| {
                InvalidMessage(format!(
                    "invalid format {:?}: expected a file extension of at most 16 letters or digits",
                    m.format
                ))
            })?
        };
        let content_type = if m.content_type.is_empty() {
            content_type_for(&format).to_owned()
        } else {
            m.content_type
        };
        if content_type.len() > 255 || !content_type.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(InvalidMessage("invalid content type".into()));
        }
        Ok(Self {
            name: m.name,
            format,
            content_type,
            length: m.length,
            // An unknown value (a newer client) is taken as the safest.
            durability: wire::Durability::try_from(m.durability)
                .unwrap_or(wire::Durability::Synced)
                .into(),
        })
    }
}

/// The file API path under a public URL where stored objects are served, as
/// `{RETRIEVE_PATH}{id}.{ext}`.
pub const RETRIEVE_PATH: &str = "api/file/retrieve/";

/// Where a stored object is served: `{public_url}/api/file/retrieve/{id}.{ext}` (just `{id}`
/// when it has no extension). Nodes read hrefs of this shape straight from storage.
pub fn retrieve_url(public_url: &str, id: &str, format: &str) -> String {
    let base = public_url.trim_end_matches('/');
    if format.is_empty() {
        format!("{base}/{RETRIEVE_PATH}{id}")
    } else {
        format!("{base}/{RETRIEVE_PATH}{id}.{format}")
    }
}

/// A file extension as wpsmesh accepts one: 1 to 16 ASCII letters or digits, lowercased (a
/// leading dot is dropped). Anything else could not be a safe file name suffix.
pub fn valid_extension(ext: &str) -> Option<String> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    let ok = !ext.is_empty() && ext.len() <= 16 && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| ext.to_ascii_lowercase())
}

/// The lowercase extension of a file name, if it has a valid one.
pub fn extension_of(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    valid_extension(base.rsplit_once('.')?.1)
}

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub id: ObjectId,
    pub name: String,
    pub format: String,
    pub length: u64,
    pub object_name: String,
    pub etag: String,
    pub content_type: String,
    pub created_at: SystemTime,
}

impl From<ObjectInfo> for wire::ObjectInfo {
    fn from(o: ObjectInfo) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name,
            format: o.format,
            length: o.length,
            object_name: o.object_name,
            etag: o.etag,
            content_type: o.content_type,
            created_at: Some(o.created_at.into()),
        }
    }
}

impl TryFrom<wire::ObjectInfo> for ObjectInfo {
    type Error = InvalidMessage;

    fn try_from(o: wire::ObjectInfo) -> Result<Self, Self::Error> {
        let created_at = o
            .created_at
            .map(SystemTime::try_from)
            .transpose()
            .map_err(|e| InvalidMessage(format!("invalid created_at: {e}")))?
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Self {
            id: o.id.parse()?,
            name: o.name,
            format: o.format,
            length: o.length,
            object_name: o.object_name,
            etag: o.etag,
            content_type: o.content_type,
            created_at,
        })
    }
}

/// A byte range of an object: `offset` and at most `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteRange {
    pub offset: u64,
    pub length: Option<u64>,
}

impl ByteRange {
    /// Resolves the range against an object's length: `(start, len)`, or an error when the
    /// offset lies past the end.
    pub fn resolve(self, object_len: u64) -> Result<(u64, u64), InvalidMessage> {
        if self.offset > object_len {
            return Err(InvalidMessage(format!(
                "offset {} is past the end of the object ({object_len} bytes)",
                self.offset
            )));
        }
        let left = object_len - self.offset;
        Ok((self.offset, self.length.map_or(left, |l| l.min(left))))
    }
}

/// A checked download request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadSpec {
    pub id: ObjectId,
    pub range: ByteRange,
}

impl TryFrom<wire::DownloadRequest> for DownloadSpec {
    type Error = InvalidMessage;

    fn try_from(r: wire::DownloadRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id.parse()?,
            range: ByteRange {
                offset: r.offset,
                length: r.length,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_32_lowercase_hex() {
        let id = ObjectId::random();
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(id.as_str().parse::<ObjectId>(), Ok(id));
        assert_ne!(ObjectId::random(), id);
        for bad in [
            "../etc/passwd",
            "",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef/123456789abcdef",
        ] {
            let err = bad.parse::<ObjectId>().expect_err(bad);
            assert!(err.0.contains("invalid object id"), "{err}");
        }
    }

    #[test]
    fn upload_metadata_is_checked_and_completed() {
        let meta = NewObject::try_from(wire::UploadMetadata {
            name: "Countries.GeoJSON".into(),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(meta.format, "geojson");
        assert_eq!(meta.content_type, "application/geo+json");
        let err = NewObject::try_from(wire::UploadMetadata {
            name: "x".into(),
            format: "../../x".into(),
            ..Default::default()
        })
        .expect_err("bad format");
        assert!(err.0.contains("invalid format"));
        assert!(
            NewObject::try_from(wire::UploadMetadata {
                name: "a\nb".into(),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn durability_defaults_to_synced() {
        let with = |durability: i32| {
            NewObject::try_from(wire::UploadMetadata {
                name: "out.geojson".into(),
                durability,
                ..Default::default()
            })
            .expect("valid")
            .durability
        };
        assert_eq!(
            with(wire::Durability::Buffered as i32),
            Durability::Buffered
        );
        assert_eq!(with(wire::Durability::Synced as i32), Durability::Synced);
        // Unset, or a value this build does not know: the safe one.
        assert_eq!(with(0), Durability::Synced);
        assert_eq!(with(7), Durability::Synced);
    }

    #[test]
    fn ranges_resolve_against_length() {
        let r = ByteRange {
            offset: 10,
            length: Some(100),
        };
        assert_eq!(r.resolve(50), Ok((10, 40)));
        assert_eq!(ByteRange::default().resolve(0), Ok((0, 0)));
        assert!(
            ByteRange {
                offset: 51,
                length: None
            }
            .resolve(50)
            .is_err()
        );
    }
}
