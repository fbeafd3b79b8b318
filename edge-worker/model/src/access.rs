//! Who may send events through the edge: the body's site must be registered on the ingest
//! server, and the request's `Origin` and every page URL must belong to it (CONTRACT §2: 403).
//! The same rules decide which origin gets CORS headers.

use tally_core::wire::{host_belongs_to_site, Batch};

/// Why a request is refused with `403`. `Display` is the message sent in `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forbidden {
    UnknownSite,
    Origin,
    Url { index: usize },
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Forbidden::UnknownSite => f.write_str("site: is not registered"),
            Forbidden::Origin => f.write_str("origin: does not belong to the site"),
            Forbidden::Url { index } => {
                write!(f, "events[{index}].url: does not belong to the site")
            }
        }
    }
}

/// The host of an absolute http(s) URL or of an `Origin` header (`https://host:port`),
/// lower-cased. (Written out rather than using the `url` crate, whose IDNA tables would
/// dominate the worker's bundle; the browser sends hosts already in ASCII/punycode.)
pub fn host_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    // Browsers treat a backslash like `/` in http(s) URLs.
    let authority = rest.split(['/', '\\', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    ok.then(|| host.to_ascii_lowercase())
}

/// The path of a request URL (`https://host/api/event?x` → `/api/event`).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

/// The value of a query parameter of a request URL (no percent-decoding: for plain values).
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Checks a validated batch. `sites` is the list of registered sites, or `None` when the edge
/// has never been able to fetch it: then the ingest server, which refuses unknown sites
/// itself, decides later.
pub fn check(
    batch: &Batch,
    origin: Option<&str>,
    sites: Option<&[String]>,
) -> Result<(), Forbidden> {
    if let Some(sites) = sites {
        if !sites.iter().any(|s| s.eq_ignore_ascii_case(&batch.site)) {
            return Err(Forbidden::UnknownSite);
        }
    }
    // Browsers send `Origin: null` from opaque origins (sandboxed frames, file:); that is no
    // origin of the site.
    if let Some(origin) = origin {
        let ok = host_of(origin).is_some_and(|h| host_belongs_to_site(&h, &batch.site));
        if !ok {
            return Err(Forbidden::Origin);
        }
    }
    for (index, event) in batch.events.iter().enumerate() {
        let ok = host_of(&event.url).is_some_and(|h| host_belongs_to_site(&h, &batch.site));
        if !ok {
            return Err(Forbidden::Url { index });
        }
    }
    Ok(())
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`: the origin itself when
/// its host belongs to a registered site (or to any site while the list is unknown), else none.
pub fn cors_origin<'a>(origin: Option<&'a str>, sites: Option<&[String]>) -> Option<&'a str> {
    let origin = origin?;
    let host = host_of(origin)?;
    let allowed = match sites {
        Some(sites) => sites.iter().any(|s| host_belongs_to_site(&host, s)),
        None => true,
    };
    allowed.then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::wire::parse_batch;

    fn batch(url: &str) -> Batch {
        let body = format!(
            r#"{{"site":"example.com","events":[{{"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"{url}","ts":1}}]}}"#
        );
        parse_batch(body.as_bytes()).expect("valid")
    }

    fn sites() -> Vec<String> {
        vec!["example.com".into(), "other.org".into()]
    }

    #[test]
    fn registered_site_from_its_own_pages_passes() {
        let b = batch("https://www.example.com/a?b=c");
        assert_eq!(
            check(&b, Some("https://www.example.com"), Some(&sites())),
            Ok(())
        );
        assert_eq!(check(&b, None, Some(&sites())), Ok(()));
        assert_eq!(check(&b, None, None), Ok(()));
    }

    #[test]
    fn unknown_site_foreign_origin_and_foreign_url_are_forbidden() {
        let b = batch("https://example.com/");
        assert_eq!(
            check(&b, None, Some(&["other.org".to_string()])),
            Err(Forbidden::UnknownSite)
        );
        assert_eq!(
            check(&b, Some("https://evil.com"), Some(&sites())),
            Err(Forbidden::Origin)
        );
        assert_eq!(
            check(&b, Some("https://notexample.com"), Some(&sites())),
            Err(Forbidden::Origin)
        );
        assert_eq!(check(&b, Some("null"), None), Err(Forbidden::Origin));
        let foreign = batch("https://example.com.evil.com/");
        assert_eq!(
            check(&foreign, None, None),
            Err(Forbidden::Url { index: 0 })
        );
        assert_eq!(
            Forbidden::Url { index: 0 }.to_string(),
            "events[0].url: does not belong to the site"
        );
    }

    #[test]
    fn cors_only_for_registered_origins() {
        let s = sites();
        assert_eq!(
            cors_origin(Some("https://blog.other.org"), Some(&s)),
            Some("https://blog.other.org")
        );
        assert_eq!(cors_origin(Some("https://example.net"), Some(&s)), None);
        assert_eq!(cors_origin(Some("null"), Some(&s)), None);
        assert_eq!(cors_origin(None, Some(&s)), None);
        assert_eq!(
            cors_origin(Some("http://x.test:8080"), None),
            Some("http://x.test:8080")
        );
    }

    #[test]
    fn host_of_strips_port_and_case() {
        assert_eq!(
            host_of("https://WWW.Example.com:8443/x").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(host_of("not a url"), None);
        assert_eq!(
            host_of("https://user:pw@Example.com/"),
            Some("example.com".into())
        );
        assert_eq!(host_of("http://[::1]:8080/"), Some("::1".into()));
        assert_eq!(
            host_of("https://evil.com\\@example.com/"),
            Some("evil.com".into())
        );
        assert_eq!(host_of("ftp://example.com/"), None);
        assert_eq!(host_of("https:///x"), None);
        assert_eq!(host_of("https://example.com?x"), Some("example.com".into()));
    }

    #[test]
    fn paths_and_params_of_request_urls() {
        assert_eq!(path_of("https://edge.test/api/event?x=1"), "/api/event");
        assert_eq!(path_of("https://edge.test"), "/");
        assert_eq!(path_of("https://edge.test/t.js#a"), "/t.js");
        assert_eq!(
            query_param("https://x/take?limit=5&a=b", "limit"),
            Some("5")
        );
        assert_eq!(query_param("https://x/take?limits=5", "limit"), None);
        assert_eq!(query_param("https://x/take", "limit"), None);
    }
}
