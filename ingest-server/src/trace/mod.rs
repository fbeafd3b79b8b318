//! The event trace and the pipeline view (CONTRACT §8).
//!
//! Every stored event keeps its browser-made id and the time of each hop it took: the
//! browser's clock (`client_ts`), the edge's receipt and batch (`edge_at`, `batch`), the ingest
//! server's receipt (`received_at`) and the commit (`stored_at`). [`hops`] turns those columns
//! into the trace; [`pipeline`] summarises the last hour of them per hop, with the events that
//! were dropped on the way (counted by [`drops::DropCounter`]).
//!
//! - [`drops`]: cheap in-memory drop counters, flushed to the `drops` table.
//! - [`store`]: the queries (trace row, last hour's hop times, drop sums, last edge batch).

pub mod drops;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use crate::store::StoredEvent;

/// The drop reasons the pipeline view always reports (CONTRACT §8), in order.
pub const DROP_REASONS: &[&str] = &[
    "bot",
    "invalid",
    "duplicate",
    "excluded",
    "rate_limited",
    "unknown_site",
];

/// One hop of an event's trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// `browser`, `edge`, `ingest` or `stored`.
    pub hop: &'static str,
    /// When the event passed the hop (RFC 3339, milliseconds, UTC).
    pub at: String,
    /// The edge batch the event was forwarded in (edge hop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Milliseconds since the previous hop (absent on the first). The browser's clock may be
    /// off, so the hop after it can show a negative or inflated time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<i64>,
}

/// Milliseconds since the epoch as RFC 3339 (`2026-11-01T12:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The hops a stored event took, in order; the edge hop only when it came through the edge.
pub fn hops(e: &StoredEvent) -> Vec<Hop> {
    let mut times: Vec<(&'static str, i64, Option<String>)> = vec![("browser", e.client_ts, None)];
    if let Some(edge_at) = e.edge_at {
        times.push(("edge", edge_at, e.batch.clone()));
    }
    times.push(("ingest", e.received_at, None));
    times.push(("stored", e.stored_at, None));
    let mut previous: Option<i64> = None;
    times
        .into_iter()
        .map(|(hop, at, batch)| {
            let after_ms = previous.map(|p| at - p);
            previous = Some(at);
            Hop {
                hop,
                at: rfc3339(at),
                batch,
                after_ms,
            }
        })
        .collect()
}

/// The hop times of one event, as read for the pipeline view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopTimes {
    pub client_ts: i64,
    pub edge_at: Option<i64>,
    pub received_at: i64,
    pub stored_at: i64,
}

/// One hop of the pipeline view: events that passed it in the last hour, and the lag from the
/// previous hop (`None` on the first hop, or when no event passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HopSummary {
    pub hop: &'static str,
    pub events: i64,
    pub lag_p50_ms: Option<i64>,
    pub lag_p99_ms: Option<i64>,
}

/// `GET /api/pipeline`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub hops: Vec<HopSummary>,
    /// Events dropped in the last hour, by reason: every reason of [`DROP_REASONS`], plus any
    /// other reason that occurred (`too_large`, `foreign_origin`).
    pub dropped: BTreeMap<String, i64>,
    /// When the last signed batch from the edge arrived (RFC 3339), if ever.
    pub last_edge_batch: Option<String>,
}

/// Counts of the last hour, as read from the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourCounts {
    /// Events stored (first received in the last hour).
    pub stored: i64,
    /// Of those, events that came through the edge.
    pub via_edge: i64,
    /// Drops by reason.
    pub dropped: BTreeMap<String, i64>,
}

