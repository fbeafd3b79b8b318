//! Response helpers: JSON bodies and the `{"error": "..."}` shape of CONTRACT §2.

use worker::{Response, Result};

/// A response whose body is already JSON text.
pub fn raw_json(status: u16, body: String) -> Result<Response> {
    let mut resp = Response::ok(body)?.with_status(status);
    resp.headers_mut().set("Content-Type", "application/json")?;
    Ok(resp)
}

pub fn error(status: u16, message: &str) -> Result<Response> {
    let message = serde_json::to_string(message)?;
    raw_json(status, format!("{{\"error\":{message}}}"))
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX)
}
