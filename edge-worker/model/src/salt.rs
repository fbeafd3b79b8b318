//! The daily salts kept by the `SaltKeeper` durable object: one random salt per UTC day
//! ([`salt_day`]), stored under [`key`], deleted once 48 hours have passed since its day began
//! ([`is_expired`]), so that no salt lives longer than [`SALT_MAX_AGE_MS`].

use tally_core::visitor::{salt_day, DAY_MS, SALT_MAX_AGE_MS};

const PREFIX: &str = "salt:";

/// The storage key of a day's salt.
pub fn key(day: i64) -> String {
    format!("{PREFIX}{day}")
}

/// The day of a storage key written by [`key`].
pub fn day_of_key(key: &str) -> Option<i64> {
    key.strip_prefix(PREFIX)?.parse().ok()
}

/// Whether the salt of `day` must be gone at `now_ms`. A salt is made at the earliest when its
/// day begins, so it is never older than 48 hours.
pub fn is_expired(day: i64, now_ms: i64) -> bool {
    day * DAY_MS + SALT_MAX_AGE_MS <= now_ms
}

/// When the keeper's next sweep runs: shortly after the next UTC midnight.
pub fn next_sweep_ms(now_ms: i64) -> i64 {
    (salt_day(now_ms) + 1) * DAY_MS + 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(day_of_key(&key(20_000)), Some(20_000));
        assert_eq!(day_of_key("other:1"), None);
    }

    #[test]
    fn salts_die_48_hours_after_their_day_began() {
        let day = 20_000;
        let start = day * DAY_MS;
        assert!(!is_expired(day, start));
        assert!(!is_expired(day, start + DAY_MS)); // yesterday's salt, kept
        assert!(!is_expired(day, start + SALT_MAX_AGE_MS - 1));
        assert!(is_expired(day, start + SALT_MAX_AGE_MS));
    }

    #[test]
    fn sweeps_run_after_each_midnight() {
        let now = 20_000 * DAY_MS + 5;
        let next = next_sweep_ms(now);
        assert!(next > now && next - now <= DAY_MS + 1000);
        assert_eq!(salt_day(next), 20_001);
    }
}
