//! The channel from the edge worker to the ingest server.
//!
//! `POST /api/edge/batch` on the ingest server, body an [`EdgeBatch`] (JSON), with two headers:
//!
//! - `X-Tally-Timestamp`: Unix seconds when the request was signed;
//! - `X-Tally-Signature`: `v1=` + hex HMAC-SHA256(`TALLY_EDGE_SECRET`, `"v1:" + timestamp + ":" + body`).
//!
//! The ingest server refuses (`401`) a missing or wrong signature, a timestamp more than
//! [`MAX_SKEW_S`] away from its clock, and a signature it has already accepted (a replay). A
//! retry of the same batch is signed again with a fresh timestamp, so it is not a replay; its
//! events are duplicates by id and change no count. The answer is `200` with
//! `{"accepted": N, "duplicates": M}` once every event is committed.
//!
//! The events carry what the edge derived from the connection (visitor id, country, browser,
//! OS, device), never the client IP or the User-Agent string.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::wire::Event;

/// Path of the batch endpoint on the ingest server.
pub const BATCH_PATH: &str = "/api/edge/batch";
/// Header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-tally-timestamp";
/// Header with the signature.
pub const SIGNATURE_HEADER: &str = "x-tally-signature";
/// Largest accepted clock difference between edge and ingest, in seconds.
pub const MAX_SKEW_S: i64 = 300;
/// At most this many events in one edge batch.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// At most this many bytes in one edge batch body.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// A batch of events forwarded by the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeBatch {
    /// The edge's id of this batch (kept in each event's trace).
    pub batch: String,
    pub events: Vec<EdgeEvent>,
    /// What the edge refused or dropped since its previous batch, for the pipeline view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<EdgeDrop>,
}

/// Why the edge did not forward events: the pipeline view's drop reasons that happen there.
pub const EDGE_DROP_REASONS: [&str; 4] = ["bot", "invalid", "unknown_site", "rate_limited"];

/// Events the edge dropped, counted per site and reason. Bots are counted per event and per
/// registered site; refused requests (`invalid`, `unknown_site`, `rate_limited`) have no
/// site the edge can trust and are counted with an empty one, one per request when their
/// events were never read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeDrop {
    #[serde(default)]
    pub site: String,
    /// One of [`EDGE_DROP_REASONS`].
    pub reason: String,
    pub n: u64,
}

/// One event as the edge forwards it: the browser's event plus what the edge derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEvent {
    pub site: String,
    #[serde(flatten)]
    pub event: Event,
    /// The visitor id, see [`crate::visitor::visitor_to_hex`].
    pub visitor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile` or `tablet`.
    pub device: String,
    /// Milliseconds since the epoch when the edge accepted the event.
    pub edge_at: i64,
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing X-Tally-Timestamp or X-Tally-Signature")]
    Missing,
    #[error("timestamp is not within {MAX_SKEW_S} s of the server's clock")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v1:");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Tally-Signature` value for `body` signed at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a request's headers against its body, in constant time. `now` is Unix seconds.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), AuthError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(AuthError::Missing);
    };
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| AuthError::Missing)?;
    if (now - timestamp).abs() > MAX_SKEW_S {
        return Err(AuthError::Stale);
    }
    let given = signature
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(AuthError::BadSignature)?;
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"shared secret";

    #[test]
    fn signed_requests_verify() {
        let sig = sign(SECRET, 1_700_000_000, b"{}");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_eq!(
            verify(SECRET, Some("1700000000"), Some(&sig), b"{}", 1_700_000_100),
            Ok(())
        );
    }

    #[test]
    fn forged_modified_and_stale_requests_fail() {
        let sig = sign(SECRET, 1_700_000_000, b"{}");
        let now = 1_700_000_000;
        assert_eq!(
            verify(b"other", Some("1700000000"), Some(&sig), b"{}", now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some("1700000000"), Some(&sig), b"{ }", now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some("1700000001"), Some(&sig), b"{}", now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some("1700000000"), Some("v1=zz"), b"{}", now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), b"{}", now),
            Err(AuthError::Missing)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("1700000000"),
                Some(&sig),
                b"{}",
                now + MAX_SKEW_S + 1
            ),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn edge_event_round_trips_flat() {
        let json = r#"{"site":"example.com","id":"01JD3Z6Q8R9S0T1V2W3X4Y5Z6A","kind":"pageview","url":"https://example.com/","ts":1,"visitor":"0123456789abcdef","country":"DE","browser":"Firefox","os":"Linux","device":"desktop","edge_at":2}"#;
        let e: EdgeEvent = serde_json::from_str(json).expect("parses");
        assert_eq!(e.event.url, "https://example.com/");
        assert_eq!(e.country.as_deref(), Some("DE"));
        let back = serde_json::to_string(&e).expect("serializes");
        assert_eq!(serde_json::from_str::<EdgeEvent>(&back).expect("parses"), e);
    }
}
