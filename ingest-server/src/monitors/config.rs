//! The monitors file (CONTRACT §7): parsed and validated in one pass, pure. Every error names
//! the file's line and the problem: `monitors.yaml line 7: unknown metric "pagevews" …`.
//!
//! The YAML parser reports the line of syntax errors, unknown keys and wrong types; the checks
//! of values (metric names, durations, sites, webhook URLs, addresses, one of `above` /
//! `below`, unique names) find the line of the key in the file's block layout.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
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

const METRICS: &str = "pageviews, visitors, events, event:NAME, page:/PATH, bounce_rate, \
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

fn parse_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " -_.:".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "name {s:?}: use 1 to 64 letters, digits, spaces, '-', '_', '.' or ':'"
        ))
    }
}

fn parse_site(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    tally_core::wire::validate_site(&s).map_err(|e| format!("site {s:?} {e}"))?;
    Ok(s)
}

fn parse_window(s: &str) -> Result<i64, String> {
    let ms = parse_duration(s).map_err(|e| format!("window: {e}"))?;
    if ms > MAX_WINDOW_MS {
        return Err(format!("window: {:?} is longer than 7d", s.trim()));
    }
    Ok(ms)
}

fn parse_every(s: &str) -> Result<i64, String> {
    let ms = parse_duration(s).map_err(|e| format!("every: {e}"))?;
    if ms > MAX_EVERY_MS {
        return Err(format!("every: {:?} is longer than 1d", s.trim()));
    }
    Ok(ms)
}

fn parse_webhook(s: &str) -> Result<url::Url, String> {
    url::Url::parse(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| "webhook: must be an http(s) URL".to_string())
}

fn parse_email(s: &str) -> Result<lettre::Address, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("email: {:?} is not an e-mail address", s.trim()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    monitors: Vec<RawMonitor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    name: String,
    #[serde(default)]
    site: Option<String>,
    metric: String,
    window: String,
    every: String,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default)]
    notify: Vec<RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// A monitors file that could not be used: `FILE line N: PROBLEM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

/// Where each monitor's keys are in the text (1-based lines), found by reading the block
/// layout the way people write these files: `monitors:`, then `- ` items, one key per line.
/// Values of a flow-style file (`{name: a, …}`) fall back to the line of their item.
#[derive(Debug, Default)]
struct Layout {
    items: Vec<Item>,
}

#[derive(Debug, Default)]
struct Item {
    line: usize,
    keys: Vec<(String, usize)>,
    /// Lines of the entries under `notify:`.
    notify: Vec<usize>,
}

impl Layout {
    fn read(text: &str) -> Layout {
        let mut layout = Layout::default();
        let mut in_list = false;
        let mut dash: Option<usize> = None;
        let mut in_notify = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split(" #").next().unwrap_or_default().trim_end();
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = content.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                in_list = trimmed.starts_with("monitors:");
                dash = None;
                continue;
            }
            if !in_list {
                continue;
            }
            let is_item = trimmed == "-" || trimmed.starts_with("- ");
            if is_item && dash.is_none_or(|d| indent <= d) {
                dash = Some(indent);
                in_notify = false;
                let mut item = Item {
                    line,
                    ..Item::default()
                };
                if let Some(key) = key_of(trimmed.trim_start_matches('-').trim_start()) {
                    item.keys.push((key, line));
                }
                layout.items.push(item);
                continue;
            }
            let (Some(d), Some(item)) = (dash, layout.items.last_mut()) else {
                continue;
            };
            if is_item && in_notify && indent > d {
                item.notify.push(line);
            } else if let Some(key) = key_of(trimmed) {
                if indent <= d + 2 {
                    in_notify = key == "notify";
                    item.keys.push((key, line));
                }
            }
        }
        layout
    }

    /// The line of `key` in item `index`, else the item's line, else 1.
    fn line(&self, index: usize, key: &str) -> usize {
        let Some(item) = self.items.get(index) else {
            return 1;
        };
        item.keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(item.line, |(_, line)| *line)
    }

    /// The line of notify entry `n` of item `index`.
    fn notify_line(&self, index: usize, n: usize) -> usize {
        self.items
            .get(index)
            .and_then(|item| item.notify.get(n).copied())
            .unwrap_or_else(|| self.line(index, "notify"))
    }
}

/// `key` of a `key: value` or `key:` line.
fn key_of(text: &str) -> Option<String> {
    let (key, _) = text.split_once(':')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| key.to_string())
}

