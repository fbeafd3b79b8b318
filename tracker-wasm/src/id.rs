//! Event ids made in the browser: ULIDs (48-bit millisecond time + 80 random bits, 26
//! Crockford base-32 characters), so that a batch sent twice is counted once.

use crate::queue::Queue;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A small non-cryptographic generator (xorshift64*), seeded from the page's randomness;
/// ids need to be unique, not secret.
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A generator seeded with a hash (FNV-1a) of `bytes` and `now`.
    pub fn seeded(bytes: &[u8], now: u64) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ now;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        Rng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Writes a ULID for an event made at `ts` (ms since 1970).
    pub fn ulid(&mut self, ts: u64, out: &mut Queue) {
        let (a, b) = (self.next_u64(), self.next_u64());
        ulid(ts, a, b, out);
    }
}

/// Writes the ULID of time `ts` with the low 40 bits of `r1` and `r2` as its 80 random bits.
pub fn ulid(ts: u64, r1: u64, r2: u64, out: &mut Queue) {
    for (value, chars) in [(ts, 10), (r1, 8), (r2, 8)] {
        for i in (0..chars).rev() {
            out.put(CROCKFORD[((value >> (i * 5)) & 31) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(f: impl FnOnce(&mut Queue)) -> Vec<u8> {
        let mut q = Box::<Queue>::default();
        f(&mut q);
        assert_eq!(q.w, 26);
        q.written(0).to_vec()
    }

    #[test]
    fn encodes_time_and_randomness() {
        assert_eq!(id(|o| ulid(0, 0, 0, o)), b"00000000000000000000000000");
        assert_eq!(id(|o| ulid(1, 0, 31, o)), b"0000000001000000000000000Z");
        let id = id(|o| ulid(1_732_380_000_000, u64::MAX, 0, o));
        assert_eq!(&id[..10], b"01JDCY9ZR0");
        assert_eq!(&id[10..], b"ZZZZZZZZ00000000");
    }

    #[test]
    fn makes_distinct_ids() {
        let mut rng = Rng::seeded(b"0.123", 1_732_380_000_000);
        let mut ids: Vec<Vec<u8>> = (0..1000)
            .map(|_| id(|o| rng.ulid(1_732_380_000_000, o)))
            .collect();
        assert!(ids
            .iter()
            .all(|id| id.iter().all(|b| CROCKFORD.contains(b)) && id[0] <= b'7'));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn seeds_differ_with_the_input() {
        let a = Rng::seeded(b"0.1", 5).next_u64();
        assert_ne!(a, Rng::seeded(b"0.2", 5).next_u64());
        assert_ne!(a, Rng::seeded(b"0.1", 6).next_u64());
    }
}
