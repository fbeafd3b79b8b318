//! Just enough JSON writing for the wire format of CONTRACT §2, without `core::fmt`.

use alloc::string::String;

/// Appends `s` as a JSON string literal (quotes included).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                out.push_str(if (c as u32) < 0x10 {
                    "\\u000"
                } else {
                    "\\u001"
                });
                out.push(char::from_digit(c as u32 & 15, 16).unwrap_or('0'));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    out.push((b'0' + (n % 10) as u8) as char);
}

/// Writes one JSON object, member by member: `{"a":1,"b":"x"}`.
pub struct Obj {
    out: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_str(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Obj {
        push_str(self.key(key), value);
        self
    }

    pub fn num(&mut self, key: &str, value: u64) -> &mut Obj {
        push_u64(self.key(key), value);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Obj {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// A member whose value is already JSON text.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Obj {
        self.key(key).push_str(json);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.out.len() == 1
    }

    pub fn finish(&mut self) -> String {
        self.out.push('}');
        core::mem::take(&mut self.out)
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
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\n\u{1}\u{1f}é€");
        assert_eq!(s, r#""a\"b\\c\u000a\u0001\u001fé€""#);
    }

    #[test]
    fn writes_numbers() {
        for n in [0u64, 7, 10, 1732380000000, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn writes_objects() {
        let mut o = Obj::new();
        assert!(o.is_empty());
        o.str("k", "v")
            .num("n", 12)
            .bool("b", false)
            .raw("r", "1.5");
        assert!(!o.is_empty());
        assert_eq!(o.finish(), r#"{"k":"v","n":12,"b":false,"r":1.5}"#);
    }
}
