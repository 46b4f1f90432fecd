//! The crate's key hierarchy: `e2e_int_key`, keysets, the control key and the
//! algorithm keys. `docs/key-hierarchy.md` is the table of every derivation
//! below; the tests at the end of this file hold each S string to it.

use super::KdfProfile;
#[cfg(feature = "kdf-hkdf")]
use super::hkdf::HkdfKey;
use super::keys::{AlgKey, CkIk, ControlKey, KeySet, Rand, RootBytes, RootKey, RootKind, UeNonce};
use super::ts33220::{self, Ts33220Key};
use zeroize::Zeroize;

/// FC of `e2e_int_key = KDF(CK||IK, "CIoT End-to-end")`.
pub const FC_INT_KEY: u8 = 0x90;
/// FC of `e2eKEYSET = KDF(root, root kind, RAND)`.
pub const FC_KEYSET: u8 = 0x91;
/// FC of the control-message key `KDF(root, root kind)`.
pub const FC_CONTROL_KEY: u8 = 0x92;
/// FC of an algorithm key `KDF(e2eKEYSET, distinguisher, identity, counter,
/// UE nonce)`.
pub const FC_ALG_KEY: u8 = 0x93;

/// P0 of the `e2e_int_key` derivation (TR 33.863 §6.5.2.1).
pub const INT_KEY_LABEL: &[u8; 15] = b"CIoT End-to-end";

/// A key prepared for the chosen KDF profile: the HMAC state with the key
/// absorbed, so each derivation from it costs about two SHA-256 compressions.
#[derive(Clone)]
pub(crate) enum PreparedKey {
    Ts33220(Ts33220Key),
    #[cfg(feature = "kdf-hkdf")]
    Hkdf(HkdfKey),
}

impl PreparedKey {
    pub(crate) fn new(profile: KdfProfile, key: &[u8]) -> Self {
        match profile {
            KdfProfile::Ts33220 => PreparedKey::Ts33220(Ts33220Key::new(key)),
            #[cfg(feature = "kdf-hkdf")]
            KdfProfile::HkdfSha256 => PreparedKey::Hkdf(HkdfKey::new(key)),
        }
    }

    /// The 256-bit output for an encoded S string.
    pub(crate) fn derive_s(&self, s: &[u8]) -> [u8; 32] {
        match self {
            PreparedKey::Ts33220(k) => k.mac(s),
            #[cfg(feature = "kdf-hkdf")]
            PreparedKey::Hkdf(k) => k.expand(s),
        }
    }
}

// The S strings, spelled out octet by octet (TS 33.220 B.2: FC, then each Pi
// followed by its two-octet big-endian length Li). Tests below check each one
// against the generic encoder.

const fn int_key_s() -> [u8; 18] {
    let mut s = [0u8; 18];
    s[0] = FC_INT_KEY;
    let mut i = 0;
    while i < 15 {
        s[1 + i] = INT_KEY_LABEL[i];
        i += 1;
    }
    s[17] = 15; // L0 = 0x000f
    s
}

#[cfg(test)]
const fn keyset_s(kind: RootKind, rand: &[u8; 16]) -> [u8; 22] {
    let mut s = [0u8; 22];
    s[0] = FC_KEYSET;
    s[1] = kind.code(); // P0: root kind
    s[3] = 1; // L0 = 0x0001
    let mut i = 0;
    while i < 16 {
        s[4 + i] = rand[i]; // P1: RAND
        i += 1;
    }
    s[21] = 16; // L1 = 0x0010
    s
}

/// `keyset_s` followed by the profile's trailer (HKDF's counter octet
/// `0x01`, RFC 5869 §2.3) and the SHA-256 padding, as the one block the
/// inner hash compresses.
///
/// The compress function loads the block in 16-octet lanes right after it is
/// written. A lane written by narrower stores cannot be handed from the store
/// buffer to that load, which then waits for the stores to reach the cache:
/// on the keyset path, the EESE's hot path, that wait was a sixth of the
/// cost. So each lane is assembled whole and written by one store.
fn keyset_block(kind: RootKind, rand: &[u8; 16], hkdf_counter: bool) -> [u8; 64] {
    // Octets 0..4: FC, P0 = root kind, L0 = 0x0001; P1 = RAND from octet 4.
    let head = u32::from_le_bytes([FC_KEYSET, kind.code(), 0x00, 0x01]);
    // Octets 20..24: L1 = 0x0010, then the trailer and 0x80, or 0x80 alone;
    // the message is S (22 octets) and the trailer.
    let (tail, bits) = if hkdf_counter {
        (
            [0x00, 0x10, 0x01, 0x80],
            const { ts33220::one_block_len_bits(23) },
        )
    } else {
        (
            [0x00, 0x10, 0x80, 0x00],
            const { ts33220::one_block_len_bits(22) },
        )
    };
    let [lane0, lane1] = rand_lanes(head, rand, u32::from_le_bytes(tail));
    // Octets 32..56 are zero; the length field ends the block.
    let lane3 = u128::from(bits).swap_bytes();
    let lanes: [[u8; 16]; 4] = [lane0, lane1, [0; 16], lane3.to_le_bytes()];
    let mut block = [0u8; 64];
    for (o, lane) in block.chunks_exact_mut(16).zip(lanes) {
        o.copy_from_slice(&lane);
    }
    block
}

