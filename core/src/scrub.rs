//! What the edge worker keeps of an event before it queues it (CONTRACT §3, filtered hop by
//! hop): the page URL reduced to what [`crate::clean::clean_url`] keeps of it, the referrer
//! reduced to its origin (all that [`crate::referrer::referrer_source`] reads), and the values
//! of props with sensitive names replaced by [`REDACTED`]. So tokens in query strings, e-mail
//! addresses in paths, referrer paths and queries, passwords in props never sit in the edge's
//! queue or its dead-letter queue.
//!
//! The ingest server cleans again what it receives, and gets exactly the same result as from
//! the original event: `clean_url(scrub_url(u))` equals `clean_url(u)`, and
//! `referrer_source(scrub_referrer(r))` equals `referrer_source(r)`, for any input
//! (`tests/scrub.rs` checks it on many generated URLs). To keep to that without the `url`
//! crate (whose IDNA tables would dominate the edge's bundle), the functions only cut and
//! drop, byte by byte like [`crate::wire`]'s checks, and leave what they keep as it was
//! written: the URL parser then normalises it (host, percent-encoding, dot segments) the same
//! way it normalises the original. Where it matters they follow the URL standard's reading of
//! http(s) URLs: leading and trailing C0 controls and spaces and every tab and newline are
//! ignored, any run of `/` and `\` may follow the scheme, the authority ends at the first `/`,
//! `\`, `?` or `#`, credentials end at its last `@`, `\` separates path segments, and query
//! pairs are split on `&` and form-decoded (`+` is a space).
//!
//! A scrubbed URL is never longer than the original (the ingest server's `MAX_URL` holds), so
//! an e-mail segment shorter than `:email` becomes `@`, which `clean_url` turns into `:email`.

use std::collections::BTreeMap;

use crate::wire::{Event, PropValue};
use crate::{is_sensitive_name, REDACTED};

/// The `utm_*` parameters that [`crate::clean::clean_url`] keeps.
const UTM: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];

/// What an e-mail path segment becomes (as in [`crate::clean::clean_url`]).
const EMAIL: &str = ":email";

/// Scrubs one event in place, with the operator's extra sensitive words (`TALLY_REDACT`).
pub fn scrub_event(event: &mut Event, extra: &[String]) {
    event.url = scrub_url(&event.url, extra);
    event.referrer = event.referrer.as_deref().and_then(scrub_referrer);
    if let Some(props) = &mut event.props {
        scrub_props(props, extra);
    }
}

/// A page URL reduced to its scheme and host (port kept, credentials dropped), its path with
/// e-mail segments redacted, its first non-empty `utm_*` parameters of non-sensitive names and
/// its `#/…` or `#!/…` route (without the route's query). Not an http(s) URL: empty.
pub fn scrub_url(raw: &str, extra: &[String]) -> String {
    let s = strip(raw);
    let Some((prefix, host, rest)) = split(&s) else {
        return String::new();
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(prefix);
    if host.is_empty() {
        // No host: invalid either way; nothing else is kept.
        return out;
    }
    out.push_str(host);
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    push_redacted(&mut out, path, true);
    let mut kept = [false; UTM.len()];
    let mut separator = '?';
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = UTM.iter().position(|u| u.as_bytes() == form_decode(key)) else {
            continue;
        };
        // clean_url trims the (lossily decoded) value: only valid UTF-8 can trim to nothing.
        let blank = std::str::from_utf8(&form_decode(value)).is_ok_and(|v| v.trim().is_empty());
        if kept[i] || blank || is_sensitive_name(UTM[i], extra) {
            continue;
        }
        out.push(separator);
        out.push_str(pair);
        separator = '&';
        kept[i] = true;
    }
    let route = fragment.filter(|f| f.starts_with('/') || f.starts_with("!/"));
    if let Some(route) = route {
        out.push('#');
        push_redacted(
            &mut out,
            route.split_once('?').map_or(route, |r| r.0),
            false,
        );
    }
    // The parser would drop a trailing control or space that the original had inside.
    if out.as_bytes().last().is_some_and(|&c| c <= b' ') {
        out.push(if route.is_some() { '?' } else { '#' });
    }
    out
}

/// A referrer reduced to its scheme and host (port kept, credentials dropped), or `None`
/// when it is not an http(s) URL with a host.
pub fn scrub_referrer(raw: &str) -> Option<String> {
    let s = strip(raw.trim());
    let (prefix, host, rest) = split(&s)?;
    if host.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(prefix.len() + host.len() + 1);
    out.push_str(prefix);
    out.push_str(host);
    if !rest.is_empty() || out.ends_with(char::is_whitespace) {
        // Keeps a host that ends in white space from being trimmed.
        out.push('/');
    }
    Some(out)
}

/// Replaces the values of props with sensitive names by [`REDACTED`], as the ingest server
/// stores them.
pub fn scrub_props(props: &mut BTreeMap<String, PropValue>, extra: &[String]) {
    for (key, value) in props.iter_mut() {
        if is_sensitive_name(key, extra) {
            *value = PropValue::Str(REDACTED.to_string());
        }
    }
}

