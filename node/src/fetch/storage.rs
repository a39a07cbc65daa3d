//! Storage references: hrefs to this deployment's own file API
//! (`{public_url}/api/file/retrieve/{id}.{ext}`), read from the storage service over gRPC and
//! never over HTTP.

use std::path::{Path, PathBuf};

use tonic::Code;
use tonic::transport::Channel;
use url::Url;
use wpsmesh_proto::storage::{ObjectId, ObjectInfo, RETRIEVE_PATH as RETRIEVE};
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{DownloadRequest, download_response};

use super::FetchError;
use super::sink::{Sink, SinkError};
use crate::dependency::{Failure, STORAGE};

/// What an href under a public base URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageHref {
    /// A stored object, with the extension the href gives (may be empty).
    Object { id: ObjectId, ext: String },
    /// A path of this service that is not a stored file: refused, never fetched over HTTP.
    Other(String),
}

/// Parses a public base URL: http(s), no query or fragment; its path is made to end in `/`.
pub(crate) fn parse_base(base: &str) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| format!("public url {base:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "public url {base:?} must be an http(s) url with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "public url {base:?} must not have a query or fragment"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether `url` lies under one of `bases` (same scheme, host, port and path prefix), and if
/// so what it names.
pub(crate) fn match_href(bases: &[Url], url: &Url) -> Option<StorageHref> {
    let rest = bases.iter().find_map(|base| {
        let same_origin = base.scheme() == url.scheme()
            && base.host() == url.host()
            && base.port_or_known_default() == url.port_or_known_default();
        same_origin
            .then(|| url.path().strip_prefix(base.path()))
            .flatten()
    })?;
    let Some(file) = rest.strip_prefix(RETRIEVE) else {
        return Some(StorageHref::Other(format!(
            "it points at this service but not at /{RETRIEVE}{{id}}.{{ext}}"
        )));
    };
    let (id, ext) = file.split_once('.').unwrap_or((file, ""));
    let Ok(id) = id.parse::<ObjectId>() else {
        return Some(StorageHref::Other(
            "invalid object id: expected 32 lowercase hexadecimal characters".into(),
        ));
    };
    Some(StorageHref::Object {
        id,
        ext: ext.to_ascii_lowercase(),
    })
}

/// What [`download`] needs besides the object id.
pub(crate) struct Target<'a> {
    pub input: &'a str,
    pub href: &'a str,
    pub dest_dir: &'a Path,
    /// The extension to use; the object's own format when `None`.
    pub ext: Option<String>,
    pub max_bytes: u64,
}

/// Streams object `id` into a fresh file in `t.dest_dir`: the first message must be the object's
/// metadata (its length is checked against the limit at once), then chunks.
pub(crate) async fn download(
    mut client: StorageServiceClient<Channel>,
    id: ObjectId,
    t: Target<'_>,
) -> Result<(PathBuf, ObjectInfo), FetchError> {
    let storage_error = |status: tonic::Status| match Failure::of(&status) {
        Failure::Answered(Code::NotFound, _) => FetchError::NotFound {
            input: t.input.to_owned(),
            id: id.to_string(),
        },
        failure => FetchError::Storage {
            input: t.input.to_owned(),
            id: id.to_string(),
            code: failure.code(),
            message: failure.message(STORAGE),
        },
    };
    let broken = |message: &str| FetchError::Storage {
        input: t.input.to_owned(),
        id: id.to_string(),
        code: Code::Internal,
        message: message.to_owned(),
    };
    let too_large = || FetchError::TooLarge {
        input: t.input.to_owned(),
        url: t.href.to_owned(),
        limit: t.max_bytes,
    };
    let request = DownloadRequest {
        id: id.to_string(),
        offset: 0,
        length: None,
    };
    let mut stream = client
        .download(request)
        .await
        .map_err(storage_error)?
        .into_inner();
    let first = stream.message().await.map_err(storage_error)?;
    let Some(download_response::Part::Object(info)) = first.and_then(|m| m.part) else {
        return Err(broken(
            "the download stream did not start with the object's metadata",
        ));
    };
    let info = ObjectInfo::try_from(info).map_err(|e| broken(&e.0))?;
    if info.length > t.max_bytes {
        return Err(too_large());
    }
    let ext = t
        .ext
        .clone()
        .or_else(|| super::valid_ext(&info.format))
        .unwrap_or_else(|| super::DEFAULT_EXT.to_owned());
    let path = t.dest_dir.join(super::file_name(&ext));
    let mut sink = Sink::create(path, t.max_bytes)
        .await
        .map_err(|e| FetchError::io(t.input, "creating the input file failed", e))?;
    while let Some(message) = stream.message().await.map_err(storage_error)? {
        let Some(download_response::Part::Chunk(chunk)) = message.part else {
            return Err(broken("unexpected message in the download stream"));
        };
        sink.write(&chunk).await.map_err(|e| match e {
            SinkError::TooLarge => too_large(),
            SinkError::Io(e) => FetchError::io(t.input, "writing the input file failed", e),
        })?;
    }
    let (path, written) = sink
        .finish()
        .await
        .map_err(|e| FetchError::io(t.input, "writing the input file failed", e))?;
    if written != info.length {
        // `path` is kept by `finish`; remove it ourselves.
        let _ = std::fs::remove_file(&path);
        return Err(broken(&format!(
            "the stream ended after {written} of {} bytes",
            info.length
        )));
    }
    Ok((path, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn bases() -> Vec<Url> {
        ["http://localhost:9000", "https://maps.example.org/wps"]
            .iter()
            .map(|b| parse_base(b).expect("base"))
            .collect()
    }

    fn matched(href: &str) -> Option<StorageHref> {
        match_href(&bases(), &Url::parse(href).expect("url"))
    }

    #[test]
    fn retrieve_paths_under_public_urls_are_storage_objects() {
        let id: ObjectId = ID.parse().expect("id");
        assert_eq!(
            matched(&format!(
                "http://localhost:9000/api/file/retrieve/{ID}.geojson"
            )),
            Some(StorageHref::Object {
                id,
                ext: "geojson".into()
            })
        );
        assert_eq!(
            matched(&format!(
                "https://maps.example.org:443/wps/api/file/retrieve/{ID}.ZIP"
            )),
            Some(StorageHref::Object {
                id,
                ext: "zip".into()
            })
        );
        assert_eq!(
            matched(&format!("http://LOCALHOST:9000/api/file/retrieve/{ID}")),
            Some(StorageHref::Object {
                id,
                ext: String::new()
            })
        );
    }

    #[test]
    fn other_paths_and_origins() {
        assert!(matches!(
            matched("http://localhost:9000/api/wps?service=WPS"),
            Some(StorageHref::Other(_))
        ));
        assert!(matches!(
            matched("http://localhost:9000/api/file/retrieve/../../etc.zip"),
            Some(StorageHref::Other(_))
        ));
        assert!(matches!(
            matched(&format!(
                "http://localhost:9000/api/file/retrieve/{}.zip",
                ID.to_uppercase()
            )),
            Some(StorageHref::Other(_))
        ));
        assert_eq!(
            matched(&format!("http://localhost:9001/api/file/retrieve/{ID}.zip")),
            None
        );
        assert_eq!(
            matched(&format!(
                "https://localhost:9000/api/file/retrieve/{ID}.zip"
            )),
            None
        );
        assert_eq!(
            matched(&format!(
                "https://maps.example.org/api/file/retrieve/{ID}.zip"
            )),
            None
        );
        assert!(parse_base("ftp://x").is_err());
        assert!(parse_base("http://x/?q=1").is_err());
    }
}
