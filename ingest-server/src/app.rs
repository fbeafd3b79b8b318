//! The state every handler shares: storage, the write pipeline, metrics, and small caches
//! (registered sites, today's salt) in front of the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tally_core::visitor::salt_day;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitors::Monitors;
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use crate::trace::drops::DropCounter;

/// A salt and its UTC day.
type DaySalt = (i64, Arc<Vec<u8>>);

/// Shared state. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub sites: Arc<SiteCache>,
    salts: Arc<Mutex<Option<DaySalt>>>,
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    pub geoip: Option<Arc<maxminddb::Reader<Vec<u8>>>>,
    /// Dropped events by site and reason, for the pipeline view and the `rejected` monitor.
    pub drops: Arc<DropCounter>,
    /// The monitors in force (CONTRACT §7).
    pub monitors: Arc<Monitors>,
    agents: Arc<AgentCache>,
}

impl App {
    pub fn new(
        config: Config,
        store: Store,
        pipeline: Pipeline,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<App> {
        let limiter = NonZeroU32::new(config.rate_limit).map(|per_minute| {
            // Bursts of a tenth of the minute's budget, at least 10 requests, never more than
            // the minute's budget itself.
            let burst = NonZeroU32::new((per_minute.get() / 10).max(10).min(per_minute.get()))
                .unwrap_or(per_minute);
            Arc::new(RateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ))
        });
        let geoip = match &config.geoip_db {
            Some(path) => Some(Arc::new(
                maxminddb::Reader::open_readfile(path)
                    .map_err(|e| anyhow::anyhow!("TALLY_GEOIP_DB {}: {e}", path.display()))?,
            )),
            None => None,
        };
        let monitors = Arc::new(Monitors::load(&config)?);
        Ok(App {
            config: Arc::new(config),
            store,
            pipeline,
            metrics,
            sites: Arc::new(SiteCache::default()),
            salts: Arc::new(Mutex::new(None)),
            limiter,
            geoip,
            agents: Arc::new(AgentCache::default()),
            drops: Arc::new(DropCounter::default()),
            monitors,
        })
    }

    /// Counts `n` events of `site_id` (0 when not known) dropped for `reason`. Never fails and
    /// never waits: the counts are written in the background.
    pub fn record_drop(&self, site_id: i64, reason: &'static str, n: u64) {
        self.drops.record(site_id, reason, n, crate::now_ms());
    }

    /// `Err(seconds to wait)` when `ip` is over its rate limit.
    pub fn rate_limit(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Drops rate-limit state of IPs not seen lately, so the map stays small.
    pub fn forget_quiet_ips(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The User-Agent parsed (`None` for a bot), from a small in-memory cache: parsing costs
    /// tens of microseconds and most requests carry one of a few hundred UAs.
    pub fn agent(&self, ua: &str, screen: Option<u32>) -> Option<tally_core::agent::Agent> {
        self.agents.parse(ua).map(|p| p.with_screen(screen))
    }

    /// Today's salt (UTC), from memory or the database.
    pub async fn salt(&self, now_ms: i64) -> Result<Arc<Vec<u8>>, StoreError> {
        let day = salt_day(now_ms);
        if let Some((d, salt)) = self
            .salts
            .lock()
            .map_err(|_| sqlx::Error::PoolClosed)?
            .as_ref()
        {
            if *d == day {
                return Ok(salt.clone());
            }
        }
        let salt = Arc::new(self.store.salt_for(now_ms).await?);
        *self.salts.lock().map_err(|_| sqlx::Error::PoolClosed)? = Some((day, salt.clone()));
        Ok(salt)
    }

    /// The country of a visitor: the trusted header if configured, else the GeoIP database.
    pub fn country(&self, headers: &axum::http::HeaderMap, ip: IpAddr) -> Option<String> {
        if let Some(name) = &self.config.country_header {
            return headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::enrich::country_code);
        }
        let reader = self.geoip.as_ref()?;
        let country: maxminddb::geoip2::Country = reader.lookup(ip).ok()?;
        country
            .country?
            .iso_code
            .and_then(crate::enrich::country_code)
    }
}

/// Registered sites by domain, refreshed from the database every few seconds so that a
/// `site add` on any server (or the CLI) shows up everywhere.
#[derive(Default)]
pub struct SiteCache {
    by_domain: RwLock<HashMap<String, i64>>,
}

/// How often the site cache is reloaded.
pub const SITE_REFRESH: Duration = Duration::from_secs(10);

impl SiteCache {
    /// The id of `domain`, looking in the database when it is not cached.
    pub async fn id(&self, store: &Store, domain: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self
            .by_domain
            .read()
            .ok()
            .and_then(|m| m.get(domain).copied())
        {
            return Ok(Some(id));
        }
        let site = store.site(domain).await?;
        if let (Some(site), Ok(mut map)) = (&site, self.by_domain.write()) {
            map.insert(site.domain.clone(), site.id);
        }
        Ok(site.map(|s| s.id))
    }

    /// Replaces the cache with the database's list.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let sites = store.sites().await?;
        if let Ok(mut map) = self.by_domain.write() {
            *map = sites.into_iter().map(|s| (s.domain, s.id)).collect();
        }
        Ok(())
    }

    /// Whether `host` belongs to any registered site (for CORS).
    pub fn knows_host(&self, host: &str) -> bool {
        self.by_domain
            .read()
            .map(|m| {
                m.keys()
                    .any(|site| tally_core::wire::host_belongs_to_site(host, site))
            })
            .unwrap_or(false)
    }
}

/// Parsed User-Agents keyed by a keyed hash of the string (the UA itself is not kept), at
/// most [`AgentCache::CAPACITY`] entries: when full it starts over.
#[derive(Default)]
struct AgentCache {
    hasher: std::collections::hash_map::RandomState,
    parsed: Mutex<HashMap<u64, Option<tally_core::agent::Parsed>>>,
}

impl AgentCache {
    const CAPACITY: usize = 4096;

    fn parse(&self, ua: &str) -> Option<tally_core::agent::Parsed> {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(ua);
        if let Some(hit) = self.parsed.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let parsed = tally_core::agent::parse(ua);
        if let Ok(mut map) = self.parsed.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(key, parsed.clone());
        }
        parsed
    }
}
