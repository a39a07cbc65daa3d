//! `Accept-Encoding` (RFC 9110 §12.5.3), parsed once per request and asked which of the
//! codings a response has to offer the client prefers: the highest q-value wins, ties go to
//! the server's order ([`Encoding::PREFERRED`] for cached documents: br, gzip, identity;
//! [`Encoding::PER_RESPONSE`] for the rest: gzip, br, identity). No header, or an empty one, is identity; identity
//! is acceptable unless `identity;q=0` (or `*;q=0` without identity) refuses it, and then only
//! at the lowest weight, so any coding the client names beats it. When the client refuses
//! everything offered, identity is sent anyway (the RFC allows it; a 415 helps no one).

use axum::http::{HeaderMap, header};

/// A content coding the edge can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Br,
}

impl Encoding {
    /// Every coding, in the server's order of preference for a document compressed once:
    /// br is smaller and costs nothing more per request.
    pub const PREFERRED: [Self; 3] = [Self::Br, Self::Gzip, Self::Identity];
    /// The order for an answer compressed per response: gzip first, br (many times gzip's
    /// CPU at a fast level, see `codec`) only for a client that prefers it.
    pub const PER_RESPONSE: [Self; 3] = [Self::Gzip, Self::Br, Self::Identity];

    /// The token in `Content-Encoding` and `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Br => "br",
        }
    }
}

/// At most this many entries of `Accept-Encoding` are read; the rest are ignored.
const MAX_ENTRIES: usize = 32;

/// What the client accepts, as q-values in thousandths (0..=1000); `None` when not named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    /// Whether the request had a non-empty `Accept-Encoding` at all.
    present: bool,
    gzip: Option<u16>,
    br: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

impl AcceptEncoding {
    /// The `Accept-Encoding` of `headers` (every field line of it, joined).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut accept = Self::default();
        let entries = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .take(MAX_ENTRIES);
        for entry in entries {
            accept.present = true;
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let Some(q) = qvalue(parts) else {
                continue;
            };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut accept.gzip
                } else if coding.eq_ignore_ascii_case("br") {
                    &mut accept.br
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut accept.identity
                } else if coding == "*" {
                    &mut accept.any
                } else {
                    continue;
                };
            // A coding named twice keeps its highest weight.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        accept
    }

    /// The `Accept-Encoding` of one header value (tests, benches).
    pub fn parse(value: &str) -> Self {
        let mut headers = HeaderMap::new();
        if let Ok(v) = value.parse() {
            headers.insert(header::ACCEPT_ENCODING, v);
        }
        Self::from_headers(&headers)
    }

    /// The client's weight for `encoding` (0 = refused); identity unnamed weighs 1, the least.
    fn weight(&self, encoding: Encoding) -> u16 {
        if !self.present {
            return if encoding == Encoding::Identity {
                1000
            } else {
                0
            };
        }
        let named = match encoding {
            Encoding::Identity => self.identity,
            Encoding::Gzip => self.gzip,
            Encoding::Br => self.br,
        };
        match (named, encoding) {
            (Some(q), _) => q,
            (None, Encoding::Identity) => match self.any {
                Some(0) => 0,
                _ => 1,
            },
            (None, _) => self.any.unwrap_or(0),
        }
    }

    /// Which of `offered` (in the server's order of preference) to answer with; identity when
    /// the client accepts none of them.
    pub fn choose(&self, offered: &[Encoding]) -> Encoding {
        let mut best = (0, Encoding::Identity);
        for &encoding in offered {
            let weight = self.weight(encoding);
            if weight > best.0 {
                best = (weight, encoding);
            }
        }
        best.1
    }

    /// Whether the client can take `encoding` at all.
    pub fn accepts(&self, encoding: Encoding) -> bool {
        self.weight(encoding) > 0
    }
}

