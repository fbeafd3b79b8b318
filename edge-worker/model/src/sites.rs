//! The registered sites, fetched from the ingest server (`GET /api/edge/sites`, signed) and
//! cached: fresh for [`FRESH_MS`], after which it is refreshed in the background; the last
//! known list stays in use while the ingest server is unreachable.

use serde::Deserialize;

/// How long a fetched list is used before refreshing it.
pub const FRESH_MS: i64 = 60_000;
/// How long after a failed refresh the next one is tried.
pub const RETRY_MS: i64 = 10_000;
/// Path of the list on the ingest server.
pub const SITES_PATH: &str = "/api/edge/sites";

#[derive(Debug, Deserialize)]
struct SitesAnswer {
    sites: Vec<String>,
}

/// Parses the ingest server's answer, `{"sites": ["example.com", ...]}`, lower-cased.
pub fn parse(body: &[u8]) -> Option<Vec<String>> {
    let answer: SitesAnswer = serde_json::from_slice(body).ok()?;
    Some(
        answer
            .sites
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
    )
}

/// The cached list and when to refresh it.
#[derive(Debug, Clone, Default)]
pub struct SiteCache {
    list: Option<Vec<String>>,
    next_refresh_ms: i64,
}

impl SiteCache {
    /// The last known list, if any was ever fetched.
    pub fn list(&self) -> Option<&[String]> {
        self.list.as_deref()
    }

    /// Whether a refresh is due at `now_ms`.
    pub fn refresh_due(&self, now_ms: i64) -> bool {
        now_ms >= self.next_refresh_ms
    }

    /// Records a refresh attempt's result: a new list, or `None` when it failed (the old list
    /// is kept and the next attempt comes sooner).
    pub fn record(&mut self, fetched: Option<Vec<String>>, now_ms: i64) {
        match fetched {
            Some(list) => {
                self.list = Some(list);
                self.next_refresh_ms = now_ms + FRESH_MS;
            }
            None => self.next_refresh_ms = now_ms + RETRY_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        assert_eq!(
            parse(br#"{"sites":["Example.com","b.org"]}"#),
            Some(vec!["example.com".to_string(), "b.org".to_string()])
        );
        assert_eq!(parse(b"<html>"), None);
    }

    #[test]
    fn keeps_the_last_list_when_a_refresh_fails() {
        let mut cache = SiteCache::default();
        assert!(cache.refresh_due(0));
        assert_eq!(cache.list(), None);
        cache.record(Some(vec!["a.com".into()]), 1000);
        assert!(!cache.refresh_due(1000 + FRESH_MS - 1));
        assert!(cache.refresh_due(1000 + FRESH_MS));
        cache.record(None, 1000 + FRESH_MS);
        assert_eq!(cache.list(), Some(&["a.com".to_string()][..]));
        assert!(!cache.refresh_due(1000 + FRESH_MS + RETRY_MS - 1));
        assert!(cache.refresh_due(1000 + FRESH_MS + RETRY_MS));
    }
}
