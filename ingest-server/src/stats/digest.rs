//! A day digest: the page views and custom events of one site and UTC day, sessionised with
//! the rollup worker's rules and stored as columns of small numbers, every string once in a
//! dictionary. Filtered queries count from digests ([`super::days`]) instead of reading and
//! sessionising the raw events again: a filter value is looked up once per day (a day
//! without it is skipped whole), and the events are then compared as numbers.
//!
//! The stored form starts with a directory of its pieces (the strings' text, then each
//! column), so that a query can read only the pieces it counts with ([`Needs`]): a filter on
//! the page reads none of the eleven visit-level columns, which are half of a day's bytes.
//! The events are stored path by path, so that a filter on the page also reads the values
//! of its own events only ([`Want`]), one stretch of each event column: on a year of
//! 10 million events, a filter on a page with a few percent of them reads half the bytes.
//!
//! A visitor id lives one UTC day (its salt rotates daily), so the visits of a day are
//! complete within its digest and days can be counted one after the other.
//!
//! [`count_day`] counts exactly what [`super::raw::aggregate`] counts from the same events
//! (the tests hold one against the other). Today's events may come out of time order: a
//! visitor is then counted in the bucket of its earliest counted event, where the raw count
//! takes the first to arrive.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::Arc;

use super::params::{Dim, DimKind};
use super::raw::Raw;
use crate::rollup::model::{Counts, EvKind, DAY_MS, VISIT_DIMS};

/// The format of an encoded digest; a stored digest of another format is built again.
pub const FORMAT: u8 = 8;
/// "No value" in a column of dictionary ids.
const NONE: u32 = u32::MAX;
/// The group of ungrouped counts.
const ALL: u32 = u32::MAX - 1;
/// The visit-level columns: [`VISIT_DIMS`], then `exit_page`.
const VISIT_COLUMNS: usize = VISIT_DIMS.len() + 1;

// The pieces of a digest, in their stored order: the strings' text, then the columns.
/// Every string of the day once, in ascending order, one after the other.
const TEXT: usize = 0;
/// Where each string ends in the text (and the next one starts).
const ENDS: usize = 1;
/// Per visit: start (ms after the day's start), duration (ms), visitor (0.. per day).
const VISIT_START: usize = 2;
const VISIT_DURATION: usize = 3;
const VISIT_VISITOR: usize = 4;
/// Per event (page views and custom events, in time order): time (ms after the day's
/// start), visit, path, event name, and where its props start in [`PROP_KEYS`] /
/// [`PROP_VALUES`] (one more entry than events).
const EV_TS: usize = 5;
const EV_VISIT: usize = 6;
const EV_PATH: usize = 7;
const EV_NAME: usize = 8;
const EV_PROPS: usize = 9;
const PROP_KEYS: usize = 10;
const PROP_VALUES: usize = 11;
/// Per visit, the value of each of [`VISIT_COLUMNS`] (the first of them; the others follow).
const VISIT_VALUES: usize = 12;
/// Per visit: 1 for a bounce. Per event: 1 for a custom event.
const VISIT_BOUNCE: usize = VISIT_VALUES + VISIT_COLUMNS;
const EV_CUSTOM: usize = VISIT_BOUNCE + 1;
/// How many pieces a digest has.
const PIECES: usize = EV_CUSTOM + 1;
/// The stored form's head: the format, the day, then per piece where it starts (from the
/// start of the stored form), how many values it holds and their width.
pub const HEAD: usize = 1 + 8 + PIECES * 9;

fn visit_column(dim: &str) -> Option<usize> {
    if dim == "exit_page" {
        return Some(VISIT_DIMS.len());
    }
    VISIT_DIMS.iter().position(|d| *d == dim)
}

/// A set of a digest's pieces: those a query counts with, or those a digest in memory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs(u32);

impl Needs {
    /// Every piece.
    pub const ALL: Needs = Needs((1 << PIECES) - 1);

    /// What every count reads: the strings, the visits' times, visitors and bounces, the
    /// events' times, visits, paths (unique page views) and kinds.
    const BASE: Needs = Needs(
        1 << TEXT
            | 1 << ENDS
            | 1 << VISIT_START
            | 1 << VISIT_DURATION
            | 1 << VISIT_VISITOR
            | 1 << VISIT_BOUNCE
            | 1 << EV_TS
            | 1 << EV_VISIT
            | 1 << EV_PATH
            | 1 << EV_CUSTOM,
    );

    /// The pieces that [`count_day`] reads to count with `filters`, grouped by `group`.
    pub fn of(filters: &[(Dim, String)], group: Option<&Dim>) -> Needs {
        let mut bits = Needs::BASE.0;
        // By an event's value, visits are counted from the events: their start, duration
        // and bounce are not read.
        if group.is_some_and(|g| g.kind() == DimKind::Event) {
            bits &= !(1 << VISIT_START | 1 << VISIT_DURATION | 1 << VISIT_BOUNCE);
        }
        for dim in filters.iter().map(|(d, _)| d).chain(group) {
            bits |= match dim.kind() {
                DimKind::Event => match dim.as_str() {
                    "page" => 0,
                    "event" => 1 << EV_NAME,
                    _ => 1 << EV_PROPS | 1 << PROP_KEYS | 1 << PROP_VALUES,
                },
                DimKind::Visit | DimKind::Exit => {
                    visit_column(dim.as_str()).map_or(0, |c| 1 << (VISIT_VALUES + c))
                }
            };
        }
        Needs(bits)
    }

    /// Without the times of the events and the starts of the visits: what a count reads of
    /// a day that lies whole in its range and in one bucket (a summary's or a breakdown's
    /// days but the first and last, a daily timeseries' in UTC).
    pub fn untimed(self) -> Needs {
        Needs(self.0 & !(1 << EV_TS | 1 << VISIT_START))
    }

    pub fn union(self, other: Needs) -> Needs {
        Needs(self.0 | other.0)
    }

    pub fn covers(self, other: Needs) -> bool {
        self.0 & other.0 == other.0
    }

    fn has(self, piece: usize) -> bool {
        self.0 & (1 << piece) != 0
    }
}

/// What a query reads of each day: the pieces it counts with and, with a filter on the
/// page, that path (whose events alone it then reads, see [`Digest::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub needs: Needs,
    pub path: Option<Arc<str>>,
    /// The range counted: of a day that lies whole in it and in one bucket, no times are
    /// read ([`Needs::untimed`]).
    pub counted: Option<Counted>,
}

impl Want {
    /// Every piece, whole.
    pub const ALL: Want = Want {
        needs: Needs::ALL,
        path: None,
        counted: None,
    };

    /// What [`count_day`] reads to count with `filters`, grouped by `group`.
    pub fn of(filters: &[(Dim, String)], group: Option<&Dim>) -> Want {
        let path = filters.iter().find(|(dim, _)| dim.as_str() == "page");
        Want {
            needs: Needs::of(filters, group),
            path: path.map(|(_, value)| value.as_str().into()),
            counted: None,
        }
    }

    /// The pieces it reads of the day starting at `day`.
    pub fn needs_of(&self, day: i64) -> Needs {
        match &self.counted {
            Some(c) if c.untimed(day) => self.needs.untimed(),
            _ => self.needs,
        }
    }

    /// Whether `d` holds what this reads.
    pub fn met_by(&self, d: &Digest) -> bool {
        d.held.covers(self.needs_of(d.day)) && d.fits(self.path.as_deref())
    }
}

/// A range counted, `[from, to)`, and the first instants of its buckets, ascending
/// (without them, everything is one bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub from: i64,
    pub to: i64,
    pub starts: Option<Arc<[i64]>>,
}

impl Counted {
    /// The bucket of instant `ts` (none before the first).
    pub fn bucket(&self, ts: i64) -> Option<usize> {
        match &self.starts {
            Some(starts) => starts.partition_point(|s| *s <= ts).checked_sub(1),
            None => Some(0),
        }
    }

    /// Whether the day starting at `day` lies whole in the range and in one bucket: its
    /// events and visits are then counted without their times.
    pub fn untimed(&self, day: i64) -> bool {
        day >= self.from
            && day + DAY_MS <= self.to
            && self.bucket(day) == self.bucket(day + DAY_MS - 1)
    }
}

/// One site's counted events of one UTC day, read in place from its stored form (or from
/// the pieces of it a query read): values are read at their stored width, without copying
/// or widening the columns (a year's filtered query reads 365 of them; widening every column
/// into its own vector took four times as long as reading them).
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The day's first instant (ms since the epoch, UTC).
    pub day: i64,
    /// The bytes of each piece (a piece not held is empty), shared with the digests of the
    /// same stored form that other queries read pieces of.
    data: [Arc<[u8]>; PIECES],
    /// Each piece's length and width (a piece not held has none).
    cols: [Col; PIECES],
    /// The pieces held.
    held: Needs,
    /// When the event pieces held are those of one path's events only: that path.
    window: Option<Window>,
    /// Where each piece is in the stored form.
    layout: Layout,
}

/// The events of one path, for which alone a digest's event pieces were read.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    path: Box<str>,
    /// Its events (none when the day never saw the path).
    events: std::ops::Range<usize>,
}

