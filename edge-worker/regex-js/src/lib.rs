//! A `regex` stand-in for the edge worker's wasm: the part of the `regex` 1.x API that
//! woothee and isbot use (`Regex::new`, `is_match`, `captures`, `Captures::get`,
//! `Match::as_str`), evaluated by the runtime's JavaScript `RegExp`.
//!
//! The patterns these crates use are written in the common subset of both syntaxes; the one
//! difference they rely on, a leading `(?i)`, becomes JavaScript's `i` flag. Compiled
//! `RegExp` objects are cached per thread (a worker isolate is single-threaded), so `Regex`
//! itself stays `Send + Sync` for `lazy_static` / `OnceLock`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use js_sys::{Array, RegExp};
use wasm_bindgen::JsCast;

/// A pattern that could not be compiled.
#[derive(Debug, Clone)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern: {}", self.0)
    }
}

impl std::error::Error for Error {}

/// A regular expression, compiled by the JavaScript engine on first use.
#[derive(Debug, Clone)]
pub struct Regex {
    source: String,
    flags: &'static str,
}

thread_local! {
    static COMPILED: RefCell<HashMap<(String, &'static str), RegExp>> = RefCell::new(HashMap::new());
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, Error> {
        let (source, flags) = match pattern.strip_prefix("(?i)") {
            Some(rest) => (rest, "di"),
            None => (pattern, "d"),
        };
        if source.contains("(?") && source.contains("(?P<") {
            return Err(Error(pattern.to_string()));
        }
        Ok(Regex {
            source: source.to_string(),
            flags,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn with<T>(&self, f: impl FnOnce(&RegExp) -> T) -> T {
        COMPILED.with(|c| {
            let mut cache = c.borrow_mut();
            let re = cache
                .entry((self.source.clone(), self.flags))
                .or_insert_with(|| RegExp::new(&self.source, self.flags));
            f(re)
        })
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.with(|re| re.test(haystack))
    }

    pub fn captures<'h>(&self, haystack: &'h str) -> Option<Captures<'h>> {
        let found = self.with(|re| re.exec(haystack))?;
        let indices = js_sys::Reflect::get(&found, &"indices".into())
            .ok()?
            .dyn_into::<Array>()
            .ok()?;
        let groups = indices
            .iter()
            .map(|pair| {
                let pair = pair.dyn_into::<Array>().ok()?;
                let start = utf16_to_byte(haystack, pair.get(0).as_f64()? as usize)?;
                let end = utf16_to_byte(haystack, pair.get(1).as_f64()? as usize)?;
                Some((start, end))
            })
            .collect();
        Some(Captures { haystack, groups })
    }
}

/// The byte offset in `s` of a UTF-16 code unit offset (JavaScript's string indices).
fn utf16_to_byte(s: &str, units: usize) -> Option<usize> {
    let mut seen = 0;
    for (byte, ch) in s.char_indices() {
        if seen >= units {
            return (seen == units).then_some(byte);
        }
        seen += ch.len_utf16();
    }
    (seen == units).then_some(s.len())
}

/// The groups of one match.
#[derive(Debug, Clone)]
pub struct Captures<'h> {
    haystack: &'h str,
    groups: Vec<Option<(usize, usize)>>,
}

impl<'h> Captures<'h> {
    /// Group `i` (0 is the whole match), if it took part in the match.
    pub fn get(&self, i: usize) -> Option<Match<'h>> {
        let (start, end) = (*self.groups.get(i)?)?;
        Some(Match {
            text: self.haystack.get(start..end)?,
            start,
        })
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// One matched group.
#[derive(Debug, Clone, Copy)]
pub struct Match<'h> {
    text: &'h str,
    start: usize,
}

impl<'h> Match<'h> {
    pub fn as_str(&self) -> &'h str {
        self.text
    }

    pub fn start(&self) -> usize {
        self.start
    }

    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}
