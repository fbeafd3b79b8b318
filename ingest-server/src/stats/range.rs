//! Time ranges: a query range split into rollup pieces (UTC months, UTC days and hours, added
//! or subtracted), and the local buckets of a timeseries. Pure.

use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::params::Interval;
use crate::rollup::model::{floor_day, floor_hour, DAY_MS, HOUR_MS};
use crate::rollup::store::month_start;

pub const GRAIN_HOUR: i64 = 0;
pub const GRAIN_DAY: i64 = 1;
pub const GRAIN_MONTH: i64 = 2;

/// Rollup rows of one grain with `start <= bucket < end`, added (`sign` 1) or subtracted
/// (`sign` -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub grain: i64,
    pub start: i64,
    pub end: i64,
    pub sign: i64,
}

impl Piece {
    fn new(grain: i64, start: i64, end: i64) -> Piece {
        Piece {
            grain,
            start,
            end,
            sign: 1,
        }
    }

    /// The first instant of each rollup bucket of the piece.
    pub fn buckets(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::successors(Some(self.start), move |&b| Some(next_bucket(self.grain, b)))
            .take_while(move |&b| b < self.end)
    }
}

/// The bucket of `grain` after the one that starts at `b`.
pub fn next_bucket(grain: i64, b: i64) -> i64 {
    match grain {
        GRAIN_HOUR => b + HOUR_MS,
        GRAIN_DAY => b + DAY_MS,
        _ => next_month(b),
    }
}

fn next_month(ts: i64) -> i64 {
    month_start(month_start(ts) + 32 * DAY_MS)
}

/// What reading a bucket of each grain costs, roughly: the distinct values it holds (a day
/// holds more than an hour, a month more than a day, fewer than their sums).
const COST: [i64; 3] = [1, 3, 10];

/// Pieces with what reading them costs.
#[derive(Default)]
struct Plan {
    cost: i64,
    pieces: Vec<Piece>,
}

impl Plan {
    fn one(grain: i64, start: i64, end: i64) -> Plan {
        let p = Piece::new(grain, start, end);
        Plan {
            cost: p.buckets().count() as i64 * COST[grain as usize],
            pieces: if start < end { vec![p] } else { Vec::new() },
        }
    }

    fn and(mut self, other: Plan) -> Plan {
        self.cost += other.cost;
        self.pieces.extend(other.pieces);
        self
    }

    fn minus(mut self, other: Plan) -> Plan {
        self.cost += other.cost;
        self.pieces.extend(
            other
                .pieces
                .into_iter()
                .map(|p| Piece { sign: -p.sign, ..p }),
        );
        self
    }

    fn or(self, other: Plan) -> Plan {
        if other.cost < self.cost {
            other
        } else {
            self
        }
    }
}

/// `[a, b)` (whole hours) in hours.
fn by_hours(a: i64, b: i64) -> Plan {
    Plan::one(GRAIN_HOUR, a, b)
}

/// `[a, b)` inside one bucket `[lo, hi)` of a coarser grain: its finer pieces, or the whole
/// bucket less what lies outside the range, whichever reads less.
fn part(grain: i64, lo: i64, hi: i64, a: i64, b: i64, finer: fn(i64, i64) -> Plan) -> Plan {
    if a >= b {
        return Plan::default();
    }
    if a == lo && b == hi {
        return Plan::one(grain, lo, hi);
    }
    let whole = Plan::one(grain, lo, hi)
        .minus(finer(lo, a))
        .minus(finer(b, hi));
    finer(a, b).or(whole)
}

/// `[a, b)` in days and hours.
fn by_days(a: i64, b: i64) -> Plan {
    if a >= b {
        return Plan::default();
    }
    let (d0, d1) = (floor_day(a + DAY_MS - 1), floor_day(b));
    if d0 > d1 {
        let lo = floor_day(a);
        return part(GRAIN_DAY, lo, lo + DAY_MS, a, b, by_hours);
    }
    part(GRAIN_DAY, d0 - DAY_MS, d0, a, d0, by_hours)
        .and(Plan::one(GRAIN_DAY, d0, d1))
        .and(part(GRAIN_DAY, d1, d1 + DAY_MS, d1, b, by_hours))
}

/// `[a, b)` in months, days and hours.
fn by_months(a: i64, b: i64) -> Plan {
    if a >= b {
        return Plan::default();
    }
    let m0 = if month_start(a) == a {
        a
    } else {
        next_month(a)
    };
    let m1 = month_start(b);
    if m0 > m1 {
        return part(GRAIN_MONTH, m1, next_month(m1), a, b, by_days);
    }
    part(GRAIN_MONTH, month_start(a), m0, a, m0, by_days)
        .and(Plan::one(GRAIN_MONTH, m0, m1))
        .and(part(GRAIN_MONTH, m1, next_month(m1), m1, b, by_days))
}

