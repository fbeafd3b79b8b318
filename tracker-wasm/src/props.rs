//! Custom events: the limits of CONTRACT §1, enforced before anything is sent. What is over a
//! limit is dropped (keys, values of other types, props past the 30th) or cut (names and
//! string values), so that one careless call never makes the collector refuse a batch.

use alloc::string::String;

use crate::json::Obj;

/// At most this many props per event.
pub const MAX_PROPS: usize = 30;
/// Longest prop key, in characters; longer keys are dropped.
pub const MAX_KEY: usize = 64;
/// Longest string value, in characters; longer values are cut.
pub const MAX_VALUE: usize = 256;
/// Longest event name, in characters; longer names are cut.
pub const MAX_NAME: usize = 120;

/// The first `max` characters of `s`.
pub fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// An event name as sent: trimmed and cut to [`MAX_NAME`]; `None` when empty.
pub fn name(s: &str) -> Option<&str> {
    let s = cut(s.trim(), MAX_NAME).trim_end();
    (!s.is_empty()).then_some(s)
}

/// A prop value as the page gave it. Numbers arrive as JSON number text.
pub enum Value<'a> {
    Str(&'a str),
    /// JSON text of a finite number.
    Num(&'a str),
    Bool(bool),
}

/// Collects at most [`MAX_PROPS`] valid props into a JSON object.
#[derive(Default)]
pub struct Props {
    obj: Obj,
    len: usize,
}

impl Props {
    /// Adds one prop, or drops it if it breaks a limit; values that are not a string, a finite
    /// number or a boolean are `None` and dropped.
    pub fn add(&mut self, key: &str, value: Option<Value<'_>>) {
        if self.len >= MAX_PROPS || key.is_empty() || key.chars().nth(MAX_KEY).is_some() {
            return;
        }
        match value {
            Some(Value::Str(s)) => self.obj.str(key, cut(s, MAX_VALUE)),
            Some(Value::Num(n)) => self.obj.raw(key, n),
            Some(Value::Bool(b)) => self.obj.bool(key, b),
            None => return,
        };
        self.len += 1;
    }

    /// The JSON object, or `None` when no prop survived.
    pub fn finish(mut self) -> Option<String> {
        (!self.obj.is_empty()).then(|| self.obj.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_names() {
        assert_eq!(name("  Signup "), Some("Signup"));
        assert_eq!(name("   "), None);
        let long = "é".repeat(200);
        assert_eq!(name(&long).map(|n| n.chars().count()), Some(MAX_NAME));
    }

    #[test]
    fn keeps_valid_props() {
        let mut p = Props::default();
        p.add("plan", Some(Value::Str("pro")));
        p.add("seats", Some(Value::Num("3")));
        p.add("trial", Some(Value::Bool(true)));
        p.add("nested", None);
        assert_eq!(
            p.finish().as_deref(),
            Some(r#"{"plan":"pro","seats":3,"trial":true}"#)
        );
        assert_eq!(Props::default().finish(), None);
    }

    #[test]
    fn enforces_limits() {
        let mut p = Props::default();
        p.add("", Some(Value::Bool(true)));
        p.add(&"k".repeat(65), Some(Value::Bool(true)));
        p.add(&"k".repeat(64), Some(Value::Str(&"v".repeat(300))));
        for i in 0..40u8 {
            let key = [b'a' + i / 26, b'a' + i % 26];
            p.add(
                core::str::from_utf8(&key).expect("ascii"),
                Some(Value::Num("1")),
            );
        }
        let json = p.finish().expect("props");
        assert!(!json.contains(&"k".repeat(65)));
        assert!(json.contains(&format!("\"{}\":\"{}\"", "k".repeat(64), "v".repeat(256))));
        assert_eq!(json.matches(':').count(), MAX_PROPS);
        assert!(json.contains("\"bc\":1") && !json.contains("\"bd\""));
    }
}
