//! Referrer URL → the `referrer` dimension: the host, or the name of a well-known source
//! (search engines, social networks, aggregators), so that `google.de` and `www.google.com`
//! both count as "Google".

use url::Url;

use crate::wire::host_belongs_to_site;

/// Known sources: (host suffix, name). A host matches a suffix when it equals it or ends
/// with `.` + suffix. Search engines with country domains are matched by label below.
const KNOWN: &[(&str, &str)] = &[
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("search.brave.com", "Brave"),
    ("ecosia.org", "Ecosia"),
    ("baidu.com", "Baidu"),
    ("news.ycombinator.com", "Hacker News"),
    ("reddit.com", "Reddit"),
    ("t.co", "X"),
    ("twitter.com", "X"),
    ("x.com", "X"),
    ("facebook.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("instagram.com", "Instagram"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("github.com", "GitHub"),
    ("youtube.com", "YouTube"),
    ("wikipedia.org", "Wikipedia"),
    ("mastodon.social", "Mastodon"),
    ("bsky.app", "Bluesky"),
    ("lobste.rs", "Lobsters"),
    ("producthunt.com", "Product Hunt"),
    ("chatgpt.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
];

/// Engines known by a label anywhere in the host (`google.co.uk`, `yandex.ru`).
const BY_LABEL: &[(&str, &str)] = &[
    ("google", "Google"),
    ("yandex", "Yandex"),
    ("yahoo", "Yahoo"),
];

/// The `referrer` dimension of a referrer URL for a page of `site`: `None` when there is no
/// referrer, it is not an http(s) URL, or it is the site itself (an internal navigation).
pub fn referrer_source(referrer: &str, site: &str) -> Option<String> {
    let url = Url::parse(referrer.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    if host_belongs_to_site(&host, site) {
        return None;
    }
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    for (suffix, name) in KNOWN {
        if host_belongs_to_site(&host, suffix) {
            return Some((*name).to_string());
        }
    }
    for (label, name) in BY_LABEL {
        if host.split('.').any(|l| l == *label) {
            return Some((*name).to_string());
        }
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sources_are_named() {
        let cases = [
            ("https://www.google.com/", "Google"),
            ("https://www.google.co.uk/search?q=x", "Google"),
            ("https://news.ycombinator.com/item?id=1", "Hacker News"),
            ("https://old.reddit.com/r/rust", "Reddit"),
            ("https://t.co/abc", "X"),
            ("https://l.facebook.com/l.php", "Facebook"),
            ("https://duckduckgo.com/", "DuckDuckGo"),
            ("https://github.com/org/repo", "GitHub"),
            ("https://www.linkedin.com/feed", "LinkedIn"),
            ("https://www.bing.com/search", "Bing"),
        ];
        for (url, name) in cases {
            assert_eq!(
                referrer_source(url, "example.com").as_deref(),
                Some(name),
                "{url}"
            );
        }
    }

    #[test]
    fn other_hosts_internal_and_junk() {
        assert_eq!(
            referrer_source("https://www.someblog.net/post", "example.com").as_deref(),
            Some("someblog.net")
        );
        assert_eq!(
            referrer_source("https://example.com/other", "example.com"),
            None
        );
        assert_eq!(
            referrer_source("https://blog.example.com/", "example.com"),
            None
        );
        assert_eq!(referrer_source("", "example.com"), None);
        assert_eq!(
            referrer_source("android-app://com.google", "example.com"),
            None
        );
        assert_eq!(
            referrer_source("https://notgoogle.com/", "example.com").as_deref(),
            Some("notgoogle.com")
        );
    }
}
