//! The edge's scrub keeps exactly what the ingest server keeps: for any page URL `u`,
//! `clean_url(scrub_url(u)) == clean_url(u)` (the same `CleanUrl`, or an error for both), and
//! for any referrer `r`, `referrer_source(scrub_referrer(r)) == referrer_source(r)`; a
//! scrubbed URL is never longer than the original; and what is dropped (tokens, e-mail
//! addresses, referrer paths and queries) is not in the scrubbed text.
//!
//! The URLs are put together from parts chosen to hit the URL parser's corners
//! (percent-encoding, repeated and encoded keys, `+`, empty values, fragments with `?`, ports,
//! upper-case and numeric hosts, credentials, backslashes, dot segments, controls, tabs) and,
//! in a second strategy, from arbitrary characters. 2,048 cases each by default;
//! `PROPTEST_CASES=200000 cargo test --release -p tally-core --test scrub` is the long run.

use proptest::prelude::*;
use tally_core::clean::clean_url;
use tally_core::referrer::referrer_source;
use tally_core::scrub::{scrub_referrer, scrub_url};

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_string)
}

fn scheme() -> impl Strategy<Value = String> {
    pick(&[
        "https://",
        "http://",
        "HTTPS://",
        "hTTp://",
        "https:///",
        "https:/\\",
        "https:",
        "https:\\\\",
        "ftp://",
        "https//",
        " https://",
        "\thttps://",
    ])
}

fn authority() -> impl Strategy<Value = String> {
    (
        pick(&["", "", "", "user:pw@", "@", "a@b@", "tok%40en@", "u:p@x:y@"]),
        pick(&[
            "example.com",
            "www.example.com",
            "WWW.Example.COM",
            "example.com.",
            "[::1]",
            "[::FFFF:127.0.0.1]",
            "127.0.0.1",
            "0x7f.1",
            "1.2.3.4.5",
            "xn--bcher-kva.example",
            "xn--zz.example",
            "exa%6Dple.com",
            "a_b.example",
            "bücher.example",
            "ex ample.com",
            "example.com\u{3000}",
            "",
        ]),
        pick(&["", "", "", ":8443", ":", ":99999", ":0", ":80", ":x"]),
    )
        .prop_map(|(user, host, port)| format!("{user}{host}{port}"))
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            pick(&["/", "/", "/", "\\"]),
            pick(&[
                "blog",
                "hello-world",
                "bob@example.com",
                "bob%40example.com",
                "a@b",
                "@",
                "%40",
                "%4",
                "0",
                ":email",
                "..",
                ".",
                "%2e%2e",
                ".%2E",
                "a b",
                "é",
                "%zz",
                "%E2%82%AC",
                "x\\y@z",
                "",
                "a\u{1}",
                "t\tab",
                "<>\"`{}",
            ]),
        ),
        0..6,
    )
    .prop_map(|segments| segments.into_iter().map(|(s, p)| s + &p).collect())
}

fn query() -> impl Strategy<Value = Option<String>> {
    let key = pick(&[
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "utm_source",
        "utm%5Fsource",
        "utm_s%6Furce",
        "utm_source+",
        "UTM_SOURCE",
        "utm_",
        "token",
        "session",
        "email",
        "q",
        "",
    ]);
    let value = pick(&[
        "news",
        "",
        "+",
        "%20",
        "a+b",
        "x%26y",
        "%E2%80%83",
        "\u{3000}",
        "é",
        "%zz",
        "%",
        "a=b",
        "bob@example.com",
        "s3cr3t",
        "?",
        "x\u{1}",
        " y ",
        "'q'",
        "%ff",
    ]);
    let pair = (key, pick(&["=", "=", "=", ""]), value).prop_map(|(k, eq, v)| {
        if eq.is_empty() {
            k
        } else {
            format!("{k}={v}")
        }
    });
    proptest::option::of(
        proptest::collection::vec((pair, pick(&["&", "&", "&", "&&", ";"])), 0..6).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(p, sep)| p + &sep)
                    .collect::<String>()
            },
        ),
    )
}

fn fragment() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(pick(&[
        "top",
        "",
        "/",
        "/settings?session=s3cr3t",
        "!/a/bob@example.com/b",
        "!/",
        "!x",
        "/a#b",
        "/a?b#c",
        "/x\u{1}",
        "/a/b%40c?utm_source=x",
        "#/a",
        " /a",
        "/a b",
    ]))
}

