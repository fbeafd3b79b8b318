//! A monitor's state: the pure transition rule, and its persistence.
//!
//! A transition (ok → firing, firing → ok) is written in one transaction together with its
//! history row and one outbox row per notification target, and only if the stored state is
//! still the one it was decided from (compare-and-set). So a notification is decided exactly
//! once, even with two evaluators racing at a lease hand-over, and a crash before delivery
//! leaves it pending in the outbox, to be sent after the restart.

use serde::Serialize;
use sqlx::Row;

use crate::store::{Store, StoreError};

/// The state of a monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Firing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Firing => "firing",
        }
    }

    fn parse(s: &str) -> State {
        if s == "firing" {
            State::Firing
        } else {
            State::Ok
        }
    }
}

/// A change of state, each announced once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// ok → firing: notified as `"state": "firing"`.
    Fire,
    /// firing → ok: notified as `"state": "resolved"`.
    Resolve,
}

impl Transition {
    pub fn to(self) -> State {
        match self {
            Transition::Fire => State::Firing,
            Transition::Resolve => State::Ok,
        }
    }

    /// The state named in notifications and history.
    pub fn notified_state(self) -> &'static str {
        match self {
            Transition::Fire => "firing",
            Transition::Resolve => "resolved",
        }
    }
}

/// The rule: a breaching monitor that is `ok` fires, a firing one that no longer breaches
/// resolves, and nothing else happens.
pub fn decide(state: State, breaching: bool) -> Option<Transition> {
    match (state, breaching) {
        (State::Ok, true) => Some(Transition::Fire),
        (State::Firing, false) => Some(Transition::Resolve),
        _ => None,
    }
}

/// A monitor's persisted state.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub fingerprint: String,
    pub state: State,
    pub value: Option<f64>,
    pub checked_at: Option<i64>,
    pub last_notified_at: Option<i64>,
    pub last_notified_state: Option<String>,
    /// When the state last changed, or since when this definition exists.
    pub changed_at: i64,
}

/// One transition in a monitor's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// `firing` or `resolved`.
    pub state: String,
    pub value: f64,
    /// RFC 3339.
    pub at: String,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub monitor: String,
    pub target: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_at: i64,
}

const STATE_COLUMNS: &str =
    "fingerprint, state, value, checked_at, last_notified_at, last_notified_state, changed_at";

fn stored_from_row(r: &sqlx::any::AnyRow) -> Result<Stored, StoreError> {
    Ok(Stored {
        fingerprint: r.try_get("fingerprint")?,
        state: State::parse(&r.try_get::<String, _>("state")?),
        value: r.try_get("value")?,
        checked_at: r.try_get("checked_at")?,
        last_notified_at: r.try_get("last_notified_at")?,
        last_notified_state: r.try_get("last_notified_state")?,
        changed_at: r.try_get("changed_at")?,
    })
}

