//! Sites, stats API keys, visitor salts and the edge replay guard.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tally_core::visitor::{salt_day, DAY_MS, SALT_LEN, SALT_MAX_AGE_MS};

use super::{Store, StoreError};

/// A registered site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    pub id: i64,
    pub domain: String,
}

/// The SHA-256 of a stats API key, as stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Registers a site; returns it and whether it was new.
    pub async fn add_site(&self, domain: &str) -> Result<(Site, bool), StoreError> {
        let result = sqlx::query("INSERT INTO sites (domain, created_at) VALUES ($1, $2) ON CONFLICT (domain) DO NOTHING")
            .bind(domain)
            .bind(crate::now_ms())
            .execute(&self.pool)
            .await?;
        let site = self.site(domain).await?.ok_or(sqlx::Error::RowNotFound)?;
        Ok((site, result.rows_affected() == 1))
    }

    /// The site registered under `domain`.
    pub async fn site(&self, domain: &str) -> Result<Option<Site>, StoreError> {
        let row = sqlx::query("SELECT id, domain FROM sites WHERE domain = $1")
            .bind(domain)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Site {
            id: r.get(0),
            domain: r.get(1),
        }))
    }

    /// Every registered site, by domain.
    pub async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let rows = sqlx::query("SELECT id, domain FROM sites ORDER BY domain")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Site {
                id: r.get(0),
                domain: r.get(1),
            })
            .collect())
    }

    /// Makes a new stats API key, stores its hash and returns the key.
    pub async fn create_key(&self, label: Option<&str>) -> Result<String, StoreError> {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let key = format!("tally_{}", hex::encode(bytes));
        sqlx::query("INSERT INTO api_keys (key_hash, label, created_at) VALUES ($1, $2, $3)")
            .bind(hash_key(&key))
            .bind(label)
            .bind(crate::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(key)
    }

    /// Whether `key` is a valid stats API key. Only the key's hash is looked up.
    pub async fn key_is_valid(&self, key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM api_keys WHERE key_hash = $1")
            .bind(hash_key(key))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The salt of the UTC day of `now_ms`, made (randomly) on first use. Safe when several
    /// servers race: the first insert wins and everyone reads it back.
    pub async fn salt_for(&self, now_ms: i64) -> Result<Vec<u8>, StoreError> {
        let day = salt_day(now_ms);
        let mut salt = vec![0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        sqlx::query("INSERT INTO salts (day, salt, created_at) VALUES ($1, $2, $3) ON CONFLICT (day) DO NOTHING")
            .bind(day)
            .bind(salt)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT salt FROM salts WHERE day = $1")
            .bind(day)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes salts of days that ended more than 48 hours ago; returns how many.
    pub async fn delete_old_salts(&self, now_ms: i64) -> Result<u64, StoreError> {
        // A day's salt was last used at the end of that day; keep it 48 h after its start.
        let oldest_kept = salt_day(now_ms - SALT_MAX_AGE_MS + DAY_MS);
        let result = sqlx::query("DELETE FROM salts WHERE day < $1")
            .bind(oldest_kept)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    /// Records an edge request's signature; `false` when it was seen before (a replay).
    pub async fn remember_signature(
        &self,
        signature: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("INSERT INTO edge_nonces (signature, seen_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING")
            .bind(signature)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Forgets signatures older than `max_age_ms` (they would fail the timestamp check anyway).
    pub async fn forget_signatures(&self, now_ms: i64, max_age_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM edge_nonces WHERE seen_at < $1")
            .bind(now_ms - max_age_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
