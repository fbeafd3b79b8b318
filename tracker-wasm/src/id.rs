//! Event ids made in the browser: ULIDs (48-bit millisecond time + 80 random bits, 26
//! Crockford base-32 characters), so that a batch sent twice is counted once.

use alloc::vec::Vec;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A small non-cryptographic generator (xorshift64*), seeded from the page's randomness;
/// ids need to be unique, not secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A ULID for an event made at `ts` (ms since 1970).
    pub fn ulid(&mut self, ts: u64) -> Vec<u8> {
        let (a, b) = (self.next_u64(), self.next_u64());
        ulid(ts, a, b)
    }
}

/// The ULID of time `ts` and the low 40 bits of `r1` and `r2` as its 80 random bits.
pub fn ulid(ts: u64, r1: u64, r2: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(26);
    for (value, chars) in [(ts, 10), (r1, 8), (r2, 8)] {
        for i in (0..chars).rev() {
            out.push(CROCKFORD[((value >> (i * 5)) & 31) as usize]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_time_and_randomness() {
        assert_eq!(ulid(0, 0, 0), b"00000000000000000000000000");
        assert_eq!(ulid(1, 0, 31), b"0000000001000000000000000Z");
        let id = ulid(1_732_380_000_000, u64::MAX, 0);
        assert_eq!(id.len(), 26);
        assert_eq!(&id[..10], b"01JDCY9ZR0");
        assert_eq!(&id[10..], b"ZZZZZZZZ00000000");
    }

    #[test]
    fn makes_distinct_ids() {
        let mut rng = Rng::new(42);
        let mut ids: Vec<Vec<u8>> = (0..1000).map(|_| rng.ulid(1_732_380_000_000)).collect();
        assert!(ids
            .iter()
            .all(|id| id.len() == 26 && id.iter().all(|b| CROCKFORD.contains(b)) && id[0] <= b'7'));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 1000);
    }
}
