//! A day digest: the page views and custom events of one site and UTC day, sessionised with
//! the rollup worker's rules and stored as columns of small numbers, every string once in a
//! dictionary. Filtered queries count from digests ([`super::days`]) instead of reading and
//! sessionising the raw events again: a filter value is looked up once per day (a day
//! without it is skipped whole), and the events are then compared as numbers.
//!
//! A visitor id lives one UTC day (its salt rotates daily), so the visits of a day are
//! complete within its digest and days can be counted one after the other.
//!
//! [`count_day`] counts exactly what [`super::raw::aggregate`] counts from the same events
//! (the tests hold one against the other).

use std::collections::{HashMap, HashSet};

use super::params::{Dim, DimKind};
use super::raw::Raw;
use crate::rollup::model::{Counts, EvKind, DAY_MS, VISIT_DIMS};

/// The format of an encoded digest; a stored digest of another format is built again.
const FORMAT: u8 = 4;
/// "No value" in a column of dictionary ids.
const NONE: u32 = u32::MAX;
/// The group of ungrouped counts.
const ALL: u32 = u32::MAX - 1;
/// The visit-level columns: [`VISIT_DIMS`], then `exit_page`.
const VISIT_COLUMNS: usize = VISIT_DIMS.len() + 1;

fn visit_column(dim: &str) -> Option<usize> {
    if dim == "exit_page" {
        return Some(VISIT_DIMS.len());
    }
    VISIT_DIMS.iter().position(|d| *d == dim)
}

/// One site's counted events of one UTC day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Digest {
    /// The day's first instant (ms since the epoch, UTC).
    pub day: i64,
    /// Every string of the day once, in ascending order, one after the other in `text`;
    /// string `i` ends at `ends[i]` (and starts where `i - 1` ends). The columns hold
    /// indexes into it. One buffer rather than a `String` each: decoding a day is two
    /// copies instead of thousands of allocations, and a value is found by binary search.
    text: String,
    ends: Vec<u32>,
    /// Per visit: start (ms after `day`), duration (ms), bounce, visitor (0.. per day) and
    /// the value of each of [`VISIT_COLUMNS`].
    visit_start: Vec<u32>,
    visit_duration: Vec<u32>,
    visit_bounce: Vec<bool>,
    visit_visitor: Vec<u32>,
    visit_values: Vec<Vec<u32>>,
    /// Per event (page views and custom events, in time order): time (ms after `day`),
    /// visit, custom event or not, path, event name, and where its props start in
    /// `prop_keys` / `prop_values` (one more entry than events).
    ev_ts: Vec<u32>,
    ev_visit: Vec<u32>,
    ev_custom: Vec<bool>,
    ev_path: Vec<u32>,
    ev_name: Vec<u32>,
    ev_props: Vec<u32>,
    prop_keys: Vec<u32>,
    prop_values: Vec<u32>,
}

/// Dictionary ids while a digest is built, borrowing the strings of the events (today's
/// digest is built again whenever its events change, so this is on the path of a query).
#[derive(Default)]
struct Strings<'a> {
    ids: HashMap<&'a str, u32, foldhash::fast::RandomState>,
    list: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        let next = self.list.len() as u32;
        let id = *self.ids.entry(s).or_insert(next);
        if id == next {
            self.list.push(s);
        }
        id
    }

    fn opt(&mut self, s: Option<&'a str>) -> u32 {
        s.map_or(NONE, |s| self.id(s))
    }
}

/// Milliseconds after `day`, for an instant of that day.
fn offset(ts: i64, day: i64) -> u32 {
    (ts - day).clamp(0, DAY_MS - 1) as u32
}

