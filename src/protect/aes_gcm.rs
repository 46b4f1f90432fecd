//! AES-128-GCM (NIST SP 800-38D) with a 96-bit nonce and a 16-octet tag,
//! encrypting in place with the tag detached.
//!
//! [`Gcm::open`] verifies the tag over the ciphertext *before* decrypting:
//! GHASH runs over the input, the tag is compared in constant time, and the
//! keystream is applied only when it matches. A failed open therefore
//! leaves the buffer exactly as it was (the tests flip every bit of
//! ciphertext, tag and AAD and check this).
//!
//! # Why GCM is composed here
//! The mode is SP 800-38D §7 on three RustCrypto crates, `aes` (the block
//! cipher), `ctr` (GCTR: `Ctr32BE` is the mode's inc32) and `ghash`. The
//! `aes-gcm` crate composes the same, but applies the keystream with a call
//! that panics when the 32-bit counter would run out: unreachable for any
//! message this crate handles (under 65 507 octets, 2^32 blocks are 64 GiB),
//! yet linked into every build, where the device builds prove at link time
//! that no panic is reachable (`ci/footprint.sh`). Here that call is the
//! fallible one and its error is [`Error::GcmTooLong`]. The tests check the
//! composition against the `aes-gcm` crate for every length from 0 to 100
//! octets and against the published GCM vectors (tests/protect_vectors.rs).

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr32BE;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;
use crate::kdf::AlgKey;

/// Length of the authentication tag in octets.
pub const TAG_LEN: usize = 16;

/// Length of the nonce in octets (96 bits, the GCM default).
pub const NONCE_LEN: usize = 12;

/// The most plaintext one nonce may protect, in octets (SP 800-38D 5.2.1.1:
/// 2^39 - 256 bits).
const P_MAX: u64 = (1 << 36) - 32;

/// The most associated data, in octets (2^64 - 1 bits).
const A_MAX: u64 = (1 << 61) - 1;

/// The nonce of a data message: `0^24 || DIRECTION (8 bits) || 0^32 ||
/// SEQ (32 bits, big-endian)`.
///
/// Distinct `(direction, seq)` pairs give distinct nonces, so no nonce repeats
/// under one key as long as each direction's sequence numbers do not repeat
/// (which [`super::replay::SendCounter`] ensures for a sender).
#[must_use]
pub const fn nonce(direction: u8, seq: u32) -> [u8; NONCE_LEN] {
    let s = seq.to_be_bytes();
    [0, 0, 0, direction, 0, 0, 0, 0, s[0], s[1], s[2], s[3]]
}

/// AES-128-GCM under one key: key schedule and GHASH key computed once.
#[derive(Clone)]
pub struct Gcm {
    aes: Aes128,
    ghash: GHash,
}

fn check_lengths(aad: &[u8], data: &[u8]) -> Result<(), Error> {
    // SP 800-38D 5.2.1.1.
    let too_long = |len: usize, max: u64| u64::try_from(len).map_or(true, |l| l > max);
    if too_long(data.len(), P_MAX) || too_long(aad.len(), A_MAX) {
        return Err(Error::GcmTooLong {
            data: data.len(),
            aad: aad.len(),
        });
    }
    Ok(())
}

impl Gcm {
    /// Expands `key` for AES-128-GCM.
    #[must_use]
    pub fn new(key: &AlgKey) -> Self {
        let mut gcm = Gcm::scheduled(key);
        gcm.set_hash_key();
        gcm
    }

    /// The key schedule, and a GHASH key still to be set
    /// ([`Gcm::set_hash_key`]): the two steps of [`Gcm::new`] apart, so that
    /// a caller can build the cipher in its own place (384 octets on a
    /// 32-bit device) and never copy it through the stack. The schedule is
    /// the last field computed, so it is written straight into its place.
    #[inline(never)]
    pub(crate) fn scheduled(key: &AlgKey) -> Self {
        Gcm {
            ghash: GHash::new(&ghash::Key::default()),
            aes: Aes128::new(key.as_bytes().into()),
        }
    }

