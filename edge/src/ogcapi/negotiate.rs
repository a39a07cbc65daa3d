//! Content negotiation and query parameters of the OGC API's JSON answers: JSON when the
//! request sends no `Accept` (OWSLib sends none) or accepts it, 406 when it accepts only what
//! the edge cannot give (HTML is a separate issue); `f=json` is the only format parameter.

use axum::http::{HeaderMap, header};

use super::Problem;

/// Media type of OGC API JSON documents.
pub const JSON: &str = "application/json";

/// The query parameters of `raw`, decoded, in order.
pub fn query(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of parameter `name` in `params`, if given.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The query parameters of a request answered in JSON only, once it is known to accept JSON.
pub fn json_only(headers: &HeaderMap, raw: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    let params = query(raw);
    accepts(headers, param(&params, "f"), &[JSON])?;
    Ok(params)
}

/// Checks that the request accepts one of `offered` (media types, the first the one answered):
/// through `f` (`json` or one of the media types) or its `Accept` header.
pub fn accepts(headers: &HeaderMap, f: Option<&str>, offered: &[&str]) -> Result<(), Problem> {
    if let Some(f) = f {
        let f = f.trim();
        return if f.eq_ignore_ascii_case("json") || offered.iter().any(|o| same_type(o, f)) {
            Ok(())
        } else {
            Err(Problem::not_acceptable(&format!("f={f}"), offered))
        };
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(());
    }
    let acceptable = accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused
            && (essence == "*/*"
                || essence == "application/*"
                || offered.iter().any(|o| same_type(o, &essence)))
    });
    if acceptable {
        Ok(())
    } else {
        Err(Problem::not_acceptable(&accept, offered))
    }
}

/// Whether media types `a` and `b` have the same essence (parameters ignored).
fn same_type(a: &str, b: &str) -> bool {
    let essence = |m: &str| {
        m.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    essence(a) == essence(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn json_by_default_and_when_accepted() {
        assert!(accepts(&HeaderMap::new(), None, &[JSON]).is_ok());
        assert!(accepts(&with_accept("application/json"), None, &[JSON]).is_ok());
        assert!(accepts(&with_accept("*/*"), None, &[JSON]).is_ok());
        // A browser's Accept ends in */*: JSON until HTML lands.
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(accepts(&with_accept(browser), None, &[JSON]).is_ok());
        assert!(accepts(&HeaderMap::new(), Some("json"), &[JSON]).is_ok());
        let openapi = "application/vnd.oai.openapi+json;version=3.0";
        assert!(accepts(&with_accept(openapi), None, &[openapi, JSON]).is_ok());
    }

    #[test]
    fn only_unavailable_types_are_refused() {
        let refused = accepts(&with_accept("text/html"), None, &[JSON]).expect_err("html only");
        assert_eq!(refused.status(), axum::http::StatusCode::NOT_ACCEPTABLE);
        assert!(refused.body().detail.contains("text/html"));
        assert!(
            accepts(
                &with_accept("application/json;q=0, text/html"),
                None,
                &[JSON]
            )
            .is_err()
        );
        assert!(accepts(&HeaderMap::new(), Some("html"), &[JSON]).is_err());
    }

    #[test]
    fn query_parameters_are_decoded() {
        let q = query(Some("limit=5&processID=native%3Abuffer&f=json"));
        assert_eq!(param(&q, "processID"), Some("native:buffer"));
        assert_eq!(param(&q, "limit"), Some("5"));
        assert_eq!(param(&q, "next"), None);
    }
}
