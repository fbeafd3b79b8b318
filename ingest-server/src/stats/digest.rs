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
const FORMAT: u8 = 5;
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

/// One site's counted events of one UTC day, read in place from its stored form: decoding a
/// day checks the layout and notes where each column starts, without copying or widening the
/// columns (a year's filtered query reads 365 of them; widening every column into its own
/// vector took four times as long as reading them).
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The day's first instant (ms since the epoch, UTC).
    pub day: i64,
    /// The stored form (see [`Columns::encode`]).
    bytes: Box<[u8]>,
    /// Where the strings' text is in `bytes`.
    text: std::ops::Range<usize>,
    ends: Col,
    visit_start: Col,
    visit_duration: Col,
    visit_visitor: Col,
    ev_ts: Col,
    ev_visit: Col,
    ev_path: Col,
    ev_name: Col,
    ev_props: Col,
    prop_keys: Col,
    prop_values: Col,
    visit_values: [Col; VISIT_COLUMNS],
    visit_bounce: Col,
    ev_custom: Col,
}

/// A column in a digest's bytes: where its values start, how many there are and their
/// width (1, 2 or 4 bytes, little endian; the width's largest number stands for "no value").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Col {
    at: usize,
    len: usize,
    width: u8,
}

/// A digest's columns as they are built, before they are stored.
#[derive(Debug, Clone, Default, PartialEq)]
struct Columns {
    /// Every string of the day once, in ascending order, one after the other in `text`;
    /// string `i` ends at `ends[i]` (and starts where `i - 1` ends). The columns hold
    /// indexes into it.
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

impl Columns {
    /// The columns of the sessionised events of the day starting at `day` (`raw` must hold
    /// that day's events only).
    fn build(day: i64, raw: &Raw) -> Columns {
        let mut strings = Strings::default();
        let mut d = Columns {
            visit_values: vec![Vec::new(); VISIT_COLUMNS],
            ..Columns::default()
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

    /// The stored form: a format byte, the day, the strings' text (its length before it),
    /// then each column (the strings' ends first) as its length, the width of its values
    /// (1, 2 or 4 bytes: the fewest that hold its largest value, the width's largest number
    /// standing for "no value") and its values at that width, little endian. Most columns
    /// (countries, devices, a day's visits) fit in one or two bytes, and a query reads
    /// them where they are.
    fn encode(&self, day: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.text.len() + self.ev_ts.len() * 21);
        out.push(FORMAT);
        out.extend(day.to_le_bytes());
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
            out.push(1);
            out.extend(column.iter().map(|b| u8::from(*b)));
        }
        out
    }
}

impl Digest {
    /// The digest of the sessionised events of the day starting at `day` (`raw` must hold
    /// that day's events only).
    pub fn build(day: i64, raw: &Raw) -> Digest {
        let bytes = Columns::build(day, raw).encode(day);
        Digest::from_bytes(bytes.into_boxed_slice()).unwrap_or_else(|| Digest::empty(day))
    }