/// `[from, to)` as rollup pieces, some of them subtracted, chosen to read as few rows as
/// possible: 30 days from the 3rd of a month to the 2nd of the next are that month less two
/// days plus two days (5 buckets, not 30); a day in Europe/Berlin is a UTC day less one hour
/// plus one hour (3, not 24). Every count is a sum, so the result is exact. The edges are
/// rounded down to the hour (rollups have no finer grain).
pub fn pieces(from: i64, to: i64) -> Vec<Piece> {
    let mut out = by_months(floor_hour(from), floor_hour(to)).pieces;
    // Neighbours of one grain and sign read as one range.
    out.sort_by_key(|p| (p.grain, p.sign, p.start));
    let mut merged: Vec<Piece> = Vec::with_capacity(out.len());
    for p in out {
        match merged.last_mut() {
            Some(last) if last.grain == p.grain && last.sign == p.sign && last.end == p.start => {
                last.end = p.end;
            }
            _ => merged.push(p),
        }
    }
    merged
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

    /// How many times the pieces count the hour starting at `h`.
    fn multiplicity(p: &[Piece], h: i64) -> i64 {
        p.iter()
            .filter(|p| p.start <= h && h < p.end)
            .map(|p| p.sign)
            .sum()
    }

    #[test]
    fn pieces_count_every_hour_of_the_range_once_and_nothing_else() {
        let base = NOV_1 - 40 * DAY_MS;
        let offsets: Vec<i64> = [0, 1, 5, 23, 24, 25, 47, 200, 31 * 24, 40 * 24, 61 * 24 + 3]
            .iter()
            .map(|h| base + h * HOUR_MS)
            .collect();
        let lengths = [
            0,
            1,
            2,
            23,
            24,
            25,
            7 * 24,
            30 * 24 + 5,
            62 * 24,
            365 * 24,
            400 * 24 + 1,
        ];
        for &from in &offsets {
            for len in lengths {
                let to = from + len * HOUR_MS;
                let p = pieces(from, to);
                for q in &p {
                    assert!(q.start < q.end, "{q:?}");
                    assert_eq!(
                        q.buckets().last().map(|b| next_bucket(q.grain, b)),
                        Some(q.end)
                    );
                }
                let lo = month_start(from) - 40 * DAY_MS;
                let hi = to + 40 * DAY_MS;
                let mut h = lo;
                while h < hi {
                    let want = i64::from(from <= h && h < to);
                    assert_eq!(
                        multiplicity(&p, h),
                        want,
                        "hour {h} of [{from}, {to}): {p:?}"
                    );
                    h += HOUR_MS;
                }
            }
        }
    }

    #[test]
    fn pieces_read_few_buckets() {
        let piece = |grain, start, end, sign| Piece {
            grain,
            start,
            end,
            sign,
        };
        // Short ranges are hours, whole days are days.
        assert_eq!(
            pieces(NOV_1 + HOUR_MS, NOV_1 + 5 * HOUR_MS),
            vec![piece(GRAIN_HOUR, NOV_1 + HOUR_MS, NOV_1 + 5 * HOUR_MS, 1)]
        );
        assert_eq!(
            pieces(NOV_1, NOV_1 + 7 * DAY_MS),
            vec![piece(GRAIN_DAY, NOV_1, NOV_1 + 7 * DAY_MS, 1)]
        );
        // 30 days from November 3rd: November less two days, plus two days of December.
        let dec_1 = NOV_1 + 30 * DAY_MS;
        assert_eq!(
            pieces(NOV_1 + 2 * DAY_MS, dec_1 + 2 * DAY_MS),
            vec![
                piece(GRAIN_DAY, NOV_1, NOV_1 + 2 * DAY_MS, -1),
                piece(GRAIN_DAY, dec_1, dec_1 + 2 * DAY_MS, 1),
                piece(GRAIN_MONTH, NOV_1, dec_1, 1),
            ]
        );
        // A day in UTC+1: the UTC day less its last hour, plus the hour before it.
        assert_eq!(
            pieces(NOV_1 - HOUR_MS, NOV_1 + 23 * HOUR_MS),
            vec![
                piece(GRAIN_HOUR, NOV_1 + 23 * HOUR_MS, NOV_1 + DAY_MS, -1),
                piece(GRAIN_HOUR, NOV_1 - HOUR_MS, NOV_1, 1),
                piece(GRAIN_DAY, NOV_1, NOV_1 + DAY_MS, 1),
            ]
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
