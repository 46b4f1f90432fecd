//! Determinism for the load test: a small seeded generator (SplitMix64) for
//! fault decisions, hostile datagrams, RANDs and UE keys, and the numbered
//! payloads every UE sends, so a run follows from `--seed` as far as the
//! scheduling of threads and sockets allows.

use ciot_e2e::endpoint::RandSource;
use ciot_e2e::kdf::Rand;

/// SplitMix64: fast, tiny state, good enough to decide faults. Not a CSPRNG:
/// the RANDs it makes are for the load test only.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Self {
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

    /// Uniform in `0..n` as an index.
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    /// Fills `out` with random octets.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// RANDs for the EESE from the seeded generator (deterministic runs; a real
/// EESE uses `OsRand` or the EMKS).
pub struct SeededRand(pub Rng);

impl RandSource for SeededRand {
    fn rand(&mut self) -> Option<Rand> {
        let mut r = [0u8; 16];
        self.0.fill(&mut r);
        Some(Rand(r))
    }
}

/// Longest payload a UE sends (the UE holds up to [`HOLD`] octets).
pub const MAX_PAYLOAD: usize = 8 + 48;

/// What a UE keeps for retransmission after a key-expired error.
pub const HOLD: usize = 64;

// Every payload fits what the UE holds, so none is lost to a key-expired error.
const _: () = assert!(MAX_PAYLOAD <= HOLD);

fn payload_rng(seed: u64, ue: u32, k: u32) -> Rng {
    let id = (u64::from(ue) << 32) | u64::from(k);
    Rng::new(seed ^ id.wrapping_mul(0xd6e8_feb8_6659_fd93) ^ 0x005e_ed0f_10ad)
}

/// Payload number `k` of UE `ue`: its UE index and number (big endian), then
/// 8–48 octets that follow from the seed, the UE and the number. Written to
/// `out`.
pub fn payload(seed: u64, ue: u32, k: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&ue.to_be_bytes());
    out.extend_from_slice(&k.to_be_bytes());
    let mut r = payload_rng(seed, ue, k);
    let filler = 8 + r.index(41);
    let start = out.len();
    out.resize(start + filler, 0);
    if let Some(tail) = out.get_mut(start..) {
        r.fill(tail);
    }
}

/// The UE index and number a payload claims, if it is exactly the payload
/// that UE sent under that number (every octet compared); `None` for anything
/// else (corrupt, foreign, made up).
pub fn check_payload(seed: u64, bytes: &[u8], scratch: &mut Vec<u8>) -> Option<(u32, u32)> {
    let ue = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let k = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    payload(seed, ue, k, scratch);
    (scratch.as_slice() == bytes).then_some((ue, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_exact_and_distinct() {
        let (mut a, mut s) = (Vec::new(), Vec::new());
        payload(7, 3, 9, &mut a);
        assert!(a.len() <= MAX_PAYLOAD && a.len() >= 16);
        assert_eq!(check_payload(7, &a, &mut s), Some((3, 9)));
        let mut b = a.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(check_payload(7, &b, &mut s), None);
        assert_eq!(check_payload(8, &a, &mut s), None);
        assert_eq!(check_payload(7, &a[..7], &mut s), None);
    }
}
