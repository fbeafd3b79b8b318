//! From the queue to the ingest server: each queue message holds the events of one accepted
//! request and the drops the isolate counted (JSON, see [`message_body`]); one queue batch
//! becomes one signed [`EdgeBatch`](tally_core::edge::EdgeBatch).
//!
//! Sizes: a request holds at most 50 events and 64 KiB, enrichment adds well under 300 bytes
//! per event, so [`MAX_MESSAGES`] messages stay under the ingest server's
//! `MAX_BATCH_EVENTS` and `MAX_BATCH_BYTES` (checked by a test below).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tally_core::edge::EdgeEvent;

/// The queue consumer's `max_batch_size` in `wrangler.toml`.
pub const MAX_MESSAGES: usize = 20;

#[derive(Serialize)]
struct MessageOut<'a> {
    at: i64,
    events: &'a [EdgeEvent],
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    at: i64,
    #[serde(borrow)]
    events: &'a RawValue,
    #[serde(borrow, default)]
    dropped: Option<&'a RawValue>,
}

/// A queue message's body: the enriched events of one request, when the edge accepted them
/// (`at`, Unix ms), and `dropped` (a JSON array, see [`crate::drops::Pending::take_json`]),
/// as JSON.
pub fn message_body(events: &[EdgeEvent], at: i64, dropped: &str) -> String {
    let mut body = serde_json::to_string(&MessageOut { at, events }).unwrap_or_default();
    if dropped.len() > 2 && body.ends_with('}') {
        body.pop();
        body.push_str(",\"dropped\":");
        body.push_str(dropped);
        body.push('}');
    }
    body
}

/// The body of one ingest request, and the indices of messages that did not parse (they are
/// retried, and end in the dead-letter queue, rather than being dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub body: Vec<u8>,
    /// Messages whose events are in `body`.
    pub messages: usize,
    /// When the edge accepted the oldest message, to pace retries.
    pub oldest_ms: Option<i64>,
    pub unreadable: Vec<usize>,
}

/// The elements of a JSON array, as written: `[a,b]` → `a,b`.
fn elements(array: &RawValue) -> Option<&str> {
    Some(
        array
            .get()
            .trim()
            .strip_prefix('[')?
            .strip_suffix(']')?
            .trim(),
    )
}

/// Appends the elements `items` to a JSON array being written into `out`.
fn append(out: &mut String, first: &mut bool, items: &str) {
    if items.is_empty() {
        return;
    }
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push_str(items);
}

/// Builds the body of one ingest request, an `EdgeBatch`, from queue message bodies. The
/// events are copied as they are (already validated JSON), not parsed again: this keeps the
/// worker small and fast.
pub fn batch_body<'a>(batch_id: &str, messages: impl IntoIterator<Item = &'a str>) -> Outgoing {
    let mut body = String::from("{\"batch\":");
    body.push_str(&serde_json::to_string(batch_id).unwrap_or_else(|_| "\"\"".into()));
    body.push_str(",\"events\":[");
    let (mut first, mut dropped, mut first_drop) = (true, String::new(), true);
    let (mut count, mut oldest_ms, mut unreadable) = (0, None::<i64>, Vec::new());
    for (i, raw) in messages.into_iter().enumerate() {
        let parsed = serde_json::from_str::<MessageIn<'_>>(raw)
            .ok()
            .and_then(|m| {
                let drops = match m.dropped {
                    Some(d) => elements(d)?,
                    None => "",
                };
                Some((m.at, elements(m.events)?, drops))
            });
        let Some((at, events, drops)) = parsed else {
            unreadable.push(i);
            continue;
        };
        count += 1;
        oldest_ms = Some(oldest_ms.map_or(at, |o| o.min(at)));
        append(&mut body, &mut first, events);
        append(&mut dropped, &mut first_drop, drops);
    }
    body.push(']');
    if !dropped.is_empty() {
        body.push_str(",\"dropped\":[");
        body.push_str(&dropped);
        body.push(']');
    }
    body.push('}');
    Outgoing {
        body: body.into_bytes(),
        messages: count,
        oldest_ms,
        unreadable,
    }
}

