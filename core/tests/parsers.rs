//! Properties of the two parsers that face the network: the browser body
//! ([`tally_core::wire::parse_batch`]) and the edge batch ([`tally_core::edge::EdgeBatch`] with
//! [`tally_core::edge::verify`]). Any input is answered without a panic; valid inputs
//! round-trip; a signature covers every byte of the body.
//!
//! 256 cases each by default; `PROPTEST_CASES=100000 cargo test --release -p tally-core
//! --test parsers` is the long run.

use proptest::prelude::*;
use tally_core::edge::{self, EdgeBatch, EdgeEvent};
use tally_core::wire::{self, Batch, Event, Kind, PropValue, WireError};

const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn ulid() -> impl Strategy<Value = String> {
    (0usize..8, proptest::collection::vec(0usize..32, 25)).prop_map(|(first, rest)| {
        let c = CROCKFORD.as_bytes();
        std::iter::once(c[first] as char)
            .chain(rest.into_iter().map(|i| c[i] as char))
            .collect()
    })
}

fn prop_value() -> impl Strategy<Value = PropValue> {
    prop_oneof![
        any::<bool>().prop_map(PropValue::Bool),
        // Numbers of up to 12 significant digits: serde_json (without `float_roundtrip`)
        // may change the 17th digit of a longer one.
        (-100_000_000_000i64..100_000_000_000).prop_map(|n| PropValue::Num(n as f64 / 100.0)),
        "\\PC{0,40}".prop_map(PropValue::Str),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        ulid(),
        0u8..3,
        "[a-z0-9/._-]{0,60}",
        proptest::option::of("https://[a-z]{1,10}\\.com/[a-z]{0,10}"),
        proptest::option::of(0u32..10_000),
        proptest::option::of(any::<bool>()),
        1i64..4_000_000_000_000,
        "\\PC{1,60}",
        proptest::collection::btree_map("[a-z_]{1,20}", prop_value(), 0..5),
        0u64..10_000_000,
    )
        .prop_map(
            |(id, kind, path, referrer, screen, user, ts, name, props, engaged)| {
                let kind = [Kind::Pageview, Kind::Event, Kind::Engagement][kind as usize];
                let custom = kind == Kind::Event;
                Event {
                    id,
                    kind,
                    url: format!("https://example.com/{path}"),
                    referrer,
                    screen,
                    user,
                    ts,
                    name: custom.then(|| format!("n{}", name.trim())),
                    props: (custom && !props.is_empty()).then_some(props),
                    engaged_ms: (kind == Kind::Engagement).then_some(engaged),
                }
            },
        )
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        "[a-z]{1,12}\\.(com|org|io)",
        proptest::collection::vec(event(), 1..=20),
    )
        .prop_map(|(site, events)| Batch { site, events })
}

fn edge_batch() -> impl Strategy<Value = EdgeBatch> {
    (
        "[a-zA-Z0-9-]{1,30}",
        proptest::collection::vec(
            (
                event(),
                "[0-9a-f]{16}",
                proptest::option::of("[A-Z]{2}"),
                0usize..3,
            ),
            0..20,
        ),
    )
        .prop_map(|(batch, events)| EdgeBatch {
            batch,
            events: events
                .into_iter()
                .map(|(event, visitor, country, device)| EdgeEvent {
                    site: "example.com".into(),
                    edge_at: event.ts,
                    event,
                    visitor,
                    country,
                    browser: "Firefox".into(),
                    os: "Linux".into(),
                    device: ["desktop", "mobile", "tablet"][device].into(),
                })
                .collect(),
            dropped: Vec::new(),
        })
}

/// Bytes that look a little like JSON: brackets, quotes, field names, digits, junk.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"\"site\"".to_vec()),
        Just(b"\"events\"".to_vec()),
        Just(b"\"id\"".to_vec()),
        Just(b"\"kind\"".to_vec()),
        Just(b"\"url\"".to_vec()),
        Just(b"\"props\"".to_vec()),
        Just(b"\"example.com\"".to_vec()),
        Just(b"\"pageview\"".to_vec()),
        Just(b"\"https://example.com/\"".to_vec()),
        Just(b"\"\\ud800\"".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"-0".to_vec()),
        Just(b"null".to_vec()),
        Just(b"true".to_vec()),
        Just(vec![0xff, 0xfe]),
        Just(vec![0xc3, 0x28]),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(token, 0..200).prop_map(|t| t.concat())
}

proptest! {
    #[test]
    fn parse_batch_answers_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = wire::parse_batch(&body);
    }

    #[test]
    fn parse_batch_answers_json_like_bytes(body in jsonish()) {
        if let Ok(batch) = wire::parse_batch(&body) {
            prop_assert!(!batch.events.is_empty() && batch.events.len() <= wire::MAX_EVENTS);
        }
    }

    #[test]
    fn valid_batches_round_trip(batch in batch()) {
        let body = serde_json::to_vec(&batch).expect("serializes");
        let parsed = wire::parse_batch(&body);
        if body.len() > wire::MAX_BODY_BYTES {
            prop_assert_eq!(parsed, Err(WireError::TooLarge));
        } else {
            let parsed = parsed.expect("a valid batch parses");
            prop_assert_eq!(&parsed, &batch);
            let again = wire::parse_batch(&serde_json::to_vec(&parsed).expect("serializes"));
            prop_assert_eq!(again.expect("parses again"), parsed);
        }
    }

    #[test]
    fn truncated_batches_are_refused(batch in batch(), cut in any::<prop::sample::Index>()) {
        let body = serde_json::to_vec(&batch).expect("serializes");
        let cut = cut.index(body.len());
        prop_assert!(wire::parse_batch(&body[..cut]).is_err());
    }

    #[test]
    fn deep_nesting_is_refused(depth in 1usize..20_000) {
        let body = format!(r#"{{"site":"example.com","events":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        prop_assert!(wire::parse_batch(body.as_bytes()).is_err());
    }

    #[test]
    fn edge_batches_answer_any_bytes(body in jsonish()) {
        let _ = serde_json::from_slice::<EdgeBatch>(&body);
        let _ = edge::verify(b"secret-0123456789", Some("1700000000"), Some("v1=00"), &body, 1_700_000_000);
    }

    #[test]
    fn edge_batches_round_trip_and_validate(batch in edge_batch()) {
        let body = serde_json::to_vec(&batch).expect("serializes");
        let parsed: EdgeBatch = serde_json::from_slice(&body).expect("parses");
        prop_assert_eq!(&parsed, &batch);
        for mut e in parsed.events {
            prop_assert!(e.event.validate().is_ok());
        }
    }

    #[test]
    fn a_signature_covers_every_byte(
        batch in edge_batch(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        ts in 1_600_000_000i64..2_000_000_000,
    ) {
        let secret = b"secret-0123456789";
        let body = serde_json::to_vec(&batch).expect("serializes");
        let sig = edge::sign(secret, ts, &body);
        let stamp = ts.to_string();
        prop_assert_eq!(edge::verify(secret, Some(&stamp), Some(&sig), &body, ts), Ok(()));
        let mut modified = body.clone();
        let i = at.index(modified.len());
        modified[i] ^= flip;
        prop_assert_eq!(
            edge::verify(secret, Some(&stamp), Some(&sig), &modified, ts),
            Err(edge::AuthError::BadSignature)
        );
        let other = (ts + 1).to_string();
        prop_assert_eq!(
            edge::verify(secret, Some(&other), Some(&sig), &body, ts),
            Err(edge::AuthError::BadSignature)
        );
    }
}
