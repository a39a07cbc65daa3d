//! The query of `GET /jobs` read into a ListJobs call: `type` (only `process`), `processID`
//! and `status` (repeatable, comma-separated), `datetime` (an RFC 3339 instant or interval,
//! open ends as `..`), `minDuration`/`maxDuration` (seconds), `limit` (1 to 1000) and `next`
//! (a page token); every bad parameter is an InvalidParameterValue naming it.

use std::time::{Duration, SystemTime};

use url::form_urlencoded;
use utoipa::IntoParams;
use wpsmesh_proto::process::{DEFAULT_LIMIT, JobFilter, JobState, ListJobs, MAX_LIMIT};
use wpsmesh_proto::text::shown;

use super::documents::StatusCode;
use crate::ows::OwsError;

/// Longest page token accepted (the job store writes them far shorter).
pub(super) const MAX_TOKEN: usize = 128;

/// The parameters [`parse`] reads, for the OpenAPI document (utoipa takes literals for bounds
/// and defaults: a test checks them against [`DEFAULT_LIMIT`], [`MAX_LIMIT`] and [`MAX_TOKEN`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct JobListParams {
    /// Job types: `process` only (repeatable, comma-separated).
    #[param(rename = "type")]
    kind: Option<Vec<String>>,
    /// Jobs of these processes (repeatable, comma-separated).
    #[param(rename = "processID")]
    process_id: Option<Vec<String>>,
    /// Jobs in these states (repeatable, comma-separated).
    #[param(inline)]
    status: Option<Vec<StatusCode>>,
    /// An instant or interval (RFC 3339, `..` for open ends) the job was created in.
    datetime: Option<String>,
    /// Jobs that ran at least this many seconds (fractions allowed).
    #[param(minimum = 0)]
    min_duration: Option<f64>,
    /// Jobs that ran at most this many seconds (fractions allowed).
    #[param(minimum = 0)]
    max_duration: Option<f64>,
    /// Jobs per page.
    #[param(minimum = 1, maximum = 1000, default = 10)]
    limit: Option<u32>,
    /// The page token of a `next` link.
    #[param(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    next: Option<String>,
}

/// Reads the raw query string (`None` when there is none).
pub(super) fn parse(query: Option<&str>) -> Result<ListJobs, OwsError> {
    let mut list = ListJobs {
        filter: JobFilter::default(),
        limit: DEFAULT_LIMIT,
        page_token: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let bad = |msg: String| OwsError::invalid(&key, format!("{key}: {msg}"));
        let single = matches!(
            key.as_ref(),
            "datetime" | "minDuration" | "maxDuration" | "limit" | "next"
        );
        if single && seen.iter().any(|k| *k == key) {
            return Err(bad("given more than once".into()));
        }
        seen.push(key.to_string());
        match key.as_ref() {
            "type" => {
                for t in parts(&value) {
                    if t != "process" {
                        return Err(bad(format!(
                            "only \"process\" jobs are listed, got {:?}",
                            shown(t)
                        )));
                    }
                }
            }
            "processID" => {
                for p in parts(&value) {
                    if p.is_empty() {
                        return Err(bad("empty process id".into()));
                    }
                    list.filter.process_ids.push(p.to_owned());
                }
            }
            "status" => {
                for s in parts(&value) {
                    list.filter.states.push(state(s).ok_or_else(|| {
                        bad(format!(
                            "unknown status {:?}: expected accepted, running, successful, failed or dismissed",
                            shown(s)
                        ))
                    })?);
                }
            }
            "datetime" => {
                let (from, until) = interval(&value).map_err(bad)?;
                list.filter.created_from = from;
                list.filter.created_until = until;
            }
            "minDuration" => list.filter.min_duration = Some(seconds(&value).map_err(bad)?),
            "maxDuration" => list.filter.max_duration = Some(seconds(&value).map_err(bad)?),
            "limit" => {
                list.limit = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "expected an integer from 1 to {MAX_LIMIT}, got {:?}",
                            shown(&value)
                        ))
                    })?;
            }
            "next" => {
                if value.is_empty()
                    || value.len() > MAX_TOKEN
                    || !value.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(bad("malformed page token".into()));
                }
                list.page_token = Some(value.to_string());
            }
            // Other parameters (`f`, ...) are no filter.
            _ => {}
        }
    }
    if let (Some(min), Some(max)) = (list.filter.min_duration, list.filter.max_duration)
        && min > max
    {
        return Err(OwsError::invalid(
            "maxDuration",
            "maxDuration: shorter than minDuration",
        ));
    }
    Ok(list)
}

/// The comma-separated parts of a value; an empty one is kept (and refused by its reader).
fn parts(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}

/// The job state an OGC status code names.
fn state(code: &str) -> Option<JobState> {
    Some(match code {
        "accepted" => JobState::Accepted,
        "running" => JobState::Running,
        "successful" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "dismissed" => JobState::Dismissed,
        _ => return None,
    })
}

