//! Sample traffic: `ingest-server demo` fills a fresh site with realistic visits of the last
//! N days, so that a first run shows full charts; the stats benchmark uses the same
//! [`Generator`] at 10 million events.
//!
//! Visits follow a daily curve and a weekly rhythm; pages, referrers and countries are
//! Zipf-distributed; about 45% of visits bounce; some carry UTM tags, custom events with
//! props, a logged-in user, and a second visit the same day.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::rollup::model::{floor_day, DAY_MS, HOUR_MS};
use crate::store::{NewEvent, Store, StoreError};

const NAMED_REFERRERS: &[&str] = &[
    "Google",
    "DuckDuckGo",
    "Bing",
    "Hacker News",
    "Reddit",
    "X",
    "GitHub",
    "LinkedIn",
    "Facebook",
    "YouTube",
    "Wikipedia",
    "Mastodon",
    "Bluesky",
    "Lobsters",
    "Product Hunt",
    "ChatGPT",
    "Perplexity",
    "Ecosia",
    "Yandex",
    "Baidu",
];

const COUNTRIES: &str = "US DE GB FR IN CA NL BR ES IT PL SE JP AU CH AT BE DK NO FI IE PT CZ RU \
    UA TR MX AR CO CL PE ZA NG EG KE MA IL AE SA IR PK BD ID MY SG TH VN PH KR TW HK CN NZ RO HU \
    GR BG RS HR SI SK LT LV EE IS LU MT CY BY GE AM AZ KZ UZ MN NP LK MM KH LA QA KW OM BH JO LB \
    TN DZ GH CI SN ET TZ UG CM VE EC BO UY PY CR PA GT DO CU";

/// Shape of the generated traffic.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Distinct pages (Zipf-distributed).
    pub pages: usize,
    /// Distinct referrers besides the well-known ones.
    pub referrer_hosts: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            pages: 40,
            referrer_hosts: 15,
        }
    }
}

/// Cumulative Zipf weights (s = 1.1) of `n` items.
fn zipf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    (0..n.max(1))
        .map(|i| {
            acc += 1.0 / ((i + 1) as f64).powf(1.1);
            acc
        })
        .collect()
}

fn pick(rng: &mut StdRng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(1.0);
    let x = rng.gen::<f64>() * total;
    cumulative
        .partition_point(|c| *c < x)
        .min(cumulative.len() - 1)
}

fn weighted<'a>(rng: &mut StdRng, items: &[(&'a str, f64)]) -> &'a str {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    items.last().map(|(i, _)| *i).unwrap_or_default()
}

/// Makes events, visit by visit.
pub struct Generator {
    rng: StdRng,
    site_id: i64,
    prefix: String,
    n: u64,
    pages: Vec<String>,
    page_weights: Vec<f64>,
    referrers: Vec<String>,
    referrer_weights: Vec<f64>,
    countries: Vec<&'static str>,
    country_weights: Vec<f64>,
}

