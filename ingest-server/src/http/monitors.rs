//! `GET /api/monitors` (CONTRACT §7, stats key): each configured monitor with its state, last
//! value, last notification and latest transitions.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::auth::StatsKey;
use super::error::ApiError;
use crate::app::App;
use crate::monitors::config::Threshold;
use crate::monitors::state::{HistoryEntry, State as MonitorState};
use crate::trace::rfc3339;

/// Transitions listed per monitor.
const HISTORY: i64 = 20;

#[derive(Debug, Serialize)]
pub struct MonitorView {
    name: String,
    site: Option<String>,
    metric: String,
    /// `ok` or `firing`.
    state: &'static str,
    /// The last value checked, if any.
    value: Option<f64>,
    threshold: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    above: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    below: Option<f64>,
    window_s: i64,
    every_s: i64,
    checked_at: Option<String>,
    last_notified_at: Option<String>,
    /// `firing` or `resolved`.
    last_notified_state: Option<String>,
    /// Newest first.
    history: Vec<HistoryEntry>,
}

pub async fn monitors(
    State(app): State<App>,
    _key: StatsKey,
) -> Result<Json<Vec<MonitorView>>, ApiError> {
    let set = app.monitors.current();
    let mut out = Vec::with_capacity(set.monitors.len());
    for m in &set.monitors {
        // A monitor whose definition changed and was not checked since starts from `ok`.
        let stored = app
            .store
            .monitor_state(&m.name)
            .await?
            .filter(|s| s.fingerprint == m.fingerprint());
        let (above, below) = match m.threshold {
            Threshold::Above(v) => (Some(v), None),
            Threshold::Below(v) => (None, Some(v)),
        };
        out.push(MonitorView {
            name: m.name.clone(),
            site: m.site.clone(),
            metric: m.metric.to_string(),
            state: stored
                .as_ref()
                .map_or(MonitorState::Ok, |s| s.state)
                .as_str(),
            value: stored.as_ref().and_then(|s| s.value),
            threshold: m.threshold.value(),
            above,
            below,
            window_s: m.window_ms / 1000,
            every_s: m.every_ms / 1000,
            checked_at: stored.as_ref().and_then(|s| s.checked_at).map(rfc3339),
            last_notified_at: stored
                .as_ref()
                .and_then(|s| s.last_notified_at)
                .map(rfc3339),
            last_notified_state: stored.and_then(|s| s.last_notified_state),
            history: app.store.monitor_history(&m.name, HISTORY).await?,
        });
    }
    Ok(Json(out))
}
