//! The browser → collector body of CONTRACT §2, its limits, and its validation.
//!
//! [`parse_batch`] turns raw bytes into a [`Batch`] whose every event has passed
//! [`Event::validate`], or into a [`WireError`] that names what is wrong, so that collectors
//! (the ingest server and the edge worker) answer the same `400` / `413` for the same body.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many events in one request.
pub const MAX_EVENTS: usize = 50;
/// At most this many bytes in one request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Custom event props: at most this many keys…
pub const MAX_PROPS: usize = 30;
/// …keys of at most this many characters…
pub const MAX_PROP_KEY: usize = 64;
/// …and string values of at most this many characters.
pub const MAX_PROP_VALUE: usize = 256;
/// Custom event names: at most this many characters.
pub const MAX_NAME: usize = 120;
/// Page and referrer URLs: at most this many bytes.
pub const MAX_URL: usize = 2048;
/// Site domains: at most this many bytes.
pub const MAX_SITE: usize = 253;

/// One request body: the site and up to [`MAX_EVENTS`] events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub site: String,
    pub events: Vec<Event>,
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pageview,
    Event,
    Engagement,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pageview => "pageview",
            Kind::Event => "event",
            Kind::Engagement => "engagement",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "pageview" => Some(Kind::Pageview),
            "event" => Some(Kind::Event),
            "engagement" => Some(Kind::Engagement),
            _ => None,
        }
    }
}

/// A custom event's prop value: flat string, number or boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropValue {
    Bool(bool),
    Num(f64),
    Str(String),
}

impl fmt::Display for PropValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropValue::Bool(b) => write!(f, "{b}"),
            PropValue::Num(n) => write!(f, "{n}"),
            PropValue::Str(s) => f.write_str(s),
        }
    }
}

/// One event as the browser sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub kind: Kind,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<bool>,
    /// Milliseconds since the Unix epoch, by the browser's clock.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<BTreeMap<String, PropValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engaged_ms: Option<u64>,
}

/// Why a body was refused. `Display` is the message sent back in `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is over [`MAX_BODY_BYTES`]: `413`.
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not JSON, or not the shape of §2: `400`.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// One field of the batch or of one event is wrong: `400`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl WireError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WireError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses and validates a request body. Event ids are normalised (see [`normalize_id`]).
pub fn parse_batch(body: &[u8]) -> Result<Batch, WireError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WireError::TooLarge);
    }
    let mut batch: Batch =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    batch.site = batch.site.trim().to_ascii_lowercase();
    validate_site(&batch.site).map_err(|reason| WireError::invalid("site", reason))?;
    if batch.events.is_empty() {
        return Err(WireError::invalid("events", "must hold at least one event"));
    }
    if batch.events.len() > MAX_EVENTS {
        return Err(WireError::invalid(
            "events",
            format!("at most {MAX_EVENTS} events per request"),
        ));
    }
    for (i, event) in batch.events.iter_mut().enumerate() {
        event.validate().map_err(|(field, reason)| {
            WireError::invalid(format!("events[{i}].{field}"), reason)
        })?;
    }
    Ok(batch)
}

/// Checks that a site is a plausible domain name (lowercase letters, digits, dots, dashes).
pub fn validate_site(site: &str) -> Result<(), &'static str> {
    if site.is_empty() {
        return Err("must not be empty");
    }
    if site.len() > MAX_SITE {
        return Err("is longer than a domain name can be");
    }
    let ok = site
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !site.starts_with(['.', '-'])
        && !site.ends_with(['.', '-'])
        && !site.contains("..");
    if ok {
        Ok(())
    } else {
        Err("must be a domain name such as example.com")
    }
}

/// Whether `host` (of a page URL or an `Origin`) belongs to `site`: the domain itself or one
/// of its subdomains (`www.example.com` belongs to `example.com`).
pub fn host_belongs_to_site(host: &str, site: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case(site)
        || (host.len() > site.len()
            && host.as_bytes()[host.len() - site.len() - 1] == b'.'
            && host[host.len() - site.len()..].eq_ignore_ascii_case(site))
}