impl Digest {
    /// The digest of the sessionised events of the day starting at `day` (`raw` must hold
    /// that day's events only).
    pub fn build(day: i64, raw: &Raw) -> Digest {
        let mut strings = Strings::default();
        let mut d = Digest {
            day,
            visit_values: vec![Vec::new(); VISIT_COLUMNS],
            ..Digest::default()
        };
        // Visits numbered in the order of the visitors and their slots.
        let mut first_visit = Vec::with_capacity(raw.visitors.len());
        for (vi, visitor) in raw.visitors.iter().enumerate() {
            first_visit.push(d.visit_start.len());
            for slot in &visitor.slots {
                let v = &slot.visit;
                d.visit_start.push(offset(v.started_at, day));
                d.visit_duration
                    .push(v.duration_ms().clamp(0, i64::from(u32::MAX)) as u32);
                d.visit_bounce.push(v.is_bounce());
                d.visit_visitor.push(vi as u32);
                for (c, dim) in VISIT_DIMS.iter().chain(["exit_page"].iter()).enumerate() {
                    let id = strings.opt(v.value(dim));
                    d.visit_values[c].push(id);
                }
            }
        }
        d.ev_props.push(0);
        for (ev, vi, si) in &raw.events {
            if ev.kind == EvKind::Engagement {
                continue;
            }
            d.ev_ts.push(offset(ev.ts, day));
            d.ev_visit.push((first_visit[*vi] + si) as u32);
            d.ev_custom.push(ev.kind == EvKind::Event);
            d.ev_path.push(strings.id(&ev.path));
            d.ev_name.push(strings.opt(ev.name.as_deref()));
            for (k, v) in &ev.props {
                let (k, v) = (strings.id(k), strings.id(v));
                d.prop_keys.push(k);
                d.prop_values.push(v);
            }
            d.ev_props.push(d.prop_keys.len() as u32);
        }
        d.set_strings(strings.list);
        d
    }

    /// Stores `list` sorted, and renumbers every column to match.
    fn set_strings(&mut self, list: Vec<&str>) {
        let mut order: Vec<u32> = (0..list.len() as u32).collect();
        order.sort_unstable_by(|a, b| list[*a as usize].cmp(list[*b as usize]));
        let mut new_id = vec![0; list.len()];
        for (new, old) in order.iter().enumerate() {
            new_id[*old as usize] = new as u32;
        }
        let renumber = |c: &mut Vec<u32>| {
            for id in c.iter_mut().filter(|id| **id != NONE) {
                *id = new_id[*id as usize];
            }
        };
        for c in [
            &mut self.ev_path,
            &mut self.ev_name,
            &mut self.prop_keys,
            &mut self.prop_values,
        ] {
            renumber(c);
        }
        self.visit_values.iter_mut().for_each(renumber);
        self.text = String::with_capacity(list.iter().map(|s| s.len()).sum());
        self.ends = Vec::with_capacity(list.len());
        for old in order {
            self.text.push_str(list[old as usize]);
            self.ends.push(self.text.len() as u32);
        }
    }

    /// String `id` (every id in a decoded digest is one of its strings).
    fn string(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    /// How many page views and custom events it holds.
    pub fn events(&self) -> usize {
        self.ev_ts.len()
    }

    /// The stored form: a format byte, the day, the strings' text (its length before it),
    /// then each column (the strings' ends first) as its length, the width of its values
    /// (1, 2 or 4 bytes: the fewest that hold its largest value, the width's largest number
    /// standing for "no value") and its values at that width, little endian. Most columns
    /// (countries, devices, a day's visits) fit in one or two bytes, and reading one back is
    /// a widening copy, not a decoding of each value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.text.len() + self.ev_ts.len() * 21);
        out.push(FORMAT);
        out.extend(self.day.to_le_bytes());
        out.extend((self.text.len() as u32).to_le_bytes());
        out.extend(self.text.as_bytes());
        let words = [
            &self.ends,
            &self.visit_start,
            &self.visit_duration,
            &self.visit_visitor,
            &self.ev_ts,
            &self.ev_visit,
            &self.ev_path,
            &self.ev_name,
            &self.ev_props,
            &self.prop_keys,
            &self.prop_values,
        ];
        for column in words.into_iter().chain(&self.visit_values) {
            put_words(&mut out, column);
        }
        for column in [&self.visit_bounce, &self.ev_custom] {
            out.extend((column.len() as u32).to_le_bytes());
            out.extend(column.iter().map(|b| u8::from(*b)));
        }
        out
    }

