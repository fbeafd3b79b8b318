//! The text arguments of a call: `t.js` writes them with `TextEncoder.encodeInto` into
//! [`Input::io`] as UTF-8 fields joined by NUL bytes; [`Input::split`] finds the fields, and
//! [`Input::f`] reads one. The same buffer then carries request bodies back to `t.js`.
//!
//! Reading never panics (a panic site would bring `core::fmt` into the wasm): a field that is
//! not there is empty.

/// Bytes of the buffer shared with `t.js`: the longest body plus room.
pub const IO_LEN: usize = 64 * 1024;
/// Fields per call; later ones are ignored (30 props of 3 fields fit).
pub const MAX_FIELDS: usize = 128;

pub struct Input {
    pub io: [u8; IO_LEN],
    /// Where each field starts; field `k` ends one byte before field `k + 1`.
    starts: [usize; MAX_FIELDS + 1],
    /// How many fields the call has.
    pub count: usize,
}

impl Input {
    pub const fn new() -> Input {
        Input {
            io: [0; IO_LEN],
            starts: [0; MAX_FIELDS + 1],
            count: 0,
        }
    }

    /// Finds the fields of the first `len` bytes of [`Input::io`].
    pub fn split(&mut self, len: usize) {
        let len = len.min(IO_LEN);
        self.starts = [len + 1; MAX_FIELDS + 1];
        self.starts[0] = 0;
        let mut k = 1;
        for (i, &b) in self.io.iter().take(len).enumerate() {
            if b == 0 && k < MAX_FIELDS {
                self.starts[k] = i + 1;
                k += 1;
            }
        }
        self.count = k;
    }

    /// Field `k`; empty if there is no such field.
    pub fn f(&self, k: usize) -> &[u8] {
        let k = k % MAX_FIELDS;
        let (a, b) = (self.starts[k], self.starts[k + 1]);
        self.io.get(a..b.saturating_sub(1)).unwrap_or_default()
    }

    /// Whether field `k` holds a `1` or a `t`: a flag as `t.js` passes it (see
    /// `src/calls.rs`).
    pub fn on(&self, k: usize) -> bool {
        self.f(k).iter().any(|&b| b == b'1' || b == b't')
    }
}

impl Default for Input {
    fn default() -> Input {
        Input::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn input(text: &[u8]) -> Box<Input> {
        let mut i = Box::<Input>::default();
        i.io[..text.len()].copy_from_slice(text);
        i.split(text.len());
        i
    }

    #[test]
    fn splits_fields() {
        let i = input(b"a\0\0bc\0true");
        assert_eq!(i.count, 4);
        assert_eq!((i.f(0), i.f(1), i.f(2)), (&b"a"[..], &b""[..], &b"bc"[..]));
        assert!(i.on(3) && !i.on(0));
        assert_eq!(i.f(4), b"");
        assert_eq!(i.f(500), b"");
        let i = input(b"");
        assert_eq!((i.count, i.f(0), i.f(1)), (1, &b""[..], &b""[..]));
    }

    #[test]
    fn reads_flags() {
        let i = input(b"1,,false,\0false\0,true,false,undefined\0unspecified,false,false,");
        assert_eq!(
            (i.on(0), i.on(1), i.on(2), i.on(3)),
            (true, false, true, false)
        );
    }
}
