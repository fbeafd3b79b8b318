//! Just enough JSON writing for the wire format of CONTRACT §2, on bytes and without
//! `core::fmt`. Text is UTF-8 bytes throughout the crate: the page hands in valid UTF-8, and
//! everything here splits or cuts it only at ASCII bytes or character boundaries.

use alloc::vec::Vec;

/// Appends `s` as a JSON string literal (quotes included).
pub fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                b'0' + (b >> 4),
                b"0123456789abcdef"[(b & 15) as usize],
            ]),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

/// Writes one JSON object, member by member: `{"a":1,"b":"x"}`.
pub struct Obj(pub Vec<u8>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Vec::from(*b"{"))
    }

    fn key(&mut self, key: &[u8]) -> &mut Vec<u8> {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        push_str(&mut self.0, key);
        self.0.push(b':');
        &mut self.0
    }

    pub fn str(&mut self, key: &[u8], value: &[u8]) -> &mut Obj {
        push_str(self.key(key), value);
        self
    }

    pub fn num(&mut self, key: &[u8], value: u64) -> &mut Obj {
        push_u64(self.key(key), value);
        self
    }

    /// A member whose value is already JSON text (`true`, `12.5`, `{…}`).
    pub fn raw(&mut self, key: &[u8], json: &[u8]) -> &mut Obj {
        self.key(key).extend_from_slice(json);
        self
    }

    pub fn bool(&mut self, key: &[u8], value: bool) -> &mut Obj {
        self.raw(key, if value { b"true" } else { b"false" })
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 1
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        let mut s = Vec::new();
        push_str(&mut s, "a\"b\\c\n\u{1}\u{1f}é€".as_bytes());
        assert_eq!(s, r#""a\"b\\c\u000a\u0001\u001fé€""#.as_bytes());
    }

    #[test]
    fn writes_numbers() {
        for n in [0u64, 7, 10, 1732380000000, u64::MAX] {
            let mut s = Vec::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string().as_bytes());
        }
    }

    #[test]
    fn writes_objects() {
        let mut o = Obj::new();
        assert!(o.is_empty());
        o.str(b"k", b"v")
            .num(b"n", 12)
            .bool(b"b", false)
            .raw(b"r", b"1.5");
        assert!(!o.is_empty());
        assert_eq!(o.finish(), br#"{"k":"v","n":12,"b":false,"r":1.5}"#);
    }
}
