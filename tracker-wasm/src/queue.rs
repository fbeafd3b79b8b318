//! The event queue, and the writer events are written with.
//!
//! The queue is one buffer holding one request body, less its `]}`: the head
//! (`{"site":"…","events":[`) and then up to [`MAX_EVENTS`] events joined by commas, at most
//! [`MAX_BODY`] bytes in all. Events are written in place at its end and kept only if they
//! fit ([`Queue::commit`]); a body is a copy of the head and of the events not yet sent.
//! Events are never moved: the queue keeps where the unsent ones start and where those of
//! the `fetch` in flight end, and starts over empty once everything is sent. A failed `fetch`
//! leaves its events first in line. Every event carries its own id, so sending one twice
//! never counts it twice.
//!
//! Policy: a batch goes out [`FLUSH_MS`] after the first event was queued (by `fetch` with
//! `keepalive`), or at once by `sendBeacon` when the page is hidden or left. One `fetch` is
//! in flight at a time; if it fails (network error, `408`, `429`, `5xx`) the next try waits
//! twice as long, up to [`MAX_BACKOFF_MS`]. Events that do not fit in a full queue (the
//! collector out of reach for a while) are dropped.
//!
//! Writing never panics: indices are clamped into the buffer (a panic site would bring
//! `core::fmt` into the wasm), and what was written past the end is never kept.

/// Delay between the first queued event and the batch that carries it.
pub const FLUSH_MS: u32 = 1000;
/// Longest wait between two tries of a failing collector.
pub const MAX_BACKOFF_MS: u32 = 60_000;
/// Events per request (CONTRACT §2: at most 50).
pub const MAX_EVENTS: usize = 50;
/// Bytes per request: under the collector's 64 KiB and `sendBeacon`'s 64 KiB quota.
pub const MAX_BODY: usize = 60_000;
/// The queue's buffer: room for a body, and past it for scratch (see [`Queue::scratch`]).
pub const QUEUE_LEN: usize = 80 * 1024;

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
    pub fn of(status: u32) -> Outcome {
        match status {
            200..=299 => Outcome::Sent,
            0 | 408 | 429 | 500.. => Outcome::Retry,
            _ => Outcome::Refused,
        }
    }
}

pub struct Queue {
    buf: [u8; QUEUE_LEN],
    /// Bytes of the head.
    head: usize,
    /// Where the unsent events start (after a comma unless it is `head`).
    sent: usize,
    /// Where the events of the `fetch` in flight end (`sent` when none is).
    flight: usize,
    /// Where the events end.
    len: usize,
    /// Events since the queue was last empty.
    events: usize,
    failures: u32,
    /// Where the next byte is written.
    pub w: usize,
}

/// Copies `s` into `buf`; returns the length copied.
pub fn copy(buf: &mut [u8], s: &[u8]) -> usize {
    let mut n = 0;
    for (to, &b) in buf.iter_mut().zip(s) {
        *to = b;
        n += 1;
    }
    n
}

impl Queue {
    pub const fn new() -> Queue {
        Queue {
            buf: [0; QUEUE_LEN],
            head: 0,
            sent: 0,
            flight: 0,
            len: 0,
            events: 0,
            failures: 0,
            w: 0,
        }
    }

    #[inline(never)]
    pub fn put(&mut self, b: u8) {
        self.buf[self.w.min(QUEUE_LEN - 1)] = b;
        self.w += 1;
    }

    #[inline(never)]
    pub fn raw(&mut self, s: &[u8]) {
        for &b in s {
            self.put(b);
        }
    }

    /// `s` escaped for a JSON string, without the quotes.
    pub fn text(&mut self, s: &[u8]) {
        for &b in s {
            if b == b'"' || b == b'\\' {
                self.put(b'\\');
            } else if b < 0x20 {
                self.raw(b"\\u00");
                self.put(b'0' + (b >> 4));
                self.put(b"0123456789abcdef"[(b & 15) as usize]);
                continue;
            }
            self.put(b);
        }
    }