/// Octets 0..16 and 16..32 of the keyset block: `head ‖ RAND[0..12]` and
/// `RAND[12..16] ‖ tail ‖ 0⁸`, each assembled in one SSE2 register.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
fn rand_lanes(head: u32, rand: &[u8; 16], tail: u32) -> [[u8; 16]; 2] {
    use safe_arch::{bitor_m128i, byte_shl_imm_u128_m128i, byte_shr_imm_u128_m128i, m128i};
    let r = m128i::from(*rand);
    let lane0 = bitor_m128i(
        byte_shl_imm_u128_m128i::<4>(r),
        m128i::from(u128::from(head)),
    );
    let lane1 = bitor_m128i(
        byte_shr_imm_u128_m128i::<12>(r),
        m128i::from(u128::from(tail) << 32),
    );
    [lane0.into(), lane1.into()]
}

/// Other targets take the lanes octet by octet.
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
use rand_lanes_portable as rand_lanes;

/// [`rand_lanes`] octet by octet: used where SSE2 is not there, and by the
/// tests everywhere.
#[cfg(any(
    test,
    not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ))
))]
fn rand_lanes_portable(head: u32, rand: &[u8; 16], tail: u32) -> [[u8; 16]; 2] {
    let (head, tail) = (head.to_le_bytes(), tail.to_le_bytes());
    [
        core::array::from_fn(|i| if i < 4 { head[i] } else { rand[i - 4] }),
        core::array::from_fn(|i| match i {
            0..4 => rand[12 + i],
            4..8 => tail[i - 4],
            _ => 0,
        }),
    ]
}

const fn control_key_s(kind: RootKind) -> [u8; 4] {
    [FC_CONTROL_KEY, kind.code(), 0x00, 0x01]
}

/// Octets of an algorithm key's S string.
const ALG_KEY_S_LEN: usize = 35;

/// The S string of an algorithm key. P2 is the trigger counter of the
/// keyset, so two keysets never share algorithm keys even when a RAND source
/// repeats a RAND; P3 is the nonce of the UE incarnation the keyset was made
/// for, so no keyset made for one start of a UE ever gives the keys of
/// another (`docs/key-hierarchy.md`).
const fn alg_key_s(alg: Algorithm, counter: u64, nonce: &UeNonce) -> [u8; ALG_KEY_S_LEN] {
    let c = counter.to_be_bytes();
    let mut s = [0u8; ALG_KEY_S_LEN];
    s[0] = FC_ALG_KEY;
    s[1] = alg.distinguisher(); // P0
    s[3] = 0x01; // L0
    s[4] = alg.identity(); // P1
    s[6] = 0x01; // L1
    let mut i = 0;
    while i < 8 {
        s[7 + i] = c[i]; // P2: trigger counter
        i += 1;
    }
    s[16] = 0x08; // L2
    let mut i = 0;
    while i < 16 {
        s[17 + i] = nonce.0[i]; // P3: UE nonce
        i += 1;
    }
    s[34] = 0x10; // L3
    s
}

/// `e2e_int_key = KDF(CK||IK, "CIoT End-to-end")` (TR 33.863 §6.5.2.1), the
/// root of solution #5.
///
/// ```
/// use ciot_e2e::kdf::{int_key, CkIk, Ck, Ik, KdfProfile, RootKind};
/// let ck_ik = CkIk::new(&Ck::from_bytes([0x11; 16]), &Ik::from_bytes([0x22; 16]));
/// let root = int_key(KdfProfile::Ts33220, &ck_ik);
/// assert_eq!(root.kind(), RootKind::IntKey);
/// ```
#[must_use]
pub fn int_key(profile: KdfProfile, ck_ik: &CkIk) -> RootKey {
    let out = PreparedKey::new(profile, ck_ik.as_bytes()).derive_s(&int_key_s());
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes(out))
}

/// A root prepared for repeated derivations: the EESE's hot path.
///
/// Holds the keyed HMAC state (zeroized on drop) so each keyset costs about two
/// SHA-256 compressions and no allocation.
///
/// ```
/// use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind};
/// let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
/// let prepared = PreparedRoot::new(&root, KdfProfile::Ts33220);
/// let a = prepared.keyset(&Rand([1; 16]));
/// let b = prepared.keyset(&Rand([2; 16]));
/// assert_ne!(a, b);
/// ```
#[derive(Clone)]
pub struct PreparedRoot {
    kind: RootKind,
    profile: KdfProfile,
    key: PreparedKey,
}

