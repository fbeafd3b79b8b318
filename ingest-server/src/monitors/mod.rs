//! Monitors and alerts (CONTRACT §7).
//!
//! `TALLY_MONITORS` names a YAML file, read at start (an invalid file stops the server with the
//! line and the problem) and again on SIGHUP (an invalid file is refused and the running set
//! kept). Two tasks run while the server does:
//!
//! - the evaluator checks each monitor every `every`, computes its metric over `window`
//!   ([`metric`]), and applies a transition when the pure rule of [`state::decide`] says so,
//!   persisting the new state, its history and its notifications (the outbox) in one
//!   transaction;
//! - the deliverer sends what is in the outbox ([`notify`]), retrying with backoff, and marks
//!   each notification sent only after delivery. Pending ones survive restarts.
//!
//! Several servers may share one PostgreSQL database: a lease row lets one of them evaluate
//! and deliver at a time; another takes over when it stops renewing it.
//!
//! - [`model`]: monitors, metrics, thresholds and targets.
//! - [`config`] and [`layout`]: the file format, validated with line numbers.
//! - [`metric`]: the metrics.
//! - [`state`]: transitions, persisted state, history, outbox, lease.
//! - [`notify`]: the webhook and e-mail senders and the outbox delivery.

pub mod config;
pub mod layout;
pub mod metric;
pub mod model;
pub mod notify;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use self::config::{ConfigError, Monitor, MonitorSet, Target};
use self::notify::{Notifier, Payload};
use crate::app::App;
use crate::config::Config;

/// How long the lease lasts without renewal.
const LEASE_MS: i64 = 15_000;
/// How often the evaluator looks for due monitors.
const TICK: Duration = Duration::from_millis(250);
/// History rows and closed notifications are kept this long.
pub const KEEP_MS: i64 = 90 * 86_400_000;

/// The configured monitors and their senders.
pub struct Monitors {
    path: Option<PathBuf>,
    current: RwLock<Arc<MonitorSet>>,
    pub notifier: Notifier,
    /// Wakes the deliverer after a transition.
    pub wake: Notify,
    /// This server's name for the lease.
    holder: String,
    leader: AtomicBool,
}

impl Monitors {
    /// Reads the monitors file of `config`, if any. An invalid file is an error naming the line.
    pub fn load(config: &Config) -> anyhow::Result<Monitors> {
        let notifier = Notifier::new(config.smtp_url.as_deref(), &config.smtp_from)?;
        let set = match &config.monitors {
            Some(path) => read(path, notifier.has_smtp())?,
            None => MonitorSet::default(),
        };
        Ok(Monitors {
            path: config.monitors.clone(),
            current: RwLock::new(Arc::new(set)),
            notifier,
            wake: Notify::new(),
            holder: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
            leader: AtomicBool::new(false),
        })
    }

    /// Whether a monitors file is configured.
    pub fn configured(&self) -> bool {
        self.path.is_some()
    }

    /// The monitors in force.
    pub fn current(&self) -> Arc<MonitorSet> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Reads the file again; on error keeps the monitors in force and returns the error.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let set = read(path, self.notifier.has_smtp())?;
        let n = set.monitors.len();
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(set),
            Err(e) => *e.into_inner() = Arc::new(set),
        }
        Ok(n)
    }
}

/// Reads and validates a monitors file.
fn read(path: &Path, smtp: bool) -> anyhow::Result<MonitorSet> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("TALLY_MONITORS {file}: cannot be read: {e}"))?;
    let set = config::parse(&file, &text)?;
    if !smtp {
        if let Some(m) = set
            .monitors
            .iter()
            .find(|m| m.notify.iter().any(|t| matches!(t, Target::Email(_))))
        {
            return Err(ConfigError {
                file,
                line: config::line_of_monitor(&text, &m.name),
                problem: format!(
                    "monitor {:?} sends e-mail, but TALLY_SMTP_URL is not set",
                    m.name
                ),
            }
            .into());
        }
    }
    Ok(set)
}