impl Generator {
    pub fn new(site_id: i64, profile: &Profile, seed: u64) -> Generator {
        let mut pages: Vec<String> = ["/", "/pricing", "/blog", "/docs", "/about", "/signup"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut i = 0;
        while pages.len() < profile.pages {
            pages.push(if i % 3 == 0 {
                format!("/docs/section-{}/page-{}", i % 17, i)
            } else {
                format!("/blog/post-{i}")
            });
            i += 1;
        }
        pages.truncate(profile.pages.max(1));
        let mut referrers: Vec<String> = NAMED_REFERRERS.iter().map(|s| s.to_string()).collect();
        for i in 0..profile.referrer_hosts {
            referrers.push(match i % 3 {
                0 => format!("blog{i}.example.net"),
                1 => format!("news{i}.example.org"),
                _ => format!("forum{i}.example.com"),
            });
        }
        let countries: Vec<&'static str> = COUNTRIES.split_whitespace().collect();
        Generator {
            rng: StdRng::seed_from_u64(seed),
            site_id,
            prefix: format!("demo-{seed:x}-"),
            n: 0,
            page_weights: zipf(pages.len()),
            pages,
            referrer_weights: zipf(referrers.len()),
            referrers,
            country_weights: zipf(countries.len()),
            countries,
        }
    }

    fn event(&mut self, kind: &'static str, ts: i64, visitor: i64, path: &str) -> NewEvent {
        self.n += 1;
        NewEvent {
            id: format!("{}{:x}", self.prefix, self.n),
            site_id: self.site_id,
            kind,
            ts,
            client_ts: ts,
            edge_at: None,
            batch: None,
            received_at: ts,
            visitor,
            path: path.to_string(),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_term: None,
            utm_content: None,
            country: None,
            browser: None,
            os: None,
            device: None,
            screen: None,
            logged_in: None,
            name: None,
            props: None,
            engaged_ms: None,
        }
    }

    /// The events of one visit starting at `start`, none at or after `until`.
    fn visit(&mut self, start: i64, visitor: i64, until: i64, out: &mut Vec<NewEvent>) {
        let rng = &mut self.rng;
        let referrer = (rng.gen::<f64>() > 0.35)
            .then(|| self.referrers[pick(rng, &self.referrer_weights)].clone());
        let utm = (rng.gen::<f64>() < 0.08).then(|| {
            (
                weighted(
                    rng,
                    &[
                        ("newsletter", 4.0),
                        ("twitter", 2.0),
                        ("google", 2.0),
                        ("partner", 1.0),
                    ],
                ),
                weighted(
                    rng,
                    &[
                        ("email", 4.0),
                        ("social", 2.0),
                        ("cpc", 2.0),
                        ("referral", 1.0),
                    ],
                ),
                weighted(
                    rng,
                    &[
                        ("weekly-digest", 4.0),
                        ("launch", 2.0),
                        ("spring-sale", 1.0),
                        ("black-friday", 1.0),
                    ],
                ),
            )
        });
        let country = self.countries[pick(rng, &self.country_weights)].to_string();
        let device = weighted(rng, &[("desktop", 55.0), ("mobile", 40.0), ("tablet", 5.0)]);
        let os = match device {
            "desktop" => weighted(rng, &[("Windows", 70.0), ("macOS", 25.0), ("Linux", 5.0)]),
            "mobile" => weighted(rng, &[("Android", 60.0), ("iOS", 40.0)]),
            _ => weighted(rng, &[("iOS", 70.0), ("Android", 30.0)]),
        };
        let browser = match os {
            "iOS" | "macOS" if rng.gen::<f64>() < 0.7 => "Safari",
            _ => weighted(
                rng,
                &[
                    ("Chrome", 70.0),
                    ("Firefox", 10.0),
                    ("Edge", 10.0),
                    ("Samsung Internet", 5.0),
                    ("Opera", 3.0),
                ],
            ),
        };
        let logged_in = rng.gen::<f64>() < 0.12;
        let pages = if rng.gen::<f64>() < 0.45 {
            1
        } else {
            let mut n = 2;
            while n < 15 && rng.gen::<f64>() < 0.55 {
                n += 1;
            }
            n
        };
        let mut t = start;
        for k in 0..pages {
            let path = self.pages[pick(&mut self.rng, &self.page_weights)].clone();
            if t >= until {
                return;
            }
            let mut e = self.event("pageview", t, visitor, &path);
            if k == 0 {
                e.referrer.clone_from(&referrer);
                if let Some((s, m, c)) = utm {
                    e.utm_source = Some(s.into());
                    e.utm_medium = Some(m.into());
                    e.utm_campaign = Some(c.into());
                }
            }
            e.country = Some(country.clone());
            e.browser = Some(browser.into());
            e.os = Some(os.into());
            e.device = Some(device.into());
            e.logged_in = Some(logged_in);
            let template = e.clone();
            out.push(e);
            let stay = 5_000 + (self.rng.gen::<f64>().powi(2) * 240_000.0) as i64;
            if self.rng.gen::<f64>() < 0.07 {
                let (name, prop) = match self.rng.gen_range(0..4) {
                    0 => (
                        "Signup",
                        Some((
                            "plan",
                            weighted(&mut self.rng, &[("free", 6.0), ("pro", 3.0), ("team", 1.0)])
                                .to_string(),
                        )),
                    ),
                    1 => (
                        "Outbound Link: Click",
                        Some((
                            "url",
                            format!(
                                "https://github.com/example/repo-{}",
                                self.rng.gen_range(0..12)
                            ),
                        )),
                    ),
                    2 => (
                        "Download",
                        Some(("file", format!("tally-{}.tar.gz", self.rng.gen_range(1..6)))),
                    ),
                    _ => ("Newsletter", None),
                };
                let at = t + stay / 2;
                if at < until {
                    let mut ev = template.clone();
                    self.n += 1;
                    ev.id = format!("{}{:x}", self.prefix, self.n);
                    ev.kind = "event";
                    ev.ts = at;
                    ev.client_ts = at;
                    ev.received_at = at;
                    ev.referrer = None;
                    ev.name = Some(name.into());
                    ev.props = prop.map(|(k, v)| serde_json::json!({ k: v }).to_string());
                    out.push(ev);
                }
            }
            let at = t + stay;
            if at < until {
                let mut ev = template;
                self.n += 1;
                ev.id = format!("{}{:x}", self.prefix, self.n);
                ev.kind = "engagement";
                ev.ts = at;
                ev.client_ts = at;
                ev.received_at = at;
                ev.referrer = None;
                ev.engaged_ms = Some(stay - 1_000);
                out.push(ev);
            }
            t += stay + self.rng.gen_range(500..3_000);
        }
    }

    /// About `target` events of the UTC day starting at `day_start` (none at or after
    /// `until`), in time order.
    pub fn day(&mut self, day_start: i64, target: usize, until: i64) -> Vec<NewEvent> {
        // Visits per hour follow a daily curve peaking in the (European) afternoon.
        let hour_weights: Vec<f64> = (0..24)
            .map(|h| {
                let x = (f64::from(h) - 14.0) / 24.0 * std::f64::consts::TAU;
                1.0 + 0.8 * x.cos()
            })
            .collect();
        let cumulative: Vec<f64> = hour_weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let mut out = Vec::with_capacity(target + 64);
        let mut attempts = 0;
        while out.len() < target && attempts < target * 4 + 16 {
            attempts += 1;
            let hour = pick(&mut self.rng, &cumulative) as i64;
            let start = day_start + hour * HOUR_MS + self.rng.gen_range(0..HOUR_MS);
            let visitor: i64 = self.rng.gen();
            self.visit(start, visitor, until.min(day_start + DAY_MS), &mut out);
            // Some visitors come back later the same day (same daily id).
            if self.rng.gen::<f64>() < 0.15 {
                let again = start + self.rng.gen_range(HOUR_MS..6 * HOUR_MS);
                if again < day_start + DAY_MS {
                    self.visit(again, visitor, until.min(day_start + DAY_MS), &mut out);
                }
            }
        }
        out.sort_by_key(|e| e.ts);
        out
    }
}

/// Relative traffic of a day: weekends are quieter, and traffic grows over time.
pub fn day_factor(day_start: i64, growth_per_day: f64, days_ago: i64) -> f64 {
    let weekday = (day_start / DAY_MS + 3).rem_euclid(7); // 0 = Monday
    let week = if weekday >= 5 { 0.65 } else { 1.0 };
    week * (1.0 - growth_per_day).powf(days_ago as f64)
}

/// What `demo` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoOutcome {
    Written {
        events: u64,
    },
    /// The site already had events; nothing was written.
    Skipped,
}

