//! The event queue: events wait here until a batch is sent, and come back here when sending
//! failed. Every event carries its own id, so sending one twice never counts it twice.
//!
//! Policy: a batch goes out [`FLUSH_MS`] after the first event was queued (by `fetch` with
//! `keepalive`), or at once by `sendBeacon` when the page is hidden or left. A batch holds at
//! most [`MAX_EVENTS`] events and [`MAX_BODY`] bytes. One `fetch` is in flight at a time; if
//! it fails (network error, `429`, `5xx`) its events go back to the front of the queue and the
//! next try waits twice as long, up to [`MAX_BACKOFF_MS`]. The queue holds at most
//! [`MAX_QUEUED`] events; past that the oldest are dropped.

use alloc::vec::Vec;

use crate::json;

/// Delay between the first queued event and the batch that carries it.
pub const FLUSH_MS: u32 = 1000;
/// Longest wait between two tries of a failing collector.
pub const MAX_BACKOFF_MS: u32 = 60_000;
/// Events per request (CONTRACT §2: at most 50).
pub const MAX_EVENTS: usize = 50;
/// Bytes per request: under the collector's 64 KiB and `sendBeacon`'s 64 KiB quota.
pub const MAX_BODY: usize = 60_000;
/// Events kept while the collector cannot be reached.
pub const MAX_QUEUED: usize = 200;

/// What became of a request, from its HTTP status (`0`: no response at all).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (`2xx`).
    Sent,
    /// Worth another try: network error, timeout, `429`, `5xx`.
    Retry,
    /// Refused for good (`400`, `403`, `413`): sending it again would be refused again.
    Refused,
}

impl Outcome {
    pub fn of(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Sent,
            0 | 408 | 429 | 500.. => Outcome::Retry,
            _ => Outcome::Refused,
        }
    }
}

#[derive(Default)]
pub struct Queue {
    pending: Vec<Vec<u8>>,
    in_flight: Vec<Vec<u8>>,
    failures: u32,
}

impl Queue {
    /// Queues one event (a JSON object).
    pub fn push(&mut self, event: Vec<u8>) {
        if self.pending.len() >= MAX_QUEUED {
            self.sent(1);
        }
        self.pending.push(event);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The body of the next batch and how many queued events it holds; the events stay queued
    /// until [`Queue::sent`] (for `sendBeacon`) or [`Queue::start`] (for `fetch`).
    pub fn next(&self, site: &[u8]) -> Option<(Vec<u8>, usize)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut body = Vec::from(*b"{\"site\":");
        json::push_str(&mut body, site);
        body.extend_from_slice(b",\"events\":[");
        let mut n = 0;
        for event in self.pending.iter().take(MAX_EVENTS) {
            if n > 0 && body.len() + event.len() + 3 > MAX_BODY {
                break;
            }
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event);
            n += 1;
        }
        body.extend_from_slice(b"]}");
        Some((body, n))
    }

    /// The first `n` queued events were handed to the browser for good (`sendBeacon`).
    pub fn sent(&mut self, n: usize) {
        let mut i = 0;
        self.pending.retain(|_| {
            i += 1;
            i > n
        });
    }

    /// The first `n` queued events are now in flight in a `fetch`, awaiting [`Queue::done`].
    pub fn start(&mut self, n: usize) {
        let mut i = 0;
        let (first, rest) = core::mem::take(&mut self.pending)
            .into_iter()
            .partition(|_| {
                i += 1;
                i <= n
            });
        (self.in_flight, self.pending) = (first, rest);
    }

    /// The `fetch` in flight ended with `status`. Returns when to send next, in ms (0: nothing
    /// to send).
    pub fn done(&mut self, status: u16) -> u32 {
        if Outcome::of(status) == Outcome::Retry {
            self.failures = (self.failures + 1).min(16);
            let mut failed = core::mem::take(&mut self.in_flight);
            failed.append(&mut self.pending);
            failed.truncate(MAX_QUEUED);
            self.pending = failed;
            return (FLUSH_MS << self.failures).min(MAX_BACKOFF_MS);
        }
        self.in_flight.clear();
        self.failures = 0;
        if self.pending.is_empty() {
            0
        } else {
            FLUSH_MS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i}}}").into_bytes()
    }

    fn next(q: &Queue) -> Option<(String, usize)> {
        q.next(b"example.com")
            .map(|(b, n)| (String::from_utf8(b).expect("utf-8"), n))
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(Outcome::of(202), Outcome::Sent);
        for s in [0, 408, 429, 500, 503] {
            assert_eq!(Outcome::of(s), Outcome::Retry, "{s}");
        }
        for s in [400, 403, 413] {
            assert_eq!(Outcome::of(s), Outcome::Refused, "{s}");
        }
    }

    #[test]
    fn batches_events_into_one_body() {
        let mut q = Queue::default();
        assert!(next(&q).is_none());
        q.push(ev(1));
        q.push(ev(2));
        let (body, n) = next(&q).expect("batch");
        assert_eq!(body, r#"{"site":"example.com","events":[{"n":1},{"n":2}]}"#);
        assert_eq!(n, 2);
        q.sent(n);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn caps_batches_by_count_and_size() {
        let mut q = Queue::default();
        for i in 0..120 {
            q.push(ev(i));
        }
        let (_, n) = next(&q).expect("batch");
        assert_eq!(n, MAX_EVENTS);
        q.sent(n);
        assert_eq!(q.pending(), 70);

        let mut q = Queue::default();
        let big = format!("\"{}\"", "x".repeat(25_000)).into_bytes();
        for _ in 0..3 {
            q.push(big.clone());
        }
        let (body, n) = next(&q).expect("batch");
        assert_eq!(n, 2);
        assert!(body.len() <= MAX_BODY);
    }

    #[test]
    fn retries_failed_batches_first_with_backoff() {
        let mut q = Queue::default();
        q.push(ev(1));
        q.push(ev(2));
        let (_, n) = next(&q).expect("batch");
        q.start(n);
        assert!(q.in_flight());
        q.push(ev(3));
        assert_eq!(q.done(503), 2 * FLUSH_MS);
        assert!(!q.in_flight());
        let (body, n) = next(&q).expect("batch");
        assert_eq!(n, 3);
        assert!(body.contains(r#"[{"n":1},{"n":2},{"n":3}]"#));
        q.start(n);
        assert_eq!(q.done(0), 4 * FLUSH_MS);
        for _ in 0..10 {
            q.start(3);
            assert!(q.done(0) <= MAX_BACKOFF_MS);
        }
        q.start(3);
        assert_eq!(q.done(202), 0);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn drops_refused_batches_and_bounds_the_queue() {
        let mut q = Queue::default();
        q.push(ev(1));
        q.start(1);
        q.push(ev(2));
        assert_eq!(q.done(400), FLUSH_MS);
        assert_eq!(q.pending(), 1);
        for i in 0..(MAX_QUEUED + 10) {
            q.push(ev(i));
        }
        assert_eq!(q.pending(), MAX_QUEUED);
        let (body, _) = next(&q).expect("batch");
        assert!(body.contains(r#"[{"n":10},"#));
    }
}