/// The pieces of one value per event.
const EVENT_PIECES: [usize; 6] = [EV_TS, EV_VISIT, EV_PATH, EV_NAME, EV_PROPS, EV_CUSTOM];

/// A piece of a digest: where its values start (in the stored form), how many there are
/// and their width (1, 2 or 4 bytes, little endian; the width's largest number stands for
/// "no value").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Col {
    at: usize,
    len: usize,
    width: u8,
    /// The index of its first value (not 0 for an event piece read for one path only).
    first: usize,
}

impl Default for Col {
    fn default() -> Col {
        Col {
            at: 0,
            len: 0,
            width: 1,
            first: 0,
        }
    }
}

impl Col {
    fn end(&self) -> usize {
        self.at + self.len * usize::from(self.width)
    }
}

/// The head of a stored digest: its day and where each of its pieces is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    day: i64,
    cols: [Col; PIECES],
}

impl Layout {
    /// Reads the head of a stored form of `size` bytes; `None` for another format or a
    /// layout that does not hold together (pieces one after the other from the end of the
    /// head to the end of the form, each column as long as the visits or events it is about).
    pub fn read(head: &[u8], size: usize) -> Option<Layout> {
        let mut r = Reader { bytes: head, at: 0 };
        if r.take(1)? != [FORMAT] {
            return None;
        }
        let day = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let mut cols = [Col::default(); PIECES];
        let mut end = HEAD;
        for c in &mut cols {
            let (at, len) = (r.u32()? as usize, r.u32()? as usize);
            let width = *r.take(1)?.first()?;
            if at != end || !matches!(width, 1 | 2 | 4) {
                return None;
            }
            end = at.checked_add(len.checked_mul(usize::from(width))?)?;
            *c = Col {
                at,
                len,
                width,
                first: 0,
            };
        }
        let (visits, events) = (cols[VISIT_START].len, cols[EV_TS].len);
        let visit_pieces = [VISIT_DURATION, VISIT_VISITOR, VISIT_BOUNCE];
        let consistent = end == size
            && visit_pieces
                .into_iter()
                .chain(VISIT_VALUES..VISIT_BOUNCE)
                .all(|p| cols[p].len == visits)
            && [EV_VISIT, EV_PATH, EV_NAME, EV_CUSTOM]
                .iter()
                .all(|p| cols[*p].len == events)
            && cols[EV_PROPS].len == events + 1
            && cols[PROP_KEYS].len == cols[PROP_VALUES].len
            && cols[ENDS].len <= cols[TEXT].len + 1
            && [TEXT, VISIT_BOUNCE, EV_CUSTOM]
                .iter()
                .all(|p| cols[*p].width == 1);
        consistent.then_some(Layout { day, cols })
    }

    /// Where piece `p` is in the stored form, as a range of bytes.
    fn range(&self, p: usize) -> std::ops::Range<usize> {
        self.cols[p].at..self.cols[p].end()
    }

    /// The stored head (see [`HEAD`]).
    fn head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD);
        out.push(FORMAT);
        out.extend(self.day.to_le_bytes());
        for c in &self.cols {
            out.extend((c.at as u32).to_le_bytes());
            out.extend((c.len as u32).to_le_bytes());
            out.push(c.width);
        }
        out
    }
}

/// A digest's columns as they are built, before they are stored (see the pieces above).
#[derive(Debug, Clone, Default, PartialEq)]
struct Columns {
    text: String,
    ends: Vec<u32>,
    visit_start: Vec<u32>,
    visit_duration: Vec<u32>,
    visit_bounce: Vec<bool>,
    visit_visitor: Vec<u32>,
    visit_values: Vec<Vec<u32>>,
    ev_ts: Vec<u32>,
    ev_visit: Vec<u32>,
    ev_custom: Vec<bool>,
    ev_path: Vec<u32>,
    ev_name: Vec<u32>,
    ev_props: Vec<u32>,
    prop_keys: Vec<u32>,
    prop_values: Vec<u32>,
}

/// Builds a day's digest, and builds it again as the day's events come (today's digest is
/// built again whenever its events change, so this is on the path of a query): what was
/// taken from the events and visits seen before is kept as small numbers (every string once,
/// by an id of its own), so that a build looks again only at the events appended since and
/// the visits they touched. Walking the sessionised events (a few hundred bytes each, with
/// their strings) and looking their strings up was most of a build.
#[derive(Default)]
pub struct Builder {
    ids: HashMap<Box<str>, u32, Fast>,
    strings: Vec<Box<str>>,
    /// Per event of the `Raw` built from, in its order.
    events: Vec<EventIds>,
    /// The props of those events: (key, value).
    props: Vec<(u32, u32)>,
    /// Per visitor of the `Raw`, per slot: its visit.
    visits: Vec<Vec<VisitIds>>,
}

/// What a digest keeps of an event.
#[derive(Clone, Copy)]
struct EventIds {
    ts: i64,
    kind: EvKind,
    path: u32,
    name: u32,
    /// Where its props end in [`Builder::props`] (they start where the previous event's end).
    props_end: u32,
    /// Its visitor (in the `Raw`) and the slot of its visit.
    visitor: u32,
    slot: u32,
}

/// What a digest keeps of a visit.
#[derive(Clone, Copy, Default)]
struct VisitIds {
    started_at: i64,
    duration_ms: u32,
    bounce: bool,
    /// Its values of [`VISIT_COLUMNS`].
    values: [u32; VISIT_COLUMNS],
}

impl Builder {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn opt(&mut self, s: Option<&str>) -> u32 {
        s.map_or(NONE, |s| self.id(s))
    }

    /// The digest of the sessionised events of the day starting at `day`: `raw` must hold
    /// that day's events only, and be the one this was built from before (with events
    /// appended since), or this must be new.
    pub fn build(&mut self, day: i64, raw: &Raw) -> Digest {
        let bytes = self.columns(day, raw).encode(day);
        Digest::decode(&bytes).unwrap_or_else(|| Digest::empty(day))
    }

    /// Takes in the events appended to `raw` since the last build, and the visits they
    /// started or joined (only an event changes a visit, its own: a visit's start, end,
    /// exit page or bounce).
    fn update(&mut self, raw: &Raw) {
        // The events it has not seen yet (those `raw` forgot it had seen).
        debug_assert!(
            self.events.len() >= raw.forgotten,
            "events forgotten unseen"
        );
        let seen = self.events.len().clamp(raw.forgotten, raw.len()) - raw.forgotten;
        let mut touched = Vec::with_capacity(raw.events.len() - seen);
        for (ev, vi, si) in raw.events_from(seen) {
            for (k, v) in &ev.props {
                let (k, v) = (self.id(k), self.id(v));
                self.props.push((k, v));
            }
            let ids = EventIds {
                ts: ev.ts,
                kind: ev.kind,
                path: self.id(&ev.path),
                name: self.opt(ev.name.as_deref()),
                props_end: self.props.len() as u32,
                visitor: vi as u32,
                slot: si as u32,
            };
            self.events.push(ids);
            touched.push((vi, si));
        }
        touched.sort_unstable();
        touched.dedup();
        for (vi, si) in touched {
            let Some(slot) = raw.visitors.get(vi).and_then(|v| v.slots.get(si)) else {
                continue;
            };
            let v = &slot.visit;
            let mut ids = VisitIds {
                started_at: v.started_at,
                duration_ms: v.duration_ms().clamp(0, i64::from(u32::MAX)) as u32,
                bounce: v.is_bounce(),
                values: [NONE; VISIT_COLUMNS],
            };
            for (c, value) in v.values().into_iter().enumerate() {
                ids.values[c] = self.opt(value);
            }
            if self.visits.len() <= vi {
                self.visits.resize(vi + 1, Vec::new());
            }
            let slots = &mut self.visits[vi];
            if slots.len() <= si {
                slots.resize(si + 1, VisitIds::default());
            }
            slots[si] = ids;
        }
    }

    fn columns(&mut self, day: i64, raw: &Raw) -> Columns {
        self.update(raw);
        let visits: usize = self.visits.iter().map(Vec::len).sum();
        let events = self.events.len();
        let mut d = Columns {
            visit_values: (0..VISIT_COLUMNS)
                .map(|_| Vec::with_capacity(visits))
                .collect(),
            visit_start: Vec::with_capacity(visits),
            visit_duration: Vec::with_capacity(visits),
            visit_bounce: Vec::with_capacity(visits),
            visit_visitor: Vec::with_capacity(visits),
            ev_ts: Vec::with_capacity(events),
            ev_visit: Vec::with_capacity(events),
            ev_custom: Vec::with_capacity(events),
            ev_path: Vec::with_capacity(events),
            ev_name: Vec::with_capacity(events),
            ev_props: Vec::with_capacity(events + 1),
            ..Columns::default()
        };
        // Visits numbered in the order of the visitors and their slots.
        let mut first_visit = Vec::with_capacity(self.visits.len());
        for (vi, slots) in self.visits.iter().enumerate() {
            first_visit.push(d.visit_start.len());
            for v in slots {
                d.visit_start.push(offset(v.started_at, day));
                d.visit_duration.push(v.duration_ms);
                d.visit_bounce.push(v.bounce);
                d.visit_visitor.push(vi as u32);
                for (column, value) in d.visit_values.iter_mut().zip(&v.values) {
                    column.push(*value);
                }
            }
        }
        d.ev_props.push(0);
        // Events visit by visit (each visit's in time order), then path by path (see
        // `order_by_path`).
        let mut order: Vec<(u32, usize)> = (self.events.iter().enumerate())
            .filter(|(_, ids)| ids.kind != EvKind::Engagement)
            .map(|(i, ids)| {
                (
                    (first_visit[ids.visitor as usize] + ids.slot as usize) as u32,
                    i,
                )
            })
            .collect();
        order.sort_by_key(|(visit, _)| *visit);
        for (visit, i) in order {
            let ids = self.events[i];
            d.ev_ts.push(offset(ids.ts, day));
            d.ev_visit.push(visit);
            d.ev_custom.push(ids.kind == EvKind::Event);
            d.ev_path.push(ids.path);
            d.ev_name.push(ids.name);
            let start = i.checked_sub(1).map_or(0, |p| self.events[p].props_end);
            for (k, v) in &self.props[start as usize..ids.props_end as usize] {
                d.prop_keys.push(*k);
                d.prop_values.push(*v);
            }
            d.ev_props.push(d.prop_keys.len() as u32);
        }
        d.set_strings(&self.strings);
        d.order_by_path();
        d
    }
}