fn url() -> impl Strategy<Value = String> {
    (
        scheme(),
        authority(),
        path(),
        query(),
        fragment(),
        pick(&["", "", " ", "\u{1}", "\n"]),
    )
        .prop_map(|(scheme, authority, path, query, fragment, end)| {
            let mut u = scheme + &authority + &path;
            if let Some(q) = query {
                u.push('?');
                u.push_str(&q);
            }
            if let Some(f) = fragment {
                u.push('#');
                u.push_str(&f);
            }
            u + &end
        })
}

/// Arbitrary text after an http(s) prefix, from the characters that matter to the parser.
fn noise() -> impl Strategy<Value = String> {
    (
        pick(&["https://", "http://", "https:", "https:/"]),
        "[a-zA-Z0-9%@/\\\\?#&=+.:_!\\[\\] \t\u{1}é\u{3000}-]{0,60}",
    )
        .prop_map(|(prefix, rest)| prefix + &rest)
}

fn extra() -> impl Strategy<Value = Vec<String>> {
    proptest::option::of(pick(&["term", "source", "plan", "UTM"]))
        .prop_map(|w| w.into_iter().map(|w| w.to_ascii_lowercase()).collect())
}

fn check_url(u: &str, extra: &[String]) -> Result<(), TestCaseError> {
    let scrubbed = scrub_url(u, extra);
    prop_assert_eq!(
        clean_url(&scrubbed, extra).ok(),
        clean_url(u, extra).ok(),
        "{:?} scrubbed to {:?}",
        u,
        scrubbed
    );
    let start = u.as_bytes().to_ascii_lowercase();
    if start.starts_with(b"https://") || start.starts_with(b"http://") {
        prop_assert!(scrubbed.len() <= u.len(), "{:?} → {:?}", u, scrubbed);
    }
    // What a valid URL's clean form does not hold, its scrubbed form does not hold either.
    if let Ok(clean) = clean_url(u, extra) {
        let clean = format!("{clean:?}");
        for secret in [
            "s3cr3t",
            "bob@example.com",
            "bob%40example.com",
            "pw@",
            "tok%40en",
        ] {
            if !clean.contains(secret) {
                prop_assert!(!scrubbed.contains(secret), "{:?} → {:?}", u, scrubbed);
            }
        }
    }
    Ok(())
}

fn check_referrer(r: &str) -> Result<(), TestCaseError> {
    let scrubbed = scrub_referrer(r);
    for site in ["example.com", "example.org"] {
        prop_assert_eq!(
            referrer_source(scrubbed.as_deref().unwrap_or_default(), site),
            referrer_source(r, site),
            "{:?} scrubbed to {:?}",
            r,
            scrubbed
        );
    }
    if let Some(s) = &scrubbed {
        prop_assert!(s.len() <= r.len(), "{:?} → {:?}", r, s);
        prop_assert!(
            !s.contains('?') && !s.contains('#') && !s.contains("pw@"),
            "{:?}",
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn scrubbed_urls_clean_to_the_same(u in url(), extra in extra()) {
        check_url(&u, &extra)?;
    }

    #[test]
    fn scrubbed_noise_cleans_to_the_same(u in noise(), extra in extra()) {
        check_url(&u, &extra)?;
    }

    #[test]
    fn scrubbed_referrers_name_the_same_source(r in url()) {
        check_referrer(&r)?;
    }

    #[test]
    fn scrubbed_noise_referrers_name_the_same_source(r in noise()) {
        check_referrer(&r)?;
    }
}

#[test]
fn examples() {
    let cases = [
        "https://example.com/users/bob@example.com/edit?token=abc&utm_source=news#/x?session=1",
        "https://WWW.Example.com:8443/a/../b/./c?utm_campaign=%20spring%20&utm_campaign=x",
        "https://example.com/?utm_source=a+b&utm_source=c&utm_medium=%E2%82%AC",
        "https://example.com/%2e%2e/bob%40example.com/..",
        "https://example.com/#!/route/me@x.io?x=1",
        "https://[::1]:8080/x?utm_term=",
        "https://user:pass@example.com/",
    ];
    for u in cases {
        check_url(u, &[]).expect("same clean URL");
        check_referrer(u).expect("same source");
    }
}
