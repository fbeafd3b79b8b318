//! What every part of Tally agrees on, with no I/O, so that it builds for the browser's and the
//! edge's wasm32 as well as natively, and is tested once with `cargo test -p tally-core`.
//!
//! - [`wire`]: the browser → collector body (CONTRACT §2), its limits and its validation.
//! - [`clean`]: URL cleaning (§3): path kept, `utm_*` kept, sensitive parameters dropped.
//! - [`agent`]: User-Agent → browser / OS / device, and the bot check.
//! - [`visitor`]: the daily-salted visitor hash (§3).
//! - [`referrer`]: referrer URL → host and well-known source name.
//! - [`edge`]: the edge → ingest batch and its HMAC signature.
//! - [`scrub`]: what the edge keeps of an event before queueing it (no `url` crate).

pub mod agent;
pub mod clean;
pub mod edge;
pub mod referrer;
pub mod scrub;
pub mod visitor;
pub mod wire;

/// Parameter and prop names whose values must never reach storage, traces, logs or
/// notifications (CONTRACT §3, §8). Operators add more with `TALLY_REDACT`.
pub const SENSITIVE_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "email",
    "mail",
    "session",
    "auth",
    "credential",
    "ssn",
    "card",
    "cvv",
    "jwt",
    "sid",
];

/// Whether a parameter or prop name looks sensitive: it contains one of
/// [`SENSITIVE_WORDS`] or one of the operator's `extra` words (case-insensitive).
pub fn is_sensitive_name(name: &str, extra: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_WORDS.iter().any(|w| lower.contains(w))
        || extra
            .iter()
            .any(|w| !w.is_empty() && lower.contains(&w.to_ascii_lowercase()))
}

/// The value stored in place of a sensitive prop's value.
pub const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names() {
        for name in [
            "password",
            "api_key",
            "AccessToken",
            "user_email",
            "sessionId",
            "Authorization",
        ] {
            assert!(is_sensitive_name(name, &[]), "{name}");
        }
        for name in ["plan", "utm_source", "page", "color"] {
            assert!(!is_sensitive_name(name, &[]), "{name}");
        }
        assert!(is_sensitive_name("plan", &["PLAN".into()]));
        assert!(!is_sensitive_name("plan", &[String::new()]));
    }
}