/// Milliseconds after `day`, for an instant of that day.
fn offset(ts: i64, day: i64) -> u32 {
    (ts - day).clamp(0, DAY_MS - 1) as u32
}

impl Columns {
    /// Orders the events path by path (the paths' ids follow their text), each path's
    /// events visit by visit and each visit's in time order: a filter on the page then
    /// finds its events one after the other, and a query reads only those
    /// ([`Digest::read`]).
    fn order_by_path(&mut self) {
        let mut order: Vec<usize> = (0..self.ev_ts.len()).collect();
        // Stable: the events of a path and visit keep their time order.
        order.sort_by_key(|e| (self.ev_path[*e], self.ev_visit[*e]));
        let pick = |column: &[u32]| order.iter().map(|e| column[*e]).collect::<Vec<u32>>();
        self.ev_ts = pick(&self.ev_ts);
        self.ev_visit = pick(&self.ev_visit);
        self.ev_path = pick(&self.ev_path);
        self.ev_name = pick(&self.ev_name);
        self.ev_custom = order.iter().map(|e| self.ev_custom[*e]).collect();
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        let mut props = Vec::with_capacity(self.ev_props.len());
        props.push(0);
        for e in &order {
            let range = self.ev_props[*e] as usize..self.ev_props[*e + 1] as usize;
            keys.extend_from_slice(&self.prop_keys[range.clone()]);
            values.extend_from_slice(&self.prop_values[range]);
            props.push(keys.len() as u32);
        }
        (self.ev_props, self.prop_keys, self.prop_values) = (props, keys, values);
    }

    /// Stores the strings of `list` that it uses (by their index in `list`), sorted, and
    /// renumbers every column to match.
    fn set_strings(&mut self, list: &[Box<str>]) {
        let mut used = vec![false; list.len()];
        let mut columns = [
            &mut self.ev_path,
            &mut self.ev_name,
            &mut self.prop_keys,
            &mut self.prop_values,
        ];
        for c in columns.iter().map(|c| &**c).chain(&self.visit_values) {
            for id in c.iter().filter(|id| **id != NONE) {
                used[*id as usize] = true;
            }
        }
        let mut order: Vec<u32> = (0..list.len() as u32)
            .filter(|id| used[*id as usize])
            .collect();
        order.sort_unstable_by(|a, b| list[*a as usize].cmp(&list[*b as usize]));
        let mut new_id = vec![0; list.len()];
        for (new, old) in order.iter().enumerate() {
            new_id[*old as usize] = new as u32;
        }
        let renumber = |c: &mut Vec<u32>| {
            for id in c.iter_mut().filter(|id| **id != NONE) {
                *id = new_id[*id as usize];
            }
        };
        columns.iter_mut().for_each(|c| renumber(c));
        self.visit_values.iter_mut().for_each(renumber);
        let text: usize = order.iter().map(|id| list[*id as usize].len()).sum();
        self.text = String::with_capacity(text);
        self.ends = Vec::with_capacity(order.len());
        for old in order {
            self.text.push_str(&list[old as usize]);
            self.ends.push(self.text.len() as u32);
        }
    }

    /// The stored form: the head (see [`HEAD`]), then the pieces one after the other. Each
    /// column is stored at the fewest bytes that hold its largest value (1, 2 or 4, the
    /// width's largest number standing for "no value"), little endian. Most columns
    /// (countries, devices, a day's visits) fit in one or two bytes, and a query reads them
    /// where they are.
    fn encode(&self, day: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.text.len() + self.ev_ts.len() * 21);
        let mut dir = Vec::with_capacity(PIECES);
        body.extend(self.text.as_bytes());
        dir.push((self.text.len(), 1));
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
            dir.push((column.len(), put_words(&mut body, column)));
        }
        for column in [&self.visit_bounce, &self.ev_custom] {
            body.extend(column.iter().map(|b| u8::from(*b)));
            dir.push((column.len(), 1));
        }
        let mut cols = [Col::default(); PIECES];
        let mut at = HEAD;
        for (c, (len, width)) in cols.iter_mut().zip(dir) {
            *c = Col {
                at,
                len,
                width,
                first: 0,
            };
            at = c.end();
        }
        let mut out = Layout { day, cols }.head();
        out.extend(body);
        out
    }
}

impl Digest {
    /// The digest of the sessionised events of the day starting at `day` (`raw` must hold
    /// that day's events only).
    pub fn build(day: i64, raw: &Raw) -> Digest {
        Builder::default().build(day, raw)
    }

    /// A day without events.
    fn empty(day: i64) -> Digest {
        let bytes = Columns {
            ev_props: vec![0],
            visit_values: vec![Vec::new(); VISIT_COLUMNS],
            ..Columns::default()
        }
        .encode(day);
        Digest::decode(&bytes).expect("an empty digest's layout")
    }

