//! Each metric of CONTRACT §7 over a monitor's window: raw events (by the `(site_id, ts)`
//! index), the drop counters, and the edge batch times.

use sqlx::Row;

use super::config::{Metric, Monitor};
use crate::app::App;
use crate::store::{Store, StoreError};
use crate::trace::percentile;

/// Most lag values read for `edge_lag_s`.
const LAG_SAMPLE: i64 = 50_000;

/// Why a metric could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("site {0} is not registered")]
    UnknownSite(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The value of `monitor`'s metric at `now`. `since` is when the monitor's current definition
/// began (an edge that never sent a batch is stalled only a window after that).
pub async fn value(app: &App, monitor: &Monitor, now: i64, since: i64) -> Result<f64, MetricError> {
    let from = now - monitor.window_ms;
    let site_id = match &monitor.site {
        Some(domain) => Some(
            app.sites
                .id(&app.store, domain)
                .await?
                .ok_or_else(|| MetricError::UnknownSite(domain.clone()))?,
        ),
        None => None,
    };
    let store = &app.store;
    // Only the health metrics may be without a site (checked when the file is read).
    let site = site_id.unwrap_or(0);
    let count = |filter: &'static str, arg: Option<String>| async move {
        count_events(store, site, from, filter, arg).await
    };
    Ok(match &monitor.metric {
        Metric::Pageviews => count("kind = 'pageview'", None).await? as f64,
        Metric::Events => count("kind = 'event'", None).await? as f64,
        Metric::Event(name) => {
            count("kind = 'event' AND name = $3", Some(name.clone())).await? as f64
        }
        Metric::Page(path) => {
            count("kind = 'pageview' AND path = $3", Some(path.clone())).await? as f64
        }
        Metric::Visitors => {
            let row = sqlx::query(
                "SELECT COUNT(DISTINCT visitor) FROM events WHERE site_id = $1 AND ts >= $2",
            )
            .bind(site)
            .bind(from)
            .fetch_one(&store.pool)
            .await
            .map_err(StoreError::from)?;
            row.try_get::<i64, _>(0).map_err(StoreError::from)? as f64
        }
        Metric::BounceRate => bounce_rate(store, site, from).await?,
        Metric::Rejected => {
            app.drops.flush(store).await;
            let drops = store.drops_since(site_id, from).await?;
            drops
                .iter()
                .filter(|(reason, _)| reason.as_str() != "duplicate")
                .map(|(_, n)| *n)
                .sum::<i64>() as f64
        }
        Metric::EdgeLagS => {
            let sites = match site_id {
                Some(id) => vec![id],
                None => store.sites().await?.into_iter().map(|s| s.id).collect(),
            };
            let mut lags = Vec::new();
            for id in sites {
                lags.extend(edge_lags(store, id, from).await?);
            }
            percentile(&mut lags, 99.0).map_or(0.0, |ms| ms as f64 / 1000.0)
        }
        Metric::IngestStalled => {
            if app.config.edge_secret.is_none() {
                0.0
            } else {
                let last = store.last_edge_batch(site).await?.map_or(0, |(_, at)| at);
                f64::from(u8::from(now - last.max(since) > monitor.window_ms))
            }
        }
    })
}

async fn count_events(
    store: &Store,
    site: i64,
    from: i64,
    filter: &str,
    arg: Option<String>,
) -> Result<i64, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM events WHERE site_id = $1 AND ts >= $2 AND {filter}");
    let mut query = sqlx::query(&sql).bind(site).bind(from);
    if let Some(arg) = arg {
        query = query.bind(arg);
    }
    Ok(query.fetch_one(&store.pool).await?.try_get(0)?)
}

/// Visitors of the window whose only activity in it was one page view, among visitors with a
/// page view in it; 0..1.
async fn bounce_rate(store: &Store, site: i64, from: i64) -> Result<f64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN pv = 1 AND ev = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM (SELECT visitor, \
                 SUM(CASE WHEN kind = 'pageview' THEN 1 ELSE 0 END) AS pv, \
                 SUM(CASE WHEN kind = 'event' THEN 1 ELSE 0 END) AS ev \
               FROM events WHERE site_id = $1 AND ts >= $2 GROUP BY visitor) v \
         WHERE pv > 0",
    )
    .bind(site)
    .bind(from)
    .fetch_one(&store.pool)
    .await?;
    let visitors: i64 = row.try_get(0)?;
    let bounced: i64 = row.try_get(1)?;
    Ok(if visitors == 0 {
        0.0
    } else {
        (bounced as f64 / visitors as f64 * 10_000.0).round() / 10_000.0
    })
}

async fn edge_lags(store: &Store, site: i64, from: i64) -> Result<Vec<i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT received_at - edge_at FROM events \
         WHERE site_id = $1 AND ts >= $2 AND edge_at IS NOT NULL ORDER BY ts DESC LIMIT $3",
    )
    .bind(site)
    .bind(from)
    .bind(LAG_SAMPLE)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)?)).collect()
}