/// Reloads the monitors on every SIGHUP until the task is aborted.
pub async fn reload_on_hangup(monitors: Arc<Monitors>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; monitors will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match monitors.reload() {
                Ok(n) => tracing::info!(monitors = n, "monitors reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "monitors file refused; the previous monitors stay in force")
                }
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// Checks each monitor every `every` while this server holds the lease. Runs until aborted.
pub async fn evaluate(app: App) {
    let monitors = app.monitors.clone();
    let mut next_due: HashMap<String, (String, i64)> = HashMap::new();
    let mut lease_renew_at = 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = crate::now_ms();
        if now >= lease_renew_at {
            let leader = match app
                .store
                .take_monitor_lease(&monitors.holder, now, LEASE_MS)
                .await
            {
                Ok(leader) => leader,
                Err(e) => {
                    tracing::warn!(error = %e, "monitors lease");
                    false
                }
            };
            if leader && !monitors.leader.swap(true, Ordering::SeqCst) {
                tracing::info!("evaluating monitors on this server");
                monitors.wake.notify_one();
            } else if !leader && monitors.leader.swap(false, Ordering::SeqCst) {
                tracing::info!("another server evaluates the monitors now");
            }
            lease_renew_at = now + LEASE_MS / 3;
        }
        if !monitors.leader.load(Ordering::SeqCst) {
            continue;
        }
        let set = monitors.current();
        for m in &set.monitors {
            let fingerprint = m.fingerprint();
            let due = match next_due.get(&m.name) {
                Some((f, at)) if *f == fingerprint => *at,
                _ => now,
            };
            if due > now {
                continue;
            }
            next_due.insert(m.name.clone(), (fingerprint.clone(), now + m.every_ms));
            if let Err(e) = check(&app, m, &fingerprint, now).await {
                tracing::warn!(monitor = %m.name, error = %e, "monitor check failed");
            }
        }
        next_due.retain(|name, _| set.monitors.iter().any(|m| &m.name == name));
    }
}

/// One check of one monitor.
async fn check(app: &App, m: &Monitor, fingerprint: &str, now: i64) -> anyhow::Result<()> {
    let stored = app.store.ensure_monitor(&m.name, fingerprint, now).await?;
    let value = metric::value(app, m, now, stored.changed_at).await?;
    let Some(transition) = state::decide(stored.state, m.threshold.breached_by(value)) else {
        app.store.record_check(&m.name, value, now).await?;
        return Ok(());
    };
    let payload = serde_json::to_string(&Payload::new(m, transition, value, now))?;
    let notifications: Vec<(String, String)> = m
        .notify
        .iter()
        .map(|t| (t.key(), payload.clone()))
        .collect();
    if app
        .store
        .apply_transition(&m.name, transition, value, now, &notifications)
        .await?
    {
        tracing::info!(monitor = %m.name, state = transition.notified_state(), value, threshold = m.threshold.value(), "monitor changed state");
        app.monitors.wake.notify_one();
    }
    Ok(())
}

/// Sends the outbox's notifications while this server holds the lease. Runs until aborted.
pub async fn deliver(app: App) {
    let monitors = app.monitors.clone();
    loop {
        let mut wait = Duration::from_secs(10);
        if monitors.leader.load(Ordering::SeqCst) {
            let set = monitors.current();
            match notify::deliver_pending(&app.store, &monitors.notifier, &set, crate::now_ms).await
            {
                Ok(Some(next)) => {
                    let ms = (next - crate::now_ms()).clamp(0, 10_000);
                    wait = Duration::from_millis(ms as u64);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "delivering notifications");
                    wait = Duration::from_secs(2);
                }
            }
        }
        tokio::select! {
            () = monitors.wake.notified() => {},
            () = tokio::time::sleep(wait) => {},
        }
    }
}

/// Gives the lease up, so that another server takes over at once.
pub async fn release(app: &App) {
    if app.monitors.leader.swap(false, Ordering::SeqCst) {
        if let Err(e) = app.store.release_monitor_lease(&app.monitors.holder).await {
            tracing::warn!(error = %e, "releasing the monitors lease");
        }
    }
}
