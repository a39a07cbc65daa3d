//! KVP (GET query string) requests, WPS 1.0.0 and 2.0.0: the query split into parameters
//! (names case-insensitive, values percent-decoded) and the operation chosen and checked.

use super::values::{at_most, identifier, quote};
use super::{MAX_INPUTS, kvp_data};
use crate::ows::{OwsCode, OwsError};
use crate::wps::model::{Version, WpsRequest};

/// One parameter: its value as sent and percent-decoded.
#[derive(Debug)]
pub(super) struct Param<'q> {
    pub raw: &'q str,
    pub value: String,
}

/// The parameters of a query, by lowercase name, each given once.
#[derive(Debug)]
pub(super) struct Params<'q> {
    items: Vec<(String, Param<'q>)>,
}

impl<'q> Params<'q> {
    pub fn parse(query: &'q str) -> Result<Self, OwsError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut items: Vec<(String, Param<'q>)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name, true)
                .map_err(|()| OwsError::invalid(raw_name, "parameter name is not UTF-8"))?
                .trim()
                .to_ascii_lowercase();
            let value = decode(raw, true).map_err(|()| {
                OwsError::invalid(&name, format!("{name}: value is not UTF-8 once decoded"))
            })?;
            if items.iter().any(|(n, _)| *n == name) {
                return Err(OwsError::invalid(
                    &name,
                    format!("parameter {name} is given more than once"),
                ));
            }
            items.push((name, Param { raw, value }));
        }
        Ok(Self { items })
    }

    /// A parameter given with a non-blank value.
    pub fn param(&self, name: &str) -> Option<&Param<'q>> {
        self.items
            .iter()
            .find(|(n, p)| n == name && !p.value.trim().is_empty())
            .map(|(_, p)| p)
    }

    /// A parameter's trimmed value, when given and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.param(name).map(|p| p.value.trim())
    }

    /// Like [`get`](Self::get); MissingParameterValue with `locator` otherwise.
    pub fn required(&self, name: &str, locator: &str) -> Result<&str, OwsError> {
        self.get(name).ok_or_else(|| OwsError::missing(locator))
    }
}

