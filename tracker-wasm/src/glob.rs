//! `data-exclude`: comma-separated path globs (`/admin/*,/preview/*`) never tracked.
//! `*` matches any run of characters, `/` included; everything else matches itself. Spaces
//! around the commas are allowed (paths never hold a raw space).

/// Whether `path` matches one of the `patterns`, separated by commas or spaces.
pub fn excluded(patterns: &[u8], path: &[u8]) -> bool {
    let mut start = 0;
    for (i, &b) in patterns.iter().chain(b",").enumerate() {
        if b == b',' || b == b' ' {
            let p = patterns.get(start..i).unwrap_or_default();
            if !p.is_empty() && matches(p, path) {
                return true;
            }
            start = i + 1;
        }
    }
    false
}

/// Wildcard matching with backtracking to the last `*`: never recursive, no indexing that
/// could panic.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        let want = pattern.get(p);
        if want == Some(&b'*') {
            star = Some((p, t));
            p += 1;
        } else if want == Some(&c) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern.iter().skip(p).all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_globs() {
        assert!(matches(b"/admin/*", b"/admin/"));
        assert!(matches(b"/admin/*", b"/admin/users/5"));
        assert!(!matches(b"/admin/*", b"/admin"));
        assert!(!matches(b"/admin/*", b"/blog/admin/x"));
        assert!(matches(b"*/draft", b"/blog/2024/draft"));
        assert!(matches(b"/a*b*c", b"/axxbyyc"));
        assert!(!matches(b"/a*b*c", b"/axxbyy"));
        assert!(matches(b"/exact", b"/exact"));
        assert!(!matches(b"/exact", b"/exact/"));
        assert!(matches(b"**", b""));
    }

    #[test]
    fn reads_exclude_lists() {
        let list = b"/admin/*, /preview/*,,/secret";
        assert!(excluded(list, b"/admin/x"));
        assert!(excluded(list, b"/preview/draft-1"));
        assert!(excluded(list, b"/secret"));
        assert!(!excluded(list, b"/"));
        assert!(!excluded(list, b"/secret/x"));
        assert!(!excluded(b"", b"/anything"));
    }
}
