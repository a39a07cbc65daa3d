//! The one RFC 3339 formatter: times as the protocols write them (`xs:dateTime` in the WPS
//! documents, the JSON job API's `time`), always in UTC with a `Z`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, the range of protobuf
/// timestamps and of four-digit years, relative to the Unix epoch.
const FIRST_MS: i128 = -62_135_596_800_000;
const LAST_MS: i128 = 253_402_300_799_999;

/// `time` as RFC 3339 in UTC with whole seconds, e.g. `2024-05-01T12:00:00Z` (the WPS
/// documents' times).
pub fn rfc3339(time: SystemTime) -> String {
    format(time, false)
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.250Z` (the JSON job
/// API's times).
pub fn rfc3339_millis(time: SystemTime) -> String {
    format(time, true)
}

/// A protobuf timestamp as a `SystemTime` (before the epoch too).
pub fn system_time(ts: &prost_types::Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0));
    match u64::try_from(ts.seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(ts.seconds.unsigned_abs()) + nanos,
    }
}

fn format(time: SystemTime, millis: bool) -> String {
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_millis()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_millis()).unwrap_or(i128::MAX),
    }
    .clamp(FIRST_MS, LAST_MS);
    // Within the clamp both fit an i64.
    let secs = i64::try_from(ms.div_euclid(1000)).unwrap_or_default();
    let ms = ms.rem_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let after = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        // (time, whole seconds, milliseconds)
        let cases = [
            (
                UNIX_EPOCH,
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00.000Z",
            ),
            (
                after(951_782_400_250) + Duration::from_micros(900),
                "2000-02-29T00:00:00Z",
                "2000-02-29T00:00:00.250Z",
            ),
            (
                after(1_700_000_000_999),
                "2023-11-14T22:13:20Z",
                "2023-11-14T22:13:20.999Z",
            ),
            (
                UNIX_EPOCH - Duration::from_millis(1),
                "1969-12-31T23:59:59Z",
                "1969-12-31T23:59:59.999Z",
            ),
        ];
        for (time, seconds, millis) in cases {
            assert_eq!(rfc3339(time), seconds);
            assert_eq!(rfc3339_millis(time), millis);
        }
        let ts = |seconds, nanos| system_time(&prost_types::Timestamp { seconds, nanos });
        assert_eq!(rfc3339(ts(1_735_689_600, 5)), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(ts(-1, 0)), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn times_outside_four_digit_years_are_clamped() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
        let early = UNIX_EPOCH - Duration::from_secs(70_000_000_000);
        assert_eq!(rfc3339(early), "0001-01-01T00:00:00Z");
    }
}