    /// `None` for another format or damaged bytes (the day is then built again).
    pub fn decode(bytes: &[u8]) -> Option<Digest> {
        let mut r = Reader(bytes);
        if r.take(1)? != [FORMAT] {
            return None;
        }
        let day = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let n = r.u32()? as usize;
        let text = std::str::from_utf8(r.take(n)?).ok()?.to_owned();
        let mut d = Digest {
            day,
            text,
            ends: r.words()?,
            visit_start: r.words()?,
            visit_duration: r.words()?,
            visit_visitor: r.words()?,
            ev_ts: r.words()?,
            ev_visit: r.words()?,
            ev_path: r.words()?,
            ev_name: r.words()?,
            ev_props: r.words()?,
            prop_keys: r.words()?,
            prop_values: r.words()?,
            ..Digest::default()
        };
        for _ in 0..VISIT_COLUMNS {
            d.visit_values.push(r.words()?);
        }
        d.visit_bounce = r.flags()?;
        d.ev_custom = r.flags()?;
        let visits = d.visit_start.len();
        let events = d.ev_ts.len();
        let consistent = r.0.is_empty()
            && [&d.visit_duration, &d.visit_visitor]
                .iter()
                .chain(d.visit_values.iter().collect::<Vec<_>>().iter())
                .all(|c| c.len() == visits)
            && d.visit_bounce.len() == visits
            && [&d.ev_visit, &d.ev_path, &d.ev_name]
                .iter()
                .all(|c| c.len() == events)
            && d.ev_custom.len() == events
            && d.ev_props.len() == events + 1
            && d.prop_keys.len() == d.prop_values.len()
            && d.ev_props.iter().all(|p| *p as usize <= d.prop_keys.len())
            && d.ev_visit.iter().all(|v| (*v as usize) < visits);
        // The strings: ends ascending, within the text, on character boundaries.
        let mut start = 0;
        let strings_ok = d.ends.iter().all(|end| {
            let end = *end as usize;
            let ok = start <= end && d.text.is_char_boundary(end) && end <= d.text.len();
            start = end;
            ok
        });
        let strings = d.ends.len() as u32;
        let known = |c: &[u32]| c.iter().all(|id| *id < strings || *id == NONE);
        let ids_ok = known(&d.ev_path)
            && known(&d.ev_name)
            && known(&d.prop_keys)
            && known(&d.prop_values)
            && d.visit_values.iter().all(|c| known(c));
        (consistent && strings_ok && ids_ok).then_some(d)
    }

    /// The id of `s`, if the day has it.
    fn lookup(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.string(mid as u32).cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// The value id of event `e` for an event-level dimension.
    fn event_value(&self, e: usize, dim: &EventDim) -> u32 {
        let custom = self.ev_custom[e];
        match dim {
            EventDim::Page => self.ev_path[e],
            EventDim::Name if custom => self.ev_name[e],
            EventDim::Prop(key) if custom => {
                let (a, b) = (self.ev_props[e] as usize, self.ev_props[e + 1] as usize);
                (a..b)
                    .find(|i| self.prop_keys[*i] == *key)
                    .map_or(NONE, |i| self.prop_values[i])
            }
            _ => NONE,
        }
    }
}

/// Appends a column of numbers: its length, its width, its values (see [`Digest::encode`]).
fn put_words(out: &mut Vec<u8>, column: &[u32]) {
    out.extend((column.len() as u32).to_le_bytes());
    let largest = column.iter().filter(|v| **v != NONE).max().copied();
    match largest.unwrap_or(0) {
        0..0xFF => {
            out.push(1);
            out.extend(column.iter().map(|v| (*v).min(0xFF) as u8));
        }
        0xFF..0xFFFF => {
            out.push(2);
            for v in column {
                out.extend(((*v).min(0xFFFF) as u16).to_le_bytes());
            }
        }
        _ => {
            out.push(4);
            for v in column {
                out.extend(v.to_le_bytes());
            }
        }
    }
}

/// Reads the stored form.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn words(&mut self) -> Option<Vec<u32>> {
        let n = self.u32()? as usize;
        let width = *self.take(1)?.first()?;
        let none = |v: u32, sentinel: u32| if v == sentinel { NONE } else { v };
        let bytes = self.take(n.checked_mul(usize::from(width))?)?;
        match width {
            1 => Some(bytes.iter().map(|b| none(u32::from(*b), 0xFF)).collect()),
            2 => Some(
                bytes
                    .chunks_exact(2)
                    .map(|c| none(u32::from(u16::from_le_bytes([c[0], c[1]])), 0xFFFF))
                    .collect(),
            ),
            4 => Some(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn flags(&mut self) -> Option<Vec<bool>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.iter().map(|b| *b != 0).collect())
    }
}

