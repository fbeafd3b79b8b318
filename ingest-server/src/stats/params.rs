//! The stats API's query parameters (CONTRACT §4), parsed and validated without I/O. Every
//! error names the parameter that is wrong.

use chrono::{DateTime, Days, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::range::local_midnight;
use crate::rollup::model::{DAY_MS, VISIT_DIMS};

/// A bad parameter: `400` with `"{param}: {message}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

fn bad(param: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_string(),
        message: message.into(),
    }
}

/// A breakdown dimension: `page`, `entry_page`, …, `prop:NAME`, `user`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dim(String);

/// How a dimension's value is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimKind {
    /// Each event's own value: `page`, `event`, `prop:NAME`.
    Event,
    /// Fixed for a visit (its first event's): entry page, referrer, UTM, country, …, user.
    Visit,
    /// The visit's last page view (moves while the visit goes on).
    Exit,
}

impl Dim {
    pub fn parse(s: &str) -> Option<Dim> {
        let ok = matches!(s, "page" | "event" | "exit_page")
            || VISIT_DIMS.contains(&s)
            || s.strip_prefix("prop:")
                .is_some_and(|n| !n.is_empty() && n.len() <= 64);
        ok.then(|| Dim(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> DimKind {
        match self.0.as_str() {
            "page" | "event" => DimKind::Event,
            "exit_page" => DimKind::Exit,
            s if s.starts_with("prop:") => DimKind::Event,
            _ => DimKind::Visit,
        }
    }

    /// The breakdowns of the export, in order (props are added per site).
    pub fn all() -> Vec<Dim> {
        ["page", "entry_page", "exit_page"]
            .into_iter()
            .chain(VISIT_DIMS.into_iter().filter(|d| *d != "entry_page"))
            .chain(["event"])
            .map(|d| Dim(d.to_string()))
            .collect()
    }
}

/// A timeseries bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Month,
}

/// What every stats query is about: a site, a time range `[from, to)` in ms, a zone for day
/// and month buckets, and filters (all must hold).
#[derive(Debug, Clone)]
pub struct Params {
    pub site: String,
    pub from: i64,
    pub to: i64,
    pub tz: Tz,
    pub filters: Vec<(Dim, String)>,
    pub interval: Interval,
    pub dim: Option<Dim>,
    pub limit: usize,
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The longest range a query may ask for.
pub const MAX_RANGE_DAYS: i64 = 3_700;

/// `2026-11-01` (the local day, in `tz`) or an RFC 3339 timestamp. For a day, `end` selects
/// the end of the day (the start of the next one) instead of its start.
fn parse_time(param: &str, v: &str, tz: Tz, end: bool) -> Result<i64, ParamError> {
    let v = v.trim();
    if let Ok(date) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let date = if end {
            date.checked_add_days(Days::new(1))
                .ok_or_else(|| bad(param, "date out of range"))?
        } else {
            date
        };
        return local_midnight(tz, date).ok_or_else(|| bad(param, "date out of range"));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(
                param,
                format!("{v:?} is not a date (2026-11-01) or an RFC 3339 timestamp"),
            )
        })
}

/// Parses the query pairs of a stats request; `now` (ms) anchors the default range (the last
/// 30 days, today included, in `tz`).
pub fn parse(pairs: &[(String, String)], now: i64) -> Result<Params, ParamError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let site = get("site")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("site", "is required"))?
        .to_ascii_lowercase();
    let tz: Tz = match get("tz").map(str::trim).filter(|s| !s.is_empty()) {
        None => Tz::UTC,
        Some(name) => name
            .parse()
            .map_err(|_| bad("tz", format!("unknown time zone {name:?}")))?,
    };
    let today = tz
        .timestamp_millis_opt(now)
        .single()
        .map(|t| t.date_naive())
        .ok_or_else(|| bad("tz", "cannot place the current time"))?;
    let to = match get("to") {
        Some(v) => parse_time("to", v, tz, true)?,
        // Up to the end of today.
        None => parse_time("to", &today.to_string(), tz, true)?,
    };
    let from = match get("from") {
        Some(v) => parse_time("from", v, tz, false)?,
        None => {
            let end_day = tz
                .timestamp_millis_opt(to - 1)
                .single()
                .map(|t| t.date_naive())
                .unwrap_or(today);
            let first = end_day
                .checked_sub_days(Days::new(29))
                .ok_or_else(|| bad("to", "date out of range"))?;
            parse_time("from", &first.to_string(), tz, false)?
        }
    };
    if from >= to {
        return Err(bad("to", "must be after from"));
    }
    if to - from > MAX_RANGE_DAYS * DAY_MS {
        return Err(bad(
            "from",
            format!("the range may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let mut filters = Vec::new();
    for (k, v) in pairs {
        if let Some(name) = k.strip_prefix("filter[").and_then(|r| r.strip_suffix(']')) {
            let dim = Dim::parse(name).ok_or_else(|| bad(k, "unknown dimension"))?;
            if filters.iter().any(|(d, _)| *d == dim) {
                return Err(bad(k, "given more than once"));
            }
            filters.push((dim, v.clone()));
        } else if k.starts_with("filter") {
            return Err(bad(k, "filters are written filter[DIM]=VALUE"));
        }
    }
    let interval = match get("interval") {
        None | Some("day") => Interval::Day,
        Some("hour") => Interval::Hour,
        Some("month") => Interval::Month,
        Some(other) => {
            return Err(bad(
                "interval",
                format!("{other:?} is not one of hour, day, month"),
            ))
        }
    };
    let dim = match get("dim") {
        None => None,
        Some(d) => {
            Some(Dim::parse(d).ok_or_else(|| bad("dim", format!("unknown dimension {d:?}")))?)
        }
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    Ok(Params {
        site,
        from,
        to,
        tz,
        filters,
        interval,
        dim,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOV_17_2026_NOON: i64 = 1_794_916_800_000;

    #[test]
    fn dates_are_whole_local_days_and_to_is_inclusive() {
        let p = parse(
            &pairs(&[
                ("site", "Example.com"),
                ("from", "2026-11-01"),
                ("to", "2026-11-02"),
                ("tz", "Europe/Berlin"),
            ]),
            NOV_17_2026_NOON,
        )
        .expect("valid");
        assert_eq!(p.site, "example.com");
        // 2026-10-31T23:00Z .. 2026-11-02T23:00Z
        assert_eq!(p.from, 1_793_487_600_000);
        assert_eq!(p.to - p.from, 2 * DAY_MS);
    }

    #[test]
    fn the_default_range_is_the_last_thirty_days_including_today() {
        let p = parse(&pairs(&[("site", "a.com")]), NOV_17_2026_NOON).expect("valid");
        assert_eq!(p.to - p.from, 30 * DAY_MS);
        assert!(p.to > NOV_17_2026_NOON && p.to - NOV_17_2026_NOON <= DAY_MS);
    }

    #[test]
    fn errors_name_the_parameter() {
        let err = |q: &[(&str, &str)]| parse(&pairs(q), NOV_17_2026_NOON).expect_err("bad").param;
        assert_eq!(err(&[]), "site");
        assert_eq!(err(&[("site", "a.com"), ("from", "yesterday")]), "from");
        assert_eq!(err(&[("site", "a.com"), ("to", "2026-13-01")]), "to");
        assert_eq!(err(&[("site", "a.com"), ("tz", "Mars/Base")]), "tz");
        assert_eq!(err(&[("site", "a.com"), ("interval", "week")]), "interval");
        assert_eq!(err(&[("site", "a.com"), ("dim", "colour")]), "dim");
        assert_eq!(err(&[("site", "a.com"), ("limit", "0")]), "limit");
        assert_eq!(
            err(&[("site", "a.com"), ("filter[colour]", "red")]),
            "filter[colour]"
        );
        assert_eq!(
            err(&[
                ("site", "a.com"),
                ("from", "2026-11-03"),
                ("to", "2026-11-01")
            ]),
            "to"
        );
    }

    #[test]
    fn rfc3339_and_filters_parse() {
        let p = parse(
            &pairs(&[
                ("site", "a.com"),
                ("from", "2026-11-01T10:00:00Z"),
                ("to", "2026-11-01T12:30:00+01:00"),
                ("filter[country]", "DE"),
                ("filter[prop:plan]", "pro"),
                ("dim", "prop:plan"),
                ("limit", "5"),
            ]),
            NOV_17_2026_NOON,
        )
        .expect("valid");
        assert_eq!(p.to - p.from, 3_600_000 + 30 * 60_000);
        assert_eq!(p.filters.len(), 2);
        assert_eq!(p.filters[1].0.kind(), DimKind::Event);
        assert_eq!(p.dim.expect("dim").as_str(), "prop:plan");
        assert_eq!(p.limit, 5);
    }
}
