//! The pure part of counting (CONTRACT §3): events → visits → contributions to the rollups.
//!
//! A [`Visitor`] holds the visits of one (site, visitor id) that are known, applies events
//! to them in order ([`Visitor::apply`]) and, when asked ([`Visitor::flush`]), turns every
//! change since the last flush into *delta* contributions, so that rollups stay exact when a
//! visit grows (a second page view turns a bounce into a non-bounce, the exit page moves, the
//! duration grows).
//!
//! Counting rules, shared by the rollup worker and the raw (filtered) queries:
//! - a visit is a visitor's activity with no gap longer than [`VISIT_GAP_MS`]; engagement
//!   events extend a visit's duration but never start one;
//! - page views and custom events count in the hour of their timestamp, under their own page /
//!   event name / props and under the visit-level values of their visit (the values of the
//!   visit's first event: entry page, referrer, UTM, country, browser, OS, device, user);
//! - visits, bounces and duration count in the hour the visit started, under its visit-level
//!   values and its (moving) exit page;
//! - a visitor id lives one UTC day, so visitors are counted per *visitor day* (the visits of
//!   one visitor that started on one UTC day): once per dimension value, in the hour the value
//!   first appears in that day. Sums of visitors over whole UTC days are therefore exact.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::{AddAssign, Neg, Sub};

/// Longest gap between two events of one visit.
pub const VISIT_GAP_MS: i64 = 30 * 60 * 1000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Most page / mark hashes remembered per visit (beyond, repeats count as new).
pub const MAX_MARKS: usize = 500;
/// The `referrer` value of visits without one.
pub const DIRECT: &str = "Direct / None";

/// The dimensions whose value is fixed for a whole visit (its first event's).
pub const VISIT_DIMS: [&str; 10] = [
    "entry_page",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "browser",
    "os",
    "device",
    "user",
];

pub fn floor_hour(ts: i64) -> i64 {
    ts.div_euclid(HOUR_MS) * HOUR_MS
}

pub fn floor_day(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS) * DAY_MS
}

/// The `user` dimension's value.
pub fn user_value(logged_in: bool) -> &'static str {
    if logged_in {
        "logged-in"
    } else {
        "anonymous"
    }
}

/// A stable 64-bit hash (FNV-1a) of tagged strings, for the page / mark sets of visits.
pub fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvKind {
    Pageview,
    Event,
    Engagement,
}

impl EvKind {
    pub fn parse(s: &str) -> Option<EvKind> {
        match s {
            "pageview" => Some(EvKind::Pageview),
            "event" => Some(EvKind::Event),
            "engagement" => Some(EvKind::Engagement),
            _ => None,
        }
    }
}

/// The text of an event's fields: most (a country, a browser, a path) are short, and a
/// string of up to 24 bytes is kept inline, without an allocation of its own; reading a
/// busy day whole makes one for each field of each event otherwise.
pub type Text = compact_str::CompactString;

/// A stored event, as far as counting is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub seq: i64,
    pub site_id: i64,
    pub kind: EvKind,
    pub ts: i64,
    pub visitor: i64,
    pub path: Text,
    pub referrer: Option<Text>,
    pub utm_source: Option<Text>,
    pub utm_medium: Option<Text>,
    pub utm_campaign: Option<Text>,
    pub country: Option<Text>,
    pub browser: Option<Text>,
    pub os: Option<Text>,
    pub device: Option<Text>,
    pub logged_in: bool,
    pub name: Option<Text>,
    pub props: Vec<(String, String)>,
}

impl Ev {
    /// The props of a stored JSON object (string values; others as their JSON text).
    pub fn parse_props(json: Option<&str>) -> Vec<(String, String)> {
        let Some(Ok(serde_json::Value::Object(map))) =
            json.map(serde_json::from_str::<serde_json::Value>)
        else {
            return Vec::new();
        };
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect()
    }

    /// The value of an event-level dimension (`page`, `event`, `prop:NAME`) for this event.
    pub fn event_value(&self, dim: &str) -> Option<&str> {
        match (dim, self.kind) {
            ("page", EvKind::Pageview | EvKind::Event) => Some(&self.path),
            ("event", EvKind::Event) => self.name.as_deref(),
            (d, EvKind::Event) => {
                let name = d.strip_prefix("prop:")?;
                self.props
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            }
            _ => None,
        }
    }
}

