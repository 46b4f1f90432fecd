//! The payloads of the load test: every UE sends numbered payloads whose
//! octets follow from the seed, the UE and the number, so whoever receives
//! one can check it octet for octet without being told what was sent.

use crate::rng::Rng;

/// Longest payload a UE sends.
pub const MAX_PAYLOAD: usize = 8 + 48;

/// Octets a load-test UE holds for retransmission after a key-expired error
/// (its `Ue<HOLD>`).
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
/// else (corrupt, foreign, made up). `scratch` is reused between calls.
#[must_use]
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
