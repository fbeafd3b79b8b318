//! The cookieless daily visitor id (CONTRACT §3): a keyed hash of (site, client IP,
//! User-Agent) under a random salt that rotates every UTC day. Without the salt, which is
//! deleted after 48 hours, the hash cannot be tied back to an IP.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Bytes of a salt.
pub const SALT_LEN: usize = 32;
/// Salts older than this many milliseconds are deleted.
pub const SALT_MAX_AGE_MS: i64 = 2 * DAY_MS;

/// The salt day of an instant: days since the Unix epoch, UTC.
pub fn salt_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// The visitor id of (site, ip, ua) under `salt`: the first 8 bytes of
/// HMAC-SHA256(salt, site ‖ 0 ‖ ip ‖ 0 ‖ ua), as a signed integer for storage.
pub fn visitor_id(salt: &[u8], site: &str, ip: &str, ua: &str) -> i64 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt).expect("HMAC takes any key length");
    for (i, part) in [site, ip, ua].into_iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(part.as_bytes());
    }
    let out = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    i64::from_be_bytes(first)
}

/// The visitor id as it travels from the edge: 16 lower-case hex digits.
pub fn visitor_to_hex(id: i64) -> String {
    hex::encode(id.to_be_bytes())
}

/// Parses [`visitor_to_hex`]'s form.
pub fn visitor_from_hex(s: &str) -> Option<i64> {
    let mut bytes = [0u8; 8];
    (s.len() == 16).then_some(())?;
    hex::decode_to_slice(s, &mut bytes).ok()?;
    Some(i64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_id_and_every_input_matters() {
        let salt = [7u8; SALT_LEN];
        let base = visitor_id(&salt, "example.com", "203.0.113.9", "UA");
        assert_eq!(base, visitor_id(&salt, "example.com", "203.0.113.9", "UA"));
        assert_ne!(
            base,
            visitor_id(&[8u8; SALT_LEN], "example.com", "203.0.113.9", "UA")
        );
        assert_ne!(base, visitor_id(&salt, "example.org", "203.0.113.9", "UA"));
        assert_ne!(base, visitor_id(&salt, "example.com", "203.0.113.10", "UA"));
        assert_ne!(base, visitor_id(&salt, "example.com", "203.0.113.9", "UA2"));
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(
            visitor_id(&salt, "s", "a", "bc"),
            visitor_id(&salt, "s", "ab", "c")
        );
    }

    #[test]
    fn hex_round_trip() {
        for id in [0, 1, -1, i64::MIN, i64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(visitor_from_hex(&visitor_to_hex(id)), Some(id));
        }
        assert_eq!(visitor_from_hex("xyz"), None);
        assert_eq!(visitor_from_hex("zz23456789abcdef"), None);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(salt_day(0), 0);
        assert_eq!(salt_day(DAY_MS - 1), 0);
        assert_eq!(salt_day(DAY_MS), 1);
        assert_eq!(salt_day(-1), -1);
    }
}
