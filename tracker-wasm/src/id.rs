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

    /// Writes a ULID for an event made at `ts` (ms since 1970): 10 characters of time, then
    /// 16 random ones.
    pub fn ulid(&mut self, ts: u64, out: &mut Queue) {
        for i in 0..26 {
            let c = if i < 10 {
                ts >> (45 - 5 * i)
            } else {
                self.next_u64() >> 59
            };
            out.put(CROCKFORD[(c & 31) as usize]);
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
        q.written(0, q.w).to_vec()
    }

    #[test]
    fn encodes_time_first() {
        let a = id(|o| Rng::new(1).ulid(1_732_380_000_000, o));
        assert_eq!(&a[..10], b"01JDCY9ZR0");
        let b = id(|o| Rng::new(1).ulid(0, o));
        assert_eq!(&b[..10], b"0000000000");
        assert_ne!(&b[10..], b"0000000000000000");
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