/// Normalises an event id: a ULID (26 Crockford base-32 characters) to upper case, a UUID
/// (8-4-4-4-12 hex digits) to lower case. Anything else is `None`.
pub fn normalize_id(id: &str) -> Option<String> {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if id.len() == 26 {
        let upper = id.to_ascii_uppercase();
        let valid = upper.bytes().all(|b| CROCKFORD.contains(&b)) && upper.as_bytes()[0] <= b'7';
        return valid.then_some(upper);
    }
    if id.len() == 36 {
        let valid = id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        return valid.then(|| id.to_ascii_lowercase());
    }
    None
}

fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

impl Event {
    /// Validates one event in place (normalising its id). The error is `(field, reason)`.
    pub fn validate(&mut self) -> Result<(), (&'static str, String)> {
        self.id = normalize_id(&self.id).ok_or(("id", "must be a ULID or a UUID".to_string()))?;
        if self.url.len() > MAX_URL {
            return Err(("url", format!("is longer than {MAX_URL} bytes")));
        }
        if !is_http_url(&self.url) {
            return Err(("url", "must be an absolute http(s) URL".into()));
        }
        if let Some(referrer) = &self.referrer {
            if referrer.len() > MAX_URL {
                return Err(("referrer", format!("is longer than {MAX_URL} bytes")));
            }
        }
        if self.ts <= 0 {
            return Err(("ts", "must be milliseconds since 1970".into()));
        }
        match self.kind {
            Kind::Event => {
                let name = self.name.as_deref().map(str::trim).unwrap_or_default();
                if name.is_empty() {
                    return Err(("name", "is required for kind \"event\"".into()));
                }
                if name.chars().count() > MAX_NAME {
                    return Err(("name", format!("is longer than {MAX_NAME} characters")));
                }
            }
            Kind::Engagement => {
                if self.engaged_ms.is_none() {
                    return Err(("engaged_ms", "is required for kind \"engagement\"".into()));
                }
            }
            Kind::Pageview => {}
        }
        if let Some(props) = &self.props {
            if self.kind != Kind::Event {
                return Err(("props", "only custom events carry props".into()));
            }
            if props.len() > MAX_PROPS {
                return Err(("props", format!("at most {MAX_PROPS} keys")));
            }
            for (key, value) in props {
                if key.is_empty() || key.chars().count() > MAX_PROP_KEY {
                    return Err(("props", format!("keys are 1 to {MAX_PROP_KEY} characters")));
                }
                if let PropValue::Str(s) = value {
                    if s.chars().count() > MAX_PROP_VALUE {
                        return Err((
                            "props",
                            format!("value of {key:?} is longer than {MAX_PROP_VALUE} characters"),
                        ));
                    }
                }
                if let PropValue::Num(n) = value {
                    if !n.is_finite() {
                        return Err(("props", format!("value of {key:?} is not a finite number")));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULID: &str = "01JD3Z6Q8R9S0T1V2W3X4Y5Z6A";

    fn body(events: &str) -> Vec<u8> {
        format!(r#"{{"site":"example.com","events":[{events}]}}"#).into_bytes()
    }

    #[test]
    fn parses_the_contract_example() {
        let b = body(&format!(
            r#"{{"id":"{ULID}","kind":"pageview","url":"https://example.com/blog/hello?utm_source=news","referrer":"https://news.ycombinator.com/","screen":1440,"user":false,"ts":1732380000000}},
               {{"id":"01JD3Z6QAB000000000000000A","kind":"event","name":"Signup","props":{{"plan":"pro","seats":3,"trial":true}},"url":"https://example.com/pricing","ts":1732380004000}},
               {{"id":"01JD3Z6QCD000000000000000A","kind":"engagement","url":"https://example.com/blog/hello","engaged_ms":41250,"ts":1732380041000}}"#
        ));
        let batch = parse_batch(&b).expect("valid");
        assert_eq!(batch.site, "example.com");
        assert_eq!(batch.events.len(), 3);
        assert_eq!(batch.events[0].kind, Kind::Pageview);
        let props = batch.events[1].props.as_ref().expect("props");
        assert_eq!(props["seats"].to_string(), "3");
        assert_eq!(props["trial"].to_string(), "true");
        assert_eq!(batch.events[2].engaged_ms, Some(41250));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"id":"nope","kind":"pageview","url":"https://example.com/","ts":1}"#,
                "events[0].id",
            ),
            (
                &format!(
                    r#"{{"id":"{ULID}","kind":"pageview","url":"javascript:alert(1)","ts":1}}"#
                ),
                "events[0].url",
            ),
            (
                &format!(r#"{{"id":"{ULID}","kind":"event","url":"https://example.com/","ts":1}}"#),
                "events[0].name",
            ),
            (
                &format!(
                    r#"{{"id":"{ULID}","kind":"engagement","url":"https://example.com/","ts":1}}"#
                ),
                "events[0].engaged_ms",
            ),
            (
                &format!(
                    r#"{{"id":"{ULID}","kind":"pageview","url":"https://example.com/","ts":0}}"#
                ),
                "events[0].ts",
            ),
            (
                &format!(
                    r#"{{"id":"{ULID}","kind":"pageview","url":"https://example.com/","ts":1,"props":{{"a":"b"}}}}"#
                ),
                "events[0].props",
            ),
        ];
        for (event, field) in cases {
            match parse_batch(&body(event)) {
                Err(WireError::Invalid { field: f, .. }) => assert_eq!(f, field, "{event}"),
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_and_limits() {
        assert!(matches!(
            parse_batch(b"not json"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"{\"site\":\"example.com\"}"),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(&[0xff, 0xfe]),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(&body("")),
            Err(WireError::Invalid { .. })
        ));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_batch(&big), Err(WireError::TooLarge));
        let one =
            format!(r#"{{"id":"{ULID}","kind":"pageview","url":"https://example.com/","ts":1}}"#);
        let many = vec![one; MAX_EVENTS + 1].join(",");
        assert!(
            matches!(parse_batch(&body(&many)), Err(WireError::Invalid { field, .. }) if field == "events")
        );
        let bad_site = br#"{"site":"<script>","events":[]}"#;
        assert!(
            matches!(parse_batch(bad_site), Err(WireError::Invalid { field, .. }) if field == "site")
        );
    }

    #[test]
    fn prop_limits() {
        let props: Vec<String> = (0..31).map(|i| format!(r#""k{i}":1"#)).collect();
        let e = format!(
            r#"{{"id":"{ULID}","kind":"event","name":"x","url":"https://example.com/","ts":1,"props":{{{}}}}}"#,
            props.join(",")
        );
        assert!(parse_batch(&body(&e)).is_err());
        let long = "v".repeat(MAX_PROP_VALUE + 1);
        let e = format!(
            r#"{{"id":"{ULID}","kind":"event","name":"x","url":"https://example.com/","ts":1,"props":{{"k":"{long}"}}}}"#
        );
        assert!(parse_batch(&body(&e)).is_err());
        let e = format!(
            r#"{{"id":"{ULID}","kind":"event","name":"x","url":"https://example.com/","ts":1,"props":{{"k":{{"nested":1}}}}}}"#
        );
        assert!(parse_batch(&body(&e)).is_err());
    }

    #[test]
    fn ids_are_normalised() {
        assert_eq!(normalize_id(&ULID.to_lowercase()).as_deref(), Some(ULID));
        assert_eq!(
            normalize_id("0190F5C8-7E8A-7B3C-9D2E-1F2A3B4C5D6E").as_deref(),
            Some("0190f5c8-7e8a-7b3c-9d2e-1f2a3b4c5d6e")
        );
        assert_eq!(normalize_id("81JD3Z6Q8R9S0T1V2W3X4Y5Z6A"), None);
        assert_eq!(normalize_id("01JD3Z6Q8R9S0T1V2W3X4Y5Z6U"), None);
        assert_eq!(normalize_id(""), None);
    }

    #[test]
    fn hosts_and_sites() {
        assert!(host_belongs_to_site("example.com", "example.com"));
        assert!(host_belongs_to_site("www.example.com", "example.com"));
        assert!(host_belongs_to_site("WWW.Example.com.", "example.com"));
        assert!(!host_belongs_to_site("badexample.com", "example.com"));
        assert!(!host_belongs_to_site("example.com.evil.net", "example.com"));
        assert!(validate_site("example.com").is_ok());
        assert!(validate_site("-a.com").is_err());
        assert!(validate_site("a..com").is_err());
    }
}