/// Writes `days` days of sample traffic (up to now) for site `site_id` and counts it.
pub async fn fill(store: &Store, site_id: i64, days: u32) -> Result<DemoOutcome, StoreError> {
    if store.count_events(site_id).await? > 0 {
        return Ok(DemoOutcome::Skipped);
    }
    let now = crate::now_ms();
    let today = floor_day(now);
    let mut generator = Generator::new(site_id, &Profile::default(), now as u64);
    let mut written = 0;
    for ago in (0..i64::from(days)).rev() {
        let day = today - ago * DAY_MS;
        let target = (1_500.0 * day_factor(day, 0.01, ago)) as usize;
        let events = generator.day(day, target, now);
        for part in events.chunks(5_000) {
            let inserted = store.insert_events(part.to_vec()).await?;
            written += inserted.iter().filter(|&&new| new).count() as u64;
        }
    }
    crate::rollup::roll_up_now(store).await?;
    Ok(DemoOutcome::Written { events: written })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_in_time_order_within_the_day_and_before_until() {
        let mut g = Generator::new(1, &Profile::default(), 7);
        let day = 20_000 * DAY_MS;
        let until = day + 12 * HOUR_MS;
        let events = g.day(day, 2_000, until);
        assert!(events.len() >= 1_000);
        assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(events.iter().all(|e| e.ts >= day && e.ts < until));
        let kinds = |k: &str| events.iter().filter(|e| e.kind == k).count();
        assert!(kinds("pageview") > kinds("event") && kinds("event") > 0);
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len());
    }
}
