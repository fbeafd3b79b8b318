//! Time ranges: a query range split into rollup pieces (whole UTC months, whole UTC days and
//! edge hours), and the local buckets of a timeseries. Pure.

use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::params::Interval;
use crate::rollup::model::{floor_day, floor_hour, DAY_MS, HOUR_MS};
use crate::rollup::store::month_start;

pub const GRAIN_HOUR: i64 = 0;
pub const GRAIN_DAY: i64 = 1;
pub const GRAIN_MONTH: i64 = 2;

/// Rollup rows of one grain with `start <= bucket < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub grain: i64,
    pub start: i64,
    pub end: i64,
}

fn next_month(ts: i64) -> i64 {
    month_start(month_start(ts) + 32 * DAY_MS)
}

/// `[from, to)` as few rollup pieces as possible. The edges are rounded down to the hour
/// (rollups have no finer grain).
pub fn pieces(from: i64, to: i64) -> Vec<Piece> {
    let (a, b) = (floor_hour(from), floor_hour(to));
    let mut out = Vec::new();
    let mut push = |grain, start, end| {
        if start < end {
            out.push(Piece { grain, start, end });
        }
    };
    let d0 = floor_day(a + DAY_MS - 1);
    let d1 = floor_day(b);
    if d0 >= d1 {
        push(GRAIN_HOUR, a, b);
        return out;
    }
    push(GRAIN_HOUR, a, d0);
    let m0 = if month_start(d0) == d0 {
        d0
    } else {
        next_month(d0)
    };
    let m1 = month_start(d1);
    if m0 < m1 {
        push(GRAIN_DAY, d0, m0);
        push(GRAIN_MONTH, m0, m1);
        push(GRAIN_DAY, m1, d1);
    } else {
        push(GRAIN_DAY, d0, d1);
    }
    push(GRAIN_HOUR, d1, b);
    out
}

/// The first instant of local `date` in `tz` (the first existing instant when midnight falls
/// in a daylight-saving gap).
pub fn local_midnight(tz: Tz, date: NaiveDate) -> Option<i64> {
    (0..=3).find_map(|h| {
        tz.from_local_datetime(&date.and_hms_opt(h, 0, 0)?)
            .earliest()
            .map(|t| t.timestamp_millis())
    })
}

/// Most buckets one timeseries may have.
pub const MAX_BUCKETS: usize = 10_000;

/// The buckets of a timeseries over `[from, to)`: (start in ms, label). Hours are UTC hours
/// labelled with their local time and its offset (`2026-10-25T02:00:00+02:00`, so that the
/// hour repeated when summer time ends has two labels); days and months are local. The first bucket starts at
/// `from`; each ends where the next starts (the last at `to`). `None` when there would be
/// more than [`MAX_BUCKETS`].
pub fn buckets(from: i64, to: i64, tz: Tz, interval: Interval) -> Option<Vec<(i64, String)>> {
    let local = |ts: i64| tz.timestamp_millis_opt(ts).single();
    let mut out = Vec::new();
    match interval {
        Interval::Hour => {
            let mut t = floor_hour(from);
            while t < to {
                let label = local(t)?.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
                out.push((t.max(from), label));
                t += HOUR_MS;
                if out.len() > MAX_BUCKETS {
                    return None;
                }
            }
        }
        Interval::Day | Interval::Month => {
            let mut date = local(from)?.date_naive();
            if interval == Interval::Month {
                date = date.with_day(1)?;
            }
            loop {
                let start = local_midnight(tz, date)?.max(from);
                if start >= to {
                    break;
                }
                let label = if interval == Interval::Month {
                    date.format("%Y-%m").to_string()
                } else {
                    date.to_string()
                };
                out.push((start, label));
                date = if interval == Interval::Month {
                    date.checked_add_months(Months::new(1))?
                } else {
                    date.checked_add_days(Days::new(1))?
                };
                if out.len() > MAX_BUCKETS {
                    return None;
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-01T00:00:00Z
    const NOV_1: i64 = 1_793_491_200_000;

    fn total(p: &[Piece]) -> i64 {
        p.iter().map(|p| p.end - p.start).sum()
    }

    #[test]
    fn pieces_cover_the_range_without_overlap() {
        let from = NOV_1 - 5 * HOUR_MS; // Oct 31, 19:00
        let to = NOV_1 + 70 * DAY_MS + 3 * HOUR_MS; // Jan 10, 03:00
        let p = pieces(from, to);
        assert_eq!(total(&p), to - from);
        for w in p.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let grains: Vec<i64> = p.iter().map(|p| p.grain).collect();
        assert_eq!(grains, vec![GRAIN_HOUR, GRAIN_MONTH, GRAIN_DAY, GRAIN_HOUR]);
    }

    #[test]
    fn short_ranges_are_hours_and_whole_days_are_days() {
        assert_eq!(
            pieces(NOV_1 + HOUR_MS, NOV_1 + 5 * HOUR_MS),
            vec![Piece {
                grain: GRAIN_HOUR,
                start: NOV_1 + HOUR_MS,
                end: NOV_1 + 5 * HOUR_MS
            }]
        );
        assert_eq!(
            pieces(NOV_1, NOV_1 + 7 * DAY_MS),
            vec![Piece {
                grain: GRAIN_DAY,
                start: NOV_1,
                end: NOV_1 + 7 * DAY_MS
            }]
        );
    }

    #[test]
    fn berlin_days_start_at_local_midnight() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        let b = buckets(
            NOV_1 - HOUR_MS,
            NOV_1 + 2 * DAY_MS - HOUR_MS,
            tz,
            Interval::Day,
        )
        .expect("buckets");
        assert_eq!(
            b,
            vec![
                (NOV_1 - HOUR_MS, "2026-11-01".to_string()),
                (NOV_1 + DAY_MS - HOUR_MS, "2026-11-02".to_string())
            ]
        );
        let h = buckets(NOV_1, NOV_1 + 2 * HOUR_MS, tz, Interval::Hour).expect("buckets");
        assert_eq!(h[0].1, "2026-11-01T01:00:00+01:00");
        let m = buckets(NOV_1, NOV_1 + 40 * DAY_MS, Tz::UTC, Interval::Month).expect("buckets");
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].1, "2026-12");
    }
}