    /// SP 800-38D §7.1: the hash subkey H = CIPH_K(0^128).
    #[inline(never)]
    pub(crate) fn set_hash_key(&mut self) {
        let mut h = ghash::Key::default();
        self.aes.encrypt_block(&mut h);
        self.ghash = GHash::new(&h);
        h.as_mut_slice().zeroize();
    }

    /// GCTR from J0 = nonce ‖ 0^31 ‖ 1 (§7.1 step 2, a 96-bit IV): the
    /// counter positioned at inc32(J0) for the data, and CIPH_K(J0), which
    /// masks the tag.
    fn gctr(&self, nonce: &[u8; NONCE_LEN]) -> (CtrCore<&Aes128, Ctr32BE>, ghash::Block) {
        let mut j0 = ghash::Block::default();
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[15] = 1;
        let mut ctr = CtrCore::<&Aes128, Ctr32BE>::inner_iv_init(&self.aes, &j0);
        let mut mask = ghash::Block::default();
        ctr.write_keystream_block(&mut mask);
        (ctr, mask)
    }

    /// The tag (§7.1 steps 5-6): GHASH over the padded AAD, the padded
    /// ciphertext and their bit lengths, masked with CIPH_K(J0).
    fn tag(&self, mut mask: ghash::Block, aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
        let mut ghash = self.ghash.clone();
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        ghash_padded(&mut ghash, aad, ciphertext, &lengths);
        let mut s = ghash.finalize();
        let mut tag = [0u8; TAG_LEN];
        for ((t, s), m) in tag.iter_mut().zip(s.iter()).zip(mask.iter()) {
            *t = s ^ m;
        }
        s.as_mut_slice().zeroize();
        mask.as_mut_slice().zeroize();
        tag
    }

    /// Encrypts `buf` in place and returns the tag over `aad` and the
    /// ciphertext.
    ///
    /// # Errors
    /// [`Error::GcmTooLong`] when `buf` exceeds 2^36 - 32 octets or `aad`
    /// 2^61 - 1 octets; `buf` is then unchanged.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        check_lengths(aad, buf)?;
        let (ctr, mask) = self.gctr(nonce);
        // Checks the counter's room before it touches `buf`.
        ctr.try_apply_keystream_partial(buf.into())
            .map_err(|_| Error::GcmTooLong {
                data: buf.len(),
                aad: aad.len(),
            })?;
        Ok(self.tag(mask, aad, buf))
    }

    /// Verifies `tag` over `aad` and the ciphertext in `buf`, then decrypts
    /// `buf` in place.
    ///
    /// The tag is checked (in constant time) before any decryption, so on
    /// error `buf` still holds the ciphertext, unchanged.
    ///
    /// # Errors
    /// [`Error::BadTag`] when the tag does not verify; [`Error::GcmTooLong`]
    /// when the lengths exceed those [`Gcm::seal`] accepts.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        check_lengths(aad, buf)?;
        let (ctr, mask) = self.gctr(nonce);
        let expected = self.tag(mask, aad, buf);
        // One 128-bit constant-time comparison (`subtle` compares an array
        // octet by octet, each behind an optimization barrier).
        if !bool::from(u128::from_ne_bytes(expected).ct_eq(&u128::from_ne_bytes(*tag))) {
            return Err(Error::BadTag);
        }
        ctr.try_apply_keystream_partial(buf.into())
            .map_err(|_| Error::GcmTooLong {
                data: buf.len(),
                aad: aad.len(),
            })
    }
}

