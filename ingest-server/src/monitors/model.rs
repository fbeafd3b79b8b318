//! What a monitor is (CONTRACT §7): its metric, threshold and notification targets, as read
//! from the monitors file by [`super::config`].

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Longest `window`: drop counters are kept 8 days.
pub const MAX_WINDOW_MS: i64 = 7 * 86_400_000;
/// Longest `every`.
pub const MAX_EVERY_MS: i64 = 86_400_000;

/// A validated monitors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorSet {
    pub monitors: Vec<Monitor>,
}

/// One monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub name: String,
    /// The site's domain; `None` only for the health metrics (then: every site).
    pub site: Option<String>,
    pub metric: Metric,
    pub window_ms: i64,
    pub every_ms: i64,
    pub threshold: Threshold,
    pub notify: Vec<Target>,
}

/// What a monitor measures over its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    Pageviews,
    Visitors,
    /// Custom events, all names.
    Events,
    /// Custom events of one name.
    Event(String),
    /// Page views of one path.
    Page(String),
    /// Share of visitors whose only activity in the window was one page view, 0..1.
    BounceRate,
    /// Events refused or dropped (every reason of the pipeline view but `duplicate`).
    Rejected,
    /// 99th percentile of the time from the edge to the ingest server, in seconds.
    EdgeLagS,
    /// 1 when the edge is configured and no batch came from it in the window, else 0.
    IngestStalled,
}

pub(crate) const METRICS: &str =
    "pageviews, visitors, events, event:NAME, page:/PATH, bounce_rate, \
                       rejected, edge_lag_s, ingest_stalled";

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Metric, String> {
        let s = s.trim();
        Ok(match s {
            "pageviews" => Metric::Pageviews,
            "visitors" => Metric::Visitors,
            "events" => Metric::Events,
            "bounce_rate" => Metric::BounceRate,
            "rejected" => Metric::Rejected,
            "edge_lag_s" => Metric::EdgeLagS,
            "ingest_stalled" => Metric::IngestStalled,
            _ => {
                if let Some(name) = s.strip_prefix("event:") {
                    let name = name.trim();
                    if name.is_empty() || name.len() > tally_core::wire::MAX_NAME {
                        return Err(format!(
                            "event:NAME needs a name of 1 to {} characters",
                            tally_core::wire::MAX_NAME
                        ));
                    }
                    Metric::Event(name.to_string())
                } else if let Some(path) = s.strip_prefix("page:") {
                    let path = path.trim();
                    if !path.starts_with('/') || path.contains(['?', '#']) || path.len() > 2048 {
                        return Err(format!(
                            "page:/PATH needs a path that starts with / and has no query or \
                             fragment, not {path:?}"
                        ));
                    }
                    Metric::Page(path.to_string())
                } else {
                    return Err(format!("unknown metric {s:?} (one of {METRICS})"));
                }
            }
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Pageviews => f.write_str("pageviews"),
            Metric::Visitors => f.write_str("visitors"),
            Metric::Events => f.write_str("events"),
            Metric::Event(name) => write!(f, "event:{name}"),
            Metric::Page(path) => write!(f, "page:{path}"),
            Metric::BounceRate => f.write_str("bounce_rate"),
            Metric::Rejected => f.write_str("rejected"),
            Metric::EdgeLagS => f.write_str("edge_lag_s"),
            Metric::IngestStalled => f.write_str("ingest_stalled"),
        }
    }
}

impl Metric {
    /// Health metrics may omit `site` (then they cover every site).
    pub fn site_optional(&self) -> bool {
        matches!(self, Metric::EdgeLagS | Metric::IngestStalled)
    }
}

/// `above: N` (breaching while value > N) or `below: N` (while value < N).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Above(f64),
    Below(f64),
}

impl Threshold {
    pub fn value(&self) -> f64 {
        match self {
            Threshold::Above(v) | Threshold::Below(v) => *v,
        }
    }

    pub fn breached_by(&self, value: f64) -> bool {
        match self {
            Threshold::Above(t) => value > *t,
            Threshold::Below(t) => value < *t,
        }
    }
}

/// Where a monitor's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook(url::Url),
    Email(lettre::Address),
}

impl Target {
    /// A stable key naming the target without its secret-bearing text: the outbox stores
    /// this, never the URL (webhook URLs often carry a token).
    pub fn key(&self) -> String {
        let (kind, text) = match self {
            Target::Webhook(url) => ("webhook", url.as_str().to_string()),
            Target::Email(address) => ("email", address.to_string()),
        };
        let digest = Sha256::digest(text.as_bytes());
        format!("{kind}:{}", hex::encode(&digest[..8]))
    }

    /// What logs may say about the target: the webhook's host, or the mail domain.
    pub fn describe(&self) -> String {
        match self {
            Target::Webhook(url) => format!("webhook {}", url.host_str().unwrap_or("?")),
            Target::Email(address) => format!("email to …@{}", address.domain()),
        }
    }
}

impl Monitor {
    /// Identifies the definition (not the targets): a changed monitor starts again from `ok`.
    pub fn fingerprint(&self) -> String {
        let threshold = match self.threshold {
            Threshold::Above(v) => format!("above {v}"),
            Threshold::Below(v) => format!("below {v}"),
        };
        let text = format!(
            "{}|{}|{}|{}|{threshold}",
            self.site.as_deref().unwrap_or("*"),
            self.metric,
            self.window_ms,
            self.every_ms
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// Parses `30s`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration such as 30s, 5m, 1h or 1d");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("{s:?} must be at least 1s"));
    }
    n.checked_mul(unit_ms).ok_or_else(bad)
}
