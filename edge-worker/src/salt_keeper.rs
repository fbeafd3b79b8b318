//! The `SaltKeeper` durable object (one instance, named "salt"): it makes one random salt per
//! UTC day on first use and deletes each salt 48 hours after its day began (an alarm after
//! every midnight). Workers cache today's salt in memory for the rest of the day, so hashing
//! costs one call to the object per isolate per day, and never depends on the ingest server.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use tally_core::visitor::{salt_day, SALT_LEN};
use tally_edge_model::salt;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    durable_object, DurableObject, Env, Error, ListOptions, Request, Response, Result, State,
};

use crate::config::SALT_OBJECT;
use crate::http::now_ms;

#[derive(Serialize, Deserialize)]
struct DaySalt {
    day: i64,
    salt: String,
}

thread_local! {
    static TODAY: RefCell<Option<(i64, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Today's salt, from the isolate's cache or the keeper.
pub async fn today(env: &Env, now_ms: i64) -> Result<Vec<u8>> {
    let day = salt_day(now_ms);
    if let Some(salt) = TODAY.with(|t| match &*t.borrow() {
        Some((d, s)) if *d == day => Some(s.clone()),
        _ => None,
    }) {
        return Ok(salt);
    }
    let stub = env.durable_object(SALT_OBJECT)?.get_by_name("salt")?;
    let answer: DaySalt = stub
        .fetch_with_str("https://store/salt")
        .await?
        .json()
        .await?;
    let bytes = hex::decode(&answer.salt).map_err(|e| Error::RustError(e.to_string()))?;
    // A salt for another day (the keeper's clock crossed midnight first) is used, not cached.
    if answer.day == day {
        TODAY.with(|t| *t.borrow_mut() = Some((day, bytes.clone())));
    }
    Ok(bytes)
}

#[durable_object]
pub struct SaltKeeper {
    state: State,
}

impl DurableObject for SaltKeeper {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match tally_edge_model::access::path_of(&req.inner().url()) {
            "/salt" => self.salt().await,
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        let storage = self.state.storage();
        let keys = storage
            .list_with_options(ListOptions::new().prefix("salt:"))
            .await?;
        let mut expired = Vec::new();
        for key in keys.keys() {
            let key = key?.as_string().unwrap_or_default();
            if salt::day_of_key(&key).is_some_and(|day| salt::is_expired(day, now)) {
                expired.push(key);
            }
        }
        if !expired.is_empty() {
            storage.delete_multiple(expired).await?;
        }
        storage.set_alarm(salt::next_sweep_ms(now) - now).await?;
        Response::ok("swept")
    }
}

impl SaltKeeper {
    async fn salt(&self) -> Result<Response> {
        let now = now_ms();
        let day = salt_day(now);
        let storage = self.state.storage();
        let key = salt::key(day);
        // Read through the raw binding: `Storage::get` deserializes with `serde_wasm_bindgen`,
        // which this worker otherwise does without (see README, "Bundle size").
        let stored = JsFuture::from(storage.as_raw().get(&key)?).await?;
        let stored = if stored.is_undefined() {
            None
        } else {
            let salt = stored.as_string();
            Some(salt.ok_or_else(|| Error::RustError(format!("{key}: not a string")))?)
        };
        let salt = match stored {
            Some(salt) => salt,
            None => {
                let mut bytes = [0u8; SALT_LEN];
                getrandom::getrandom(&mut bytes).map_err(|e| Error::RustError(e.to_string()))?;
                let salt = hex::encode(bytes);
                storage.put(&key, &salt).await?;
                salt
            }
        };
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(salt::next_sweep_ms(now) - now).await?;
        }
        Response::from_json(&DaySalt { day, salt })
    }
}
