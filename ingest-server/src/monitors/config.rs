//! The monitors file (CONTRACT §7): parsed and validated in one pass, pure. Every error names
//! the file's line and the problem: `monitors.yaml line 7: unknown metric "pagevews" …`.
//!
//! The YAML parser reports the line of syntax errors, unknown keys and wrong types; the checks
//! of values (metric names, durations, sites, webhook URLs, addresses, one of `above` /
//! `below`, unique names) find the line of the key in the file's block layout.

use std::collections::HashSet;

use serde::Deserialize;

use super::layout::Layout;
pub use super::model::{
    parse_duration, Metric, Monitor, MonitorSet, Target, Threshold, MAX_EVERY_MS, MAX_WINDOW_MS,
};

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
    use crate::monitors::model::METRICS;

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