/// The operator's extra sensitive words from a comma-separated list (the `TALLY_REDACT`
/// setting): trimmed, lower-cased, empty ones left out, as the ingest server reads it.
pub fn redact_words(list: &str) -> Vec<String> {
    list.split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// What the URL parser ignores: leading and trailing C0 controls and spaces, every tab and
/// newline. (Byte by byte: these are ASCII, and every byte of a multi-byte character is above
/// them.)
fn strip(raw: &str) -> String {
    let b = raw.as_bytes();
    let start = b.iter().position(|&c| c > b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c > b' ').map_or(start, |i| i + 1);
    let mut kept = Vec::with_capacity(end - start);
    for &c in &b[start..end] {
        if !matches!(c, b'\t' | b'\n' | b'\r') {
            kept.push(c);
        }
    }
    String::from_utf8(kept).unwrap_or_default()
}

/// An http(s) URL cut into the scheme with its `:` and the slashes after it, the host with
/// its port (credentials left out), and the rest (path, query, fragment).
fn split(s: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = s.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let slashes = after
        .bytes()
        .take_while(|&c| c == b'/' || c == b'\\')
        .count();
    let tail = &after[slashes..];
    let end = tail
        .bytes()
        .position(|c| matches!(c, b'/' | b'\\' | b'?' | b'#'))
        .unwrap_or(tail.len());
    let authority = &tail[..end];
    let host = match authority.bytes().rposition(|c| c == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    Some((&s[..s.len() - tail.len()], host, &tail[end..]))
}

/// Appends `path` with every segment that holds an e-mail address (`@` or `%40`) redacted;
/// segments are separated by `/`, and by `\` too in a path (not in a fragment).
fn push_redacted(out: &mut String, path: &str, backslash: bool) {
    let mut rest = path;
    loop {
        let end = rest
            .bytes()
            .position(|c| c == b'/' || (backslash && c == b'\\'))
            .unwrap_or(rest.len());
        let segment = &rest[..end];
        if !segment.contains('@') && !segment.contains("%40") {
            out.push_str(segment);
        } else if segment.len() >= EMAIL.len() {
            out.push_str(EMAIL);
        } else {
            out.push('@');
        }
        if end == rest.len() {
            return;
        }
        out.push('/');
        rest = &rest[end + 1..];
    }
}

/// Decodes a query key or value as `application/x-www-form-urlencoded` does: `+` is a space,
/// `%` and two hex digits a byte.
fn form_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|&c| (c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_what_is_counted() {
        let cases = [
            (
                "https://user:pw@WWW.Example.com:8443/users/bob@example.com/edit?token=abc&utm_source=news&q=x#top",
                "https://WWW.Example.com:8443/users/:email/edit?utm_source=news",
            ),
            (
                "https://example.com/#/settings/bob%40example.com?session=s3cr3t",
                "https://example.com/#/settings/:email",
            ),
            (
                "https://example.com/a\\b@c/d?utm_medium=&utm_medium=mail&utm_medium=x&utm%5Fterm=a+b",
                "https://example.com/a/@/d?utm_medium=mail&utm%5Fterm=a+b",
            ),
            ("https://example.com", "https://example.com"),
            ("https://example.com?session=1", "https://example.com"),
            ("javascript:alert(1)", ""),
            ("https://user@/x", "https://"),
        ];
        for (raw, scrubbed) in cases {
            assert_eq!(scrub_url(raw, &[]), scrubbed, "{raw}");
        }
        assert_eq!(
            scrub_url(
                "https://example.com/?utm_source=x&utm_term=y",
                &["term".into()]
            ),
            "https://example.com/?utm_source=x"
        );
        assert_eq!(
            scrub_url("https://example.com/a\x01?token=1", &[]),
            "https://example.com/a\x01#"
        );
    }

    #[test]
    fn referrers_keep_their_origin() {
        assert_eq!(
            scrub_referrer(" https://me:pw@news.ycombinator.com/item?id=1#c ").as_deref(),
            Some("https://news.ycombinator.com/")
        );
        assert_eq!(
            scrub_referrer("http://example.org").as_deref(),
            Some("http://example.org")
        );
        assert_eq!(scrub_referrer("android-app://com.google"), None);
        assert_eq!(scrub_referrer(""), None);
        assert_eq!(scrub_referrer("https:///"), None);
    }

    #[test]
    fn sensitive_props_are_redacted() {
        let mut props = BTreeMap::from([
            ("plan".to_string(), PropValue::Str("pro".into())),
            (
                "user_email".to_string(),
                PropValue::Str("bob@example.com".into()),
            ),
            ("pin_code".to_string(), PropValue::Num(1234.0)),
            ("password".to_string(), PropValue::Bool(true)),
        ]);
        scrub_props(&mut props, &redact_words(" PIN , ,"));
        assert_eq!(props["plan"], PropValue::Str("pro".into()));
        for key in ["user_email", "pin_code", "password"] {
            assert_eq!(props[key], PropValue::Str(REDACTED.into()), "{key}");
        }
    }

    #[test]
    fn redact_words_are_read_like_the_ingest_server_reads_them() {
        assert_eq!(redact_words(" Coupon,,ref ,"), ["coupon", "ref"]);
        assert!(redact_words("").is_empty());
    }
}