/// An event-level dimension resolved in one digest.
#[derive(Clone, Copy)]
enum EventDim {
    Page,
    Name,
    /// The prop key's id (NONE: the day has no such prop).
    Prop(u32),
}

/// A dimension resolved in one digest.
#[derive(Clone, Copy)]
enum Resolved {
    Visit(usize),
    Event(EventDim),
}

fn resolve(d: &Digest, dim: &Dim) -> Option<Resolved> {
    match dim.kind() {
        DimKind::Event => Some(Resolved::Event(match dim.as_str() {
            "page" => EventDim::Page,
            "event" => EventDim::Name,
            s => EventDim::Prop(
                d.lookup(s.strip_prefix("prop:").unwrap_or_default())
                    .unwrap_or(NONE),
            ),
        })),
        DimKind::Visit | DimKind::Exit => visit_column(dim.as_str()).map(Resolved::Visit),
    }
}

/// Adds to `out` the counts per (bucket, value of `group`) of what passes `filters` in
/// `[from, to)` on this day, as [`super::raw::aggregate`] does over raw events.
pub fn count_day(
    d: &Digest,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
    group: Option<&Dim>,
    bucket_of: &dyn Fn(i64) -> Option<usize>,
    out: &mut Acc,
) {
    if d.day + DAY_MS <= from || d.day >= to || d.ev_ts.is_empty() {
        return;
    }
    // Every filter must be met; a value the day never saw is met by nothing.
    let mut visit_filters: Vec<(usize, u32)> = Vec::new();
    let mut event_filters: Vec<(EventDim, u32)> = Vec::new();
    for (dim, want) in filters {
        let Some(want) = d.lookup(want) else {
            return;
        };
        match resolve(d, dim) {
            Some(Resolved::Visit(c)) => visit_filters.push((c, want)),
            Some(Resolved::Event(e)) => event_filters.push((e, want)),
            None => return,
        }
    }
    let group = match group {
        None => None,
        Some(g) => match resolve(d, g) {
            Some(r) => Some(r),
            None => return,
        },
    };
    let by_page = matches!(group, Some(Resolved::Event(EventDim::Page)));
    let visit_ok = |v: usize| {
        visit_filters
            .iter()
            .all(|(c, want)| d.visit_values[*c][v] == *want)
    };

    // Small keys, hashed many times a day: a fast hasher (the keys come from the digest).
    let fast = foldhash::fast::RandomState::default;
    let mut local: HashMap<(usize, u32), Counts, _> = HashMap::with_hasher(fast());
    let mut matched = vec![false; d.visit_start.len()];
    let mut seen_visitors: HashSet<(u32, u32), _> = HashSet::with_hasher(fast());
    let mut seen_pages: HashSet<(u32, u32, u32), _> = HashSet::with_hasher(fast());
    for e in 0..d.ev_ts.len() {
        let v = d.ev_visit[e] as usize;
        if !visit_ok(v)
            || !event_filters
                .iter()
                .all(|(dim, want)| d.event_value(e, dim) == *want)
        {
            continue;
        }
        matched[v] = true;
        let ts = d.day + i64::from(d.ev_ts[e]);
        if ts < from || ts >= to {
            continue;
        }
        let Some(b) = bucket_of(ts) else { continue };
        let g = match group {
            None => ALL,
            Some(Resolved::Event(dim)) => d.event_value(e, &dim),
            Some(Resolved::Visit(c)) => d.visit_values[c][v],
        };
        if g == NONE {
            continue;
        }
        let c = local.entry((b, g)).or_default();
        let pageview = !d.ev_custom[e];
        if pageview {
            c.pageviews += 1;
            if seen_pages.insert((v as u32, d.ev_path[e], g)) {
                c.unique_pageviews += 1;
                if by_page {
                    c.visits += 1;
                }
            }
        } else {
            c.events += 1;
        }
        if (pageview || !by_page) && seen_visitors.insert((d.visit_visitor[v], g)) {
            c.visitors += 1;
        }
    }
    for (v, was_matched) in matched.iter().enumerate() {
        let started = d.day + i64::from(d.visit_start[v]);
        if started < from
            || started >= to
            || !visit_ok(v)
            || (!event_filters.is_empty() && !was_matched)
        {
            continue;
        }
        let g = match group {
            None => ALL,
            Some(Resolved::Event(_)) => continue,
            Some(Resolved::Visit(c)) => d.visit_values[c][v],
        };
        let (false, Some(b)) = (g == NONE, bucket_of(started)) else {
            continue;
        };
        let c = local.entry((b, g)).or_default();
        c.visits += 1;
        c.bounces += i64::from(d.visit_bounce[v]);
        c.duration_ms += i64::from(d.visit_duration[v]);
    }
    for ((b, g), c) in local {
        let value = if g == ALL { "" } else { d.string(g) };
        let bucket = out.entry(b).or_default();
        // The value's `String` is made once per query, not once per day.
        match bucket.get_mut(value) {
            Some(sum) => *sum += c,
            None => {
                bucket.insert(value.to_string(), c);
            }
        }
    }
}