/// GHASH over the padded AAD, the padded ciphertext and the lengths block,
/// for short messages in runs of four blocks where the CPU has a parallel
/// GHASH (x86, AArch64).
///
/// `polyval` multiplies four blocks by H⁴..H¹ with one reduction when it is
/// given four at once (its `ParBlocks`), but one block at a time otherwise,
/// and `update_padded` hands it the AAD, the ciphertext and the lengths in
/// three calls: a 32-octet message, whose four blocks (one of header, two of
/// data, the lengths) could be one run, paid four serial multiplications
/// and reductions, the largest part of its GHASH. A short message's blocks
/// are laid out once, behind zero blocks up to a multiple of four: GHASH
/// starts from Y₀ = 0 and (0 ⊕ 0)·H = 0, so leading zero blocks leave it
/// unchanged (SP 800-38D §6.4), and the result is the same (checked against
/// `aes-gcm` for every AAD and data length up to 100 octets, and against
/// the published vectors). Longer messages are mostly whole runs already.
/// Where `polyval` has only its software backend (devices), runs save
/// nothing and would only add code.
fn ghash_padded(ghash: &mut GHash, aad: &[u8], ciphertext: &[u8], lengths: &ghash::Block) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
    if short_runs(ghash, aad, ciphertext, lengths) {
        return;
    }
    ghash.update_padded(aad);
    ghash.update_padded(ciphertext);
    ghash.update(core::slice::from_ref(lengths));
}

/// The blocks a short message may take: eight, two runs.
#[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
const SHORT_BLOCKS: usize = 8;

/// [`ghash_padded`] in runs when the message takes at most
/// [`SHORT_BLOCKS`]; `false` (and nothing hashed) when it is longer.
/// (Longer messages gain nothing measurable from runs of their first and
/// last blocks: their whole runs already dominate.)
#[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
fn short_runs(ghash: &mut GHash, aad: &[u8], ciphertext: &[u8], lengths: &ghash::Block) -> bool {
    const B: usize = 16;
    let (a, c) = (aad.len().div_ceil(B), ciphertext.len().div_ceil(B));
    let blocks = a + c + 1;
    if blocks > SHORT_BLOCKS {
        return false;
    }
    let runs = blocks.div_ceil(4) * 4;
    let mut buf = [ghash::Block::default(); SHORT_BLOCKS];
    let mut slots = buf.iter_mut().skip(runs - blocks);
    for part in [aad, ciphertext] {
        // Whole blocks as 16-octet moves; the tail padded with zeros.
        let (whole, tail) = ghash::Block::slice_as_chunks(part);
        // `whole` first: `zip` stops on it without taking a slot.
        for (block, slot) in whole.iter().zip(slots.by_ref()) {
            *slot = *block;
        }
        if !tail.is_empty() {
            if let Some(slot) = slots.next() {
                for (d, s) in slot.iter_mut().zip(tail) {
                    *d = *s;
                }
            }
        }
    }
    if let Some(slot) = slots.next() {
        *slot = *lengths;
    }
    ghash.update(buf.get(..runs).unwrap_or_default());
    true
}

// `Aes128` is `ZeroizeOnDrop` with its `zeroize` feature, and `GHash`'s
// POLYVAL state clears itself in its `Drop` with ghash's (the AES key
// schedule and the GHASH key); `Gcm` holds nothing else.
impl ZeroizeOnDrop for Gcm {}