/// Percent-decodes `raw`; `+` is a space when `plus_as_space` (query strings). Malformed escapes
/// are kept as they are; the result must be UTF-8.
pub(super) fn decode(raw: &str, plus_as_space: bool) -> Result<String, ()> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Parses a query string into a request.
pub(super) fn parse(query: &str) -> Result<WpsRequest, OwsError> {
    let params = Params::parse(query)?;
    let service = params.required("service", "service")?;
    if !service.eq_ignore_ascii_case("WPS") {
        return Err(OwsError::invalid(
            "service",
            format!("service must be WPS, not {}", quote(service)),
        ));
    }
    let request = params.required("request", "request")?;
    let operation = Operation::from_name(request).ok_or_else(|| {
        OwsError::new(
            OwsCode::OperationNotSupported,
            Some("request"),
            format!("unknown operation {}", quote(request)),
        )
    })?;
    let checked_version = || version(params.required("version", "version")?);
    let job_id = || identifier(params.required("jobid", "jobId")?, "jobId");
    match operation {
        Operation::GetCapabilities => Ok(WpsRequest::GetCapabilities {
            accept_versions: accept_versions(&params),
        }),
        Operation::DescribeProcess => describe(&params, checked_version()?),
        Operation::Execute => match checked_version()? {
            Version::V100 => kvp_data::execute(&params),
            Version::V200 => Err(OwsError::not_supported(
                "request",
                "WPS 2.0.0 Execute is only accepted as an XML document sent with POST",
            )),
        },
        Operation::GetStatus => Ok(WpsRequest::GetStatus {
            version: checked_version()?,
            job_id: job_id()?,
        }),
        Operation::GetResult | Operation::Dismiss => {
            let version = checked_version()?;
            if version == Version::V100 {
                return Err(OwsError::new(
                    OwsCode::OperationNotSupported,
                    Some("request"),
                    format!("{request} is a WPS 2.0.0 operation"),
                ));
            }
            let job_id = job_id()?;
            Ok(if operation == Operation::GetResult {
                WpsRequest::GetResult { version, job_id }
            } else {
                WpsRequest::Dismiss { version, job_id }
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    GetCapabilities,
    DescribeProcess,
    Execute,
    GetStatus,
    GetResult,
    Dismiss,
}

impl Operation {
    fn from_name(name: &str) -> Option<Self> {
        [
            ("GetCapabilities", Self::GetCapabilities),
            ("DescribeProcess", Self::DescribeProcess),
            ("Execute", Self::Execute),
            ("GetStatus", Self::GetStatus),
            ("GetResult", Self::GetResult),
            ("Dismiss", Self::Dismiss),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, op)| op)
    }
}

/// `1.0.0` or `2.0.0`; InvalidParameterValue otherwise.
pub(super) fn version(raw: &str) -> Result<Version, OwsError> {
    match raw.trim() {
        "1.0.0" => Ok(Version::V100),
        "2.0.0" => Ok(Version::V200),
        other => Err(OwsError::invalid(
            "version",
            format!(
                "version {} is not supported; use 1.0.0 or 2.0.0",
                quote(other)
            ),
        )),
    }
}

/// AcceptVersions as given; else a supported `version` (OWSLib sends one); else empty.
fn accept_versions(params: &Params<'_>) -> Vec<String> {
    if let Some(list) = params.get("acceptversions") {
        return list
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
    }
    params
        .get("version")
        .and_then(|v| version(v).ok())
        .map(|v| vec![v.as_str().to_owned()])
        .unwrap_or_default()
}

fn describe(params: &Params<'_>, version: Version) -> Result<WpsRequest, OwsError> {
    let list = params.required("identifier", "identifier")?;
    let identifiers = list
        .split(',')
        .filter(|id| !id.trim().is_empty())
        .map(|id| identifier(id, "identifier"))
        .collect::<Result<Vec<_>, _>>()?;
    at_most(identifiers.len(), MAX_INPUTS, "identifier")?;
    if identifiers.is_empty() {
        return Err(OwsError::missing("identifier"));
    }
    Ok(WpsRequest::DescribeProcess {
        version,
        identifiers: all_or(identifiers, version),
    })
}

/// WPS 1.0.0: `ALL` (any case) among the identifiers asks for every process.
pub(super) fn all_or(identifiers: Vec<String>, version: Version) -> Vec<String> {
    if version == Version::V100 && identifiers.iter().any(|i| i.eq_ignore_ascii_case("ALL")) {
        vec!["ALL".to_owned()]
    } else {
        identifiers
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode("a%20b+c%3d", true).unwrap(), "a b c=");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("50%", true).unwrap(), "50%");
        assert_eq!(decode("%zz%4", true).unwrap(), "%zz%4");
        assert_eq!(decode("%C3%A9", true).unwrap(), "é");
        assert!(decode("%FF", true).is_err());
    }

    #[test]
    fn params_are_case_insensitive_and_unique() {
        let p = Params::parse("?SERVICE=WPS&Request=GetCapabilities&empty=&flag").unwrap();
        assert_eq!(p.get("service"), Some("WPS"));
        assert_eq!(p.get("request"), Some("GetCapabilities"));
        assert_eq!(p.get("empty"), None);
        assert_eq!(p.get("flag"), None);
        let err = Params::parse("service=WPS&Service=WPS").unwrap_err();
        assert_eq!(err.locator.as_deref(), Some("service"));
    }

    #[test]
    fn all_is_only_special_in_1_0_0() {
        let ids = vec!["a".to_owned(), "all".to_owned()];
        assert_eq!(all_or(ids.clone(), Version::V100), vec!["ALL"]);
        assert_eq!(all_or(ids.clone(), Version::V200), ids);
    }
}
