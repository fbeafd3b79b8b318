//! Raw events loaded for filtered queries, shared by the queries that need the same ones.
//!
//! A filtered view of the admin page asks for a summary (this period and the one before), a
//! timeseries and six breakdowns at once, and every one of them is answered from the same
//! raw events of the same range ([`super::raw`]). Loading and sessionising them is nearly all
//! of a filtered query's cost, so the first query loads them and the others wait for it and
//! count from the same [`Raw`]: the page reads the events twice (two periods) instead of
//! nine times, and holds one copy of them in memory instead of nine.
//!
//! A loaded range is reused while no event was stored since (the largest `seq` is the same)
//! for at most [`MAX_AGE`], and for [`FRESH`] whatever was stored: a filtered answer is never
//! more than that behind an unfiltered one. At most [`CAPACITY`] ranges and [`KEPT_EVENTS`]
//! events are kept, the oldest ranges dropped first, and nothing outlives [`MAX_AGE`]: an
//! idle server holds no loaded events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::sync::OnceCell;

use super::params::Dim;
use super::raw::{self, Raw};
use crate::store::{Store, StoreError};

/// How long a loaded range is used even when events were stored since.
pub const FRESH: Duration = Duration::from_secs(2);
/// How long a loaded range is kept at most.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// How many loaded ranges are kept at most.
pub const CAPACITY: usize = 8;
/// How many loaded events are kept at most (about 500 bytes each). A range with more is
/// still shared by the queries that asked for it while it loaded.
pub const KEPT_EVENTS: usize = 1_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    site_id: i64,
    from: i64,
    to: i64,
    filters: Vec<(Dim, String)>,
}

struct Entry {
    loaded_at: Instant,
    /// The largest event `seq` when the load began.
    upto: i64,
    raw: Arc<OnceCell<Arc<Raw>>>,
}

/// The shared loads (one per [`Store`] and its clones).
pub struct RawCache {
    entries: Mutex<HashMap<Key, Entry>>,
    loads: AtomicU64,
    /// [`KEPT_EVENTS`], but for tests.
    kept_events: usize,
}

impl Default for RawCache {
    fn default() -> RawCache {
        RawCache {
            entries: Mutex::default(),
            loads: AtomicU64::new(0),
            kept_events: KEPT_EVENTS,
        }
    }
}

impl std::fmt::Debug for RawCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCache")
            .field("loads", &self.loads())
            .finish_non_exhaustive()
    }
}