    /// The stored form (of a digest that holds every piece).
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.held == Needs::ALL && self.window.is_none(),
            "a digest read in part is not stored"
        );
        let mut out = self.layout.head();
        for piece in &self.data {
            out.extend_from_slice(piece);
        }
        out
    }

    /// `None` for another format or damaged bytes (the day is then built again). Checks the
    /// layout of the stored form and notes where its pieces are. Values are not checked one
    /// by one: every read of a value is bounded (an index past its column reads as "no
    /// value", a string id past the strings as ""), so damaged values can make wrong numbers
    /// but never a panic.
    pub fn decode(bytes: &[u8]) -> Option<Digest> {
        let layout = Layout::read(bytes.get(..HEAD)?, bytes.len())?;
        let read = Digest::read(layout, Needs::ALL, None, None, |at, buf| {
            Ok::<_, std::convert::Infallible>(buf.write_copy_of_slice(&bytes[at..at + buf.len()]))
        });
        read.ok().flatten()
    }

    /// The pieces `want` of a stored digest laid out as `layout`, each read by `read` (from
    /// where it is in the stored form into a buffer of its size, which it returns filled),
    /// or taken from `have` where that digest, read from the same stored form, holds it
    /// already. `None` when the strings read do not hold together.
    ///
    /// With `path` (a query's filter on the page), the pieces of one value per event are
    /// read for that path's events only: they come one after the other (`Builder::columns`),
    /// and are found by a binary search of the stored paths. Such a digest counts only
    /// queries with that filter ([`Digest::fits`]). What `have` holds decides: its pieces
    /// are added to as they were read (whole, or for the same path).
    ///
    /// The buffers are not zeroed first (that cost as much as a tenth of a filtered query):
    /// `read` writes every byte and hands back the same bytes as initialised.
    pub fn read<E>(
        layout: Layout,
        want: Needs,
        path: Option<&str>,
        have: Option<&Digest>,
        mut read: impl for<'a> FnMut(usize, &'a mut [MaybeUninit<u8>]) -> Result<&'a mut [u8], E>,
    ) -> Result<Option<Digest>, E> {
        let have = have.filter(|h| h.layout == layout && h.fits(path));
        let held = have.map_or(want, |h| want.union(h.held));
        let mut d = Digest {
            day: layout.day,
            data: std::array::from_fn(|_| Arc::from([])),
            cols: [Col::default(); PIECES],
            held,
            window: None,
            layout,
        };
        let per_event = |p: &usize| EVENT_PIECES.contains(p);
        for p in (0..PIECES).filter(|p| held.has(*p)) {
            if let Some(h) = have.filter(|h| h.held.has(p)) {
                (d.data[p], d.cols[p]) = (h.data[p].clone(), h.cols[p]);
            } else if !per_event(&p) {
                d.data[p] = read_piece(layout.range(p), &mut read)?;
                d.cols[p] = layout.cols[p];
            }
        }
        d.window = match (have, path) {
            (Some(h), _) => h.window.clone(),
            (None, Some(path)) if held.covers(Needs(1 << TEXT | 1 << ENDS)) => {
                let events = match d.lookup(path) {
                    Some(id) => {
                        let col = layout.cols[EV_PATH];
                        let mut below = |i: usize, inclusive: bool| -> Result<bool, E> {
                            let w = usize::from(col.width);
                            let mut buf = [MaybeUninit::uninit(); 4];
                            let value = word(read(col.at + i * w, &mut buf[..w])?);
                            Ok(value < id || inclusive && value == id)
                        };
                        let start = partition(col.len, |i| below(i, false))?;
                        let end = partition(col.len, |i| below(i, true))?;
                        start..end.max(start)
                    }
                    None => 0..0,
                };
                Some(Window {
                    path: path.into(),
                    events,
                })
            }
            (None, _) => None,
        };
        for p in EVENT_PIECES.iter().filter(|p| held.has(**p)) {
            if have.is_some_and(|h| h.held.has(*p)) {
                continue;
            }
            let mut col = layout.cols[*p];
            if let Some(events) = d.window.as_ref().map(|w| w.events.clone()) {
                let w = usize::from(col.width);
                let extra = usize::from(*p == EV_PROPS);
                col = Col {
                    at: col.at + events.start * w,
                    len: events.len() + extra,
                    width: col.width,
                    first: events.start,
                };
            }
            d.data[*p] = read_piece(col.at..col.end(), &mut read)?;
            d.cols[*p] = col;
        }
        Ok(d.strings_hold().then_some(d))
    }

    /// Whether it counts queries with a filter on `path` (or none): its event pieces are
    /// whole, or those of that path's events.
    pub fn fits(&self, path: Option<&str>) -> bool {
        self.window.as_ref().is_none_or(|w| path == Some(&*w.path))
    }

    /// The events of `path` (an id of its strings): they come one after the other.
    fn path_events(&self, path: u32) -> std::ops::Range<usize> {
        if let Some(w) = &self.window {
            let held = self.lookup(&w.path) == Some(path);
            return if held { w.events.clone() } else { 0..0 };
        }
        let events = self.len(EV_PATH);
        let below = |inclusive: bool| {
            let found = partition(events, |e| {
                let value = self.get(EV_PATH, e);
                Ok::<_, std::convert::Infallible>(value < path || inclusive && value == path)
            });
            let Ok(at) = found;
            at
        };
        let (start, end) = (below(false), below(true));
        start..end.max(start)
    }

    /// The strings' ends ascending, within the text, on character boundaries (when held).
    fn strings_hold(&self) -> bool {
        if !self.held.has(TEXT) || !self.held.has(ENDS) {
            return true;
        }
        let text = self.text();
        let mut start = 0;
        (0..self.cols[ENDS].len).all(|i| {
            let end = self.get(ENDS, i) as usize;
            let ok = start <= end
                && end <= text.len()
                && text.get(end).is_none_or(|b| (*b as i8) >= -0x40);
            start = end;
            ok
        })
    }

    /// The pieces it holds.
    pub fn held(&self) -> Needs {
        self.held
    }

    fn text(&self) -> &[u8] {
        &self.data[TEXT]
    }

    /// How many values piece `p` holds (0 for a piece not held).
    fn len(&self, p: usize) -> usize {
        self.cols[p].len
    }

    /// Value `i` of piece `p` ([`NONE`] past its end).
    #[inline(always)]
    fn get(&self, p: usize, i: usize) -> u32 {
        let c = self.cols[p];
        let i = i.wrapping_sub(c.first);
        if i >= c.len {
            return NONE;
        }
        let b = &self.data[p];
        match c.width {
            1 => match b[i] {
                0xFF => NONE,
                v => u32::from(v),
            },
            2 => {
                let at = 2 * i;
                match u16::from_le_bytes([b[at], b[at + 1]]) {
                    0xFFFF => NONE,
                    v => u32::from(v),
                }
            }
            _ => {
                let at = 4 * i;
                u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
            }
        }
    }

    /// The positions in piece `p` that hold `want`, in one pass over its bytes.
    fn positions(&self, p: usize, want: u32) -> Vec<u32> {
        let bytes = &self.data[p][..];
        let mut found = match self.cols[p].width {
            1 => match u8::try_from(want) {
                Ok(w) if w != 0xFF => positions_of(bytes, [w]),
                _ => Vec::new(),
            },
            2 => match u16::try_from(want) {
                Ok(w) if w != 0xFFFF => positions_of(bytes, w.to_le_bytes()),
                _ => Vec::new(),
            },
            _ => positions_of(bytes, want.to_le_bytes()),
        };
        let first = self.cols[p].first as u32;
        if first > 0 {
            found.iter_mut().for_each(|i| *i += first);
        }
        found
    }

    /// Adds 1 to `counts[i]` for each position `i` of piece `p` (a visit piece) that holds
    /// `want`: one pass over its bytes, without a branch.
    fn count_matches(&self, p: usize, want: u32, counts: &mut [u8]) {
        fn add<const W: usize>(bytes: &[u8], want: [u8; W], counts: &mut [u8]) {
            for (n, value) in counts.iter_mut().zip(bytes.chunks_exact(W)) {
                *n += u8::from(*value == want);
            }
        }
        debug_assert_eq!(self.cols[p].first, 0, "a visit piece is read whole");
        let bytes = &self.data[p][..];
        match self.cols[p].width {
            1 => match u8::try_from(want) {
                Ok(w) if w != 0xFF => add(bytes, [w], counts),
                _ => {}
            },
            2 => match u16::try_from(want) {
                Ok(w) if w != 0xFFFF => add(bytes, w.to_le_bytes(), counts),
                _ => {}
            },
            _ => add(bytes, want.to_le_bytes(), counts),
        }
    }

    /// The events (held) whose visit `v` has `visits[v]` set, in one pass over their visits
    /// ("no visit" is past every visit, so never set). Without a branch: each event is
    /// written at the end of those found, which moves past it when its visit is set (a
    /// visit filter passes a few visits in ten, in no order a branch could foresee).
    fn events_of(&self, visits: &[bool]) -> Vec<u32> {
        fn scan<const W: usize>(bytes: &[u8], visits: &[bool], first: u32) -> Vec<u32> {
            let mut out = vec![0; bytes.len() / W];
            let mut found = 0;
            for (e, value) in bytes.chunks_exact(W).enumerate() {
                let mut word = [0; 4];
                word[..W].copy_from_slice(value);
                let v = u32::from_le_bytes(word) as usize;
                // `found` ≤ `e` < the number of events.
                out[found] = first + e as u32;
                found += usize::from(visits.get(v).copied().unwrap_or(false));
            }
            out.truncate(found);
            out
        }
        let (bytes, first) = (&self.data[EV_VISIT][..], self.cols[EV_VISIT].first as u32);
        match self.cols[EV_VISIT].width {
            1 => scan::<1>(bytes, visits, first),
            2 => scan::<2>(bytes, visits, first),
            _ => scan::<4>(bytes, visits, first),
        }
    }

    /// The bytes of string `id` (empty for an id past the strings).
    fn string_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.len(ENDS) {
            return &[];
        }
        let start = if i == 0 {
            0
        } else {
            self.get(ENDS, i - 1) as usize
        };
        let end = self.get(ENDS, i) as usize;
        self.text().get(start..end).unwrap_or_default()
    }

    /// How many bytes it holds in memory (its pieces, shared or not, and itself).
    pub fn held_bytes(&self) -> usize {
        std::mem::size_of::<Digest>() + self.data.iter().map(|d| d.len()).sum::<usize>()
    }

    /// How many page views and custom events it holds.
    pub fn events(&self) -> usize {
        self.layout.cols[EV_TS].len
    }

    /// How many visits it holds (whether or not the pieces about them were read).
    fn visits(&self) -> usize {
        self.layout.cols[VISIT_START].len
    }

    /// The id of `s`, if the day has it (the strings are sorted by their bytes).
    fn lookup(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.len(ENDS));
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
        let custom = self.get(EV_CUSTOM, e) == 1;
        match dim {
            EventDim::Page => self.get(EV_PATH, e),
            EventDim::Name if custom => self.get(EV_NAME, e),
            EventDim::Prop(key) if custom => {
                let end = (self.get(EV_PROPS, e + 1) as usize).min(self.len(PROP_KEYS));
                let start = (self.get(EV_PROPS, e) as usize).min(end);
                (start..end)
                    .find(|i| self.get(PROP_KEYS, *i) == *key)
                    .map_or(NONE, |i| self.get(PROP_VALUES, i))
            }
            _ => NONE,
        }
    }
}

/// Reads the bytes `from` of a stored form with `read`, into a buffer of their size.
fn read_piece<E>(
    from: std::ops::Range<usize>,
    read: &mut impl for<'a> FnMut(usize, &'a mut [MaybeUninit<u8>]) -> Result<&'a mut [u8], E>,
) -> Result<Arc<[u8]>, E> {
    let mut piece = Arc::<[u8]>::new_uninit_slice(from.len());
    let buf = Arc::get_mut(&mut piece).expect("a new piece is not shared");
    let start = buf.as_ptr().cast::<u8>();
    let filled = read(from.start, buf)?;
    assert!(
        std::ptr::eq(filled.as_ptr(), start) && filled.len() == from.len(),
        "a piece read somewhere else than into its buffer"
    );
    // SAFETY: `read` returned a `&mut [u8]` over exactly this buffer, so every byte of it
    // is initialised.
    #[allow(unsafe_code)]
    Ok(unsafe { piece.assume_init() })
}

