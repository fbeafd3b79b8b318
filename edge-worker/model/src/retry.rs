//! The backoff of failed deliveries to the ingest server.
//!
//! A batch that could not be delivered is retried after [`delay_s`]: as long as its oldest
//! message has already waited (at least `base_s`, at most [`MAX_DELAY_S`]), which doubles the
//! wait at each attempt without counting attempts. After `max_retries` (wrangler.toml) the
//! messages move to the dead-letter queue. With the shipped settings ([`BASE_DELAY_S`],
//! [`MAX_RETRIES`]) a message is retried for about [`retry_span_s`] = 62 hours, well over the
//! required 24 hours and under the queue's default 4-day retention.

/// Default first delay, seconds (the `RETRY_BASE_DELAY_S` var overrides it).
pub const BASE_DELAY_S: u32 = 10;
/// Longest delay between two attempts, seconds (the platform allows up to 12 hours).
pub const MAX_DELAY_S: u32 = 3 * 3600;
/// The consumer's `max_retries` in wrangler.toml (the platform allows up to 100).
pub const MAX_RETRIES: u32 = 30;

/// The delay before the next attempt of a message first sent `age_s` seconds ago.
pub fn delay_s(age_s: u64, base_s: u32) -> u32 {
    let age = u32::try_from(age_s).unwrap_or(u32::MAX);
    age.clamp(base_s.max(1), MAX_DELAY_S.max(base_s))
}

/// Seconds from the first attempt until a message is dead-lettered (attempts themselves
/// taking no time).
pub fn retry_span_s(max_retries: u32, base_s: u32) -> u64 {
    let mut age = 0u64;
    for _ in 0..max_retries {
        age += u64::from(delay_s(age, base_s));
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap() {
        let mut age = 0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let d = delay_s(age, 10);
            waits.push(d);
            age += u64::from(d);
        }
        assert_eq!(waits, [10, 10, 20, 40, 80]);
        assert_eq!(delay_s(10 * 3600, 10), MAX_DELAY_S);
        assert_eq!(delay_s(u64::MAX, 10), MAX_DELAY_S);
        assert_eq!(delay_s(0, 0), 1);
    }

    #[test]
    fn shipped_settings_retry_for_more_than_a_day_within_retention() {
        let span = retry_span_s(MAX_RETRIES, BASE_DELAY_S);
        assert!(span > 24 * 3600, "{span}");
        assert!(span < 4 * 24 * 3600, "{span}");
    }

    #[test]
    fn wrangler_toml_matches() {
        let toml = include_str!("../../wrangler.toml");
        assert!(toml.contains(&format!("max_retries = {MAX_RETRIES}")));
        assert!(toml.contains(&format!(
            "max_batch_size = {}",
            crate::forward::MAX_MESSAGES
        )));
    }
}
