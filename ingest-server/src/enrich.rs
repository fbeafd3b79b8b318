//! From a validated wire event and what the collector knows about its sender to the row that
//! is stored. Pure: no I/O, every input is passed in.

use std::collections::BTreeMap;

use tally_core::clean::clean_url;
use tally_core::referrer::referrer_source;
use tally_core::wire::{host_belongs_to_site, Event, Kind, PropValue};
use tally_core::{is_sensitive_name, REDACTED};

use crate::store::NewEvent;

/// What the collector derived from the request (never the IP or the UA themselves).
#[derive(Debug, Clone)]
pub struct Sender {
    pub site_id: i64,
    pub site: String,
    pub visitor: i64,
    pub country: Option<String>,
    pub browser: String,
    pub os: String,
    pub device: String,
    /// When the ingest server received the request.
    pub received_at: i64,
    /// When and in which batch the edge took it, for events that came through the edge.
    pub edge: Option<(i64, String)>,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: the event is malformed.
    Invalid(String),
    /// `403`: the page is not on the site.
    ForeignPage(String),
}

/// Builds the stored row for event number `index` of a request.
pub fn to_new_event(
    event: Event,
    index: usize,
    sender: &Sender,
    redact: &[String],
) -> Result<NewEvent, Refusal> {
    let url = clean_url(&event.url, redact)
        .map_err(|reason| Refusal::Invalid(format!("events[{index}].url: {reason}")))?;
    if !host_belongs_to_site(&url.host, &sender.site) {
        return Err(Refusal::ForeignPage(format!(
            "events[{index}].url: the page is not on site {}",
            sender.site
        )));
    }
    let referrer = event
        .referrer
        .as_deref()
        .and_then(|r| referrer_source(r, &sender.site));
    let props = event
        .props
        .filter(|p| !p.is_empty())
        .map(|p| redact_props(p, redact));
    let (edge_at, batch) = match &sender.edge {
        Some((at, batch)) => (Some(*at), Some(batch.clone())),
        None => (None, None),
    };
    Ok(NewEvent {
        id: event.id,
        site_id: sender.site_id,
        kind: event.kind.as_str(),
        ts: edge_at.unwrap_or(sender.received_at),
        client_ts: event.ts,
        edge_at,
        batch,
        received_at: sender.received_at,
        visitor: sender.visitor,
        path: url.path,
        referrer,
        utm_source: url.utm_source,
        utm_medium: url.utm_medium,
        utm_campaign: url.utm_campaign,
        utm_term: url.utm_term,
        utm_content: url.utm_content,
        country: sender.country.clone(),
        browser: Some(sender.browser.clone()),
        os: Some(sender.os.clone()),
        device: Some(sender.device.clone()),
        screen: event.screen.map(i64::from),
        logged_in: event.user,
        name: (event.kind == Kind::Event)
            .then(|| event.name.unwrap_or_default().trim().to_string()),
        props,
        engaged_ms: event
            .engaged_ms
            .map(|ms| i64::try_from(ms.min(24 * 3_600_000)).unwrap_or(0)),
    })
}

/// Props as a JSON object of strings, with sensitive values replaced by `[redacted]`.
fn redact_props(props: BTreeMap<String, PropValue>, redact: &[String]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .into_iter()
        .map(|(k, v)| {
            let value = if is_sensitive_name(&k, redact) {
                REDACTED.to_string()
            } else {
                v.to_string()
            };
            (k, serde_json::Value::String(value))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A country code from a trusted header: two ASCII letters, upper-cased; `XX`, `T1` and the
/// like (unknown, Tor) are dropped.
pub fn country_code(value: &str) -> Option<String> {
    let v = value.trim();
    (v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| v.to_ascii_uppercase())
        .filter(|c| c != "XX")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            site_id: 1,
            site: "example.com".into(),
            visitor: 42,
            country: Some("DE".into()),
            browser: "Firefox".into(),
            os: "Linux".into(),
            device: "desktop".into(),
            received_at: 1_000,
            edge: None,
        }
    }

    fn event(json: &str) -> Event {
        let mut e: Event = serde_json::from_str(json).expect("event");
        e.validate().expect("valid");
        e
    }

    #[test]
    fn pageview_is_cleaned_and_enriched() {
        let e = event(
            r#"{"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://www.example.com/blog?utm_source=news&token=abc","referrer":"https://news.ycombinator.com/item?id=1","ts":5,"user":true,"screen":1440}"#,
        );
        let row = to_new_event(e, 0, &sender(), &[]).expect("stored");
        assert_eq!(row.path, "/blog");
        assert_eq!(row.utm_source.as_deref(), Some("news"));
        assert_eq!(row.referrer.as_deref(), Some("Hacker News"));
        assert_eq!((row.ts, row.client_ts, row.visitor), (1_000, 5, 42));
        assert_eq!(row.logged_in, Some(true));
        assert_eq!(row.name, None);
        assert!(!format!("{row:?}").contains("abc"));
    }

    #[test]
    fn props_are_redacted_and_stringified() {
        let e = event(
            r#"{"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"event","name":" Signup ","props":{"plan":"pro","seats":3,"api_token":"t0k3n","Coupon":"X"},"url":"https://example.com/","ts":5}"#,
        );
        let row = to_new_event(e, 0, &sender(), &["coupon".into()]).expect("stored");
        assert_eq!(row.name.as_deref(), Some("Signup"));
        let props: serde_json::Value =
            serde_json::from_str(row.props.as_deref().expect("props")).expect("json");
        assert_eq!(props["plan"], "pro");
        assert_eq!(props["seats"], "3");
        assert_eq!(props["api_token"], REDACTED);
        assert_eq!(props["Coupon"], REDACTED);
    }

    #[test]
    fn foreign_pages_are_refused() {
        let e = event(
            r#"{"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://evil.net/","ts":5}"#,
        );
        assert!(
            matches!(to_new_event(e, 3, &sender(), &[]), Err(Refusal::ForeignPage(m)) if m.starts_with("events[3].url"))
        );
    }

    #[test]
    fn edge_time_wins() {
        let mut s = sender();
        s.edge = Some((900, "b1".into()));
        let e = event(
            r#"{"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://example.com/","ts":5}"#,
        );
        let row = to_new_event(e, 0, &s, &[]).expect("stored");
        assert_eq!(
            (row.ts, row.edge_at, row.batch.as_deref()),
            (900, Some(900), Some("b1"))
        );
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code("de").as_deref(), Some("DE"));
        assert_eq!(country_code("XX"), None);
        assert_eq!(country_code("T1").as_deref(), None);
        assert_eq!(country_code("DEU"), None);
    }
}
