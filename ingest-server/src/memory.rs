//! Handing memory the server freed back to the system.
//!
//! glibc's allocator keeps what a thread freed in that thread's arena for reuse, and gives
//! pages back only from the top of a heap. Under steady load, with request bodies, rows and
//! rollup rounds freed between live allocations, the server's resident memory kept rising
//! (about 3 MiB a minute in a 10-minute soak) although its live heap did not grow: a single
//! `malloc_trim` on that server gave back a third of its resident memory. [`release`] runs
//! every few seconds from [`crate::maintenance`].

/// Allocations from this size on get pages of their own, given back when freed.
pub const MMAP_THRESHOLD: i32 = 2 << 20;
/// Free memory at the top of a heap past this size is given back at once.
pub const TRIM_THRESHOLD: i32 = 8 << 20;

/// Sets the allocator's thresholds for large blocks: [`MMAP_THRESHOLD`] and
/// [`TRIM_THRESHOLD`], fixed. By default glibc raises both each time a large block is
/// freed (up to 32 MiB and 64 MiB), so that the pieces of day digests a filtered query
/// reads and frees (tens of KiB to a few MiB each) end up in the arenas, where
/// `malloc_trim` gave little of them back: after the benchmark's 12-month queries, with
/// 91.6 MiB of digests kept, the process held 257 MiB of anonymous memory; 190 MiB with
/// these thresholds, at the same query times (129 MiB with glibc's fixed 128 KiB, and
/// 10–15 % slower queries kept in memory). Elsewhere than glibc it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: `mallopt` takes two integers and changes only the allocator's own settings,
    // under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Sets the allocator's thresholds for large blocks (glibc only: here it does nothing).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn configure() {}

/// Asks the allocator to return the free pages of every arena to the system
/// (`malloc_trim(0)`). Returns whether it gave anything back. Elsewhere than glibc it does
/// nothing and returns `false`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and touches only the allocator's own free
    // lists, under the allocator's own locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks the allocator to return the free pages of every arena to the system
/// (`malloc_trim(0)`). Returns whether it gave anything back. Elsewhere than glibc it does
/// nothing and returns `false`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// The resident anonymous memory of this process, in KiB.
    fn rss_anon_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon")
    }

    /// Many small blocks are allocated and written, then all but every 64th freed: the
    /// survivors pin the heap's top, so the free pages between them stay resident until
    /// [`super::release`] hands them back.
    #[test]
    fn release_gives_back_pages_freed_below_live_blocks() {
        let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 1000]).collect();
        let mut kept = Vec::new();
        for (i, block) in blocks.drain(..).enumerate() {
            if i % 64 == 0 {
                kept.push(block);
            }
        }
        let before = rss_anon_kib();
        assert!(super::release(), "nothing was given back");
        let after = rss_anon_kib();
        assert!(
            after + 100 * 1024 < before,
            "resident anonymous memory {before} KiB before, {after} KiB after"
        );
        assert_eq!(kept.len(), 200_000_usize.div_ceil(64));
        assert!(kept.iter().all(|b| b.len() == 1000));
    }
}
