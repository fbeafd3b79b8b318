//! The worker's configuration, read once per use from the environment into a typed struct.

use tally_edge_model::retry::BASE_DELAY_S;
use worker::{Env, Error, Result};

pub const EVENTS_QUEUE: &str = "EVENTS";
pub const SALT_OBJECT: &str = "SALT";
pub const RATE_LIMITER: &str = "RATE_LIMITER";

/// The operator's extra sensitive words, `TALLY_REDACT` (comma-separated, read as the ingest
/// server reads its own `TALLY_REDACT`; set both to the same list): props and `utm_*`
/// parameters whose names contain one are redacted before events are queued. None when unset.
pub fn redact_words(env: &Env) -> Vec<String> {
    env.var("TALLY_REDACT")
        .map(|v| tally_core::scrub::redact_words(&v.to_string()))
        .unwrap_or_default()
}

/// What the worker needs to talk to the ingest server.
#[derive(Clone)]
pub struct Config {
    /// Base URL, without a trailing slash.
    pub ingest_url: String,
    pub secret: Vec<u8>,
    pub retry_base_delay_s: u32,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let ingest_url = env
            .var("INGEST_URL")
            .map_err(|_| Error::RustError("INGEST_URL is not set".into()))?
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let secret = env
            .secret("TALLY_EDGE_SECRET")
            .or_else(|_| env.var("TALLY_EDGE_SECRET"))
            .map_err(|_| Error::RustError("TALLY_EDGE_SECRET is not set".into()))?
            .to_string()
            .into_bytes();
        if secret.is_empty() {
            return Err(Error::RustError("TALLY_EDGE_SECRET is empty".into()));
        }
        let retry_base_delay_s = env
            .var("RETRY_BASE_DELAY_S")
            .ok()
            .and_then(|v| v.to_string().trim().parse().ok())
            .unwrap_or(BASE_DELAY_S);
        Ok(Config {
            ingest_url,
            secret,
            retry_base_delay_s,
        })
    }
}
