//! Prometheus metrics, one registry per server (no globals, so tests can run several).

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of counters split by a reason or a source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// Label of counters split by the path an event came in on (`browser` or `edge`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Source {
    pub source: &'static str,
}

/// Label of the request-time histogram: the route answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: &'static str,
}

/// Upper bounds (seconds) of the request-time and write-gate buckets: fine around the few
/// milliseconds a collect request takes (its batch's commit included), coarse beyond.
pub const FINE_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub accepted: Family<Source, Counter>,
    pub duplicates: Family<Source, Counter>,
    pub rejected: Family<Reason, Counter>,
    pub bots: Counter,
    pub queue_depth: Gauge<i64, AtomicI64>,
    pub rollup_backlog: Gauge<i64, AtomicI64>,
    pub batch_size: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub request_seconds: Family<Route, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tally");
        let accepted = Family::<Source, Counter>::default();
        registry.register(
            "events_accepted",
            "Events stored for the first time",
            accepted.clone(),
        );
        let duplicates = Family::<Source, Counter>::default();
        registry.register(
            "events_duplicate",
            "Events whose id was already stored",
            duplicates.clone(),
        );
        let rejected = Family::<Reason, Counter>::default();
        registry.register(
            "events_rejected",
            "Events refused, by reason",
            rejected.clone(),
        );
        let bots = Counter::default();
        registry.register(
            "events_bot",
            "Events dropped because a bot sent them",
            bots.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Events waiting for the writer",
            queue_depth.clone(),
        );
        let rollup_backlog = Gauge::default();
        registry.register(
            "rollup_backlog",
            "Events stored but not counted into the rollups yet (the stats lag by them)",
            rollup_backlog.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "batch_size",
            "Events per committed batch",
            batch_size.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "commit_seconds",
            "Time to write and commit one batch",
            commit_seconds.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "commit_failures",
            "Batches that could not be committed",
            commit_failures.clone(),
        );
        let request_seconds = Family::<Route, Histogram>::new_with_constructor(
            (|| Histogram::new(FINE_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "request_seconds",
            "Time from a collect request's arrival to its answer (for an accepted event, after \
             its batch committed), by route",
            request_seconds.clone(),
        );
        Metrics {
            registry,
            accepted,
            duplicates,
            rejected,
            bots,
            queue_depth,
            rollup_backlog,
            batch_size,
            commit_seconds,
            commit_failures,
            request_seconds,
        }
    }
}

impl Metrics {
    /// The server's metrics, with those the store keeps itself.
    pub fn with_store(store: &crate::store::Store) -> Metrics {
        let mut metrics = Metrics::default();
        metrics.registry.register(
            "write_gate_seconds",
            "SQLite: time the write gate was held (a commit waiting for it waits this long), \
             by holder: events, rollups, checkpoint",
            store.gate_held.clone(),
        );
        metrics.registry.register(
            "digest_cache_bytes",
            "Bytes of decoded day digests kept in memory for filtered stats queries",
            store.days.held.clone(),
        );
        metrics
    }

    pub fn observe_commit(&self, events: usize, elapsed: Duration) {
        self.batch_size.observe(events as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn observe_request(&self, route: &'static str, elapsed: Duration) {
        self.request_seconds
            .get_or_create(&Route { route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn reject(&self, reason: &'static str, events: u64) {
        self.rejected
            .get_or_create(&Reason { reason })
            .inc_by(events);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