/// One visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub started_at: i64,
    pub last_at: i64,
    pub pageviews: i64,
    pub events: i64,
    pub entry_page: Text,
    pub exit_page: Text,
    pub referrer: Option<Text>,
    pub utm_source: Option<Text>,
    pub utm_medium: Option<Text>,
    pub utm_campaign: Option<Text>,
    pub country: Option<Text>,
    pub browser: Option<Text>,
    pub os: Option<Text>,
    pub device: Option<Text>,
    pub logged_in: bool,
    /// Hashes of the pages viewed (unique page views).
    pub pages: Vec<u64>,
    /// Hashes of the custom event names and props sent.
    pub marks: Vec<u64>,
}

impl Visit {
    fn start(ev: &Ev) -> Visit {
        Visit {
            started_at: ev.ts,
            last_at: ev.ts,
            pageviews: 0,
            events: 0,
            entry_page: ev.path.clone(),
            exit_page: ev.path.clone(),
            referrer: ev.referrer.clone(),
            utm_source: ev.utm_source.clone(),
            utm_medium: ev.utm_medium.clone(),
            utm_campaign: ev.utm_campaign.clone(),
            country: ev.country.clone(),
            browser: ev.browser.clone(),
            os: ev.os.clone(),
            device: ev.device.clone(),
            logged_in: ev.logged_in,
            pages: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// A bounce: one page view and no custom event.
    pub fn is_bounce(&self) -> bool {
        self.pageviews == 1 && self.events == 0
    }

    pub fn duration_ms(&self) -> i64 {
        self.last_at - self.started_at
    }

    /// The value of a visit-level dimension ([`VISIT_DIMS`] or `exit_page`).
    pub fn value(&self, dim: &str) -> Option<&str> {
        match dim {
            "entry_page" => Some(&self.entry_page),
            "exit_page" => Some(&self.exit_page),
            "referrer" => Some(self.referrer.as_deref().unwrap_or(DIRECT)),
            "utm_source" => self.utm_source.as_deref(),
            "utm_medium" => self.utm_medium.as_deref(),
            "utm_campaign" => self.utm_campaign.as_deref(),
            "country" => self.country.as_deref(),
            "browser" => self.browser.as_deref(),
            "os" => self.os.as_deref(),
            "device" => self.device.as_deref(),
            "user" => Some(user_value(self.logged_in)),
            _ => None,
        }
    }

    /// The values of [`VISIT_DIMS`], then `exit_page`, as [`Visit::value`] gives them.
    pub fn values(&self) -> [Option<&str>; VISIT_DIMS.len() + 1] {
        [
            Some(&self.entry_page),
            Some(self.referrer.as_deref().unwrap_or(DIRECT)),
            self.utm_source.as_deref(),
            self.utm_medium.as_deref(),
            self.utm_campaign.as_deref(),
            self.country.as_deref(),
            self.browser.as_deref(),
            self.os.as_deref(),
            self.device.as_deref(),
            Some(user_value(self.logged_in)),
            Some(&self.exit_page),
        ]
    }

    /// The visit's own metrics (visits, bounces, duration).
    fn metrics(&self) -> Counts {
        Counts {
            visits: 1,
            bounces: i64::from(self.is_bounce()),
            duration_ms: self.duration_ms(),
            ..Counts::default()
        }
    }

    fn contains(&self, h: u64, marks: bool) -> bool {
        if marks {
            self.marks.contains(&h)
        } else {
            self.pages.contains(&h)
        }
    }
}

/// The counters of one rollup row (or a change to one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pageviews: i64,
    pub unique_pageviews: i64,
    pub visitors: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_ms: i64,
    pub events: i64,
}

impl Counts {
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.pageviews += o.pageviews;
        self.unique_pageviews += o.unique_pageviews;
        self.visitors += o.visitors;
        self.visits += o.visits;
        self.bounces += o.bounces;
        self.duration_ms += o.duration_ms;
        self.events += o.events;
    }
}

impl Neg for Counts {
    type Output = Counts;
    fn neg(self) -> Counts {
        let mut out = Counts::default();
        out += Counts {
            pageviews: -self.pageviews,
            unique_pageviews: -self.unique_pageviews,
            visitors: -self.visitors,
            visits: -self.visits,
            bounces: -self.bounces,
            duration_ms: -self.duration_ms,
            events: -self.events,
        };
        out
    }
}

impl Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        let mut out = self;
        out += -o;
        out
    }
}

