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
//! more than that behind an unfiltered one. At most [`CAPACITY`] ranges are kept, the oldest
//! dropped first.

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
#[derive(Default)]
pub struct RawCache {
    entries: Mutex<HashMap<Key, Entry>>,
    loads: AtomicU64,
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

    /// Forgets every loaded range (the next query of each reads the database again).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// The cell of `key`, new unless a usable one is kept.
    fn cell(&self, key: Key, upto: i64) -> Arc<OnceCell<Arc<Raw>>> {
        let Ok(mut entries) = self.entries.lock() else {
            return Arc::new(OnceCell::new());
        };
        let now = Instant::now();
        let usable = |e: &Entry| {
            let age = now.duration_since(e.loaded_at);
            age < FRESH || (age < MAX_AGE && e.upto == upto)
        };
        entries.retain(|_, e| usable(e));
        if let Some(e) = entries.get(&key) {
            return e.raw.clone();
        }
        if entries.len() >= CAPACITY {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.loaded_at)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
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
    let cell = store.raw_cache.cell(key, upto);
    let raw = cell
        .get_or_try_init(|| async {
            store.raw_cache.loads.fetch_add(1, Ordering::Relaxed);
            raw::load(store, site_id, from, to, filters)
                .await
                .map(Arc::new)
        })
        .await?;
    Ok(raw.clone())
}
