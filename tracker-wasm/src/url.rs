//! URL handling on absolute URLs such as `location.href` and `a.href`, which the browser has
//! already resolved and normalised: splitting, the host, local pages, and cleaning.
//!
//! Like the rest of the crate it avoids everything that could panic with a formatted message
//! (indexing, `s[a..b]`, `str::find`): on wasm32 one such call brings `core::fmt` into the
//! binary, several times the size of the whole tracker. Slicing goes through `get`.

use alloc::vec::Vec;

/// Longest page or referrer URL the collector accepts, in bytes (`tally_core::wire::MAX_URL`).
pub const MAX_URL: usize = 2048;

/// `s` split around the first byte for which `f` holds (that byte dropped).
pub fn split_once(s: &[u8], f: impl Fn(u8) -> bool) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| f(b))?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The parts of an absolute URL: `scheme://authority` + `path` + `?query` (+ `#fragment`).
pub struct Parts<'a> {
    /// `scheme://authority`.
    pub origin: &'a [u8],
    /// The authority alone: `user@host:port`.
    pub authority: &'a [u8],
    pub path: &'a [u8],
    /// Without the `?`.
    pub query: &'a [u8],
}

/// Splits an `http:` or `https:` URL; anything else is `None`.
pub fn parts(url: &[u8]) -> Option<Parts<'_>> {
    let (scheme, rest) = split_once(url, |b| b == b':')?;
    if !scheme.eq_ignore_ascii_case(b"https") && !scheme.eq_ignore_ascii_case(b"http") {
        return None;
    }
    let rest = rest.strip_prefix(b"//")?;
    let url = url.split(|&b| b == b'#').next()?;
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let (origin, rest) = url.split_at_checked(scheme.len() + 3 + auth_len)?;
    let (path, query) = split_once(rest, |b| b == b'?').unwrap_or((rest, b""));
    Some(Parts {
        origin,
        authority: origin.get(scheme.len() + 3..)?,
        path,
        query,
    })
}

/// The host of an http(s) URL, without user info and port; empty for other URLs.
pub fn host(url: &[u8]) -> &[u8] {
    let Some(p) = parts(url) else { return b"" };
    let auth = p.authority;
    let auth = auth.rsplit(|&b| b == b'@').next().unwrap_or(auth);
    match auth.iter().rposition(|&b| b == b':') {
        Some(i) if !auth.ends_with(b"]") => auth.get(..i).unwrap_or(auth),
        _ => auth,
    }
}

/// Whether a page is local (`file:`, `localhost`, a loopback address): not tracked by default.
pub fn is_local(url: &[u8]) -> bool {
    let h = host(url);
    h.is_empty()
        || h == b"localhost"
        || h.ends_with(b".localhost")
        || h.starts_with(b"127.")
        || h == b"[::1]"
        || h == b"0.0.0.0"
}

fn origin_and_path(p: &Parts) -> Vec<u8> {
    let mut out = Vec::from(p.origin);
    out.extend_from_slice(if p.path.is_empty() { b"/" } else { p.path });
    out
}

/// The URL a page view or event is recorded with: `http(s)` only, the fragment dropped, and
/// of the query only the `utm_*` parameters kept (the collector stores nothing else of it, and
/// other parameters may hold tokens or e-mail addresses). `None` for non-http(s) URLs.
pub fn clean(url: &[u8]) -> Option<Vec<u8>> {
    let p = parts(url)?;
    let mut out = origin_and_path(&p);
    let mut sep = b'?';
    for param in p.query.split(|&b| b == b'&') {
        if param.starts_with(b"utm_") {
            out.push(sep);
            out.extend_from_slice(param);
            sep = b'&';
        }
    }
    Some(truncate(out, MAX_URL))
}

/// The referrer as sent: `None` when empty, not http(s), or on the page's own host
/// (an internal navigation); otherwise its origin and path only.
pub fn referrer(referrer: &[u8], page: &[u8]) -> Option<Vec<u8>> {
    let p = parts(referrer)?;
    if host(referrer).eq_ignore_ascii_case(host(page)) {
        return None;
    }
    Some(truncate(origin_and_path(&p), MAX_URL))
}

/// The first `max` bytes of UTF-8 text `s`, cut back to a character boundary.
pub fn truncate(mut s: Vec<u8>, max: usize) -> Vec<u8> {
    if s.len() > max {
        let mut end = max;
        while s.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Option<Vec<u8>>) -> Option<String> {
        b.map(|b| String::from_utf8(b).expect("utf-8"))
    }

    #[test]
    fn splits_urls() {
        let p = parts(b"https://example.com:8443/a/b?x=1&y#frag?no").expect("http");
        assert_eq!(
            (p.origin, p.authority, p.path, p.query),
            (
                &b"https://example.com:8443"[..],
                &b"example.com:8443"[..],
                &b"/a/b"[..],
                &b"x=1&y"[..]
            )
        );
        let p = parts(b"HTTP://example.com?q").expect("http");
        assert_eq!(
            (p.origin, p.path, p.query),
            (&b"HTTP://example.com"[..], &b""[..], &b"q"[..])
        );
        let p = parts(b"https://example.com#x/y").expect("http");
        assert_eq!((p.origin, p.path), (&b"https://example.com"[..], &b""[..]));
        for url in [
            "file:///home/a.html",
            "javascript:alert(1)",
            "mailto:a@b.c",
            "https:x",
            "x",
        ] {
            assert!(parts(url.as_bytes()).is_none(), "{url}");
        }
    }

    #[test]
    fn finds_hosts() {
        for (url, h) in [
            ("https://example.com/x", "example.com"),
            ("http://user:pw@example.com:8080/x", "example.com"),
            ("http://[::1]:3000/", "[::1]"),
            ("http://[::1]/", "[::1]"),
            ("https://shop.example.com?x=1", "shop.example.com"),
            ("file:///etc/passwd", ""),
        ] {
            assert_eq!(host(url.as_bytes()), h.as_bytes(), "{url}");
        }
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
            assert!(is_local(url.as_bytes()), "{url}");
        }
        for url in ["https://example.com/", "http://localhost.example.com/"] {
            assert!(!is_local(url.as_bytes()), "{url}");
        }
    }

    #[test]
    fn cleans_page_urls() {
        let url =
            b"https://example.com/blog/hello?utm_source=news&token=s3cret&utm_medium=mail#top";
        assert_eq!(
            text(clean(url)).as_deref(),
            Some("https://example.com/blog/hello?utm_source=news&utm_medium=mail")
        );
        assert_eq!(
            text(clean(b"https://example.com?email=a@b.c")).as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(clean(b"file:///x.html"), None);
        let long = String::from("https://example.com/") + &"é".repeat(2000);
        let cleaned = text(clean(long.as_bytes())).expect("valid UTF-8 after the cut");
        assert!(cleaned.len() <= MAX_URL && cleaned.len() > MAX_URL - 2);
    }

    #[test]
    fn keeps_external_referrers_only() {
        let page = b"https://example.com/a";
        assert_eq!(referrer(b"", page), None);
        assert_eq!(referrer(b"https://example.com/b?q=1", page), None);
        assert_eq!(referrer(b"https://EXAMPLE.com/", page), None);
        assert_eq!(
            text(referrer(b"https://news.ycombinator.com/item?id=1#c", page)).as_deref(),
            Some("https://news.ycombinator.com/item")
        );
        assert_eq!(
            text(referrer(b"https://www.google.com", page)).as_deref(),
            Some("https://www.google.com/")
        );
    }
}
