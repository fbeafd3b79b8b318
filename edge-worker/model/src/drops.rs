//! Counting what the edge drops, so that the ingest server's pipeline view (and its
//! `rejected` monitors) see the edge's bots and refusals as well as its own.
//!
//! Bots' events are counted per site, in the queue message that the bot's request writes.
//! Refused requests (`invalid`, `unknown_site`, `rate_limited`) carry no site the edge can
//! trust, so an isolate adds them up in a [`Pending`] and hands the counts to the next queue
//! message it writes: a flood of refused requests costs no queue write of its own. Counts an
//! isolate held when the platform evicted it are lost, so the edge's figures are a lower bound.

/// A request the edge refused before enrichment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or too large (`400`, `413`), or its page URL or `Origin` not the site's.
    Invalid,
    /// A site that is not registered (`403`).
    UnknownSite,
    /// Over the per-IP limit (`429`); its body is never read.
    RateLimited,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::UnknownSite => "unknown_site",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

const REFUSALS: [Refusal; 3] = [Refusal::Invalid, Refusal::UnknownSite, Refusal::RateLimited];

/// Refused events counted in this isolate and not yet handed to a queue message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    counts: [u64; 3],
}

impl Pending {
    /// Counts `n` refused events (1 for a request whose events were not read).
    pub fn add(&mut self, why: Refusal, n: u64) {
        let i = REFUSALS.iter().position(|r| *r == why).unwrap_or(0);
        self.counts[i] = self.counts[i].saturating_add(n.max(1));
    }

    /// The `dropped` array of a queue message (`[]` when there is nothing to report): the
    /// pending counts, which are then cleared, and `bots` events of a bot on `site`.
    pub fn take_json(&mut self, bots: Option<(&str, u64)>) -> String {
        let mut out = String::from("[");
        let mut push = |site: &str, reason: &str, n: u64| {
            if n == 0 {
                return;
            }
            if out.len() > 1 {
                out.push(',');
            }
            let site = serde_json::to_string(site).unwrap_or_else(|_| "\"\"".into());
            out.push_str(&format!(r#"{{"site":{site},"reason":"{reason}","n":{n}}}"#));
        };
        if let Some((site, n)) = bots {
            push(site, "bot", n);
        }
        for (r, n) in REFUSALS.iter().zip(std::mem::take(&mut self.counts)) {
            push("", r.reason(), n);
        }
        out.push(']');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::edge::{EdgeDrop, EDGE_DROP_REASONS};

    fn parse(json: &str) -> Vec<EdgeDrop> {
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn pending_refusals_are_reported_once_with_a_bot_site() {
        let mut p = Pending::default();
        assert_eq!(p.take_json(None), "[]");
        p.add(Refusal::RateLimited, 0);
        p.add(Refusal::Invalid, 3);
        p.add(Refusal::Invalid, 1);
        let drops = parse(&p.take_json(Some(("exa\"mple.com", 2))));
        let got: Vec<_> = drops
            .iter()
            .map(|d| (d.site.as_str(), d.reason.as_str(), d.n))
            .collect();
        assert_eq!(
            got,
            [
                ("exa\"mple.com", "bot", 2),
                ("", "invalid", 4),
                ("", "rate_limited", 1)
            ]
        );
        assert!(drops
            .iter()
            .all(|d| EDGE_DROP_REASONS.contains(&d.reason.as_str())));
        assert_eq!(p.take_json(None), "[]", "counts are handed over once");
        assert_eq!(p.take_json(Some(("example.com", 0))), "[]");
    }
}