/// Where a contribution goes: site, dimension, value and hour (UTC, ms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub site_id: i64,
    pub dim: Cow<'static, str>,
    pub value: String,
    pub hour: i64,
}

/// Contributions summed per [`Key`].
#[derive(Debug, Default)]
pub struct Acc {
    pub map: HashMap<Key, Counts>,
}

impl Acc {
    pub fn add(
        &mut self,
        site_id: i64,
        dim: impl Into<Cow<'static, str>>,
        value: &str,
        hour: i64,
        c: Counts,
    ) {
        if c.is_zero() {
            return;
        }
        *self
            .map
            .entry(Key {
                site_id,
                dim: dim.into(),
                value: value.to_string(),
                hour,
            })
            .or_default() += c;
    }

    /// Adds `c` to the site total and every visit-level value of `visit`.
    fn add_visit_dims(&mut self, site_id: i64, visit: &Visit, hour: i64, c: Counts) {
        self.add(site_id, "", "", hour, c);
        for dim in VISIT_DIMS {
            if let Some(value) = visit.value(dim) {
                self.add(site_id, dim, value, hour, c);
            }
        }
    }
}

/// A visit as known to a [`Visitor`]: its state at the last flush and now.
#[derive(Debug, Clone)]
pub struct Slot {
    pub before: Option<Visit>,
    pub visit: Visit,
    pub touched: bool,
}

/// The known visits of one visitor id on one site.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub site_id: i64,
    pub visitor: i64,
    pub slots: Vec<Slot>,
}

impl Visitor {
    pub fn new(site_id: i64, visitor: i64) -> Visitor {
        Visitor {
            site_id,
            visitor,
            slots: Vec::new(),
        }
    }

    /// Adds a visit read back from storage.
    pub fn load(&mut self, visit: Visit) {
        self.slots.push(Slot {
            before: Some(visit.clone()),
            visit,
            touched: false,
        });
    }

    /// Whether a visit of the visitor day `day` (other than through `pages`/`marks` of
    /// later events) already holds hash `h`.
    fn day_has(&self, day: i64, h: u64, marks: bool) -> bool {
        self.slots
            .iter()
            .any(|s| floor_day(s.visit.started_at) == day && s.visit.contains(h, marks))
    }