/// Parses and validates a monitors file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<MonitorSet, ConfigError> {
    let error = |line: usize, problem: String| ConfigError {
        file: file.to_string(),
        line,
        problem,
    };
    if text.trim().is_empty() {
        return Err(error(
            1,
            "the file is empty; it must start with `monitors:`".into(),
        ));
    }
    let raw: RawFile = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        let mut problem = e.to_string();
        // The message ends with the position, which the line already says.
        if let Some(at) = problem.find(" at line ") {
            problem.truncate(at);
        }
        error(line, problem)
    })?;
    let layout = Layout::read(text);
    let mut seen = HashSet::new();
    let mut monitors = Vec::with_capacity(raw.monitors.len());
    for (i, m) in raw.monitors.into_iter().enumerate() {
        let at = |key: &str| layout.line(i, key);
        let name = parse_name(&m.name).map_err(|p| error(at("name"), p))?;
        if !seen.insert(name.clone()) {
            return Err(error(
                at("name"),
                format!("a second monitor is named {name:?}"),
            ));
        }
        let site = m
            .site
            .as_deref()
            .map(parse_site)
            .transpose()
            .map_err(|p| error(at("site"), p))?;
        let metric: Metric = m.metric.parse().map_err(|p| error(at("metric"), p))?;
        let window_ms = parse_window(&m.window).map_err(|p| error(at("window"), p))?;
        let every_ms = parse_every(&m.every).map_err(|p| error(at("every"), p))?;
        let threshold = match (m.above, m.below) {
            (Some(v), None) if v.is_finite() => Threshold::Above(v),
            (None, Some(v)) if v.is_finite() => Threshold::Below(v),
            (None, None) if metric == Metric::IngestStalled => Threshold::Above(0.0),
            (Some(_), Some(_)) => {
                return Err(error(
                    at("below").max(at("above")),
                    format!("monitor {name:?} has both `above` and `below`; keep one"),
                ))
            }
            (None, None) => {
                return Err(error(
                    at("name"),
                    format!("monitor {name:?} needs `above` or `below`"),
                ))
            }
            (Some(_), None) => {
                return Err(error(at("above"), "above: must be a finite number".into()))
            }
            (None, Some(_)) => {
                return Err(error(at("below"), "below: must be a finite number".into()))
            }
        };
        if site.is_none() && !metric.site_optional() {
            return Err(error(
                at("name"),
                format!("monitor {name:?} needs a `site`"),
            ));
        }
        let mut notify = Vec::with_capacity(m.notify.len());
        for (n, t) in m.notify.into_iter().enumerate() {
            let line = layout.notify_line(i, n);
            notify.push(match (t.webhook, t.email) {
                (Some(w), None) => Target::Webhook(parse_webhook(&w).map_err(|p| error(line, p))?),
                (None, Some(e)) => Target::Email(parse_email(&e).map_err(|p| error(line, p))?),
                _ => {
                    return Err(error(
                        line,
                        "each notify entry is either `- webhook: URL` or `- email: ADDRESS`".into(),
                    ))
                }
            });
        }
        monitors.push(Monitor {
            name,
            site,
            metric,
            window_ms,
            every_ms,
            threshold,
            notify,
        });
    }
    Ok(MonitorSet { monitors })
}

