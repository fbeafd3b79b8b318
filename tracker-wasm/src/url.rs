//! URL handling on absolute URLs such as `location.href` and `a.href`, which the browser has
//! already resolved and normalised: splitting, the host, local pages, and cleaning.

use alloc::string::String;

/// Longest page or referrer URL the collector accepts, in bytes (`tally_core::wire::MAX_URL`).
pub const MAX_URL: usize = 2048;

/// The parts of an absolute URL: `scheme://authority` + `path` + `?query` + `#fragment`.
pub struct Parts<'a> {
    /// `scheme://authority`.
    pub origin: &'a str,
    /// The authority alone: `user@host:port`.
    pub authority: &'a str,
    pub path: &'a str,
    /// Without the `?`.
    pub query: &'a str,
}

// String handling here and in the rest of the crate avoids everything that could panic
// with a formatted message (`s[a..b]`, `find("..")`, `split(',')`): on wasm32 one such call
// brings `core::fmt` into the binary, several times the size of the whole tracker. Slicing
// goes through `get`, patterns are closures.

/// Splits an `http:` or `https:` URL; anything else is `None`.
pub fn parts(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once(|c| c == ':')?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let rest = rest.strip_prefix("//")?;
    let url = url.split(|c| c == '#').next().unwrap_or_default();
    let auth_len = rest
        .find(|c| c == '/' || c == '?' || c == '#')
        .unwrap_or(rest.len());
    let (origin, rest) = url.split_at_checked(scheme.len() + 3 + auth_len)?;
    let (path, query) = rest.split_once(|c| c == '?').unwrap_or((rest, ""));
    Some(Parts {
        origin,
        authority: origin.get(scheme.len() + 3..).unwrap_or_default(),
        path,
        query,
    })
}

/// The host of an http(s) URL, without user info and port; `""` for other URLs.
pub fn host(url: &str) -> &str {
    let Some(p) = parts(url) else { return "" };
    let auth = p.authority;
    let auth = auth.rsplit_once(|c| c == '@').map_or(auth, |(_, h)| h);
    match auth.rsplit_once(|c| c == ':') {
        Some((h, port)) if !port.contains(|c| c == ']') => h,
        _ => auth,
    }
}

/// Whether a page is local (`file:`, `localhost`, a loopback address): not tracked by default.
pub fn is_local(url: &str) -> bool {
    let h = host(url);
    h.is_empty()
        || h == "localhost"
        || h.ends_with(".localhost")
        || h.starts_with("127.")
        || h == "[::1]"
        || h == "0.0.0.0"
}

/// The URL a page view or event is recorded with: `http(s)` only, the fragment dropped, and
/// of the query only the `utm_*` parameters kept (the collector stores nothing else of it, and
/// other parameters may hold tokens or e-mail addresses). `None` for non-http(s) URLs.
pub fn clean(url: &str) -> Option<String> {
    let p = parts(url)?;
    let mut out = String::from(p.origin);
    out.push_str(if p.path.is_empty() { "/" } else { p.path });
    let mut sep = '?';
    for param in p.query.split(|c| c == '&') {
        if param.starts_with("utm_") {
            out.push(sep);
            out.push_str(param);
            sep = '&';
        }
    }
    truncate(&mut out, MAX_URL);
    Some(out)
}

/// The referrer as sent: `None` when empty, not http(s), or on the page's own host
/// (an internal navigation); otherwise its origin and path only.
pub fn referrer(referrer: &str, page: &str) -> Option<String> {
    let p = parts(referrer)?;
    if host(referrer).eq_ignore_ascii_case(host(page)) {
        return None;
    }
    let mut out = String::from(p.origin);
    out.push_str(if p.path.is_empty() { "/" } else { p.path });
    truncate(&mut out, MAX_URL);
    Some(out)
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        // `end` is a char boundary, so this cannot panic.
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let p = parts("https://example.com:8443/a/b?x=1&y#frag?no").expect("http");
        assert_eq!(
            (p.origin, p.path, p.query),
            ("https://example.com:8443", "/a/b", "x=1&y")
        );
        let p = parts("HTTP://example.com?q").expect("http");
        assert_eq!((p.origin, p.path, p.query), ("HTTP://example.com", "", "q"));
        assert!(parts("file:///home/a.html").is_none());
        assert!(parts("javascript:alert(1)").is_none());
        assert!(parts("mailto:a@example.com").is_none());
        assert!(parts("https:no-slashes").is_none());
        let p = parts("https://example.com#x/y").expect("http");
        assert_eq!(
            (p.origin, p.authority, p.path),
            ("https://example.com", "example.com", "")
        );
    }

    #[test]
    fn finds_hosts() {
        assert_eq!(host("https://example.com/x"), "example.com");
        assert_eq!(host("http://user:pw@example.com:8080/x"), "example.com");
        assert_eq!(host("http://[::1]:3000/"), "[::1]");
        assert_eq!(host("http://[::1]/"), "[::1]");
        assert_eq!(host("https://shop.example.com?x=1"), "shop.example.com");
        assert_eq!(host("file:///etc/passwd"), "");
    }

    #[test]
    fn knows_local_pages() {
        for url in [
            "file:///home/me/index.html",
            "http://localhost:3000/",
            "http://127.0.0.1/",
            "http://[::1]:8080/",
            "http://app.localhost/",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in ["https://example.com/", "http://localhost.example.com/"] {
            assert!(!is_local(url), "{url}");
        }
    }

    #[test]
    fn cleans_page_urls() {
        assert_eq!(
            clean(
                "https://example.com/blog/hello?utm_source=news&token=s3cret&utm_medium=mail#top"
            )
            .as_deref(),
            Some("https://example.com/blog/hello?utm_source=news&utm_medium=mail")
        );
        assert_eq!(
            clean("https://example.com?email=a@b.c").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(clean("file:///x.html"), None);
        let long = String::from("https://example.com/") + &"é".repeat(2000);
        let cleaned = clean(&long).expect("http");
        assert!(cleaned.len() <= MAX_URL && cleaned.len() > MAX_URL - 2);
    }

    #[test]
    fn keeps_external_referrers_only() {
        let page = "https://example.com/a";
        assert_eq!(referrer("", page), None);
        assert_eq!(referrer("https://example.com/b?q=1", page), None);
        assert_eq!(referrer("https://EXAMPLE.com/", page), None);
        assert_eq!(
            referrer("https://news.ycombinator.com/item?id=1#c", page).as_deref(),
            Some("https://news.ycombinator.com/item")
        );
        assert_eq!(
            referrer("https://www.google.com", page).as_deref(),
            Some("https://www.google.com/")
        );
    }
}