impl core::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Gcm(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [0x11; 16];

    #[test]
    fn nonce_layout_is_direction_then_big_endian_seq() {
        assert_eq!(nonce(1, 0x0102_0304), [0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(nonce(0, 0), [0; 12]);
        assert_ne!(nonce(0, 5), nonce(1, 5));
    }

    #[test]
    fn seal_then_open_round_trips() {
        let g = Gcm::new(&AlgKey::from_bytes(KEY));
        let mut buf = *b"hello, eese";
        let tag = g.seal(&nonce(0, 7), b"hdr", &mut buf).unwrap();
        assert_ne!(&buf, b"hello, eese");
        g.open(&nonce(0, 7), b"hdr", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"hello, eese");
    }

    #[test]
    fn open_with_wrong_nonce_fails_and_keeps_ciphertext() {
        let g = Gcm::new(&AlgKey::from_bytes(KEY));
        let mut buf = [0x42u8; 20];
        let tag = g.seal(&nonce(0, 1), &[], &mut buf).unwrap();
        let sealed = buf;
        assert_eq!(
            g.open(&nonce(1, 1), &[], &mut buf, &tag),
            Err(Error::BadTag)
        );
        assert_eq!(buf, sealed);
    }

    #[test]
    fn empty_plaintext_still_authenticates_aad() {
        let g = Gcm::new(&AlgKey::from_bytes(KEY));
        let mut empty: [u8; 0] = [];
        let tag = g.seal(&nonce(0, 0), b"aad", &mut empty).unwrap();
        assert_eq!(g.open(&nonce(0, 0), b"aad", &mut empty, &tag), Ok(()));
        assert_eq!(
            g.open(&nonce(0, 0), b"aae", &mut empty, &tag),
            Err(Error::BadTag)
        );
    }

    #[test]
    fn debug_does_not_print_key_material() {
        extern crate std;
        assert_eq!(
            std::format!("{:?}", Gcm::new(&AlgKey::from_bytes(KEY))),
            "Gcm(<redacted>)"
        );
    }

    #[test]
    fn gcm_zeroizes_on_drop() {
        fn assert_zod<T: ZeroizeOnDrop>() {}
        assert_zod::<Aes128>();
        assert_zod::<Gcm>();
    }

    #[test]
    fn composition_equals_the_aes_gcm_crate_for_every_length_up_to_100() {
        use aes_gcm::Aes128Gcm;
        use aes_gcm::aead::AeadInOut;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 * 7 + 3);
        let ours = Gcm::new(&AlgKey::from_bytes(key));
        let theirs = <Aes128Gcm as aes_gcm::aead::KeyInit>::new(&key.into());
        for len in 0..=100usize {
            let n = nonce((len % 2) as u8, len as u32 * 977);
            let aad: [u8; 9] = core::array::from_fn(|i| (len + i) as u8);
            let plain: [u8; 100] = core::array::from_fn(|i| (i * 31 + len) as u8);
            let (mut a, mut b) = (plain, plain);
            let tag = ours.seal(&n, &aad, &mut a[..len]).unwrap();
            let want = theirs
                .encrypt_inout_detached(&n.into(), &aad, (&mut b[..len]).into())
                .unwrap();
            assert_eq!(
                (&a[..len], &tag[..]),
                (&b[..len], &want[..]),
                "length {len}"
            );
            ours.open(&n, &aad, &mut a[..len], &tag).unwrap();
            assert_eq!(a[..len], plain[..len], "length {len}");
        }
    }

    #[test]
    fn composition_equals_the_aes_gcm_crate_for_every_aad_length_up_to_100_and_data_up_to_1100() {
        // Every way the blocks of AAD, data and lengths fall into GHASH's
        // runs of four (each may start, end or straddle a run), and the
        // messages too long to be laid out at once.
        use aes_gcm::Aes128Gcm;
        use aes_gcm::aead::AeadInOut;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 * 5 + 1);
        let ours = Gcm::new(&AlgKey::from_bytes(key));
        let theirs = <Aes128Gcm as aes_gcm::aead::KeyInit>::new(&key.into());
        let aad: [u8; 100] = core::array::from_fn(|i| (i * 13) as u8);
        let plain: [u8; 1100] = core::array::from_fn(|i| (i * 31 + 1) as u8);
        let longer = [255, 256, 257, 1000, 1023, 1024, 1025, 1100];
        for aad_len in 0..=100usize {
            for len in (0..=100usize).chain(longer) {
                let n = nonce(1, (aad_len * 101 + len) as u32);
                let (mut a, mut b) = (plain, plain);
                let tag = ours.seal(&n, &aad[..aad_len], &mut a[..len]).unwrap();
                let want = theirs
                    .encrypt_inout_detached(&n.into(), &aad[..aad_len], (&mut b[..len]).into())
                    .unwrap();
                assert_eq!(tag[..], want[..], "aad {aad_len}, data {len}");
                assert_eq!(a[..len], b[..len], "aad {aad_len}, data {len}");
                ours.open(&n, &aad[..aad_len], &mut a[..len], &tag).unwrap();
                assert_eq!(a[..len], plain[..len], "aad {aad_len}, data {len}");
            }
        }
    }
}