/// A stored value of 1, 2 or 4 bytes (the width's largest number: [`NONE`]).
fn word(bytes: &[u8]) -> u32 {
    match *bytes {
        [0xFF] | [0xFF, 0xFF] => NONE,
        [b] => u32::from(b),
        [a, b] => u32::from(u16::from_le_bytes([a, b])),
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
        _ => NONE,
    }
}

/// The first of `0..len` for which `below` is false (`below` true up to some point, then
/// false), in a binary search.
fn partition<E>(len: usize, mut below: impl FnMut(usize) -> Result<bool, E>) -> Result<usize, E> {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match below(mid)? {
            true => lo = mid + 1,
            false => hi = mid,
        }
    }
    Ok(lo)
}

/// Appends a column's values at the fewest bytes that hold them; returns that width.
fn put_words(out: &mut Vec<u8>, column: &[u32]) -> u8 {
    let largest = column.iter().filter(|v| **v != NONE).max().copied();
    match largest.unwrap_or(0) {
        0..0xFF => {
            out.extend(column.iter().map(|v| (*v).min(0xFF) as u8));
            1
        }
        0xFF..0xFFFF => {
            for v in column {
                out.extend(((*v).min(0xFFFF) as u16).to_le_bytes());
            }
            2
        }
        _ => {
            for v in column {
                out.extend(v.to_le_bytes());
            }
            4
        }
    }
}

/// Reads a stored head.
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
/// The positions of the `W`-byte values in `bytes` equal to `want`. The values are compared
/// 32 at a time into a bit mask (a loop the compiler turns into vector compares); only the
/// set bits are visited.
fn positions_of<const W: usize>(bytes: &[u8], want: [u8; W]) -> Vec<u32> {
    const LANES: usize = 32;
    let mut out = Vec::new();
    let mut chunks = bytes.chunks_exact(W * LANES);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let mut mask = 0_u32;
        for (j, value) in chunk.chunks_exact(W).enumerate() {
            mask |= u32::from(value == want) << j;
        }
        while mask != 0 {
            out.push((k * LANES) as u32 + mask.trailing_zeros());
            mask &= mask - 1;
        }
    }
    let done = (bytes.len() / (W * LANES) * LANES) as u32;
    let rest = chunks.remainder().chunks_exact(W).enumerate();
    out.extend(
        rest.filter(|(_, v)| *v == want)
            .map(|(i, _)| done + i as u32),
    );
    out
}

/// `[from, to)` on this day, as [`super::raw::aggregate`] does over raw events.
/// `bucket_of` must not decrease as time goes on (buckets follow each other).
pub fn count_day(
    d: &Digest,
    from: i64,
    to: i64,
    filters: &[(Dim, String)],
    group: Option<&Dim>,
    bucket_of: &dyn Fn(i64) -> Option<usize>,
    out: &mut Acc,
) {
    if d.day + DAY_MS <= from || d.day >= to || d.events() == 0 {
        return;
    }
    // When the part of the day counted lies in one bucket (a summary, a breakdown, a
    // timeseries by day in UTC), it is found once; when that part is the whole day, no
    // time is read.
    let (first, last) = (from.max(d.day), to.min(d.day + DAY_MS) - 1);
    let one_bucket = bucket_of(first);
    let one_bucket = (one_bucket == bucket_of(last)).then_some(one_bucket);
    let untimed = one_bucket.is_some() && first == d.day && last == d.day + DAY_MS - 1;
    let bucket_of = |ts: i64| one_bucket.unwrap_or_else(|| bucket_of(ts));
    // Counting without a piece would count wrong; the loaders read what this needs.
    let mut want = Want::of(filters, group);
    if untimed {
        want.needs = want.needs.untimed();
    }
    assert!(
        want.met_by(d),
        "a digest counted without the pieces it needs"
    );
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
            d.visits()
        }
    ];
    for (c, want) in &visit_filters {
        d.count_matches(VISIT_VALUES + *c, *want, &mut passes);
    }
    let passed: Vec<bool> = passes
        .iter()
        .map(|n| usize::from(*n) == visit_filters.len())
        .collect();
    let visit_ok = |v: usize| visit_filters.is_empty() || passed.get(v).copied().unwrap_or(false);
    // With a filter on the page or the event name, only the events that have it are looked
    // at (found by one scan of that column); the others are checked on those.
    // Else, with visit filters, only the events of the visits that pass them.
    let picking = event_filters
        .iter()
        .position(|(dim, _)| matches!(dim, EventDim::Page | EventDim::Name));
    // A page filter that picked the events is met by all of them (a name filter is checked
    // again: only custom events have a name).
    let picked_by_page = picking.filter(|i| matches!(event_filters[*i].0, EventDim::Page));
    let picked = picking
        .map(|i| match event_filters[i] {
            (EventDim::Page, want) => d.path_events(want).map(|e| e as u32).collect(),
            (_, want) => d.positions(EV_NAME, want),
        })
        .or_else(|| (!visit_filters.is_empty()).then(|| d.events_of(&passed)));

    let visits = d.visits();
    let mut local = Cells::new(if group.is_some() { d.len(ENDS) } else { 0 });
    // With an event filter, the visits that have a matched event (each once).
    let mut matched = Seen::new(if event_filters.is_empty() { 0 } else { visits });
    let mut matched_visits: Vec<u32> = Vec::new();
    // A page's first view in a visit counts as a unique page view: the page is fixed by a
    // page filter (one flag per visit), else the pair is looked up. The group's value is
    // the page's, the visit's or none (page views have no event name or props), so it adds
    // nothing to the pair.
    let page_fixed = event_filters
        .iter()
        .any(|(dim, _)| matches!(dim, EventDim::Page));
    let events = picked.as_ref().map_or(d.events(), Vec::len);
    // Events come path by path, each path's visit by visit, a visitor's visits one after
    // the other (`Builder::columns`): a pair of a page and a visit, or of a page and a
    // visitor, was seen before when the page's last visit or visitor is this one.
    let mut seen_pages = Seen::new(if page_fixed { visits } else { 0 });
    let mut page_last_visit = LastSeen::new(if page_fixed { 0 } else { d.len(ENDS) });
    // A visitor counts once per value of the group, in the bucket of its first counted
    // event. Within one path (a page filter's events, or by page) they are counted as
    // they come: ungrouped, one flag per visitor (a day's visitors are numbered from 0,
    // fewer than its visits).
    let in_order = page_fixed || by_page;
    let mut seen_visitors = Seen::new(if in_order && group.is_none() {
        visits
    } else {
        0
    });
    let mut value_last_visitor = LastSeen::new(match in_order && group.is_some() {
        true => d.len(ENDS),
        false => 0,
    });
    // Across paths, the first counted event of each visit is kept (its time after the
    // day's start), and the visits are gone through in order after the events...
    let per_visit = !in_order && !matches!(group, Some(Resolved::Event(_)));
    let mut first_in_visit = vec![NONE; if per_visit { visits } else { 0 }];
    // ...or, for an event's value (a name, a prop), the first counted event of each pair
    // of a value and a visitor, as (visit, time).
    let mut first_of_pair: HashMap<(u32, u32), u64, Fast> = HashMap::default();
    for k in 0..events {
        let e = picked.as_ref().map_or(k, |p| p[k] as usize);
        let v = d.get(EV_VISIT, e) as usize;
        if !visit_ok(v)
            || !event_filters
                .iter()
                .enumerate()
                .all(|(i, (dim, want))| Some(i) == picked_by_page || d.event_value(e, dim) == *want)
        {
            continue;
        }
        if !event_filters.is_empty() && v < visits && matched.insert(v) {
            matched_visits.push(v as u32);
        }
        let at = if untimed { 0 } else { d.get(EV_TS, e) };
        let ts = d.day + i64::from(at);
        if ts < from || ts >= to {
            continue;
        }
        let Some(b) = bucket_of(ts) else { continue };
        let g = match group {
            None => ALL,
            Some(Resolved::Event(dim)) => d.event_value(e, &dim),
            Some(Resolved::Visit(c)) => d.get(VISIT_VALUES + c, v),
        };
        if g == NONE {
            continue;
        }
        let c = local.get(b, g);
        let pageview = d.get(EV_CUSTOM, e) == 0;
        if pageview {
            c.pageviews += 1;
            let first = match page_fixed {
                true => seen_pages.insert(v),
                false => page_last_visit.first(d.get(EV_PATH, e), v as u32),
            };
            if first {
                c.unique_pageviews += 1;
                if by_page {
                    c.visits += 1;
                }
            }
        } else {
            c.events += 1;
        }
        // By page, a visitor counts for the pages viewed (a custom event has a page too).
        if !pageview && by_page {
            continue;
        }
        if per_visit {
            if let Some(first) = first_in_visit.get_mut(v) {
                *first = (*first).min(at);
            }
            continue;
        }
        let visitor = d.get(VISIT_VISITOR, v);
        if !in_order {
            let key = u64::from(v as u32) << 32 | u64::from(at);
            let first = first_of_pair.entry((g, visitor)).or_insert(key);
            *first = (*first).min(key);
            continue;
        }
        let first = match group {
            None => seen_visitors.insert(visitor as usize),
            Some(_) => value_last_visitor.first(g, visitor),
        };
        if first {
            c.visitors += 1;
        }
    }
    let mut seen_visitors = Seen::new(if per_visit && group.is_none() {
        visits
    } else {
        0
    });
    let mut value_last_visitor = LastSeen::new(match per_visit && group.is_some() {
        true => d.len(ENDS),
        false => 0,
    });
    for (v, at) in first_in_visit.iter().enumerate() {
        let (false, Some(b)) = (*at == NONE, bucket_of(d.day + i64::from(*at))) else {
            continue;
        };
        let visitor = d.get(VISIT_VISITOR, v);
        let (g, first) = match group {
            Some(Resolved::Visit(c)) => {
                let g = d.get(VISIT_VALUES + c, v);
                (g, value_last_visitor.first(g, visitor))
            }
            _ => (ALL, seen_visitors.insert(visitor as usize)),
        };
        if first {
            local.get(b, g).visitors += 1;
        }
    }
    for ((g, _), key) in first_of_pair {
        if let Some(b) = bucket_of(d.day + i64::from(key as u32)) {
            local.get(b, g).visitors += 1;
        }
    }
    // By an event's value (a page, a name, a prop), visits are counted with the events.
    if matches!(group, Some(Resolved::Event(_))) {
        matched_visits.clear();
    }
    let all_visits = (event_filters.is_empty() && !matches!(group, Some(Resolved::Event(_))))
        .then_some(0..visits as u32);
    let counted_visits = all_visits.into_iter().flatten();
    for v in counted_visits.chain(matched_visits).map(|v| v as usize) {
        if !visit_ok(v) {
            continue;
        }
        let started = d.day + i64::from(if untimed { 0 } else { d.get(VISIT_START, v) });
        if started < from || started >= to {
            continue;
        }
        let g = match group {
            None => ALL,
            Some(Resolved::Event(_)) => continue,
            Some(Resolved::Visit(c)) => d.get(VISIT_VALUES + c, v),
        };
        let (false, Some(b)) = (g == NONE, bucket_of(started)) else {
            continue;
        };
        let c = local.get(b, g);
        c.visits += 1;
        c.bounces += i64::from(d.get(VISIT_BOUNCE, v) == 1);
        c.duration_ms += i64::from(d.get(VISIT_DURATION, v));
    }
    for ((b, g), c) in local.cells {
        let value = if g == ALL { &[] } else { d.string_bytes(g) };
        let bucket = out.entry(b).or_default();
        // The value's `String` is made once per query, not once per day.
        match bucket.get_mut(value) {
            Some(sum) => *sum += c,
            None => {
                bucket.insert(value.into(), c);
            }
        }
    }
}

