//! From the queue to the ingest server: each queue message holds the events of one accepted
//! request (JSON, see [`message_body`]); one queue batch becomes one signed [`EdgeBatch`].
//!
//! Sizes: a request holds at most 50 events and 64 KiB, enrichment adds well under 300 bytes
//! per event, so [`MAX_MESSAGES`] messages stay under the ingest server's
//! `MAX_BATCH_EVENTS` and `MAX_BATCH_BYTES` (checked by a test below).

use tally_core::edge::{EdgeBatch, EdgeEvent};

/// The queue consumer's `max_batch_size` in `wrangler.toml`.
pub const MAX_MESSAGES: usize = 20;

/// A queue message's body: the enriched events of one request, as JSON.
pub fn message_body(events: &[EdgeEvent]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".to_string())
}

/// The body of one ingest request, and the indices of messages that did not parse (they are
/// retried, and end in the dead-letter queue, rather than being dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub body: Vec<u8>,
    pub events: usize,
    /// When the edge accepted the oldest event (`edge_at`), to pace retries.
    pub oldest_ms: Option<i64>,
    pub unreadable: Vec<usize>,
}

/// Builds the signed-to-be body of one ingest request from queue message bodies.
pub fn batch_body<'a>(batch_id: &str, messages: impl IntoIterator<Item = &'a str>) -> Outgoing {
    let mut events = Vec::new();
    let mut unreadable = Vec::new();
    for (i, body) in messages.into_iter().enumerate() {
        match serde_json::from_str::<Vec<EdgeEvent>>(body) {
            Ok(mut e) => events.append(&mut e),
            Err(_) => unreadable.push(i),
        }
    }
    let count = events.len();
    let oldest_ms = events.iter().map(|e| e.edge_at).min();
    let batch = EdgeBatch {
        batch: batch_id.to_string(),
        events,
    };
    Outgoing {
        body: serde_json::to_vec(&batch).unwrap_or_default(),
        events: count,
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
    use tally_core::edge::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
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
        let a = message_body(&[event("A", "https://example.com/a".into())]);
        let b = message_body(&[
            event("B", "https://example.com/b".into()),
            event("C", "https://example.com/c".into()),
        ]);
        let out = batch_body("b1", [a.as_str(), "not json", b.as_str()]);
        assert_eq!(out.unreadable, vec![1]);
        assert_eq!(out.events, 3);
        assert_eq!(out.oldest_ms, Some(2));
        let batch: EdgeBatch = serde_json::from_slice(&out.body).expect("parses");
        assert_eq!(batch.batch, "b1");
        let ids: Vec<_> = batch.events.iter().map(|e| e.event.id.as_str()).collect();
        assert_eq!(ids, ["A", "B", "C"]);
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
        let message = message_body(&events);
        let out = batch_body("b", std::iter::repeat_n(message.as_str(), MAX_MESSAGES));
        assert!(out.events <= MAX_BATCH_EVENTS);
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