    /// Applies one event; returns the index of the visit it joined (`None`: an engagement
    /// event outside any visit, which counts for nothing). Event-level contributions go to
    /// `acc` at once; visit-level ones wait for [`Visitor::flush`].
    pub fn apply(&mut self, ev: &Ev, mut acc: Option<&mut Acc>) -> Option<usize> {
        let found = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                ev.ts <= s.visit.last_at + VISIT_GAP_MS
                    && ev.ts >= s.visit.started_at - VISIT_GAP_MS
            })
            .max_by_key(|(_, s)| s.visit.started_at)
            .map(|(i, _)| i);
        let i = match (found, ev.kind) {
            (Some(i), _) => i,
            (None, EvKind::Engagement) => return None,
            (None, _) => {
                self.slots.push(Slot {
                    before: None,
                    visit: Visit::start(ev),
                    touched: true,
                });
                self.slots.len() - 1
            }
        };
        let site = self.site_id;
        let hour = floor_hour(ev.ts);
        let day = floor_day(self.slots[i].visit.started_at);
        match ev.kind {
            EvKind::Engagement => {}
            EvKind::Pageview => {
                let h = hash(&["page", &ev.path]);
                let new_in_day = !self.day_has(day, h, false);
                let visit = &mut self.slots[i].visit;
                let new_in_visit = !visit.pages.contains(&h);
                if new_in_visit && visit.pages.len() < MAX_MARKS {
                    visit.pages.push(h);
                }
                visit.pageviews += 1;
                visit.exit_page.clone_from(&ev.path);
                if let Some(acc) = acc.as_deref_mut() {
                    let pv = Counts {
                        pageviews: 1,
                        ..Counts::default()
                    };
                    acc.add_visit_dims(site, visit, hour, pv);
                    let upv = Counts {
                        unique_pageviews: i64::from(new_in_visit),
                        ..Counts::default()
                    };
                    acc.add(site, "", "", hour, upv);
                    let page = Counts {
                        pageviews: 1,
                        unique_pageviews: i64::from(new_in_visit),
                        visits: i64::from(new_in_visit),
                        visitors: i64::from(new_in_day),
                        ..Counts::default()
                    };
                    acc.add(site, "page", &ev.path, hour, page);
                }
            }
            EvKind::Event => {
                let name = ev.name.as_deref().unwrap_or_default();
                let mut marks: Vec<(Cow<'static, str>, &str, u64)> =
                    vec![("event".into(), name, hash(&["event", name]))];
                for (k, v) in &ev.props {
                    marks.push((format!("prop:{k}").into(), v, hash(&["prop", k, v])));
                }
                let fresh: Vec<bool> = marks
                    .iter()
                    .map(|(_, _, h)| !self.day_has(day, *h, true))
                    .collect();
                let visit = &mut self.slots[i].visit;
                for (_, _, h) in &marks {
                    if !visit.marks.contains(h) && visit.marks.len() < MAX_MARKS {
                        visit.marks.push(*h);
                    }
                }
                visit.events += 1;
                if let Some(acc) = acc {
                    let one = Counts {
                        events: 1,
                        ..Counts::default()
                    };
                    acc.add_visit_dims(site, visit, hour, one);
                    acc.add(site, "page", &ev.path, hour, one);
                    for ((dim, value, _), new) in marks.into_iter().zip(fresh) {
                        let c = Counts {
                            events: 1,
                            visitors: i64::from(new),
                            ..Counts::default()
                        };
                        acc.add(site, dim, value, hour, c);
                    }
                }
            }
        }
        let slot = &mut self.slots[i];
        slot.visit.last_at = slot.visit.last_at.max(ev.ts);
        slot.touched = true;
        Some(i)
    }

    /// Emits the visit-level changes since the last flush (visits, bounces, duration, exit
    /// page, visitors per visit-level value) and returns the visits that changed.
    pub fn flush(&mut self, acc: &mut Acc) -> Vec<Visit> {
        let site = self.site_id;
        let mut days: Vec<i64> = Vec::new();
        for slot in self.slots.iter().filter(|s| s.touched) {
            let visit = &slot.visit;
            let hour = floor_hour(visit.started_at);
            let after = visit.metrics();
            let before = slot.before.as_ref().map(Visit::metrics).unwrap_or_default();
            acc.add_visit_dims(site, visit, hour, after - before);
            match &slot.before {
                Some(old) if old.exit_page != visit.exit_page => {
                    acc.add(site, "exit_page", &old.exit_page, hour, -before);
                    acc.add(site, "exit_page", &visit.exit_page, hour, after);
                }
                _ => acc.add(site, "exit_page", &visit.exit_page, hour, after - before),
            }
            let day = floor_day(visit.started_at);
            if !days.contains(&day) {
                days.push(day);
            }
        }
        for day in days {
            self.visitor_day_changes(day, acc);
        }
        let mut changed = Vec::new();
        for slot in &mut self.slots {
            if slot.touched {
                if slot.before.as_ref() != Some(&slot.visit) {
                    changed.push(slot.visit.clone());
                }
                slot.before = Some(slot.visit.clone());
                slot.touched = false;
            }
        }
        changed
    }

    /// Visitors of the visitor day `day` per visit-level value: +1 where a value appeared,
    /// −1 where one went away (an exit page that moved), in the start hour of the earliest
    /// visit holding it.
    fn visitor_day_changes(&self, day: i64, acc: &mut Acc) {
        let of_day = |v: &&Visit| floor_day(v.started_at) == day;
        let before: Vec<&Visit> = self
            .slots
            .iter()
            .filter_map(|s| s.before.as_ref())
            .filter(of_day)
            .collect();
        let after: Vec<&Visit> = self.slots.iter().map(|s| &s.visit).filter(of_day).collect();
        let dims = std::iter::once("").chain(VISIT_DIMS).chain(["exit_page"]);
        for dim in dims {
            let first_hours = |visits: &[&Visit]| {
                let mut m: BTreeMap<String, i64> = BTreeMap::new();
                for v in visits {
                    let value = if dim.is_empty() {
                        Some("")
                    } else {
                        v.value(dim)
                    };
                    if let Some(value) = value {
                        let h = floor_hour(v.started_at);
                        m.entry(value.to_string())
                            .and_modify(|x| *x = (*x).min(h))
                            .or_insert(h);
                    }
                }
                m
            };
            let (old, new) = (first_hours(&before), first_hours(&after));
            let one = Counts {
                visitors: 1,
                ..Counts::default()
            };
            for (value, hour) in &new {
                if !old.contains_key(value) {
                    acc.add(self.site_id, dim, value, *hour, one);
                }
            }
            for (value, hour) in &old {
                if !new.contains_key(value) {
                    acc.add(self.site_id, dim, value, *hour, -one);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EvKind, ts: i64, path: &str) -> Ev {
        Ev {
            seq: ts,
            site_id: 1,
            kind,
            ts,
            visitor: 7,
            path: path.into(),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            country: Some("DE".into()),
            browser: None,
            os: None,
            device: None,
            logged_in: false,
            name: (kind == EvKind::Event).then(|| "Signup".into()),
            props: Vec::new(),
        }
    }

    fn total(acc: &Acc, dim: &str, value: &str) -> Counts {
        let mut c = Counts::default();
        for (k, v) in &acc.map {
            if k.dim == dim && k.value == value {
                c += *v;
            }
        }
        c
    }

    #[test]
    fn a_visits_values_are_its_value_of_each_dimension() {
        let mut e = ev(EvKind::Pageview, 0, "/a");
        (e.utm_medium, e.os, e.logged_in) = (Some("email".into()), Some("Linux".into()), true);
        let mut v = Visitor::new(1, 7);
        v.apply(&e, None);
        v.apply(&ev(EvKind::Pageview, 60_000, "/b"), None);
        let visit = &v.slots[0].visit;
        let dims = VISIT_DIMS.iter().chain(["exit_page"].iter());
        let want: Vec<Option<&str>> = dims.map(|d| visit.value(d)).collect();
        assert_eq!(visit.values().to_vec(), want);
        assert_eq!(want[0], Some("/a"));
        assert_eq!(want[10], Some("/b"));
    }

    #[test]
    fn a_second_page_view_turns_a_bounce_into_a_visit_with_an_exit_page() {
        let mut acc = Acc::default();
        let mut v = Visitor::new(1, 7);
        v.apply(&ev(EvKind::Pageview, 0, "/a"), Some(&mut acc));
        v.flush(&mut acc);
        assert_eq!(total(&acc, "", "").bounces, 1);
        assert_eq!(total(&acc, "exit_page", "/a").visitors, 1);
        v.apply(&ev(EvKind::Pageview, 60_000, "/b"), Some(&mut acc));
        v.apply(&ev(EvKind::Pageview, 120_000, "/a"), Some(&mut acc));
        v.apply(&ev(EvKind::Engagement, 150_000, "/a"), Some(&mut acc));
        v.flush(&mut acc);
        let t = total(&acc, "", "");
        assert_eq!(
            (
                t.visits,
                t.bounces,
                t.pageviews,
                t.unique_pageviews,
                t.visitors
            ),
            (1, 0, 3, 2, 1)
        );
        assert_eq!(t.duration_ms, 150_000);
        // The exit page moved from /a to /a again: one exit visit, no bounce.
        let exit = total(&acc, "exit_page", "/a");
        assert_eq!((exit.visits, exit.bounces, exit.visitors), (1, 0, 1));
        assert_eq!(total(&acc, "page", "/a").unique_pageviews, 1);
        assert_eq!(total(&acc, "page", "/a").pageviews, 2);
    }

    #[test]
    fn a_gap_over_thirty_minutes_starts_a_new_visit_of_the_same_visitor_day() {
        let mut acc = Acc::default();
        let mut v = Visitor::new(1, 7);
        v.apply(&ev(EvKind::Pageview, 0, "/a"), Some(&mut acc));
        v.apply(&ev(EvKind::Pageview, 31 * 60_000, "/a"), Some(&mut acc));
        v.apply(&ev(EvKind::Event, 32 * 60_000, "/a"), Some(&mut acc));
        v.flush(&mut acc);
        let t = total(&acc, "", "");
        assert_eq!((t.visits, t.bounces, t.visitors, t.events), (2, 1, 1, 1));
        assert_eq!(total(&acc, "page", "/a").visitors, 1);
        assert_eq!(total(&acc, "page", "/a").unique_pageviews, 2);
        assert_eq!(total(&acc, "country", "DE").visitors, 1);
        assert_eq!(total(&acc, "event", "Signup").visitors, 1);
    }

    #[test]
    fn an_engagement_event_alone_counts_for_nothing() {
        let mut acc = Acc::default();
        let mut v = Visitor::new(1, 7);
        assert_eq!(
            v.apply(&ev(EvKind::Engagement, 0, "/a"), Some(&mut acc)),
            None
        );
        assert!(v.flush(&mut acc).is_empty());
        assert!(acc.map.is_empty());
    }
}
