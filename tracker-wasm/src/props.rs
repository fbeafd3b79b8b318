//! Custom events: the limits of CONTRACT §1, enforced before anything is sent. What is over a
//! limit is dropped (keys, values of other types, props past the 30th) or cut (names and
//! string values), so that one careless call never makes the collector refuse a batch.
//! Lengths are in characters, as the collector counts them.

use crate::input::Input;
use crate::queue::Queue;

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
    let mut chars = 0;
    for (i, &b) in s.iter().enumerate() {
        if b & 0xC0 != 0x80 {
            if chars == max {
                return s.get(..i).unwrap_or(s);
            }
            chars += 1;
        }
    }
    s
}

/// The length of an event name as sent: cut to [`MAX_NAME`]; 0 when blank (the collector
/// trims it).
pub fn name(s: &[u8]) -> usize {
    let s = cut(s, MAX_NAME);
    if s.iter().any(|&b| b > b' ') {
        s.len()
    } else {
        0
    }
}

/// Whether `v`, the text of a boolean or of a number (or of a function: `typeof` says
/// `function`, whose second letter is a `u` too), is JSON: `true`, `false`, or a finite
/// number as JavaScript writes it (`3`, `-0.5`, `1e+21`; not `NaN`, `Infinity`, `x=>1`).
fn is_literal(v: &[u8]) -> bool {
    let digit = |b: Option<&u8>| b.is_some_and(u8::is_ascii_digit);
    v == b"true"
        || v == b"false"
        || digit(v.last()) && (digit(v.first()) || v.first() == Some(&b'-') && digit(v.get(1)))
}

/// Writes the props of an event as its `"props"` member, from the fields of `input` from
/// `first` on: for each prop its key, its type (the second letter of JavaScript's `typeof`:
/// `t` string, `u` number, `o` boolean) and its value as text. Props that break a limit are
/// dropped; strings are cut. Nothing is written when no prop is left.
pub fn write(q: &mut Queue, input: &Input, first: usize) {
    let mut n = 0;
    let mut k = first;
    while k < input.count {
        let (key, kind, value) = (input.f(k), input.f(k + 1), input.f(k + 2));
        k += 3;
        let raw = match kind {
            b"t" => false,
            b"u" | b"o" if is_literal(value) => true,
            _ => continue,
        };
        if n == MAX_PROPS || key.is_empty() || cut(key, MAX_KEY).len() < key.len() {
            continue;
        }
        q.raw(if n == 0 { b",\"props\":{" } else { b"," });
        q.str(key);
        q.put(b':');
        if raw {
            q.raw(value);
        } else {
            q.str(cut(value, MAX_VALUE));
        }
        n += 1;
    }
    if n > 0 {
        q.put(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(fields: &[&[u8]]) -> String {
        let text = [&[&b"name"[..]][..], fields].concat().join(&0);
        let mut input = Box::<Input>::default();
        input.io[..text.len()].copy_from_slice(&text);
        input.split(text.len());
        let mut q = Box::<Queue>::default();
        write(&mut q, &input, 1);
        String::from_utf8(q.written(0, q.w).to_vec()).expect("utf-8")
    }

    #[test]
    fn cuts_names() {
        assert_eq!(name(b"  Signup "), 9);
        assert_eq!(name(b" \t "), 0);
        assert_eq!(name(b""), 0);
        assert_eq!(name("é".repeat(200).as_bytes()), 2 * MAX_NAME);
    }

    #[test]
    fn keeps_valid_props() {
        let fields: &[&[u8]] = &[
            b"plan",
            b"t",
            b"pro",
            b"seats",
            b"u",
            b"3",
            b"trial",
            b"o",
            b"true",
            b"big",
            b"u",
            b"1e+21",
            b"nested",
            b"b",
            b"[object Object]",
            b"nan",
            b"u",
            b"NaN",
            b"inf",
            b"u",
            b"-Infinity",
            b"f",
            b"u",
            b"x=>1",
            b"none",
            b"n",
            b"undefined",
        ];
        assert_eq!(
            props(fields),
            r#","props":{"plan":"pro","seats":3,"trial":true,"big":1e+21}"#
        );
        assert_eq!(props(&[]), "");
        assert_eq!(props(&[b"a", b"b", b"[object Object]", b"dangling"]), "");
        assert_eq!(props(&[b"a", b"t"]), r#","props":{"a":""}"#);
    }

    #[test]
    fn enforces_limits() {
        let long_key = "k".repeat(65);
        let (key, value) = ("é".repeat(64), "€".repeat(300));
        let mut fields: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"o".to_vec(),
            b"true".to_vec(),
            long_key.clone().into_bytes(),
            b"o".to_vec(),
            b"true".to_vec(),
            key.clone().into_bytes(),
            b"t".to_vec(),
            value.into_bytes(),
        ];
        for i in 0..40u8 {
            fields.extend([
                vec![b'a' + i / 26, b'a' + i % 26],
                b"u".to_vec(),
                b"1".to_vec(),
            ]);
        }
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        let json = props(&refs);
        assert!(!json.contains(&long_key));
        assert!(json.contains(&format!("\"{key}\":\"{}\"", "€".repeat(256))));
        assert_eq!(json.matches(':').count(), MAX_PROPS + 1);
        assert!(json.contains("\"bc\":1") && !json.contains("\"bd\""));
    }
}