/// The nearest-rank percentile `p` (0..=100) of `values`, which it sorts.
pub fn percentile(values: &mut [i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Builds the pipeline view from the hour's counts and a sample of hop times.
///
/// Events per hop: `browser` and `ingest` count everything that reached the collector (stored
/// or dropped, duplicates included), `edge` the stored events that came through the edge,
/// `stored` the events stored. The lag of a hop is measured from the event's previous hop, so
/// `ingest` is measured from the edge for edge events and from the browser for the others.
pub fn pipeline(
    counts: &HourCounts,
    sample: &[HopTimes],
    last_edge_batch: Option<i64>,
) -> Pipeline {
    let mut edge = Vec::new();
    let mut ingest = Vec::with_capacity(sample.len());
    let mut stored = Vec::with_capacity(sample.len());
    for t in sample {
        let before_ingest = match t.edge_at {
            Some(edge_at) => {
                edge.push(edge_at - t.client_ts);
                edge_at
            }
            None => t.client_ts,
        };
        ingest.push(t.received_at - before_ingest);
        stored.push(t.stored_at - t.received_at);
    }
    let mut dropped: BTreeMap<String, i64> =
        DROP_REASONS.iter().map(|r| ((*r).to_string(), 0)).collect();
    for (reason, n) in &counts.dropped {
        *dropped.entry(reason.clone()).or_default() += n;
    }
    // Nothing is dropped as `excluded` on the server: the browser decides it and sends nothing.
    let received = counts.stored + dropped.values().sum::<i64>();
    let summary = |hop, events, lags: &mut Vec<i64>| HopSummary {
        hop,
        events,
        lag_p50_ms: percentile(lags, 50.0),
        lag_p99_ms: percentile(lags, 99.0),
    };
    Pipeline {
        hops: vec![
            summary("browser", received, &mut Vec::new()),
            summary("edge", counts.via_edge, &mut edge),
            summary("ingest", received, &mut ingest),
            summary("stored", counts.stored, &mut stored),
        ],
        dropped,
        last_edge_batch: last_edge_batch.map(rfc3339),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(edge: Option<(i64, &str)>) -> StoredEvent {
        StoredEvent {
            id: "01J".into(),
            kind: "pageview".into(),
            ts: 0,
            client_ts: 1_700_000_000_000,
            edge_at: edge.map(|e| e.0),
            batch: edge.map(|e| e.1.to_string()),
            received_at: 1_700_000_002_000,
            stored_at: 1_700_000_002_005,
            visitor: "00".into(),
            path: "/".into(),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_term: None,
            utm_content: None,
            country: None,
            browser: None,
            os: None,
            device: None,
            screen: None,
            user: None,
            name: None,
            props: None,
            engaged_ms: None,
        }
    }

    #[test]
    fn hops_of_an_edge_event() {
        let h = hops(&event(Some((1_700_000_000_250, "b-7"))));
        let names: Vec<_> = h.iter().map(|h| h.hop).collect();
        assert_eq!(names, ["browser", "edge", "ingest", "stored"]);
        assert_eq!(h[0].at, "2023-11-14T22:13:20.000Z");
        assert_eq!(h[0].after_ms, None);
        assert_eq!(
            (h[1].batch.as_deref(), h[1].after_ms),
            (Some("b-7"), Some(250))
        );
        assert_eq!(h[2].after_ms, Some(1750));
        assert_eq!(h[3].after_ms, Some(5));
        let json = serde_json::to_value(&h[0]).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"hop": "browser", "at": "2023-11-14T22:13:20.000Z"})
        );
    }

    #[test]
    fn hops_of_a_direct_event() {
        let h = hops(&event(None));
        let names: Vec<_> = h.iter().map(|h| h.hop).collect();
        assert_eq!(names, ["browser", "ingest", "stored"]);
        assert_eq!(h[1].after_ms, Some(2000));
        assert!(h.iter().all(|h| h.batch.is_none()));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [7], 99.0), Some(7));
        let mut v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50));
        assert_eq!(percentile(&mut v, 99.0), Some(99));
        assert_eq!(percentile(&mut v, 100.0), Some(100));
        assert_eq!(percentile(&mut [3, 1, 2], 0.0), Some(1));
    }

    #[test]
    fn pipeline_counts_and_lags() {
        let direct = HopTimes {
            client_ts: 1000,
            edge_at: None,
            received_at: 1100,
            stored_at: 1102,
        };
        let via_edge = HopTimes {
            client_ts: 1000,
            edge_at: Some(1040),
            received_at: 3040,
            stored_at: 3050,
        };
        let counts = HourCounts {
            stored: 2,
            via_edge: 1,
            dropped: [("bot".to_string(), 3), ("too_large".to_string(), 1)].into(),
        };
        let p = pipeline(&counts, &[direct, via_edge], Some(0));
        assert_eq!(p.hops[0].events, 6);
        assert_eq!((p.hops[0].lag_p50_ms, p.hops[0].lag_p99_ms), (None, None));
        assert_eq!((p.hops[1].events, p.hops[1].lag_p50_ms), (1, Some(40)));
        assert_eq!(
            (p.hops[2].lag_p50_ms, p.hops[2].lag_p99_ms),
            (Some(100), Some(2000))
        );
        assert_eq!((p.hops[3].events, p.hops[3].lag_p99_ms), (2, Some(10)));
        assert_eq!(p.dropped["bot"], 3);
        assert_eq!(p.dropped["excluded"], 0);
        assert_eq!(p.dropped["too_large"], 1);
        assert_eq!(p.dropped.len(), DROP_REASONS.len() + 1);
        assert_eq!(
            p.last_edge_batch.as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
    }
}