impl Store {
    /// The stored state of monitor `name`, if any.
    pub async fn monitor_state(&self, name: &str) -> Result<Option<Stored>, StoreError> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM monitor_state WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_from_row).transpose()
    }

    /// The state of monitor `name` with definition `fingerprint`: created `ok` when new, and
    /// started again from `ok` when its definition changed (its history stays).
    pub async fn ensure_monitor(
        &self,
        name: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<Stored, StoreError> {
        sqlx::query(
            "INSERT INTO monitor_state (name, fingerprint, state, changed_at) \
             VALUES ($1, $2, 'ok', $3) ON CONFLICT (name) DO UPDATE SET \
             fingerprint = excluded.fingerprint, state = 'ok', value = NULL, checked_at = NULL, \
             changed_at = excluded.changed_at WHERE monitor_state.fingerprint <> excluded.fingerprint",
        )
        .bind(name)
        .bind(fingerprint)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.monitor_state(name)
            .await?
            .ok_or(StoreError::Sqlx(sqlx::Error::RowNotFound))
    }

    /// Records the value of a check that changed nothing.
    pub async fn record_check(&self, name: &str, value: f64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE monitor_state SET value = $1, checked_at = $2 WHERE name = $3")
            .bind(value)
            .bind(now)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies `transition` if the monitor is still in the state it was decided from, with its
    /// history row and the `notifications` (target key, JSON payload) in the outbox, in one
    /// transaction. Returns whether it was applied.
    pub async fn apply_transition(
        &self,
        name: &str,
        transition: Transition,
        value: f64,
        now: i64,
        notifications: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let from = match transition {
            Transition::Fire => State::Ok,
            Transition::Resolve => State::Firing,
        };
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE monitor_state SET state = $1, value = $2, checked_at = $3, changed_at = $3, \
             last_notified_at = $3, last_notified_state = $4 WHERE name = $5 AND state = $6",
        )
        .bind(transition.to().as_str())
        .bind(value)
        .bind(now)
        .bind(transition.notified_state())
        .bind(name)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO monitor_history (name, state, value, at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(transition.notified_state())
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (target, payload) in notifications {
            sqlx::query(
                "INSERT INTO monitor_outbox (monitor, target, payload, created_at, attempts, next_at) \
                 VALUES ($1, $2, $3, $4, 0, $4)",
            )
            .bind(name)
            .bind(target.as_str())
            .bind(payload.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The latest `limit` transitions of monitor `name`, newest first.
    pub async fn monitor_history(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, value, at FROM monitor_history WHERE name = $1 \
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    state: r.try_get(0)?,
                    value: r.try_get(1)?,
                    at: crate::trace::rfc3339(r.try_get(2)?),
                })
            })
            .collect()
    }

    /// Every notification not yet sent nor given up, oldest first (at most `limit`).
    pub async fn pending_notifications(&self, limit: i64) -> Result<Vec<Pending>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, monitor, target, payload, created_at, attempts, next_at \
             FROM monitor_outbox WHERE done_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Pending {
                    id: r.try_get(0)?,
                    monitor: r.try_get(1)?,
                    target: r.try_get(2)?,
                    payload: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                    next_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Closes an outbox row: `sent`, `failed` (gave up) or `dropped` (target removed).
    pub async fn notification_done(
        &self,
        id: i64,
        outcome: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE monitor_outbox SET done_at = $1, outcome = $2, attempts = attempts + 1 \
             WHERE id = $3",
        )
        .bind(now)
        .bind(outcome)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Schedules another attempt of an outbox row.
    pub async fn notification_retry(&self, id: i64, next_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE monitor_outbox SET attempts = attempts + 1, next_at = $1 WHERE id = $2",
        )
        .bind(next_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes or renews the monitors lease for `holder` until `now + ttl_ms`; returns whether
    /// `holder` has it. One server evaluates monitors at a time.
    pub async fn take_monitor_lease(
        &self,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE monitor_lease SET holder = $1, expires_at = $2 \
             WHERE id = 1 AND (holder = $1 OR expires_at < $3)",
        )
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives the lease up (at shutdown), so another server takes over at once.
    pub async fn release_monitor_lease(&self, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE monitor_lease SET expires_at = 0 WHERE id = 1 AND holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes history and closed outbox rows older than `cutoff_ms`.
    pub async fn prune_monitor_rows(&self, cutoff_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM monitor_history WHERE at < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM monitor_outbox WHERE done_at IS NOT NULL AND done_at < $1")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_and_resolves_once() {
        assert_eq!(decide(State::Ok, true), Some(Transition::Fire));
        assert_eq!(decide(State::Firing, true), None);
        assert_eq!(decide(State::Firing, false), Some(Transition::Resolve));
        assert_eq!(decide(State::Ok, false), None);
        // A run of checks announces each change of state exactly once.
        let checks = [false, true, true, true, false, false, true, false];
        let mut state = State::Ok;
        let mut announced = Vec::new();
        for breaching in checks {
            if let Some(t) = decide(state, breaching) {
                announced.push(t.notified_state());
                state = t.to();
            }
        }
        assert_eq!(announced, ["firing", "resolved", "firing", "resolved"]);
    }
}
