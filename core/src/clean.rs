//! URL cleaning (CONTRACT §3): of a page URL only the host, the path and the `utm_*`
//! parameters are kept; every other query parameter is dropped before anything is stored or
//! logged, so sensitive values (tokens, emails, …) never get further than this function.

use url::Url;

use crate::is_sensitive_name;

/// Longest path kept, in bytes; longer paths are cut at a character boundary.
pub const MAX_PATH: usize = 512;
/// Longest UTM value kept, in characters.
pub const MAX_UTM: usize = 256;

/// A page URL reduced to what may be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanUrl {
    /// Lower-case host, without port.
    pub host: String,
    /// The path, plus a `#/…` or `#!/…` fragment for hash-routed apps.
    pub path: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
}

/// Cleans a page URL. `extra_sensitive` are the operator's additional sensitive words.
pub fn clean_url(raw: &str, extra_sensitive: &[String]) -> Result<CleanUrl, &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not a valid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an absolute http(s) URL");
    }
    let host = url.host_str().ok_or("has no host")?.to_ascii_lowercase();
    let mut path = redact_path(url.path());
    if let Some(fragment) = url.fragment() {
        if fragment.starts_with('/') || fragment.starts_with("!/") {
            path.push('#');
            path.push_str(&redact_path(fragment.split('?').next().unwrap_or_default()));
        }
    }
    truncate(&mut path, MAX_PATH);

    let mut clean = CleanUrl {
        host,
        path,
        ..CleanUrl::default()
    };
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "utm_source" => &mut clean.utm_source,
            "utm_medium" => &mut clean.utm_medium,
            "utm_campaign" => &mut clean.utm_campaign,
            "utm_term" => &mut clean.utm_term,
            "utm_content" => &mut clean.utm_content,
            _ => continue,
        };
        let value = value.trim();
        if value.is_empty() || slot.is_some() || is_sensitive_name(&key, extra_sensitive) {
            continue;
        }
        let mut value = value.to_string();
        truncate_chars(&mut value, MAX_UTM);
        *slot = Some(value);
    }
    Ok(clean)
}

/// Replaces path segments that hold an email address with `:email`.
fn redact_path(path: &str) -> String {
    if !path.contains('@') && !path.contains("%40") {
        return path.to_string();
    }
    path.split('/')
        .map(|seg| {
            if seg.contains('@') || seg.contains("%40") {
                ":email"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn truncate(s: &mut String, max_bytes: usize) {
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn truncate_chars(s: &mut String, max_chars: usize) {
    if let Some((i, _)) = s.char_indices().nth(max_chars) {
        s.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_path_and_utm_only() {
        let c = clean_url(
            "https://WWW.Example.com:8443/blog/hello?utm_source=news&utm_medium=email&token=abc123&q=x#top",
            &[],
        )
        .expect("valid");
        assert_eq!(c.host, "www.example.com");
        assert_eq!(c.path, "/blog/hello");
        assert_eq!(c.utm_source.as_deref(), Some("news"));
        assert_eq!(c.utm_medium.as_deref(), Some("email"));
        assert_eq!(c.utm_campaign, None);
        let debug = format!("{c:?}");
        assert!(!debug.contains("abc123"), "{debug}");
    }

    #[test]
    fn hash_routes_are_pages() {
        let c = clean_url("https://example.com/#/settings?session=s3cr3t", &[]).expect("valid");
        assert_eq!(c.path, "/#/settings");
        let c = clean_url("https://example.com/docs#section-2", &[]).expect("valid");
        assert_eq!(c.path, "/docs");
    }

    #[test]
    fn emails_in_paths_are_redacted() {
        let c = clean_url("https://example.com/users/bob@example.com/edit", &[]).expect("valid");
        assert_eq!(c.path, "/users/:email/edit");
        let c = clean_url("https://example.com/u/bob%40example.com", &[]).expect("valid");
        assert_eq!(c.path, "/u/:email");
    }

    #[test]
    fn rejects_non_http_and_cuts_long_values() {
        assert!(clean_url("javascript:alert(1)", &[]).is_err());
        assert!(clean_url("not a url", &[]).is_err());
        let long = format!(
            "https://example.com/{}?utm_source={}",
            "é".repeat(400),
            "x".repeat(300)
        );
        let c = clean_url(&long, &[]).expect("valid");
        assert!(c.path.len() <= MAX_PATH);
        assert_eq!(c.utm_source.map(|s| s.chars().count()), Some(MAX_UTM));
    }
}