impl PreparedRoot {
    /// Absorbs the root key for the given profile.
    #[must_use]
    pub fn new(root: &RootKey, profile: KdfProfile) -> Self {
        PreparedRoot {
            kind: root.kind(),
            profile,
            key: PreparedKey::new(profile, root.key().as_bytes()),
        }
    }

    /// The root's kind.
    #[must_use]
    pub const fn kind(&self) -> RootKind {
        self.kind
    }

    /// The KDF profile this root derives with.
    #[must_use]
    pub const fn profile(&self) -> KdfProfile {
        self.profile
    }

    /// `e2eKEYSET = KDF(root, RAND)` (TR 33.863 §6.5.2.2), with the root kind
    /// as a parameter for domain separation.
    #[must_use]
    pub fn keyset(&self, rand: &Rand) -> KeySet {
        KeySet::from_bytes(match &self.key {
            PreparedKey::Ts33220(k) => k.mac_block(&keyset_block(self.kind, &rand.0, false)),
            #[cfg(feature = "kdf-hkdf")]
            PreparedKey::Hkdf(k) => k.expand_block(&keyset_block(self.kind, &rand.0, true)),
        })
    }

    /// The key that authenticates control messages (trigger, key-expired).
    #[must_use]
    pub fn control_key(&self) -> ControlKey {
        ControlKey::from_bytes(self.key.derive_s(&control_key_s(self.kind)))
    }
}

/// `e2eKEYSET` for a root in one call (prepares the root each time; keep a
/// [`PreparedRoot`] when deriving many).
#[must_use]
pub fn keyset(profile: KdfProfile, root: &RootKey, rand: &Rand) -> KeySet {
    PreparedRoot::new(root, profile).keyset(rand)
}

/// An algorithm that takes a key out of a keyset.
///
/// As in TS 33.401 A.7, the key is bound to the algorithm by an algorithm type
/// distinguisher and the algorithm identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Algorithm {
    /// 128-NEA2 (AES-128 in counter mode), distinguisher 0x01, identity 0x02.
    Nea2,
    /// 128-NIA2 (AES-128-CMAC), distinguisher 0x02, identity 0x02.
    Nia2,
    /// AES-128-GCM, distinguisher 0x03, identity 0x01.
    Aes128Gcm,
}

impl Algorithm {
    /// Algorithm type distinguisher (P0): 0x01 encryption, 0x02 integrity,
    /// 0x03 authenticated encryption.
    #[must_use]
    pub const fn distinguisher(self) -> u8 {
        match self {
            Algorithm::Nea2 => 0x01,
            Algorithm::Nia2 => 0x02,
            Algorithm::Aes128Gcm => 0x03,
        }
    }

    /// Algorithm identity (P1): the 3GPP identity for 128-NEA2/NIA2 (2), the
    /// crate's own for AES-128-GCM (1).
    #[must_use]
    pub const fn identity(self) -> u8 {
        match self {
            Algorithm::Nea2 | Algorithm::Nia2 => 0x02,
            Algorithm::Aes128Gcm => 0x01,
        }
    }
}

/// The 128-bit key for `alg` out of the keyset that trigger `counter`
/// installed for the UE incarnation `nonce`: the 128 least significant bits
/// of `KDF(e2eKEYSET, distinguisher, identity, counter, nonce)` (as TS 33.401
/// A.7 truncates). The counter makes the key unique per trigger (a RAND that
/// comes twice gives the same e2eKEYSET but never the same algorithm key);
/// the nonce makes it unique per start of the UE (a UE that lost, rolled back
/// or copied its storage never derives a key it used before).
#[must_use]
pub fn alg_key(
    profile: KdfProfile,
    keyset: &KeySet,
    alg: Algorithm,
    counter: u64,
    nonce: &UeNonce,
) -> AlgKey {
    let mut out =
        PreparedKey::new(profile, keyset.as_bytes()).derive_s(&alg_key_s(alg, counter, nonce));
    let mut low = [0u8; 16];
    low.copy_from_slice(&out[16..]);
    out.zeroize();
    let key = AlgKey::from_bytes(low);
    low.zeroize();
    key
}

#[cfg(test)]
mod tests {
    use super::super::ts33220::{Fc, encode_s};
    use super::*;

    fn encoded(fc: u8, params: &[&[u8]]) -> ([u8; 64], usize) {
        let mut s = [0u8; 64];
        let mut n = 0;
        encode_s(Fc::new(fc).unwrap(), params, |c| {
            s[n..n + c.len()].copy_from_slice(c);
            n += c.len();
        })
        .unwrap();
        (s, n)
    }