/// Numbers seen so far, a flag each (a number past them counts as new each time).
struct Seen(Vec<bool>);

impl Seen {
    fn new(numbers: usize) -> Seen {
        Seen(vec![false; numbers])
    }

    /// Whether `n` is new.
    #[inline]
    fn insert(&mut self, n: usize) -> bool {
        self.0
            .get_mut(n)
            .is_none_or(|seen| !std::mem::replace(seen, true))
    }
}

/// Per value id, the last owner (a visit, a visitor) seen with it: pairs of a value and an
/// owner are told apart without a hash set when each owner's pairs come one after the other.
struct LastSeen(Vec<u32>);

impl LastSeen {
    fn new(values: usize) -> LastSeen {
        LastSeen(vec![u32::MAX; values])
    }

    /// Whether `value` is new for `owner` (the owners coming one after the other).
    #[inline]
    fn first(&mut self, value: u32, owner: u32) -> bool {
        match self.0.get_mut(value as usize) {
            Some(last) => std::mem::replace(last, owner) != owner,
            None => true,
        }
    }
}

/// A day's counts per (bucket, value id of the group). The ungrouped counts are found by
/// their bucket; a value's last cell by its id (a breakdown has one bucket), the others by
/// hash, indexed only once a value is seen in a second bucket.
struct Cells {
    /// Per bucket, its ungrouped cell.
    ungrouped: Vec<u32>,
    /// Per value id, its last cell.
    last: Vec<u32>,
    cells: Vec<((usize, u32), Counts)>,
    /// Every grouped cell, once a value has cells in two buckets.
    index: Option<HashMap<(usize, u32), u32, Fast>>,
}

impl Cells {
    /// For value ids below `values`.
    fn new(values: usize) -> Cells {
        Cells {
            ungrouped: Vec::new(),
            last: vec![u32::MAX; values],
            cells: Vec::new(),
            index: None,
        }
    }

    #[inline]
    fn get(&mut self, b: usize, g: u32) -> &mut Counts {
        let next = self.cells.len() as u32;
        if g == ALL {
            if b >= self.ungrouped.len() {
                self.ungrouped.resize(b + 1, u32::MAX);
            }
            let i = match self.ungrouped[b] {
                u32::MAX => {
                    self.cells.push(((b, g), Counts::default()));
                    self.ungrouped[b] = next;
                    next
                }
                i => i,
            };
            return &mut self.cells[i as usize].1;
        }
        let last = self.last.get(g as usize).copied().unwrap_or(u32::MAX);
        if self
            .cells
            .get(last as usize)
            .is_some_and(|(key, _)| *key == (b, g))
        {
            return &mut self.cells[last as usize].1;
        }
        // A value with no cell yet (and in range: else it may have cells unknown to `last`)
        // needs no index while no value has cells in two buckets.
        let new_value = last == u32::MAX && (g as usize) < self.last.len();
        let i = match (&mut self.index, new_value) {
            (None, true) => next,
            (index, _) => {
                let cells = &self.cells;
                let index = index.get_or_insert_with(|| {
                    cells
                        .iter()
                        .enumerate()
                        .filter(|(_, (key, _))| key.1 != ALL)
                        .map(|(i, (key, _))| (*key, i as u32))
                        .collect()
                });
                *index.entry((b, g)).or_insert(next)
            }
        };
        if i == next {
            self.cells.push(((b, g), Counts::default()));
        }
        if let Some(l) = self.last.get_mut(g as usize) {
            *l = i;
        }
        &mut self.cells[i as usize].1
    }
}

/// What [`count_day`] adds to: counts per bucket, then per value (looked up once per value
/// and day: a fast hasher).
/// Values are kept as bytes (a day's strings are not checked to be UTF-8 one by one):
/// [`flatten`] makes them strings once per query.
pub type Acc = HashMap<usize, HashMap<Box<[u8]>, Counts, Fast>, Fast>;

type Fast = foldhash::fast::RandomState;