/// Whole or fractional seconds, not negative.
fn seconds(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!(
                "expected seconds (a number, not negative), got {:?}",
                shown(value)
            )
        })
}

/// An instant (from and until both it) or an interval `a/b` with `..` (or nothing) for an
/// open end.
fn interval(value: &str) -> Result<(Option<SystemTime>, Option<SystemTime>), String> {
    let end = |t: &str| -> Result<Option<SystemTime>, String> {
        match t.trim() {
            "" | ".." => Ok(None),
            t => rfc3339(t).map(Some).ok_or_else(|| {
                format!(
                    "expected an RFC 3339 date-time such as 2026-12-01T10:00:00Z, got {:?}",
                    shown(t)
                )
            }),
        }
    };
    let (from, until) = match value.split_once('/') {
        None => {
            let at = end(value)?.ok_or("expected an instant or an interval")?;
            (Some(at), Some(at))
        }
        Some((a, b)) => (end(a)?, end(b)?),
    };
    if let (Some(a), Some(b)) = (from, until)
        && a > b
    {
        return Err("the interval ends before it starts".into());
    }
    Ok((from, until))
}

/// An RFC 3339 date-time (`2026-12-01T10:00:00.5+01:00`), as a point in time.
fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &frac[..digits.min(9)];
        nanos = kept.parse::<u32>().ok()? * 10u32.pow(9 - kept.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (
                num(text.len() - 5..text.len() - 3)?,
                num(text.len() - 2..text.len())?,
            );
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset;
    let epoch = SystemTime::UNIX_EPOCH;
    let at = if secs >= 0 {
        epoch.checked_add(Duration::from_secs(secs as u64))?
    } else {
        epoch.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
    };
    at.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_instants_with_offsets_and_fractions() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(at(0)));
        assert_eq!(rfc3339("2023-11-14T22:13:20Z"), Some(at(1_700_000_000)));
        assert_eq!(
            rfc3339("2023-11-14T23:13:20+01:00"),
            Some(at(1_700_000_000))
        );
        assert_eq!(
            rfc3339("2023-11-14T22:13:20.25Z"),
            Some(at(1_700_000_000) + Duration::from_millis(250))
        );
        assert_eq!(rfc3339("2024-02-29T00:00:00Z"), Some(at(1_709_164_800)));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-11-14",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20",
            "yesterday",
            "2023-11-14T22:13:20.Z",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_every_filter() {
        let l = parse(Some(
            "type=process&processID=native:buffer,native:dissolve&processID=gdal:slope&status=running&status=successful,failed\
             &datetime=2023-11-14T22:13:20Z/..&minDuration=2&maxDuration=10.5&limit=50&next=abc-1&f=json",
        ))
        .unwrap();
        assert_eq!(
            l.filter.process_ids,
            ["native:buffer", "native:dissolve", "gdal:slope"]
        );
        assert_eq!(
            l.filter.states,
            [JobState::Running, JobState::Succeeded, JobState::Failed]
        );
        assert_eq!(
            (l.filter.created_from, l.filter.created_until),
            (Some(at(1_700_000_000)), None)
        );
        assert_eq!(l.filter.min_duration, Some(Duration::from_secs(2)));
        assert_eq!(l.filter.max_duration, Some(Duration::from_millis(10_500)));
        assert_eq!((l.limit, l.page_token.as_deref()), (50, Some("abc-1")));
        let d = parse(Some("datetime=2023-11-14T22:13:20Z")).unwrap();
        assert_eq!(d.filter.created_from, d.filter.created_until);
        let open = parse(Some("datetime=../2023-11-14T22:13:20Z")).unwrap();
        assert_eq!(
            (open.filter.created_from, open.limit),
            (None, DEFAULT_LIMIT)
        );
        assert_eq!(parse(None).unwrap().filter, JobFilter::default());
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (query, locator, reason) in [
            ("type=coverage", "type", "only \"process\""),
            ("processID=a,,b", "processID", "empty process id"),
            ("status=done", "status", "unknown status"),
            ("status=succeeded", "status", "unknown status"),
            ("datetime=soon", "datetime", "RFC 3339"),
            (
                "datetime=2023-11-15T00:00:00Z/2023-11-14T00:00:00Z",
                "datetime",
                "ends before",
            ),
            ("minDuration=-1", "minDuration", "not negative"),
            ("maxDuration=x", "maxDuration", "seconds"),
            ("minDuration=5&maxDuration=1", "maxDuration", "shorter"),
            ("limit=0", "limit", "1 to 1000"),
            ("limit=1001", "limit", "1 to 1000"),
            ("limit=ten", "limit", "1 to 1000"),
            ("limit=5&limit=6", "limit", "more than once"),
            ("next=a%20b", "next", "malformed"),
        ] {
            let e = parse(Some(query)).unwrap_err();
            assert_eq!(e.locator.as_deref(), Some(locator), "{query}");
            assert!(e.text.contains(reason), "{query}: {e}");
        }
    }
}
