//! What the edge adds to each event from the connection, so that the ingest server receives
//! the visitor id, country, browser, OS and device, and never the client IP or User-Agent;
//! and what it removes from each event before queueing it (`tally_core::scrub`): of the page
//! URL only what the ingest server counts, of the referrer only its origin, and the values of
//! props with sensitive names.

use tally_core::agent;
use tally_core::edge::EdgeEvent;
use tally_core::scrub::scrub_event;
use tally_core::visitor::{visitor_id, visitor_to_hex};
use tally_core::wire::Batch;

/// What the platform tells about the request.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The client IP (`CF-Connecting-IP`).
    pub ip: &'a str,
    /// The `User-Agent` header, empty when absent.
    pub user_agent: &'a str,
    /// `request.cf.country`.
    pub country: Option<&'a str>,
}

/// The events to forward, and how many were dropped as coming from a bot.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    pub events: Vec<EdgeEvent>,
    pub bots: usize,
}

/// An ISO 3166 alpha-2 code from `request.cf.country`, or `None` for Cloudflare's
/// placeholders (`XX` unknown, `T1` Tor) and anything malformed.
pub fn country_code(cf: Option<&str>) -> Option<String> {
    let code = cf?.trim().to_ascii_uppercase();
    let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && code != "XX";
    ok.then_some(code)
}

/// Enriches and scrubs a validated batch under today's `salt`; `redact` are the operator's
/// extra sensitive words (`TALLY_REDACT`). A bot's events are all dropped.
pub fn enrich(
    batch: Batch,
    conn: &Connection<'_>,
    salt: &[u8],
    redact: &[String],
    now_ms: i64,
) -> Enriched {
    let screen = batch.events.iter().find_map(|e| e.screen);
    let Some(agent) = agent::classify(conn.user_agent, screen) else {
        return Enriched {
            events: Vec::new(),
            bots: batch.events.len(),
        };
    };
    let visitor = visitor_to_hex(visitor_id(salt, &batch.site, conn.ip, conn.user_agent));
    let country = country_code(conn.country);
    let events = batch
        .events
        .into_iter()
        .map(|mut event| {
            scrub_event(&mut event, redact);
            EdgeEvent {
                site: batch.site.clone(),
                event,
                visitor: visitor.clone(),
                country: country.clone(),
                browser: agent.browser.clone(),
                os: agent.os.clone(),
                device: agent.device.as_str().to_string(),
                edge_at: now_ms,
            }
        })
        .collect();
    Enriched { events, bots: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::wire::parse_batch;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const IP: &str = "203.0.113.77";

    fn batch() -> Batch {
        let body = r#"{"site":"example.com","events":[
            {"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://example.com/","screen":1440,"ts":1},
            {"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6B","kind":"event","name":"Signup","url":"https://example.com/","ts":2}]}"#;
        parse_batch(body.as_bytes()).expect("valid")
    }

    fn conn(ua: &str) -> Connection<'_> {
        Connection {
            ip: IP,
            user_agent: ua,
            country: Some("de"),
        }
    }

    #[test]
    fn events_carry_derived_fields_and_never_the_ip_or_ua() {
        let out = enrich(batch(), &conn(FIREFOX), &[1; 32], &[], 99);
        assert_eq!(out.bots, 0);
        assert_eq!(out.events.len(), 2);
        let e = &out.events[0];
        assert_eq!(e.site, "example.com");
        assert_eq!(e.country.as_deref(), Some("DE"));
        assert_eq!(e.browser, "Firefox");
        assert_eq!(e.os, "Linux");
        assert_eq!(e.device, "desktop");
        assert_eq!(e.edge_at, 99);
        assert_eq!(e.visitor, out.events[1].visitor);
        let json = serde_json::to_string(&out.events).expect("serializes");
        assert!(!json.contains(IP), "{json}");
        assert!(!json.contains("rv:128.0"), "{json}");
    }

    #[test]
    fn visitor_is_the_core_hash_and_changes_with_the_salt() {
        let a = enrich(batch(), &conn(FIREFOX), &[1; 32], &[], 0);
        let b = enrich(batch(), &conn(FIREFOX), &[2; 32], &[], 0);
        assert_eq!(
            a.events[0].visitor,
            visitor_to_hex(visitor_id(&[1; 32], "example.com", IP, FIREFOX))
        );
        assert_ne!(a.events[0].visitor, b.events[0].visitor);
    }

    #[test]
    fn bots_are_dropped_and_counted() {
        for ua in [
            "",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "curl/8.5.0",
        ] {
            let out = enrich(batch(), &conn(ua), &[1; 32], &[], 0);
            assert!(out.events.is_empty(), "{ua}");
            assert_eq!(out.bots, 2, "{ua}");
        }
    }

    #[test]
    fn sensitive_values_are_removed_before_queueing() {
        let body = r#"{"site":"example.com","events":[
            {"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://example.com/users/bob@example.com/edit?token=t0k3n&utm_source=news#/x?session=s3ss","referrer":"https://mail.example.org/inbox?auth=a4th","ts":1},
            {"id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6B","kind":"event","name":"Signup","url":"https://example.com/","props":{"plan":"pro","password":"hunter2","coupon":"SAVE50"},"ts":2}]}"#;
        let batch = parse_batch(body.as_bytes()).expect("valid");
        let out = enrich(batch, &conn(FIREFOX), &[1; 32], &["coupon".into()], 0);
        let page = &out.events[0].event;
        assert_eq!(
            page.url,
            "https://example.com/users/:email/edit?utm_source=news#/x"
        );
        assert_eq!(page.referrer.as_deref(), Some("https://mail.example.org/"));
        let json = serde_json::to_string(&out.events).expect("serializes");
        for secret in [
            "bob@example.com",
            "t0k3n",
            "s3ss",
            "a4th",
            "inbox",
            "hunter2",
            "SAVE50",
        ] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        assert!(json.contains(r#""plan":"pro""#), "{json}");
        assert!(json.contains(r#""password":"[redacted]""#), "{json}");
    }

    #[test]
    fn country_placeholders_are_dropped() {
        assert_eq!(country_code(Some("us")).as_deref(), Some("US"));
        assert_eq!(country_code(Some("XX")), None);
        assert_eq!(country_code(Some("T1")), None);
        assert_eq!(country_code(Some("USA")), None);
        assert_eq!(country_code(None), None);
    }
}