    /// A day without events.
    fn empty(day: i64) -> Digest {
        let bytes = Columns {
            ev_props: vec![0],
            visit_values: vec![Vec::new(); VISIT_COLUMNS],
            ..Columns::default()
        }
        .encode(day);
        Digest {
            day,
            bytes: bytes.into_boxed_slice(),
            text: 0..0,
            ends: Col::default(),
            visit_start: Col::default(),
            visit_duration: Col::default(),
            visit_visitor: Col::default(),
            ev_ts: Col::default(),
            ev_visit: Col::default(),
            ev_path: Col::default(),
            ev_name: Col::default(),
            ev_props: Col::default(),
            prop_keys: Col::default(),
            prop_values: Col::default(),
            visit_values: [Col::default(); VISIT_COLUMNS],
            visit_bounce: Col::default(),
            ev_custom: Col::default(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    /// `None` for another format or damaged bytes (the day is then built again).
    pub fn decode(bytes: &[u8]) -> Option<Digest> {
        Digest::from_bytes(bytes.into())
    }

    /// Checks the layout of the stored form and notes where its columns are. Values are
    /// not checked one by one: every read of a value is bounded (an index past its column
    /// reads as "no value", a string id past the strings as ""), so damaged values can
    /// make wrong numbers but never a panic.
    fn from_bytes(bytes: Box<[u8]>) -> Option<Digest> {
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        if r.take(1)? != [FORMAT] {
            return None;
        }
        let day = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let n = r.u32()? as usize;
        let text = r.at..r.at + n;
        r.take(n)?;
        let mut col = || r.column();
        let (ends, visit_start, visit_duration, visit_visitor) = (col()?, col()?, col()?, col()?);
        let (ev_ts, ev_visit, ev_path, ev_name) = (col()?, col()?, col()?, col()?);
        let (ev_props, prop_keys, prop_values) = (col()?, col()?, col()?);
        let mut visit_values = [Col::default(); VISIT_COLUMNS];
        for c in &mut visit_values {
            *c = col()?;
        }
        let (visit_bounce, ev_custom) = (col()?, col()?);
        let d = Digest {
            day,
            text,
            ends,
            visit_start,
            visit_duration,
            visit_visitor,
            ev_ts,
            ev_visit,
            ev_path,
            ev_name,
            ev_props,
            prop_keys,
            prop_values,
            visit_values,
            visit_bounce,
            ev_custom,
            bytes: Box::default(),
        };
        let (visits, events) = (d.visit_start.len, d.ev_ts.len);
        let consistent = r.at == bytes.len()
            && [d.visit_duration, d.visit_visitor, d.visit_bounce]
                .iter()
                .chain(&d.visit_values)
                .all(|c| c.len == visits)
            && [d.ev_visit, d.ev_path, d.ev_name, d.ev_custom]
                .iter()
                .all(|c| c.len == events)
            && d.ev_props.len == events + 1
            && d.prop_keys.len == d.prop_values.len
            && d.visit_bounce.width == 1
            && d.ev_custom.width == 1;
        let d = Digest { bytes, ..d };
        // The strings: ends ascending, within the text, on character boundaries.
        let text = &d.bytes[d.text.clone()];
        let mut start = 0;
        let strings_ok = (0..d.ends.len).all(|i| {
            let end = d.get(d.ends, i) as usize;
            let ok = start <= end
                && end <= text.len()
                && text.get(end).is_none_or(|b| (*b as i8) >= -0x40);
            start = end;
            ok
        });
        (consistent && strings_ok).then_some(d)
    }

    /// Value `i` of column `c` ([`NONE`] past its end).
    #[inline]
    fn get(&self, c: Col, i: usize) -> u32 {
        if i >= c.len {
            return NONE;
        }
        let b = &self.bytes;
        match c.width {
            1 => match b[c.at + i] {
                0xFF => NONE,
                v => u32::from(v),
            },
            2 => {
                let at = c.at + 2 * i;
                match u16::from_le_bytes([b[at], b[at + 1]]) {
                    0xFFFF => NONE,
                    v => u32::from(v),
                }
            }
            _ => {
                let at = c.at + 4 * i;
                u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
            }
        }
    }

    /// The positions in column `c` that hold `want`, in one pass over its bytes.
    fn positions(&self, c: Col, want: u32) -> Vec<u32> {
        let width = usize::from(c.width);
        let Some(bytes) = self.bytes.get(c.at..c.at + c.len * width) else {
            return Vec::new();
        };
        match width {
            1 => match u8::try_from(want) {
                Ok(w) if w != 0xFF => bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == w)
                    .map(|(i, _)| i as u32)
                    .collect(),
                _ => Vec::new(),
            },
            2 => match u16::try_from(want) {
                Ok(w) if w != 0xFFFF => {
                    let w = w.to_le_bytes();
                    bytes
                        .chunks_exact(2)
                        .enumerate()
                        .filter(|(_, b)| **b == w)
                        .map(|(i, _)| i as u32)
                        .collect()
                }
                _ => Vec::new(),
            },
            _ => {
                let w = want.to_le_bytes();
                bytes
                    .chunks_exact(4)
                    .enumerate()
                    .filter(|(_, b)| **b == w)
                    .map(|(i, _)| i as u32)
                    .collect()
            }
        }
    }

    /// Calls `f` with each position of column `c` and its value, in one pass over its bytes.
    fn for_each(&self, c: Col, mut f: impl FnMut(usize, u32)) {
        let width = usize::from(c.width);
        let Some(bytes) = self.bytes.get(c.at..c.at + c.len * width) else {
            return;
        };
        match width {
            1 => bytes.iter().enumerate().for_each(|(i, b)| match b {
                0xFF => f(i, NONE),
                b => f(i, u32::from(*b)),
            }),
            2 => bytes.chunks_exact(2).enumerate().for_each(|(i, b)| {
                match u16::from_le_bytes([b[0], b[1]]) {
                    0xFFFF => f(i, NONE),
                    v => f(i, u32::from(v)),
                }
            }),
            _ => bytes
                .chunks_exact(4)
                .enumerate()
                .for_each(|(i, b)| f(i, u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        }
    }

    /// The bytes of string `id` (empty for an id past the strings).
    fn string_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.ends.len {
            return &[];
        }
        let start = if i == 0 {
            0
        } else {
            self.get(self.ends, i - 1) as usize
        };
        let end = self.get(self.ends, i) as usize;
        self.bytes[self.text.clone()]
            .get(start..end)
            .unwrap_or_default()
    }

    /// String `id` ("" for an id past the strings or bytes that are not UTF-8).
    fn string(&self, id: u32) -> &str {
        std::str::from_utf8(self.string_bytes(id)).unwrap_or_default()
    }

    /// How many page views and custom events it holds.
    pub fn events(&self) -> usize {
        self.ev_ts.len
    }

    /// The id of `s`, if the day has it (the strings are sorted by their bytes).
    fn lookup(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.ends.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.string_bytes(mid as u32).cmp(s.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// The value id of event `e` for an event-level dimension.
    fn event_value(&self, e: usize, dim: &EventDim) -> u32 {
        let custom = self.get(self.ev_custom, e) == 1;
        match dim {
            EventDim::Page => self.get(self.ev_path, e),
            EventDim::Name if custom => self.get(self.ev_name, e),
            EventDim::Prop(key) if custom => {
                let end = (self.get(self.ev_props, e + 1) as usize).min(self.prop_keys.len);
                let start = (self.get(self.ev_props, e) as usize).min(end);
                (start..end)
                    .find(|i| self.get(self.prop_keys, *i) == *key)
                    .map_or(NONE, |i| self.get(self.prop_values, i))
            }
            _ => NONE,
        }
    }
}

/// Appends a column of numbers: its length, its width, its values (see [`Columns::encode`]).
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

/// Reads the layout of the stored form.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let head = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A column's place: its length, its width (1, 2 or 4), then its values, skipped.
    fn column(&mut self) -> Option<Col> {
        let len = self.u32()? as usize;
        let width = *self.take(1)?.first()?;
        if !matches!(width, 1 | 2 | 4) {
            return None;
        }
        let at = self.at;
        self.take(len.checked_mul(usize::from(width))?)?;
        Some(Col { at, len, width })
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
    if d.day + DAY_MS <= from || d.day >= to || d.ev_ts.len == 0 {
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
    // The visits that pass the visit filters, each filter found by one scan of its column.
    let mut passes = vec![
        0_u8;
        if visit_filters.is_empty() {
            0
        } else {
            d.visit_start.len
        }
    ];
    for (c, want) in &visit_filters {
        for v in d.positions(d.visit_values[*c], *want) {
            passes[v as usize] += 1;
        }
    }
    let visit_ok = |v: usize| {
        visit_filters.is_empty()
            || passes
                .get(v)
                .is_some_and(|n| usize::from(*n) == visit_filters.len())
    };
    // With a filter on the page or the event name, only the events that have it are looked
    // at (found by one scan of that column); the others are checked on those.
    // Else, with visit filters, only the events of the visits that pass them.
    let picked = event_filters
        .iter()
        .find_map(|(dim, want)| match dim {
            EventDim::Page => Some(d.positions(d.ev_path, *want)),
            EventDim::Name => Some(d.positions(d.ev_name, *want)),
            EventDim::Prop(_) => None,
        })
        .or_else(|| {
            (!visit_filters.is_empty()).then(|| {
                let mut events = Vec::new();
                d.for_each(d.ev_visit, |e, v| {
                    if visit_ok(v as usize) {
                        events.push(e as u32);
                    }
                });
                events
            })
        });

    // Small keys, hashed many times a day: a fast hasher (the keys come from the digest).
    let fast = foldhash::fast::RandomState::default;
    let mut local: HashMap<(usize, u32), Counts, _> = HashMap::with_hasher(fast());
    let mut matched = vec![false; d.visit_start.len];
    let mut seen_visitors: HashSet<(u32, u32), _> = HashSet::with_hasher(fast());
    let mut seen_pages: HashSet<(u32, u32, u32), _> = HashSet::with_hasher(fast());
    let events = picked.as_ref().map_or(d.ev_ts.len, Vec::len);
    for k in 0..events {
        let e = picked.as_ref().map_or(k, |p| p[k] as usize);
        let v = d.get(d.ev_visit, e) as usize;
        if !visit_ok(v)
            || !event_filters
                .iter()
                .all(|(dim, want)| d.event_value(e, dim) == *want)
        {
            continue;
        }
        if let Some(m) = matched.get_mut(v) {
            *m = true;
        }
        let ts = d.day + i64::from(d.get(d.ev_ts, e));
        if ts < from || ts >= to {
            continue;
        }
        let Some(b) = bucket_of(ts) else { continue };
        let g = match group {
            None => ALL,
            Some(Resolved::Event(dim)) => d.event_value(e, &dim),
            Some(Resolved::Visit(c)) => d.get(d.visit_values[c], v),
        };
        if g == NONE {
            continue;
        }
        let c = local.entry((b, g)).or_default();
        let pageview = d.get(d.ev_custom, e) == 0;
        if pageview {
            c.pageviews += 1;
            if seen_pages.insert((v as u32, d.get(d.ev_path, e), g)) {
                c.unique_pageviews += 1;
                if by_page {
                    c.visits += 1;
                }
            }
        } else {
            c.events += 1;
        }
        if (pageview || !by_page) && seen_visitors.insert((d.get(d.visit_visitor, v), g)) {
            c.visitors += 1;
        }
    }
    for (v, was_matched) in matched.iter().enumerate() {
        // The cheap checks first: with an event filter, most visits have no matched event.
        if (!event_filters.is_empty() && !was_matched) || !visit_ok(v) {
            continue;
        }
        let started = d.day + i64::from(d.get(d.visit_start, v));
        if started < from || started >= to {
            continue;
        }
        let g = match group {
            None => ALL,
            Some(Resolved::Event(_)) => continue,
            Some(Resolved::Visit(c)) => d.get(d.visit_values[c], v),
        };
        let (false, Some(b)) = (g == NONE, bucket_of(started)) else {
            continue;
        };
        let c = local.entry((b, g)).or_default();
        c.visits += 1;
        c.bounces += i64::from(d.get(d.visit_bounce, v) == 1);
        c.duration_ms += i64::from(d.get(d.visit_duration, v));
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

/// What [`count_day`] adds to: counts per bucket, then per value (looked up once per value
/// and day: a fast hasher).
pub type Acc = HashMap<usize, HashMap<String, Counts, Fast>, Fast>;

type Fast = foldhash::fast::RandomState;

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
                    let mut got = Acc::default();
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
            let mut r = Reader {
                bytes: &bytes,
                at: 0,
            };
            let col = r.column().expect("a column");
            assert_eq!(r.at, bytes.len());
            let d = Digest {
                bytes: bytes.clone().into_boxed_slice(),
                ..Digest::empty(0)
            };
            let read: Vec<u32> = (0..col.len).map(|i| d.get(col, i)).collect();
            assert_eq!(read, column);
            assert_eq!(d.get(col, col.len), NONE, "past the end: no value");
        }
        // A width that is none of these: refused.
        let three = [1, 0, 0, 0, 3, 0, 0, 0];
        assert!(Reader {
            bytes: &three,
            at: 0
        }
        .column()
        .is_none());
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
        // Cut short, or a byte too many: refused.
        assert!(Digest::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Digest::decode(&[&bytes[..], &[0]].concat()).is_none());
        // A string ending past the text, or inside a character.
        let columns = Columns::build(day, &raw::sessionise(day_events(day)));
        let mut c = columns.clone();
        let last = c.ends.len() - 1;
        c.ends[last] += 1;
        assert!(Digest::decode(&c.encode(day)).is_none());
        let mut c = columns.clone();
        let i = c
            .ends
            .iter()
            .position(|e| !c.text.is_char_boundary(*e as usize - 1))
            .expect("a string ending in a two-byte character");
        c.ends[i] -= 1;
        assert!(Digest::decode(&c.encode(day)).is_none());
        // Values are not checked one by one: an event's visit, a string id or a prop range
        // past their columns never panic, and match no filter.
        let mut c = columns.clone();
        let visits = c.visit_start.len() as u32;
        c.ev_visit.iter_mut().for_each(|v| *v += visits);
        c.ev_path.iter_mut().for_each(|p| *p += 1_000);
        c.ev_props.iter_mut().for_each(|p| *p = p.wrapping_mul(7));
        let d = Digest::decode(&c.encode(day)).expect("the layout is sound");
        let mut acc = Acc::default();
        count_day(&d, day, day + DAY_MS, &[], None, &|_| Some(0), &mut acc);
        for (filters, group) in [
            (vec![("page", "/pricing")], Some("prop:plan")),
            (vec![("country", "DE")], Some("page")),
        ] {
            let filters: Vec<(Dim, String)> = filters
                .iter()
                .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                .collect();
            let group = group.map(|g| Dim::parse(g).expect("dim"));
            let mut acc = Acc::default();
            count_day(
                &d,
                day,
                day + DAY_MS,
                &filters,
                group.as_ref(),
                &|_| Some(0),
                &mut acc,
            );
            let counted: i64 = flatten(acc).values().map(|c| c.visitors + c.visits).sum();
            assert_eq!(counted, 0, "{filters:?} {group:?}");
        }
    }
}