impl RawCache {
    /// How many ranges were read from the database so far.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Forgets the ranges older than [`MAX_AGE`].
    fn sweep(&self, now: Instant) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, e| now.duration_since(e.loaded_at) < MAX_AGE);
        }
    }

    /// How many ranges are kept.
    pub fn kept(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Forgets every loaded range (the next query of each reads the database again).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// The cell of `key`, new unless a usable one is kept.
    fn cell(&self, key: Key, upto: i64, now: Instant) -> Arc<OnceCell<Arc<Raw>>> {
        let Ok(mut entries) = self.entries.lock() else {
            return Arc::new(OnceCell::new());
        };
        let usable = |e: &Entry| {
            let age = now.duration_since(e.loaded_at);
            age < FRESH || (age < MAX_AGE && e.upto == upto)
        };
        entries.retain(|_, e| usable(e));
        if let Some(e) = entries.get(&key) {
            return e.raw.clone();
        }
        let kept = |entries: &HashMap<Key, Entry>| -> usize {
            entries
                .values()
                .filter_map(|e| e.raw.get().map(|r| r.len()))
                .sum()
        };
        while entries.len() >= CAPACITY || kept(&entries) > self.kept_events {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.loaded_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        let raw = Arc::new(OnceCell::new());
        entries.insert(
            key,
            Entry {
                loaded_at: now,
                upto,
                raw: raw.clone(),
            },
        );
        raw
    }
}

/// The largest event `seq` stored (0 without events): it changes whenever events are stored.
async fn last_seq(store: &Store) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&store.pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// The raw events of `[from, to)` for `filters` ([`raw::load`]), loaded once for all the
/// queries that ask for them while they are fresh.
pub async fn load(
    store: &Store,
    site_id: i64,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
) -> Result<Arc<Raw>, StoreError> {
    let upto = last_seq(store).await?;
    let mut sorted = filters.to_vec();
    sorted.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    let key = Key {
        site_id,
        from,
        to,
        filters: sorted,
    };
    let cell = store.raw_cache.cell(key, upto, Instant::now());
    let raw = cell
        .get_or_try_init(|| async {
            store.raw_cache.loads.fetch_add(1, Ordering::Relaxed);
            // Dropped once too old even if no other query comes.
            let cache = store.raw_cache.clone();
            tokio::spawn(async move {
                tokio::time::sleep(MAX_AGE).await;
                cache.sweep(Instant::now());
            });
            raw::load(store, site_id, from, to, filters)
                .await
                .map(Arc::new)
        })
        .await?;
    Ok(raw.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(site_id: i64) -> Key {
        Key {
            site_id,
            from: 0,
            to: 1,
            filters: Vec::new(),
        }
    }

    fn loaded(events: usize) -> Arc<Raw> {
        let ev = |i: usize| crate::rollup::model::Ev {
            seq: i as i64,
            site_id: 1,
            kind: crate::rollup::model::EvKind::Pageview,
            ts: i as i64,
            visitor: 1,
            path: "/".into(),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            country: None,
            browser: None,
            os: None,
            device: None,
            logged_in: false,
            name: None,
            props: Vec::new(),
        };
        Arc::new(raw::sessionise((0..events).map(ev).collect()))
    }

    #[test]
    fn a_range_is_reused_while_fresh_or_unchanged_and_dropped_when_old() {
        let cache = RawCache::default();
        let t0 = Instant::now();
        let a = cache.cell(key(1), 10, t0);
        assert!(Arc::ptr_eq(&a, &cache.cell(key(1), 10, t0)));
        // Within the fresh window a newer event does not matter.
        let t1 = t0 + FRESH / 2;
        assert!(Arc::ptr_eq(&a, &cache.cell(key(1), 11, t1)));
        // Past it, only while nothing was stored since.
        let t2 = t0 + FRESH + Duration::from_millis(1);
        assert!(Arc::ptr_eq(&a, &cache.cell(key(1), 10, t2)));
        let b = cache.cell(key(1), 11, t2);
        assert!(!Arc::ptr_eq(&a, &b));
        // Nothing outlives the longest age, changed or not.
        let t3 = t2 + MAX_AGE;
        assert!(!Arc::ptr_eq(&b, &cache.cell(key(1), 11, t3)));
        cache.sweep(t3 + MAX_AGE);
        assert_eq!(cache.kept(), 0);
    }

    #[test]
    fn the_oldest_ranges_go_first_beyond_the_capacity_or_the_kept_events() {
        let cache = RawCache::default();
        let t0 = Instant::now();
        let first = cache.cell(key(0), 1, t0);
        for site in 1..CAPACITY as i64 {
            cache.cell(key(site), 1, t0 + Duration::from_millis(site as u64));
        }
        assert_eq!(cache.kept(), CAPACITY);
        let later = t0 + Duration::from_millis(100);
        cache.cell(key(100), 1, later);
        assert_eq!(cache.kept(), CAPACITY);
        assert!(!Arc::ptr_eq(&first, &cache.cell(key(0), 1, later)));

        // Two loaded ranges that hold more events than may be kept: the older one goes.
        let cache = RawCache {
            kept_events: 100,
            ..RawCache::default()
        };
        let big = cache.cell(key(1), 1, t0);
        assert!(big.set(loaded(60)).is_ok());
        let second = cache.cell(key(2), 1, t0 + Duration::from_millis(1));
        assert!(second.set(loaded(60)).is_ok());
        cache.cell(key(3), 1, t0 + Duration::from_millis(2));
        assert_eq!(cache.kept(), 2);
        assert!(!Arc::ptr_eq(
            &big,
            &cache.cell(key(1), 1, t0 + Duration::from_millis(3))
        ));
    }
}
