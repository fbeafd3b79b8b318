//! Custom events: the limits of CONTRACT §1, enforced before anything is sent. What is over a
//! limit is dropped (keys, values of other types, props past the 30th) or cut (names and
//! string values), so that one careless call never makes the collector refuse a batch.
//! Lengths are in characters, as the collector counts them.

use alloc::vec::Vec;

use crate::json::Obj;

/// At most this many props per event.
pub const MAX_PROPS: usize = 30;
/// Longest prop key, in characters; longer keys are dropped.
pub const MAX_KEY: usize = 64;
/// Longest string value, in characters; longer values are cut.
pub const MAX_VALUE: usize = 256;
/// Longest event name, in characters; longer names are cut.
pub const MAX_NAME: usize = 120;

/// The first `max` characters of UTF-8 text `s`.
pub fn cut(s: &[u8], max: usize) -> &[u8] {
    let end = s
        .iter()
        .enumerate()
        .filter(|(_, &b)| b & 0xC0 != 0x80)
        .nth(max)
        .map_or(s.len(), |(i, _)| i);
    s.get(..end).unwrap_or(s)
}

/// An event name as sent: trimmed and cut to [`MAX_NAME`]; `None` when empty.
pub fn name(s: &[u8]) -> Option<&[u8]> {
    let s = cut(s.trim_ascii(), MAX_NAME).trim_ascii_end();
    (!s.is_empty()).then_some(s)
}

/// The type of a prop value, as `t.js` reports it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string: the value is its text.
    Str,
    /// A finite number: the value is its JSON text.
    Num,
    /// A boolean: the value is `true` or `false`.
    Bool,
    /// Anything else (objects, arrays, null, NaN…): dropped.
    Other,
}

/// Collects at most [`MAX_PROPS`] valid props into a JSON object.
#[derive(Default)]
pub struct Props {
    obj: Obj,
    len: usize,
}

impl Props {
    /// Adds one prop, or drops it if it breaks a limit.
    pub fn add(&mut self, key: &[u8], value: &[u8], kind: Kind) {
        if self.len >= MAX_PROPS || key.is_empty() || cut(key, MAX_KEY) != key {
            return;
        }
        match kind {
            Kind::Str => self.obj.str(key, cut(value, MAX_VALUE)),
            Kind::Num | Kind::Bool => self.obj.raw(key, value),
            Kind::Other => return,
        };
        self.len += 1;
    }

    /// The JSON object, or `None` when no prop survived.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.obj.is_empty()).then(|| self.obj.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_names() {
        assert_eq!(name(b"  Signup "), Some(&b"Signup"[..]));
        assert_eq!(name(b"   "), None);
        let long = "é".repeat(200);
        let cut = name(long.as_bytes()).expect("name");
        assert_eq!(
            std::str::from_utf8(cut).expect("utf-8").chars().count(),
            MAX_NAME
        );
    }

    #[test]
    fn keeps_valid_props() {
        let mut p = Props::default();
        p.add(b"plan", b"pro", Kind::Str);
        p.add(b"seats", b"3", Kind::Num);
        p.add(b"trial", b"true", Kind::Bool);
        p.add(b"nested", b"[object Object]", Kind::Other);
        assert_eq!(
            p.finish().as_deref(),
            Some(&br#"{"plan":"pro","seats":3,"trial":true}"#[..])
        );
        assert_eq!(Props::default().finish(), None);
    }

    #[test]
    fn enforces_limits() {
        let mut p = Props::default();
        p.add(b"", b"true", Kind::Bool);
        p.add("k".repeat(65).as_bytes(), b"true", Kind::Bool);
        p.add(
            "é".repeat(64).as_bytes(),
            "€".repeat(300).as_bytes(),
            Kind::Str,
        );
        for i in 0..40u8 {
            p.add(&[b'a' + i / 26, b'a' + i % 26], b"1", Kind::Num);
        }
        let json = String::from_utf8(p.finish().expect("props")).expect("utf-8");
        assert!(!json.contains(&"k".repeat(65)));
        assert!(json.contains(&format!("\"{}\":\"{}\"", "é".repeat(64), "€".repeat(256))));
        assert_eq!(json.matches(':').count(), MAX_PROPS);
        assert!(json.contains("\"bc\":1") && !json.contains("\"bd\""));
    }
}