    #[test]
    fn spelled_out_s_strings_match_the_generic_encoder() {
        let (s, n) = encoded(FC_INT_KEY, &[INT_KEY_LABEL]);
        assert_eq!(&s[..n], &int_key_s());
        let rand = [0x5a; 16];
        for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
            let (s, n) = encoded(FC_KEYSET, &[&[kind.code()], &rand]);
            assert_eq!(&s[..n], &keyset_s(kind, &rand));
            let (s, n) = encoded(FC_CONTROL_KEY, &[&[kind.code()]]);
            assert_eq!(&s[..n], &control_key_s(kind));
        }
        for alg in [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm] {
            for counter in [0, 1, 0x0102_0304_0506_0708, u64::MAX] {
                let c = u64::to_be_bytes(counter);
                let nonce = UeNonce(core::array::from_fn(|i| 0xa0 ^ i as u8));
                let (s, n) = encoded(
                    FC_ALG_KEY,
                    &[&[alg.distinguisher()], &[alg.identity()], &c, &nonce.0],
                );
                assert_eq!(&s[..n], &alg_key_s(alg, counter, &nonce));
            }
        }
    }

    #[test]
    fn chosen_fcs_avoid_3gpp_allocations() {
        let allocated = |fc: u8| {
            fc == 0x01
                || (0x10..=0x1d).contains(&fc)
                || fc == 0x20
                || (0x30..=0x3f).contains(&fc)
                || (0x50..=0x52).contains(&fc)
                || fc == 0x63
                || fc == 0x64
                || (0x69..=0x84).contains(&fc)
                || (0x8c..=0x8e).contains(&fc)
                || fc == 0xff
        };
        for fc in [FC_INT_KEY, FC_KEYSET, FC_CONTROL_KEY, FC_ALG_KEY] {
            assert!(!allocated(fc), "FC {fc:#04x} is allocated by 3GPP");
        }
    }

    #[test]
    fn hkdf_keyset_equals_the_hkdf_crate() {
        for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
            let root = RootKey::new(kind, RootBytes::from_bytes([0x3c; 32]));
            let rand = Rand([0xa7; 16]);
            let ours = PreparedRoot::new(&root, KdfProfile::HkdfSha256).keyset(&rand);
            let mut want = [0u8; 32];
            hkdf::Hkdf::<sha2::Sha256>::new(None, root.key().as_bytes())
                .expand(&keyset_s(kind, &rand.0), &mut want)
                .unwrap();
            assert_eq!(ours.as_bytes(), &want, "{kind:?}");
        }
    }

    #[test]
    fn prepared_key_equals_one_shot_kdf() {
        for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
            let root = RootKey::new(kind, RootBytes::from_bytes([9; 32]));
            let prepared = PreparedRoot::new(&root, KdfProfile::Ts33220);
            for seed in 0..64u8 {
                let rand = Rand(core::array::from_fn(|i| {
                    seed.wrapping_mul(31) ^ (i as u8 * 7)
                }));
                let one_shot = super::super::kdf(
                    root.key().as_bytes(),
                    Fc::new(FC_KEYSET).unwrap(),
                    &[&[kind.code()], &rand.0],
                )
                .unwrap();
                assert_eq!(prepared.keyset(&rand).as_bytes(), &one_shot, "{kind:?}");
            }
        }
    }

    /// The keyset block, octet by octet: S, the trailer, `0x80`, zeros and
    /// the bit length of pad block + message (FIPS 180-4 §5.1.1).
    fn reference_block(kind: RootKind, rand: &[u8; 16], hkdf: bool) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..22].copy_from_slice(&keyset_s(kind, rand));
        let mut n = 22;
        if hkdf {
            b[n] = 0x01;
            n += 1;
        }
        b[n] = 0x80;
        b[56..].copy_from_slice(&(((64 + n) * 8) as u64).to_be_bytes());
        b
    }

    #[test]
    fn keyset_block_is_s_with_its_padding_on_every_path() {
        for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
            for hkdf in [false, true] {
                for seed in 0..32u8 {
                    let rand: [u8; 16] = core::array::from_fn(|i| seed ^ (i as u8).rotate_left(3));
                    let want = reference_block(kind, &rand, hkdf);
                    assert_eq!(
                        keyset_block(kind, &rand, hkdf),
                        want,
                        "{kind:?} hkdf={hkdf}"
                    );
                    // The octet-wise lanes of other targets, checked here too.
                    let head = u32::from_le_bytes(want[..4].try_into().unwrap());
                    let tail = u32::from_le_bytes(want[20..24].try_into().unwrap());
                    let lanes = rand_lanes_portable(head, &rand, tail);
                    assert_eq!(lanes.as_flattened(), &want[..32]);
                }
            }
        }
    }
}
