use super::*;

fn queue() -> Box<Queue> {
    let mut q = Box::<Queue>::default();
    assert!(q.set_head(|q| q.raw(br#"{"site":"example.com","events":["#)));
    q
}

fn push(q: &mut Queue, event: &str) -> bool {
    q.begin();
    q.raw(event.as_bytes());
    q.commit()
}

fn ev(q: &mut Queue, i: usize) {
    assert!(push(q, &format!("{{\"n\":{i}}}")));
}

fn body(f: impl FnOnce(&mut [u8]) -> usize) -> String {
    let mut io = vec![0u8; 1 << 16];
    let n = f(&mut io);
    String::from_utf8(io[..n].to_vec()).expect("utf-8")
}

fn events(body: &str) -> usize {
    body.matches("{\"n\":").count()
}

#[test]
fn writes_json() {
    let mut q = queue();
    q.begin();
    let start = q.w;
    q.str("a\"b\\c\n\u{1}\u{1f}é€".as_bytes());
    q.num(0);
    q.num(1732380000000);
    q.num(u64::MAX);
    let s = String::from_utf8(q.written(start, q.w).to_vec()).expect("utf-8");
    assert_eq!(
        s,
        format!(r#""a\"b\\c\u000a\u0001\u001fé€"01732380000000{}"#, u64::MAX)
    );
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
    let mut q = queue();
    assert_eq!(body(|io| q.fetch(io)), "");
    assert!(!q.pending());
    ev(&mut q, 1);
    ev(&mut q, 2);
    assert!(q.pending());
    let b = body(|io| q.beacon(false, io));
    assert_eq!(b, r#"{"site":"example.com","events":[{"n":1},{"n":2}]}"#);
    assert_eq!(body(|io| q.beacon(true, io)), "");
    assert!(!q.pending());
}

#[test]
fn holds_one_request_at_most() {
    let mut q = queue();
    for i in 0..MAX_EVENTS {
        ev(&mut q, i);
    }
    assert!(!push(&mut q, "{}"), "more than {MAX_EVENTS} events");
    let b = body(|io| q.beacon(false, io));
    assert_eq!(events(&b), MAX_EVENTS);
    assert!(b.ends_with(r#"{"n":48},{"n":49}]}"#));
    assert_eq!(body(|io| q.beacon(true, io)), "");
    assert!(push(&mut q, "{}"));

    let mut q = queue();
    let big = format!("\"{}\"", "x".repeat(25_000));
    assert!(push(&mut q, &big));
    assert!(push(&mut q, &big));
    assert!(!push(&mut q, &big), "more than one body");
    assert!(
        !push(&mut q, &"x".repeat(100_000)),
        "longer than the buffer"
    );
    let b = body(|io| q.fetch(io));
    assert_eq!(b.matches("xxxxx").count(), 10_000);
    assert!(b.len() <= MAX_BODY);
    assert!(b.ends_with("x\"]}"));
}

#[test]
fn retries_failed_batches_first_with_backoff() {
    let mut q = queue();
    ev(&mut q, 1);
    ev(&mut q, 2);
    assert_eq!(events(&body(|io| q.fetch(io))), 2);
    assert!(!q.pending());
    assert_eq!(body(|io| q.fetch(io)), "", "one fetch at a time");
    ev(&mut q, 3);
    // Hidden meanwhile: the beacon carries only what is not in flight.
    assert_eq!(
        body(|io| q.beacon(false, io)),
        r#"{"site":"example.com","events":[{"n":3}]}"#
    );
    assert_eq!(q.done(503), 2 * FLUSH_MS);
    let b = body(|io| q.fetch(io));
    assert!(b.contains(r#"[{"n":1},{"n":2},{"n":3}]"#), "{b}");
    assert_eq!(q.done(0), 4 * FLUSH_MS);
    for _ in 0..10 {
        body(|io| q.fetch(io));
        assert!(q.done(0) <= MAX_BACKOFF_MS);
    }
    body(|io| q.fetch(io));
    assert_eq!(q.done(202), FLUSH_MS);
    assert!(!q.pending());
    assert_eq!(body(|io| q.fetch(io)), "");
}

#[test]
fn removes_what_a_beacon_took_while_a_fetch_is_in_flight() {
    let mut q = queue();
    ev(&mut q, 1);
    body(|io| q.fetch(io));
    ev(&mut q, 2);
    ev(&mut q, 3);
    assert_eq!(events(&body(|io| q.beacon(false, io))), 2);
    assert_eq!(body(|io| q.beacon(true, io)), "");
    ev(&mut q, 4);
    assert_eq!(q.done(0), 2 * FLUSH_MS);
    assert_eq!(
        body(|io| q.fetch(io)),
        r#"{"site":"example.com","events":[{"n":1},{"n":4}]}"#
    );
}

#[test]
fn drops_refused_batches() {
    let mut q = queue();
    ev(&mut q, 1);
    body(|io| q.fetch(io));
    ev(&mut q, 2);
    assert_eq!(q.done(400), FLUSH_MS);
    assert_eq!(
        body(|io| q.fetch(io)),
        r#"{"site":"example.com","events":[{"n":2}]}"#
    );
    assert_eq!(q.done(202), FLUSH_MS);
    ev(&mut q, 3);
    assert_eq!(
        body(|io| q.fetch(io)),
        r#"{"site":"example.com","events":[{"n":3}]}"#
    );
}