/// The line of monitor `name` in `text`, for errors found after parsing.
pub fn line_of_monitor(text: &str, name: &str) -> usize {
    let layout = Layout::read(text);
    let Ok(raw) = serde_norway::from_str::<RawFile>(text) else {
        return 1;
    };
    raw.monitors
        .iter()
        .position(|m| m.name.trim() == name)
        .map_or(1, |i| layout.line(i, "name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
monitors:
  - name: traffic-spike
    site: Example.com
    metric: pageviews        # the number of page views
    window: 5m
    every: 1m
    above: 1000
    notify:
      - webhook: https://hooks.example.com/tally
      - email: ops@example.com
  - name: signups
    site: example.com
    metric: event:Signup
    window: 1h
    every: 30s
    below: 1
  - name: edge
    metric: ingest_stalled
    window: 10m
    every: 1m
";

    fn error_of(text: &str) -> String {
        parse("monitors.yaml", text)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_valid_file() {
        let set = parse("monitors.yaml", GOOD).expect("valid");
        let m = &set.monitors[0];
        assert_eq!(m.site.as_deref(), Some("example.com"));
        assert_eq!(
            (m.metric.clone(), m.window_ms, m.every_ms),
            (Metric::Pageviews, 300_000, 60_000)
        );
        assert_eq!(m.threshold, Threshold::Above(1000.0));
        assert_eq!(m.notify.len(), 2);
        assert!(matches!(&m.notify[1], Target::Email(a) if a.to_string() == "ops@example.com"));
        assert_eq!(set.monitors[1].metric, Metric::Event("Signup".into()));
        assert_eq!(set.monitors[1].threshold, Threshold::Below(1.0));
        assert_eq!(set.monitors[2].site, None);
        assert_eq!(set.monitors[2].threshold, Threshold::Above(0.0));
        assert!(parse("m.yaml", "monitors: []\n")
            .expect("empty list")
            .monitors
            .is_empty());
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let bad_metric = GOOD.replace("metric: pageviews ", "metric: pagevews ");
        assert_eq!(
            error_of(&bad_metric),
            format!("monitors.yaml line 4: unknown metric \"pagevews\" (one of {METRICS})")
        );
        let bad_window = GOOD.replace("window: 1h", "window: 1 hour");
        assert!(
            error_of(&bad_window).starts_with("monitors.yaml line 14: "),
            "{}",
            error_of(&bad_window)
        );
        assert!(error_of(&bad_window).contains("\"1 hour\" is not a duration"));
        let typo = GOOD.replace("    every: 30s", "    evry: 30s");
        let e = error_of(&typo);
        assert!(
            e.starts_with("monitors.yaml line 15: ") && e.contains("unknown field `evry`"),
            "{e}"
        );
        let both = GOOD.replace("    below: 1", "    below: 1\n    above: 5");
        assert_eq!(
            error_of(&both),
            "monitors.yaml line 17: monitor \"signups\" has both `above` and `below`; keep one"
        );
        let neither = GOOD.replace("    below: 1\n", "");
        assert_eq!(
            error_of(&neither),
            "monitors.yaml line 11: monitor \"signups\" needs `above` or `below`"
        );
        let twice = GOOD.replace("name: edge", "name: signups");
        assert_eq!(
            error_of(&twice),
            "monitors.yaml line 17: a second monitor is named \"signups\""
        );
        let no_site = GOOD.replace(
            "    site: example.com\n    metric: event",
            "    metric: event",
        );
        assert_eq!(
            error_of(&no_site),
            "monitors.yaml line 11: monitor \"signups\" needs a `site`"
        );
        let hook = GOOD.replace("https://hooks.example.com/tally", "ftp://hooks.example.com");
        assert_eq!(
            error_of(&hook),
            "monitors.yaml line 9: webhook: must be an http(s) URL"
        );
        let mail = GOOD.replace("ops@example.com", "not-an-address");
        assert!(
            error_of(&mail).starts_with("monitors.yaml line 10: "),
            "{}",
            error_of(&mail)
        );
        let page = GOOD.replace("event:Signup", "page:/checkout?token=abc");
        assert!(
            error_of(&page).starts_with("monitors.yaml line 13: "),
            "{}",
            error_of(&page)
        );
        let site = GOOD.replace("site: Example.com", "site: not a domain");
        assert!(
            error_of(&site).starts_with("monitors.yaml line 3: "),
            "{}",
            error_of(&site)
        );
        let syntax = GOOD.replace(
            "    every: 1m\n    above: 1000",
            "    every: 1m\n   above: [1000",
        );
        assert!(
            error_of(&syntax).starts_with("monitors.yaml line "),
            "{}",
            error_of(&syntax)
        );
        assert_eq!(
            error_of(""),
            "monitors.yaml line 1: the file is empty; it must start with `monitors:`"
        );
        assert!(error_of("monitor:\n  - name: x\n").starts_with("monitors.yaml line 1: "));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        for bad in [
            "",
            "5",
            "m",
            "1.5m",
            "-1m",
            "5 m",
            "5min",
            "0s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let long = GOOD.replace("window: 1h", "window: 8d");
        assert!(error_of(&long).contains("longer than 7d"));
    }

    #[test]
    fn fingerprints_follow_the_definition_not_the_targets() {
        let a = parse("m", GOOD).expect("valid");
        let b = parse(
            "m",
            &GOOD.replace("https://hooks.example.com/tally", "https://other.example/x"),
        )
        .expect("valid");
        let c = parse("m", &GOOD.replace("above: 1000", "above: 999")).expect("valid");
        assert_eq!(a.monitors[0].fingerprint(), b.monitors[0].fingerprint());
        assert_ne!(a.monitors[0].fingerprint(), c.monitors[0].fingerprint());
        let key = a.monitors[0].notify[0].key();
        assert!(key.starts_with("webhook:") && !key.contains("hooks"));
        assert_eq!(
            a.monitors[0].notify[0].describe(),
            "webhook hooks.example.com"
        );
    }
}
