//! The test kit's one deterministic generator: SplitMix64, seeded, so a run
//! (a simulated schedule, a load test, a generated capture) follows from its
//! seed. Not a CSPRNG; the RANDs it makes are for tests only.

use ciot_e2e::endpoint::RandSource;
use ciot_e2e::kdf::Rand;

/// SplitMix64: tiny state, fast, good enough to decide faults.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `0..n` as an index (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Fills `out` with random octets.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A generator for a sub-stream (independent of this one's later draws).
    #[must_use]
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64() ^ 0x5eed_f00d_d00d_5eed)
    }
}

/// RANDs for an EESE from the seeded generator (deterministic runs; a real
/// EESE uses `OsRand` or the EMKS).
#[derive(Clone, Debug)]
pub struct SeededRand(pub Rng);

impl RandSource for SeededRand {
    fn rand(&mut self) -> Option<Rand> {
        let mut r = [0u8; 16];
        self.0.fill(&mut r);
        Some(Rand(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let r = a.range(3, 7);
            assert!((3..=7).contains(&r));
            b.range(3, 7);
        }
        assert_eq!(Rng::new(1).below(0), 0);
    }
}
