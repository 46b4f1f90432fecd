//! The portable backend: AES-128-GCM composed from RustCrypto's `aes`,
//! `ctr` and `ghash` (the module above says why it is composed here). It is
//! what every device build and every build without `platform-aes-gcm` uses.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr32BE;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{NONCE_LEN, TAG_LEN, check_lengths};
use crate::kdf::AlgKey;
use crate::protect::Error;

/// AES-128-GCM under one key: key schedule and GHASH key computed once.
#[derive(Clone)]
pub struct Gcm {
    aes: Aes128,
    ghash: GHash,
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
        let mut tag = [0u8; TAG_LEN];
        self.seal_to(nonce, aad, buf, &mut tag)?;
        Ok(tag)
    }

    /// [`Gcm::seal`] with the tag written to `tag` (the same call as the
    /// platform backend's).
    ///
    /// # Errors
    /// As [`Gcm::seal`]; `buf` and `tag` are unchanged then.
    pub(crate) fn seal_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), Error> {
        check_lengths(aad, buf)?;
        let (ctr, mask) = self.gctr(nonce);
        // Checks the counter's room before it touches `buf`.
        ctr.try_apply_keystream_partial(buf.into())
            .map_err(|_| Error::GcmTooLong {
                data: buf.len(),
                aad: aad.len(),
            })?;
        *tag = self.tag(mask, aad, buf);
        Ok(())
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