/// The counts of an [`Acc`] keyed as [`super::raw::aggregate`] keys them.
/// Bytes that are not UTF-8 (of a damaged digest) count as "".
pub fn flatten(acc: Acc) -> HashMap<(usize, String), Counts> {
    let mut out: HashMap<(usize, String), Counts> = HashMap::new();
    for (b, values) in acc {
        for (v, c) in values {
            let v = String::from_utf8(v.into_vec()).unwrap_or_default();
            *out.entry((b, v)).or_default() += c;
        }
    }
    out
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
            name: (kind == EvKind::Event).then(|| "signup".into()),
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
            vec![("event", "signup"), ("page", "/pricing")],
            vec![("page", "/docs"), ("event", "signup"), ("prop:plan", "p1")],
            vec![("prop:plan", "p1")],
            vec![("user", "logged-in"), ("exit_page", "/")],
            vec![("country", "FR")],
            vec![("country", "US"), ("user", "logged-in")],
        ];
        let hours = |ts: i64| Some(((ts - day) / 3_600_000) as usize);
        // One bucket for the day, as a breakdown or a summary counts.
        let whole = |_: i64| Some(0);
        let buckets: [&dyn Fn(i64) -> Option<usize>; 2] = [&hours, &whole];
        for (from, to, bucket_of) in [
            (day, day + DAY_MS, buckets[0]),
            (day + 3 * 3_600_000, day + 20 * 3_600_000, buckets[0]),
            (day, day + DAY_MS, buckets[1]),
            (day + 3 * 3_600_000, day + 20 * 3_600_000, buckets[1]),
        ] {
            for filters in &filter_sets {
                let filters: Vec<(Dim, String)> = filters
                    .iter()
                    .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                    .collect();
                for group in dims {
                    let group = group.map(|g| Dim::parse(g).expect("dim"));
                    let want = raw::aggregate(&all, from, to, &filters, group.as_ref(), bucket_of);
                    let mut got = Acc::default();
                    count_day(
                        &decoded,
                        from,
                        to,
                        &filters,
                        group.as_ref(),
                        bucket_of,
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
    fn visit_filters_count_the_same_when_visits_take_two_bytes() {
        // 700 visitors, a visit each: visit numbers take two bytes in the event column.
        let day = 20_000 * DAY_MS;
        let paths = ["/", "/pricing", "/docs"];
        let evs: Vec<Ev> = (0..2_100_i64)
            .map(|i| {
                let kind = if i % 7 == 0 {
                    EvKind::Event
                } else {
                    EvKind::Pageview
                };
                let ts = day + (i * 7_919 % 86_000) * 1_000;
                ev(i, ts, i % 700, kind, paths[(i % 3) as usize])
            })
            .collect();
        let digest = Digest::build(day, &raw::sessionise(evs.clone()));
        assert!(digest.visits() > 255 && digest.cols[EV_VISIT].width == 2);
        let all = raw::sessionise(evs);
        let filters: Vec<(Dim, String)> = [("country", "US"), ("user", "logged-in")]
            .iter()
            .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
            .collect();
        let whole = |_: i64| Some(0);
        for group in [None, Some("page"), Some("country"), Some("event")] {
            let group = group.map(|g| Dim::parse(g).expect("dim"));
            let want = raw::aggregate(&all, day, day + DAY_MS, &filters, group.as_ref(), &whole);
            let mut got = Acc::default();
            count_day(
                &digest,
                day,
                day + DAY_MS,
                &filters,
                group.as_ref(),
                &whole,
                &mut got,
            );
            let got = flatten(got);
            assert!(!got.is_empty());
            assert_eq!(got, want, "group {group:?}");
        }
    }

    #[test]
    fn a_digest_built_again_as_events_come_is_the_one_built_from_all_of_them() {
        let day = 20_000 * DAY_MS;
        // Visits of several events a minute apart, besides the day's others.
        let mut evs = day_events(day);
        let paths = ["/", "/pricing", "/docs", "/blog/ä"];
        for i in 0..160_i64 {
            let (visitor, k) = (100 + i / 8, i % 8);
            let ts = day + (visitor - 100) * 3_600_000 + k * 60_000;
            let kind = if k == 5 {
                EvKind::Event
            } else {
                EvKind::Pageview
            };
            evs.push(ev(1_000 + i, ts, visitor, kind, paths[(i % 4) as usize]));
        }
        // The events built in are forgotten after each build, as for a day not over; `all`
        // keeps them all.
        let (mut raw, mut all) = (Raw::default(), Raw::default());
        let mut builder = Builder::default();
        // Late events too: each batch has events older than the last one's.
        let mut touched = 0;
        for batch in 0..4 {
            let part: Vec<Ev> = evs.iter().filter(|e| e.seq % 4 == batch).cloned().collect();
            let slots: Vec<usize> = raw.visitors.iter().map(|v| v.slots.len()).collect();
            all.append(part.clone());
            raw.append(part);
            // Events joining a visit of an earlier build (its exit page, its duration move).
            touched += raw
                .events_from(0)
                .filter(|&(_, vi, si)| slots.get(vi).is_some_and(|&n| si < n))
                .count();
            let again = builder.build(day, &raw);
            raw.forget_events();
            assert_eq!(raw.len(), all.len());
            let anew = Digest::build(day, &all);
            for p in 0..PIECES {
                assert!(
                    again.data[p] == anew.data[p],
                    "after batch {batch}: piece {p}"
                );
            }
            assert!(again.encode() == anew.encode(), "after batch {batch}");
        }
        assert!(touched > 0, "later events joined visits built before");
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
            assert_eq!(put_words(&mut bytes, column), width as u8, "{column:?}");
            assert_eq!(bytes.len(), column.len() * width, "{column:?}");
            let mut d = Digest::empty(0);
            d.data[EV_TS] = Arc::from(bytes);
            d.cols[EV_TS] = Col {
                at: HEAD,
                len: column.len(),
                width: width as u8,
                first: 0,
            };
            let read: Vec<u32> = (0..column.len()).map(|i| d.get(EV_TS, i)).collect();
            assert_eq!(read, column);
            assert_eq!(d.get(EV_TS, column.len()), NONE, "past the end: no value");
        }
        // A width that is none of these: refused.
        let mut bytes = Digest::build(0, &Raw::default()).encode();
        assert!(Digest::decode(&bytes).is_some());
        bytes[9 + 8] = 3;
        assert!(Digest::decode(&bytes).is_none());
    }

    #[test]
    fn events_are_stored_path_by_path_then_visit_by_visit_and_visitor_by_visitor() {
        let day = 20_000 * DAY_MS;
        let d = Digest::build(day, &raw::sessionise(day_events(day)));
        let events = d.len(EV_TS);
        assert!(events > 100 && d.len(VISIT_START) > 10);
        let (mut paths, mut visits, mut visitors) = (1, 0, 0);
        for e in 1..events {
            let (p0, p1) = (d.get(EV_PATH, e - 1), d.get(EV_PATH, e));
            assert!(p0 <= p1, "path {p1} after {p0}");
            if p0 != p1 {
                paths += 1;
                continue;
            }
            let (v0, v1) = (d.get(EV_VISIT, e - 1), d.get(EV_VISIT, e));
            assert!(v0 <= v1, "visit {v1} after {v0}");
            let (w0, w1) = (
                d.get(VISIT_VISITOR, v0 as usize),
                d.get(VISIT_VISITOR, v1 as usize),
            );
            assert!(w0 <= w1, "visitor {w1} after {w0}");
            if v0 == v1 {
                assert!(
                    d.get(EV_TS, e - 1) <= d.get(EV_TS, e),
                    "a visit's events in time order"
                );
            }
            visits += usize::from(v0 != v1);
            visitors += usize::from(w0 != w1);
        }
        // The fixture has four paths, and visitors with several visits.
        assert_eq!(paths, 4);
        assert!(visits > visitors && visitors > 1, "{visits} {visitors}");
        for path in ["/", "/pricing", "/blog/ä", "/docs"] {
            let id = d.lookup(path).expect("a path of the day");
            let range = d.path_events(id);
            let scanned = d.positions(EV_PATH, id);
            assert_eq!(
                range.map(|e| e as u32).collect::<Vec<_>>(),
                scanned,
                "{path}"
            );
        }
    }

    #[test]
    fn cells_are_one_per_bucket_and_value() {
        let mut cells = Cells::new(10);
        let mut add = |b: usize, g: u32| cells.get(b, g).pageviews += 1;
        // One bucket: no index; then a value in a second bucket, and more after it.
        for (b, g) in [
            (0, 5),
            (0, 7),
            (0, 5),
            (1, 5),
            (0, 5),
            (1, 7),
            (1, 5),
            (0, 9),
        ] {
            add(b, g);
        }
        add(2, ALL);
        add(0, ALL);
        add(2, ALL);
        let mut got: Vec<((usize, u32), i64)> = cells
            .cells
            .iter()
            .map(|(key, c)| (*key, c.pageviews))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ((0, 5), 3),
                ((0, 7), 1),
                ((0, 9), 1),
                ((0, ALL), 1),
                ((1, 5), 2),
                ((1, 7), 1),
                ((2, ALL), 2)
            ]
        );
    }

    #[test]
    fn positions_are_those_a_plain_scan_finds() {
        fn plain<const W: usize>(bytes: &[u8], want: [u8; W]) -> Vec<u32> {
            let values = bytes.chunks_exact(W).enumerate();
            values
                .filter(|(_, v)| *v == want)
                .map(|(i, _)| i as u32)
                .collect()
        }
        let mut x = 0x9e37_79b9_u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Few distinct values, so that every lane and the remainder see matches.
            (x % 5) as u8
        };
        for len in [0, 1, 31, 32, 33, 64, 95, 1_000, 4_099] {
            let bytes: Vec<u8> = (0..len * 4).map(|_| next()).collect();
            for w in 0..5 {
                let one = positions_of(&bytes[..len], [w]);
                assert_eq!(one, plain(&bytes[..len], [w]));
                let two = positions_of(&bytes[..2 * len], [w, 0]);
                assert_eq!(two, plain(&bytes[..2 * len], [w, 0]));
                let four = positions_of(&bytes, [w, 0, 1, 0]);
                assert_eq!(four, plain(&bytes, [w, 0, 1, 0]));
                assert!(len < 1_000 || !one.is_empty() && !two.is_empty());
            }
        }
    }

    /// Reads the pieces `want` of the stored form `bytes` (with `have`), and how many bytes
    /// were read from it.
    fn read_part(bytes: &[u8], want: Needs, have: Option<&Digest>) -> (Digest, usize) {
        read_path(bytes, want, None, have)
    }

    /// [`read_part`], for the events of `path` only.
    fn read_path(
        bytes: &[u8],
        want: Needs,
        path: Option<&str>,
        have: Option<&Digest>,
    ) -> (Digest, usize) {
        let layout = Layout::read(&bytes[..HEAD], bytes.len()).expect("a layout");
        let mut read = 0;
        let d = Digest::read(layout, want, path, have, |at, buf| {
            read += buf.len();
            Ok::<_, ()>(buf.write_copy_of_slice(&bytes[at..at + buf.len()]))
        })
        .expect("reads")
        .expect("holds together");
        (d, read)
    }

    #[test]
    fn a_digest_read_in_part_counts_what_the_whole_counts() {
        let day = 20_000 * DAY_MS;
        let evs = day_events(day);
        let whole = Digest::build(day, &raw::sessionise(evs));
        let bytes = whole.encode();
        let hours = |ts: i64| Some(((ts - day) / 3_600_000) as usize);
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 5] = [
            (&[("page", "/pricing")], None),
            (&[("page", "/pricing")], Some("country")),
            (&[("country", "DE"), ("user", "logged-in")], Some("page")),
            (&[("event", "signup")], Some("prop:plan")),
            (&[("exit_page", "/")], Some("event")),
        ];
        let mut have: Option<Digest> = None;
        for (filters, group) in cases {
            let filters: Vec<(Dim, String)> = filters
                .iter()
                .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                .collect();
            let group = group.map(|g| Dim::parse(g).expect("dim"));
            let want = Needs::of(&filters, group.as_ref());
            let count = |d: &Digest| {
                let mut acc = Acc::default();
                count_day(
                    d,
                    day,
                    day + DAY_MS,
                    &filters,
                    group.as_ref(),
                    &hours,
                    &mut acc,
                );
                flatten(acc)
            };
            let (part, read) = read_part(&bytes, want, None);
            assert_eq!(part.held(), want);
            assert!(read < bytes.len() - HEAD, "{filters:?}: read {read} bytes");
            assert_eq!(count(&part), count(&whole), "{filters:?} {group:?}");
            // Added to what an earlier query read: only the pieces missing are read.
            let (merged, read_more) = read_part(&bytes, want, have.as_ref());
            let had = have.as_ref().map_or(Needs(0), Digest::held);
            assert_eq!(merged.held(), want.union(had));
            let missing: usize = (0..PIECES)
                .filter(|p| want.has(*p) && !had.has(*p))
                .map(|p| merged.data[p].len())
                .sum();
            assert_eq!(read_more, missing);
            assert_eq!(count(&merged), count(&whole), "{filters:?} {group:?}");
            have = Some(merged);
        }
        // A digest of another stored form (another layout) is not added to: read anew.
        let other = Digest::build(day, &raw::sessionise(day_events(day)[..200].to_vec()));
        let (part, _) = read_part(&other.encode(), Needs::BASE, have.as_ref());
        assert_eq!(part.held(), Needs::BASE);
    }

    #[test]
    fn a_digest_read_for_one_path_counts_what_the_whole_counts_with_that_filter() {
        let day = 20_000 * DAY_MS;
        let whole = Digest::build(day, &raw::sessionise(day_events(day)));
        let bytes = whole.encode();
        let hours = |ts: i64| Some(((ts - day) / 3_600_000) as usize);
        let all_day = |_: i64| Some(0);
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 7] = [
            (&[("page", "/pricing")], None),
            (&[("page", "/pricing")], Some("country")),
            (&[("page", "/pricing"), ("country", "DE")], Some("page")),
            (&[("page", "/docs"), ("event", "signup")], Some("prop:plan")),
            (
                &[("user", "logged-in"), ("page", "/blog/ä")],
                Some("exit_page"),
            ),
            (&[("page", "/blog/ä")], Some("event")),
            (&[("page", "/nowhere")], None),
        ];
        for (filters, group) in cases {
            let filters: Vec<(Dim, String)> = filters
                .iter()
                .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                .collect();
            let group = group.map(|g| Dim::parse(g).expect("dim"));
            let want = Want::of(&filters, group.as_ref());
            let path = want.path.as_deref();
            let count =
                |d: &Digest, from: i64, to: i64, bucket_of: &dyn Fn(i64) -> Option<usize>| {
                    let mut acc = Acc::default();
                    count_day(d, from, to, &filters, group.as_ref(), bucket_of, &mut acc);
                    flatten(acc)
                };
            let (part, read) = read_path(&bytes, want.needs, path, None);
            let (_, read_whole) = read_part(&bytes, want.needs, None);
            assert!(want.met_by(&part) && part.window.is_some());
            // A fourth of the events have the path: a good part of the bytes is not read.
            assert!(
                read < read_whole * 9 / 10,
                "{filters:?}: {read} of {read_whole}"
            );
            for (from, to) in [
                (day, day + DAY_MS),
                (day + 3 * 3_600_000, day + 20 * 3_600_000),
            ] {
                for bucket_of in [&hours as &dyn Fn(i64) -> Option<usize>, &all_day] {
                    let want = count(&whole, from, to, bucket_of);
                    assert_eq!(
                        count(&part, from, to, bucket_of),
                        want,
                        "{filters:?} {group:?}"
                    );
                    if path != Some("/nowhere") {
                        assert!(!want.is_empty(), "{filters:?} {group:?} counts something");
                    }
                }
            }
            // It counts no other filter on the page, and no query without one.
            assert!(!part.fits(None) && !part.fits(Some("/")));
            // Added to: the pieces missing are read for the same events only.
            let (more, read_more) = read_path(&bytes, Needs::ALL, path, Some(&part));
            assert_eq!(more.window, part.window);
            assert_eq!(more.held(), Needs::ALL);
            assert!(read_more < bytes.len() - HEAD - read, "{read_more}");
            let count_all = |d: &Digest| {
                let mut acc = Acc::default();
                let country = Dim::parse("country").expect("dim");
                count_day(
                    d,
                    day,
                    day + DAY_MS,
                    &filters,
                    Some(&country),
                    &hours,
                    &mut acc,
                );
                flatten(acc)
            };
            assert_eq!(count_all(&more), count_all(&whole));
            // A query on another path, or without one, reads anew.
            let (other, _) = read_path(&bytes, want.needs, Some("/docs"), Some(&part));
            assert_eq!(other.window.as_ref().map(|w| &*w.path), Some("/docs"));
            let (other, _) = read_part(&bytes, want.needs, Some(&part));
            assert!(other.window.is_none() && other.fits(Some("/pricing")));
        }
    }

    #[test]
    fn a_day_whole_in_its_range_and_bucket_counts_without_times() {
        let day = 20_000 * DAY_MS;
        let whole = Digest::build(day, &raw::sessionise(day_events(day)));
        let bytes = whole.encode();
        let counted = |starts: Option<Vec<i64>>| Counted {
            from: day - DAY_MS,
            to: day + 2 * DAY_MS,
            starts: starts.map(Into::into),
        };
        // A summary or breakdown, a daily series: the day is one bucket.
        let daily = counted(Some(vec![day - DAY_MS, day, day + DAY_MS]));
        assert!(counted(None).untimed(day) && daily.untimed(day));
        // Hourly buckets, or a range that starts within the day: times are needed.
        let hourly = counted(Some((0..48).map(|h| day + h * 3_600_000).collect()));
        assert!(!hourly.untimed(day));
        assert!(!Counted {
            from: day + 1,
            ..counted(None)
        }
        .untimed(day));
        for (filters, group) in [
            (vec![("page", "/pricing")], None),
            (vec![("country", "DE")], Some("page")),
            (vec![("event", "signup")], Some("country")),
            (vec![], Some("exit_page")),
        ] {
            let filters: Vec<(Dim, String)> = filters
                .iter()
                .map(|(d, v)| (Dim::parse(d).expect("dim"), v.to_string()))
                .collect();
            let group = group.map(|g| Dim::parse(g).expect("dim"));
            let want = Want {
                counted: Some(daily.clone()),
                ..Want::of(&filters, group.as_ref())
            };
            let needs = want.needs_of(day);
            assert!(!needs.has(EV_TS) && !needs.has(VISIT_START));
            let path = want.path.as_deref();
            let (part, _) = read_path(&bytes, needs, path, None);
            for counted in [counted(None), daily.clone()] {
                let bucket_of = |ts: i64| counted.bucket(ts);
                let count = |d: &Digest| {
                    let mut acc = Acc::default();
                    let (from, to) = (counted.from, counted.to);
                    count_day(d, from, to, &filters, group.as_ref(), &bucket_of, &mut acc);
                    flatten(acc)
                };
                let want = count(&whole);
                assert!(!want.is_empty());
                assert_eq!(count(&part), want, "{filters:?} {group:?}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "without the pieces it needs")]
    fn a_day_read_without_times_is_not_counted_in_part() {
        let day = 20_000 * DAY_MS;
        let bytes = Digest::build(day, &raw::sessionise(day_events(day))).encode();
        let (part, _) = read_part(&bytes, Needs::BASE.untimed(), None);
        count_day(
            &part,
            day + 3_600_000,
            day + DAY_MS,
            &[],
            None,
            &|_| Some(0),
            &mut Acc::default(),
        );
    }

    #[test]
    #[should_panic(expected = "without the pieces it needs")]
    fn a_digest_read_for_one_path_is_not_counted_for_another() {
        let day = 20_000 * DAY_MS;
        let bytes = Digest::build(day, &raw::sessionise(day_events(day))).encode();
        let (part, _) = read_path(&bytes, Needs::BASE, Some("/pricing"), None);
        let filters = [(Dim::parse("page").expect("dim"), "/docs".to_string())];
        count_day(
            &part,
            day,
            day + DAY_MS,
            &filters,
            None,
            &|_| Some(0),
            &mut Acc::default(),
        );
    }

    #[test]
    #[should_panic(expected = "without the pieces it needs")]
    fn a_digest_without_a_piece_it_needs_is_not_counted() {
        let day = 20_000 * DAY_MS;
        let bytes = Digest::build(day, &raw::sessionise(day_events(day))).encode();
        let (part, _) = read_part(&bytes, Needs::BASE, None);
        let filters = [(Dim::parse("country").expect("dim"), "DE".to_string())];
        count_day(
            &part,
            day,
            day + DAY_MS,
            &filters,
            None,
            &|_| Some(0),
            &mut Acc::default(),
        );
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
        let columns = Builder::default().columns(day, &raw::sessionise(day_events(day)));
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