/// What an ingest answer means for the queued messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `2xx`: every event is committed; acknowledge the messages.
    Delivered,
    /// Anything else (down, `5xx`, `503`, and also `400`/`401`, which a fixed configuration or
    /// a fixed server can still accept): retry with backoff, then dead-letter.
    Retry,
}

impl Delivery {
    pub fn of_status(status: u16) -> Delivery {
        if (200..300).contains(&status) {
            Delivery::Delivered
        } else {
            Delivery::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::edge::{EdgeBatch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
    use tally_core::wire::{Event, Kind, MAX_BODY_BYTES, MAX_EVENTS};

    fn event(id: &str, url: String) -> EdgeEvent {
        EdgeEvent {
            site: "example.com".into(),
            event: Event {
                id: id.into(),
                kind: Kind::Pageview,
                url,
                referrer: None,
                screen: None,
                user: None,
                ts: 1,
                name: None,
                props: None,
                engaged_ms: None,
            },
            visitor: "0123456789abcdef".into(),
            country: Some("DE".into()),
            browser: "Firefox".into(),
            os: "Linux".into(),
            device: "desktop".into(),
            edge_at: 2,
        }
    }

    #[test]
    fn messages_concatenate_into_one_batch_and_bad_ones_are_reported() {
        let a = message_body(&[event("A", "https://example.com/a".into())], 20, "[]");
        let b = message_body(
            &[
                event("B", "https://example.com/b".into()),
                event("C", "https://example.com/c".into()),
            ],
            10,
            r#"[{"site":"","reason":"invalid","n":2}]"#,
        );
        let empty = message_body(&[], 30, r#"[{"site":"example.com","reason":"bot","n":3}]"#);
        let out = batch_body("b\"1", [a.as_str(), "not json", empty.as_str(), b.as_str()]);
        assert_eq!(out.unreadable, vec![1]);
        assert_eq!(out.messages, 3);
        assert_eq!(out.oldest_ms, Some(10));
        let batch: EdgeBatch = serde_json::from_slice(&out.body).expect("parses");
        assert_eq!(batch.batch, "b\"1");
        assert_eq!(batch.events[0], event("A", "https://example.com/a".into()));
        let ids: Vec<_> = batch.events.iter().map(|e| e.event.id.as_str()).collect();
        assert_eq!(ids, ["A", "B", "C"]);
        let drops: Vec<_> = batch
            .dropped
            .iter()
            .map(|d| (d.site.as_str(), d.reason.as_str(), d.n))
            .collect();
        assert_eq!(drops, [("example.com", "bot", 3), ("", "invalid", 2)]);
        let plain = batch_body("c", [a.as_str()]);
        let plain: EdgeBatch = serde_json::from_slice(&plain.body).expect("parses");
        assert!(plain.dropped.is_empty());
    }

    #[test]
    fn a_full_queue_batch_fits_one_ingest_request() {
        // The largest request: MAX_EVENTS events whose URLs fill MAX_BODY_BYTES.
        let url = format!(
            "https://example.com/{}",
            "x".repeat(MAX_BODY_BYTES / MAX_EVENTS - 150)
        );
        let events: Vec<_> = (0..MAX_EVENTS)
            .map(|_| event("01JD3Z6Q8R9S0T1V2W3X4Y5Z6A", url.clone()))
            .collect();
        let message = message_body(&events, 1, "[]");
        let out = batch_body("b", std::iter::repeat_n(message.as_str(), MAX_MESSAGES));
        let batch: EdgeBatch = serde_json::from_slice(&out.body).expect("parses");
        assert_eq!(batch.events.len(), MAX_EVENTS * MAX_MESSAGES);
        assert!(batch.events.len() <= MAX_BATCH_EVENTS);
        assert!(out.body.len() <= MAX_BATCH_BYTES, "{}", out.body.len());
    }

    #[test]
    fn only_2xx_is_delivered() {
        assert_eq!(Delivery::of_status(200), Delivery::Delivered);
        for s in [400, 401, 429, 500, 502, 503] {
            assert_eq!(Delivery::of_status(s), Delivery::Retry);
        }
    }
}
