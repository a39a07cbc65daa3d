//! The format of an input file once it is on disk: the client's claim (a declared media type,
//! else the href's extension) checked against the content's signature, and the file named for
//! what it holds, so QGIS opens it with the right driver.

use std::path::{Path, PathBuf};

use std::io::Read;
use wpsmesh_proto::media::{self, SNIFF_LEN, Sniffed};
use wpsmesh_proto::text;

use super::FetchError;

/// What the client said an input file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The extension the claim implies (`zip`, `geojson`, ...).
    pub extension: String,
    /// Who said so, for messages: `declared as application/zip`, `the href names a .zip file`.
    pub said: String,
}

impl Claim {
    /// A declared media type (or, without one, a declared extension); none when neither
    /// names a format wpsmesh knows.
    pub fn declared(media_type: &str, extension: &str) -> Option<Self> {
        if !media_type.is_empty() {
            let extension = media::extension_for(media_type)?;
            return Some(Self {
                extension: extension.to_owned(),
                said: format!("declared as {}", text::shown(media_type)),
            });
        }
        let extension = super::valid_ext(extension)?;
        Some(Self {
            said: format!("declared as .{extension}"),
            extension,
        })
    }

    /// The extension of an href's path, when it has one.
    pub fn from_href(href: &str) -> Option<Self> {
        let path = url::Url::parse(href).ok()?.path().to_owned();
        Self::from_extension(&wpsmesh_proto::storage::extension_of(&path)?)
    }

    /// The extension the href named a stored object with (the edge turned the href into the
    /// object).
    pub fn from_extension(extension: &str) -> Option<Self> {
        let extension = super::valid_ext(extension)?;
        Some(Self {
            said: format!("the href names a .{extension} file"),
            extension,
        })
    }
}

/// Checks the file at `path` against `claim` and renames it to the extension of what it is:
/// the recognised content's, else the claim's, else the one it has. A recognisable claim
/// that the content contradicts is refused ([`FetchError::FormatMismatch`]). Returns the
/// (possibly new) path.
pub async fn settle(
    input_id: &str,
    path: &Path,
    claim: Option<&Claim>,
) -> Result<PathBuf, FetchError> {
    let io_err = |e| FetchError::io(input_id, "reading the input file failed", e);
    let mut head = Vec::with_capacity(SNIFF_LEN);
    // The first few KiB of a file this node just wrote (in the page cache): read in place,
    // cheaper than a hop to the blocking pool and its wait for a time slice under load.
    std::fs::File::open(path)
        .map_err(io_err)?
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let content = media::sniff(&head);
    if let (Some(claim), Some(content)) = (claim, content)
        && media::is_recognisable(&claim.extension)
        && !content.fits(&claim.extension)
    {
        return Err(FetchError::FormatMismatch {
            input: input_id.to_owned(),
            claim: claim.said.clone(),
            content: content.describe(),
        });
    }
    let extension = match content {
        Some(Sniffed::Xml) | None => claim.map(|c| c.extension.as_str()),
        Some(known) => Some(known.extension()),
    };
    let Some(extension) = extension else {
        return Ok(path.to_owned());
    };
    let current = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if current.eq_ignore_ascii_case(extension) {
        return Ok(path.to_owned());
    }
    let renamed = path.with_extension(extension);
    tokio::fs::rename(path, &renamed)
        .await
        .map_err(|e| FetchError::io(input_id, "naming the input file failed", e))?;
    tracing::debug!(
        input = input_id,
        from = current,
        to = extension,
        "input file named for its content"
    );
    Ok(renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_come_from_media_types_then_hrefs() {
        let c = Claim::declared("application/x-zipped-shp", "").expect("known");
        assert_eq!(c.extension, "zip");
        assert_eq!(c.said, "declared as application/x-zipped-shp");
        assert_eq!(
            Claim::declared("", "GPKG").map(|c| c.extension),
            Some("gpkg".into())
        );
        assert_eq!(Claim::declared("application/x-nothing", ""), None);
        assert_eq!(Claim::declared("", ""), None);
        let h = Claim::from_href("http://h/api/file/retrieve/abc.zip?x=1").expect("ext");
        assert_eq!(h.extension, "zip");
        assert_eq!(h.said, "the href names a .zip file");
        assert_eq!(Claim::from_href("http://h/download"), None);
    }

    #[tokio::test]
    async fn files_are_named_for_their_content_and_contradictions_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let geojson = br#"{"type": "FeatureCollection", "features": []}"#;
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        };
        // No claim: the content decides.
        let p = settle("INPUT", &write("a.dat", geojson), None)
            .await
            .expect("ok");
        assert_eq!(p, dir.path().join("a.geojson"));
        assert!(p.is_file());
        // A fitting claim: kept under the canonical name.
        let json = Claim::declared("application/json", "");
        let p = settle("INPUT", &write("b.json", geojson), json.as_ref())
            .await
            .expect("ok");
        assert_eq!(p, dir.path().join("b.geojson"));
        // A claim the content cannot be checked against: the claim names it.
        let csv = Claim::declared("text/csv", "");
        let p = settle("INPUT", &write("c.dat", b"id,x\n1,2\n"), csv.as_ref())
            .await
            .expect("ok");
        assert_eq!(p, dir.path().join("c.csv"));
        // A contradiction, named both ways; the file is left for the job's cleanup.
        let zip = Claim::declared("application/x-zipped-shp", "");
        let err = settle("INPUT", &write("d.zip", geojson), zip.as_ref())
            .await
            .expect_err("contradiction");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            err.to_string(),
            "input INPUT: declared as application/x-zipped-shp but the content is GeoJSON"
        );
        let href = Claim::from_href("http://h/x.gpkg");
        let err = settle("INPUT", &write("e.gpkg", b"PK\x03\x04rest"), href.as_ref())
            .await
            .expect_err("contradiction");
        assert_eq!(
            err.to_string(),
            "input INPUT: the href names a .gpkg file but the content is a zip archive"
        );
    }
}
