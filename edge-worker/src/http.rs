//! Response helpers: JSON bodies and the `{"error": "..."}` shape of CONTRACT §2.

use serde::Serialize;
use worker::{Response, Result};

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    Ok(Response::from_json(body)?.with_status(status))
}

pub fn error(status: u16, message: &str) -> Result<Response> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}
