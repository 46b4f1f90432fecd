//! Who the load test's UEs are: the identifier each names itself with in its
//! hello, and the root key both it and the EESE hold (the EMKS's part, known
//! in advance here).

use ciot_e2e::endpoint::UeId;
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, int_key};

use crate::rng::Rng;

const PREFIX: &str = "ue-";

/// The identifier UE `ue` carries in its hellos: `ue-` and its index.
#[must_use]
pub fn id(ue: u32) -> UeId {
    UeId::new(format!("{PREFIX}{ue}").as_bytes()).expect("3 to 13 octets, a valid identifier")
}

/// The index an identifier names, if it is one [`id`] makes (the canonical
/// spelling only) and below `n`.
#[must_use]
pub fn parse_id(bytes: &[u8], n: u32) -> Option<u32> {
    let digits = std::str::from_utf8(bytes).ok()?.strip_prefix(PREFIX)?;
    let ue: u32 = digits.parse().ok()?;
    (ue < n && ue.to_string() == digits).then_some(ue)
}

/// UE `ue`'s root: e2e_int_key from a CK and an IK that follow from the seed.
#[must_use]
pub fn root(seed: u64, ue: u32) -> RootKey {
    let mut r = Rng::new(seed ^ (u64::from(ue) << 20) ^ 0x00c1_0a7e_0000_0000);
    let (mut ck, mut ik) = ([0u8; 16], [0u8; 16]);
    r.fill(&mut ck);
    r.fill(&mut ik);
    int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(ck), &Ik::from_bytes(ik)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_back_and_nothing_else_does() {
        for ue in [0, 7, 9_999, u32::MAX - 1] {
            assert_eq!(parse_id(id(ue).as_bytes(), u32::MAX), Some(ue));
        }
        assert_eq!(parse_id(b"ue-10", 10), None);
        assert_eq!(parse_id(b"ue-07", 10), None);
        assert_eq!(parse_id(b"ue-+7", 10), None);
        assert_eq!(parse_id(b"ue-", 10), None);
        assert_eq!(parse_id(b"xx-1", 10), None);
        assert_ne!(root(1, 0), root(1, 1));
        assert_eq!(root(1, 0), root(1, 0));
    }
}
