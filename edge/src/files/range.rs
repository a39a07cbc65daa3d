//! HTTP `Range: bytes=...` for retrieve: one range (`a-b`, `a-`, `-n`) resolved against the
//! object's length. Anything else (other units, several ranges, bad syntax) is ignored and the
//! whole file is sent, as RFC 9110 allows.

/// A single byte range as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// `a-b` (inclusive) or `a-`.
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Parses a `Range` header value; `None` means "ignore it".
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let (unit, set) = value.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
            return None;
        }
        let (first, last) = set.trim().split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        if first.is_empty() {
            return number(last).map(Self::Suffix);
        }
        let start = number(first)?;
        if last.is_empty() {
            return Some(Self::From { start, end: None });
        }
        let end = number(last)?;
        (end >= start).then_some(Self::From {
            start,
            end: Some(end),
        })
    }

    /// `(offset, length)` of the bytes to send from an object of `total` bytes, or `None` when
    /// the range is unsatisfiable (416).
    pub(crate) fn resolve(self, total: u64) -> Option<(u64, u64)> {
        match self {
            Self::From { start, end } => {
                if start >= total {
                    return None;
                }
                let end = end.map_or(total - 1, |e| e.min(total - 1));
                Some((start, end - start + 1))
            }
            Self::Suffix(n) => {
                if n == 0 || total == 0 {
                    return None;
                }
                let len = n.min(total);
                Some((total - len, len))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_ignores_the_rest() {
        assert_eq!(
            RangeSpec::parse("bytes=0-99"),
            Some(RangeSpec::From {
                start: 0,
                end: Some(99)
            })
        );
        assert_eq!(
            RangeSpec::parse("bytes=100-"),
            Some(RangeSpec::From {
                start: 100,
                end: None
            })
        );
        assert_eq!(RangeSpec::parse("bytes=-5"), Some(RangeSpec::Suffix(5)));
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "0-1",
        ] {
            assert_eq!(RangeSpec::parse(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn resolves_against_the_length() {
        let from = |start, end| RangeSpec::From { start, end };
        assert_eq!(from(0, Some(99)).resolve(1000), Some((0, 100)));
        assert_eq!(from(990, Some(2000)).resolve(1000), Some((990, 10)));
        assert_eq!(from(10, None).resolve(1000), Some((10, 990)));
        assert_eq!(from(1000, None).resolve(1000), None);
        assert_eq!(from(0, None).resolve(0), None);
        assert_eq!(RangeSpec::Suffix(10).resolve(1000), Some((990, 10)));
        assert_eq!(RangeSpec::Suffix(5000).resolve(1000), Some((0, 1000)));
        assert_eq!(RangeSpec::Suffix(0).resolve(1000), None);
        assert_eq!(RangeSpec::Suffix(3).resolve(0), None);
    }
}