    /// `s` as a JSON string literal.
    pub fn str(&mut self, s: &[u8]) {
        self.put(b'"');
        self.text(s);
        self.put(b'"');
    }

    /// The decimal digits of `n`.
    pub fn num(&mut self, n: u64) {
        if n >= 10 {
            self.num(n / 10);
        }
        self.put(b'0' + (n % 10) as u8);
    }

    /// The bytes written from `from` to `to` (what fitted of them).
    pub fn written(&self, from: usize, to: usize) -> &[u8] {
        self.buf.get(from..to.min(QUEUE_LEN)).unwrap_or_default()
    }

    /// Moves the write position well past the queued events, to where something can be
    /// written that is not kept and that the next event written (even the longest engagement
    /// event) leaves alone; returns that position.
    pub fn scratch(&mut self) -> usize {
        self.w = self.len + 8192;
        self.w
    }

    /// Starts the queue with the body's head, written by `f`; false if it is too long.
    pub fn set_head(&mut self, f: impl FnOnce(&mut Queue)) -> bool {
        self.w = 0;
        f(self);
        self.head = self.w;
        self.clear();
        self.w < 1024
    }

    fn clear(&mut self) {
        (self.sent, self.flight, self.len, self.events) = (self.head, self.head, self.head, 0);
    }

    /// Starts writing an event at the end of the queue.
    pub fn begin(&mut self) {
        self.w = self.len;
        if self.len > self.sent {
            self.put(b',');
        }
    }

    /// Keeps the event written since [`Queue::begin`] if it fits. Returns whether it did.
    pub fn commit(&mut self) -> bool {
        let kept = self.w <= MAX_BODY - 2 && self.events < MAX_EVENTS;
        if kept {
            self.len = self.w;
            self.events += 1;
        }
        kept
    }

    /// Whether events wait that are not in a `fetch` in flight.
    pub fn pending(&self) -> bool {
        self.len > self.flight
    }

    /// Writes into `io` the head and the events from byte `from` on, as a body; returns its
    /// length (0: no events).
    fn body(&self, from: usize, io: &mut [u8]) -> usize {
        if from >= self.len {
            return 0;
        }
        let from = from + (from > self.head) as usize;
        let mut n = copy(io, self.buf.get(..self.head).unwrap_or_default());
        n += copy(
            io.get_mut(n..).unwrap_or_default(),
            self.buf.get(from..self.len).unwrap_or_default(),
        );
        n + copy(io.get_mut(n..).unwrap_or_default(), b"]}")
    }

    /// The body for `sendBeacon`: the events not in flight. `accepted`: the browser took the
    /// previous body this made, whose events are dropped first.
    pub fn beacon(&mut self, accepted: bool, io: &mut [u8]) -> usize {
        if accepted {
            self.len = self.flight;
            if self.len == self.sent {
                self.clear();
            }
        }
        self.body(self.flight, io)
    }

    /// The body for `fetch`, whose events are then in flight until [`Queue::done`]; 0 when
    /// nothing waits or a `fetch` is in flight already.
    pub fn fetch(&mut self, io: &mut [u8]) -> usize {
        if self.flight > self.sent {
            return 0;
        }
        self.flight = self.len;
        self.body(self.sent, io)
    }

    /// The `fetch` in flight ended with `status`. Returns when to send next, in ms.
    pub fn done(&mut self, status: u32) -> u32 {
        if Outcome::of(status) == Outcome::Retry {
            self.failures = (self.failures + 1).min(16);
            self.flight = self.sent;
        } else {
            self.sent = self.flight;
            self.failures = 0;
            if self.sent == self.len {
                self.clear();
            }
        }
        (FLUSH_MS << self.failures).min(MAX_BACKOFF_MS)
    }
}

impl Default for Queue {
    fn default() -> Queue {
        Queue::new()
    }
}

#[cfg(test)]
mod tests;