/// The q-value among the parameters of one entry, in thousandths: 1000 when absent, `None`
/// when malformed (the entry is then ignored).
fn qvalue<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
        q = match whole {
            "0" => thousandths,
            "1" if thousandths == 0 => 1000,
            _ => return None,
        };
    }
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::Encoding::{Br, Gzip, Identity};
    use super::*;

    const ALL: [Encoding; 3] = Encoding::PREFERRED;

    fn chosen(value: &str) -> Encoding {
        AcceptEncoding::parse(value).choose(&ALL)
    }

    #[test]
    fn no_header_or_an_empty_one_is_identity() {
        assert_eq!(
            AcceptEncoding::from_headers(&HeaderMap::new()).choose(&ALL),
            Identity
        );
        assert_eq!(chosen(""), Identity);
        assert_eq!(chosen(" , "), Identity);
        // Control: the same request naming gzip gets it.
        assert_eq!(chosen("gzip"), Gzip);
    }

    #[test]
    fn server_order_breaks_ties() {
        assert_eq!(chosen("gzip, deflate, br"), Br);
        assert_eq!(chosen("gzip, br"), Br);
        assert_eq!(chosen("*"), Br);
        assert_eq!(chosen("GZIP"), Gzip);
        assert_eq!(chosen("x-gzip"), Gzip);
        assert_eq!(chosen("deflate, zstd"), Identity);
        // Per response gzip goes first at equal weight, br when weighed higher.
        let per_response = |v| AcceptEncoding::parse(v).choose(&Encoding::PER_RESPONSE);
        assert_eq!(per_response("gzip, deflate, br"), Gzip);
        assert_eq!(per_response("gzip;q=0.9, br"), Br);
        assert_eq!(per_response("br"), Br);
        // Offered gzip and identity only (br not offered): gzip.
        assert_eq!(
            AcceptEncoding::parse("br, gzip").choose(&[Gzip, Identity]),
            Gzip
        );
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(chosen("br;q=0.5, gzip;q=0.8"), Gzip);
        assert_eq!(chosen("br;q=1.0, gzip;q=0.999"), Br);
        assert_eq!(chosen("gzip;q=0.5, identity"), Identity);
        assert_eq!(chosen("gzip;q=0.001"), Gzip);
        assert_eq!(chosen("*;q=0.3, br;q=0.2"), Gzip);
        assert_eq!(chosen("gzip ; q = 0.7"), Gzip);
        // Named twice: the higher weight.
        assert_eq!(chosen("br;q=0, br;q=0.9, gzip;q=0.5"), Br);
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(chosen("gzip;q=0"), Identity);
        assert_eq!(chosen("gzip;q=0.000"), Identity);
        assert_eq!(chosen("br;q=0, gzip"), Gzip);
        assert_eq!(chosen("*;q=0, gzip"), Gzip);
        assert_eq!(chosen("*, br;q=0"), Gzip);
        assert!(!AcceptEncoding::parse("identity;q=0, gzip").accepts(Identity));
        assert!(!AcceptEncoding::parse("*;q=0").accepts(Identity));
        assert!(AcceptEncoding::parse("*;q=0, identity").accepts(Identity));
        // Everything refused: identity all the same.
        assert_eq!(chosen("*;q=0"), Identity);
        assert_eq!(chosen("identity;q=0, br;q=0, gzip;q=0"), Identity);
        // Control: identity refused but gzip accepted.
        assert_eq!(chosen("identity;q=0, gzip"), Gzip);
    }

    #[test]
    fn malformed_entries_are_ignored() {
        assert_eq!(chosen("br;q=2, gzip"), Gzip);
        assert_eq!(chosen("br;q=0.5000, gzip;q=0.1"), Gzip);
        assert_eq!(chosen("br;q=abc"), Identity);
        assert_eq!(chosen("br;q=-1"), Identity);
        assert_eq!(chosen("br;q"), Identity);
        assert_eq!(chosen("br;q=1.5"), Identity);
        assert_eq!(chosen("gzip;level=1"), Gzip);
        // Control: the well-formed form of each.
        assert_eq!(chosen("br;q=1"), Br);
    }

    #[test]
    fn entries_past_the_limit_are_not_read() {
        let filler = vec!["x-unknown"; MAX_ENTRIES].join(", ");
        assert_eq!(chosen(&format!("{filler}, gzip")), Identity);
        let fewer = vec!["x-unknown"; MAX_ENTRIES - 1].join(", ");
        assert_eq!(chosen(&format!("{fewer}, gzip")), Gzip);
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::ACCEPT_ENCODING,
            "br;q=0".parse().unwrap_or_else(|_| unreachable!()),
        );
        headers.append(
            header::ACCEPT_ENCODING,
            "gzip".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(AcceptEncoding::from_headers(&headers).choose(&ALL), Gzip);
    }
}