/// What [`count_day`] adds to: counts per bucket, then per value.
pub type Acc = HashMap<usize, HashMap<String, Counts>>;

/// The counts of an [`Acc`] keyed as [`super::raw::aggregate`] keys them.
pub fn flatten(acc: Acc) -> HashMap<(usize, String), Counts> {
    acc.into_iter()
        .flat_map(|(b, values)| values.into_iter().map(move |(v, c)| ((b, v), c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::model::Ev;
    use crate::stats::raw;

    fn ev(seq: i64, ts: i64, visitor: i64, kind: EvKind, path: &str) -> Ev {
        Ev {
            seq,
            site_id: 1,
            kind,
            ts,
            visitor,
            path: path.into(),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            country: Some(if visitor % 2 == 0 { "DE" } else { "US" }.into()),
            browser: Some("Firefox".into()),
            os: None,
            device: Some("desktop".into()),
            logged_in: visitor % 3 == 0,
            name: (kind == EvKind::Event).then(|| "signup".to_string()),
            props: if kind == EvKind::Event {
                vec![("plan".into(), format!("p{}", seq % 3))]
            } else {
                Vec::new()
            },
        }
    }

    fn day_events(day: i64) -> Vec<Ev> {
        let mut evs = Vec::new();
        let paths = ["/", "/pricing", "/blog/ä", "/docs"];
        for i in 0..400_i64 {
            let visitor = i % 37;
            let ts = day + (i * 7_919 % 86_000) * 1_000;
            let kind = match i % 9 {
                0 => EvKind::Event,
                1 => EvKind::Engagement,
                _ => EvKind::Pageview,
            };
            evs.push(ev(i, ts, visitor, kind, paths[(i % 4) as usize]));
        }
        evs
    }

    #[test]
    fn counts_equal_the_raw_counts_for_every_filter_and_group() {
        let day = 20_000 * DAY_MS;
        let evs = day_events(day);
        let digest = Digest::build(day, &raw::sessionise(evs.clone()));
        let decoded = Digest::decode(&digest.encode()).expect("decodes");
        assert_eq!(decoded, digest);
        let all = raw::sessionise(evs);
        let dims = [
            None,
            Some("page"),
            Some("entry_page"),
            Some("exit_page"),
            Some("country"),
            Some("event"),
            Some("prop:plan"),
            Some("user"),
            Some("referrer"),
        ];
        let filter_sets: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("page", "/pricing")],
            vec![("country", "DE")],
            vec![("country", "US"), ("page", "/docs")],
            vec![("page", "/blog/ä")],
            vec![("event", "signup")],
            vec![("prop:plan", "p1")],
            vec![("user", "logged-in"), ("exit_page", "/")],
            vec![("country", "FR")],
        ];
        let hours = |ts: i64| Some(((ts - day) / 3_600_000) as usize);
        for (from, to) in [
            (day, day + DAY_MS),
            (day + 3 * 3_600_000, day + 20 * 3_600_000),
        ] {
            for filters in &filter_sets {
                let filters: Vec<(Dim, String)> = filters
                    .iter()
                    .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                    .collect();
                for group in dims {
                    let group = group.map(|g| Dim::parse(g).expect("dim"));
                    let want = raw::aggregate(&all, from, to, &filters, group.as_ref(), &hours);
                    let mut got = Acc::new();
                    count_day(
                        &decoded,
                        from,
                        to,
                        &filters,
                        group.as_ref(),
                        &hours,
                        &mut got,
                    );
                    assert_eq!(
                        flatten(got),
                        want,
                        "filters {filters:?}, group {group:?}, {from}..{to}"
                    );
                }
            }
        }
    }

    #[test]
    fn columns_are_stored_at_the_narrowest_width_that_holds_them() {
        let columns: [(&[u32], usize); 7] = [
            (&[], 1),
            (&[0, 7, NONE, 0xFE], 1),
            (&[0xFF, NONE, 1], 2),
            (&[0xFFFE, 0], 2),
            (&[0xFFFF, NONE], 4),
            (&[86_399_999, 0, NONE, u32::MAX - 2], 4),
            (&[NONE, NONE], 1),
        ];
        for (column, width) in columns {
            let mut bytes = Vec::new();
            put_words(&mut bytes, column);
            assert_eq!(bytes[4], width as u8, "{column:?}");
            assert_eq!(bytes.len(), 5 + column.len() * width, "{column:?}");
            let mut r = Reader(&bytes);
            assert_eq!(r.words().as_deref(), Some(column));
            assert!(r.0.is_empty());
        }
        // A width that is none of these: refused.
        assert!(Reader(&[1, 0, 0, 0, 3, 0, 0, 0]).words().is_none());
    }

    #[test]
    fn another_format_or_damaged_bytes_are_not_decoded() {
        let mut bytes = Digest::build(0, &Raw::default()).encode();
        assert!(Digest::decode(&bytes).is_some());
        bytes[0] = FORMAT + 1;
        assert!(Digest::decode(&bytes).is_none());
        assert!(Digest::decode(&[]).is_none());
        let day = 20_000 * DAY_MS;
        let bytes = Digest::build(day, &raw::sessionise(day_events(day))).encode();
        assert!(Digest::decode(&bytes).is_some());
        // Cut short, or an event's visit past the visits: refused, never a panic later.
        assert!(Digest::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut d = Digest::decode(&bytes).expect("decodes");
        d.ev_visit[0] = d.visit_start.len() as u32;
        assert!(Digest::decode(&d.encode()).is_none());
        // A string ending past the text, or inside a character.
        let mut d = Digest::decode(&bytes).expect("decodes");
        let last = d.ends.len() - 1;
        d.ends[last] += 1;
        assert!(Digest::decode(&d.encode()).is_none());
        let mut d = Digest::decode(&bytes).expect("decodes");
        let i = d
            .ends
            .iter()
            .position(|e| !d.text.is_char_boundary(*e as usize - 1))
            .expect("a string ending in a two-byte character");
        d.ends[i] -= 1;
        assert!(Digest::decode(&d.encode()).is_none());
    }
}
