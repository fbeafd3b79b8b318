//! Notifications: the JSON of CONTRACT §7, sent to webhooks (`POST`) and by e-mail (SMTP), from
//! the outbox, with retries and exponential backoff.
//!
//! Nothing sensitive is in a notification: it holds the monitor's name, site, metric (all from
//! the operator's file; `page:` metrics cannot carry a query string), the state and numbers.
//! Logs name a webhook by its host only, since webhook URLs often hold a token.

use std::collections::HashSet;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::config::{Monitor, MonitorSet, Target, Threshold};
use super::state::{Pending, Transition};
use crate::store::{Store, StoreError};

/// How long a notification is retried before it is given up.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 3_600_000;
/// Longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
/// Time allowed for one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of a notification (CONTRACT §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub monitor: String,
    pub site: Option<String>,
    pub metric: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub value: f64,
    pub threshold: f64,
    /// RFC 3339.
    pub at: String,
}

impl Payload {
    pub fn new(monitor: &Monitor, transition: Transition, value: f64, at_ms: i64) -> Payload {
        Payload {
            monitor: monitor.name.clone(),
            site: monitor.site.clone(),
            metric: monitor.metric.to_string(),
            state: transition.notified_state().to_string(),
            value,
            threshold: monitor.threshold.value(),
            at: crate::trace::rfc3339(at_ms),
        }
    }

    /// The mail's subject: `[Tally] traffic-spike is firing: pageviews 1234 > 1000 (example.com)`.
    pub fn subject(&self, threshold: Threshold) -> String {
        let side = match threshold {
            Threshold::Above(_) => ">",
            Threshold::Below(_) => "<",
        };
        let what = if self.state == "firing" {
            "is firing"
        } else {
            "resolved"
        };
        format!(
            "[Tally] {} {what}: {} {} {side} {} ({})",
            self.monitor,
            self.metric,
            self.value,
            self.threshold,
            self.site.as_deref().unwrap_or("all sites")
        )
    }

    /// The mail's text.
    pub fn text(&self) -> String {
        format!(
            "Monitor: {}\nSite: {}\nMetric: {}\nState: {}\nValue: {}\nThreshold: {}\nAt: {}\n",
            self.monitor,
            self.site.as_deref().unwrap_or("all sites"),
            self.metric,
            self.state,
            self.value,
            self.threshold,
            self.at
        )
    }
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, … at most 5 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 20) as u32;
    (1000i64 << exp).min(MAX_BACKOFF_MS)
}

/// The senders: an HTTP client and, when `TALLY_SMTP_URL` is set, an SMTP transport.
pub struct Notifier {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Notifier {
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Notifier> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("tally-monitors/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let smtp = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|b| b.timeout(Some(DELIVERY_TIMEOUT)).build())
                    // The URL may hold a password: never repeat it.
                    .map_err(|e| anyhow::anyhow!("TALLY_SMTP_URL is not a valid SMTP URL: {e}"))
            })
            .transpose()?;
        let from = from
            .parse()
            .map_err(|_| anyhow::anyhow!("TALLY_SMTP_FROM {from:?} is not an e-mail address"))?;
        Ok(Notifier { http, smtp, from })
    }

    pub fn has_smtp(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends one notification; `Err` says what went wrong, without secrets.
    pub async fn send(
        &self,
        target: &Target,
        payload: &Payload,
        threshold: Threshold,
    ) -> Result<(), String> {
        match target {
            Target::Webhook(url) => {
                let r = self
                    .http
                    .post(url.clone())
                    .json(payload)
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {}", e.without_url()))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("answered {}", r.status()))
                }
            }
            Target::Email(address) => {
                let smtp = self.smtp.as_ref().ok_or("TALLY_SMTP_URL is not set")?;
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(Mailbox::new(None, address.clone()))
                    .subject(payload.subject(threshold))
                    .body(payload.text())
                    .map_err(|e| format!("building the message: {e}"))?;
                smtp.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("SMTP: {e}"))
            }
        }
    }
}

/// Sends what is due in the outbox, in order per (monitor, target): a notification waits
/// while an older one to the same target is still pending. Returns when the next pending one
/// is due, if any.
pub async fn deliver_pending(
    store: &Store,
    notifier: &Notifier,
    monitors: &MonitorSet,
    now: impl Fn() -> i64,
) -> Result<Option<i64>, StoreError> {
    let pending = store.pending_notifications(500).await?;
    let mut blocked: HashSet<(String, String)> = HashSet::new();
    let mut next_due: Option<i64> = None;
    let mut due_at = |at: i64| next_due = Some(next_due.map_or(at, |n| n.min(at)));
    for p in pending {
        let key = (p.monitor.clone(), p.target.clone());
        if blocked.contains(&key) {
            continue;
        }
        if p.next_at > now() {
            due_at(p.next_at);
            blocked.insert(key);
            continue;
        }
        let Some((monitor, target)) = find_target(monitors, &p) else {
            tracing::warn!(monitor = %p.monitor, "notification dropped: its monitor or target is no longer configured");
            store.notification_done(p.id, "dropped", now()).await?;
            continue;
        };
        let payload: Payload = match serde_json::from_str(&p.payload) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(monitor = %p.monitor, error = %e, "notification dropped: unreadable payload");
                store.notification_done(p.id, "dropped", now()).await?;
                continue;
            }
        };
        match notifier.send(target, &payload, monitor.threshold).await {
            Ok(()) => {
                tracing::info!(monitor = %p.monitor, state = %payload.state, to = %target.describe(), "notification sent");
                store.notification_done(p.id, "sent", now()).await?;
            }
            Err(problem) => {
                let t = now();
                if t - p.created_at > GIVE_UP_AFTER_MS {
                    tracing::error!(monitor = %p.monitor, to = %target.describe(), %problem, attempts = p.attempts + 1, "notification given up");
                    store.notification_done(p.id, "failed", t).await?;
                } else {
                    let next = t + backoff_ms(p.attempts);
                    tracing::warn!(monitor = %p.monitor, to = %target.describe(), %problem, attempts = p.attempts + 1, "notification failed; will retry");
                    store.notification_retry(p.id, next).await?;
                    due_at(next);
                    blocked.insert(key);
                }
            }
        }
    }
    Ok(next_due)
}

fn find_target<'a>(set: &'a MonitorSet, p: &Pending) -> Option<(&'a Monitor, &'a Target)> {
    let monitor = set.monitors.iter().find(|m| m.name == p.monitor)?;
    let target = monitor.notify.iter().find(|t| t.key() == p.target)?;
    Some((monitor, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(9), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(500), MAX_BACKOFF_MS);
    }

    #[test]
    fn payload_has_the_contract_fields() {
        let set = super::super::config::parse(
            "m.yaml",
            "monitors:\n  - name: spike\n    site: example.com\n    metric: pageviews\n    \
             window: 5m\n    every: 1m\n    above: 10\n",
        )
        .expect("valid");
        let p = Payload::new(&set.monitors[0], Transition::Fire, 12.0, 0);
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"monitor": "spike", "site": "example.com", "metric": "pageviews",
                "state": "firing", "value": 12.0, "threshold": 10.0, "at": "1970-01-01T00:00:00.000Z"})
        );
        assert_eq!(
            p.subject(Threshold::Above(10.0)),
            "[Tally] spike is firing: pageviews 12 > 10 (example.com)"
        );
    }
}
