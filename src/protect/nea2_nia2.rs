//! 128-NEA2 (AES-128-CTR) and 128-NIA2 (AES-128-CMAC, 32-bit MAC) exactly as
//! TS 33.401 Annex B.1.3 / B.2.3 and TS 33.501 Annex D.2.3 / D.3.3 define them.
//!
//! Both take the 3GPP inputs COUNT (32 bits), BEARER (5 bits), DIRECTION
//! (1 bit) and a LENGTH in bits that need not be a multiple of 8. The data
//! slice must hold exactly `ceil(LENGTH / 8)` octets; only the leading LENGTH
//! bits count, the rest of the last octet is ignored on input and written as
//! zero by 128-NEA2.
//!
//! The keyed structs [`Nea2`], [`Nia2`] and [`AesCmac`] expand the AES key
//! once, so protecting a message does no key schedule. All zeroize on drop.
//!
//! # Why CMAC is written here
//! 128-NIA2 is the CMAC of NIST SP 800-38B over a *bit* string
//! (`COUNT || BEARER || DIRECTION || 0^26 || MESSAGE`, 64 + LENGTH bits). The
//! `cmac` crate takes octets only, so it cannot express LENGTH = 58 or 254
//! (test sets 1 and 3). [`AesCmac`] is SP 800-38B on top of the `aes` block
//! cipher with bit-granular final-block padding; on octet strings it is
//! RFC 4493, which the unit tests check against the RFC's vectors and against
//! the `cmac` crate for every length from 0 to 100 octets.

use aes::Aes128;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InnerIvInit,
    KeyInit, StreamCipherCore,
};
use ctr::CtrCore;
use ctr::flavors::Ctr64BE;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;
use crate::kdf::AlgKey;

/// Length of a 128-NIA2 MAC in octets (32 bits, TS 33.401 B.2.3).
pub const MAC_LEN: usize = 4;

/// Largest BEARER value (5 bits).
pub const MAX_BEARER: u8 = 31;

/// Checks the 3GPP inputs and the bit length against the data and returns the
/// 8-octet prefix `COUNT || BEARER || DIRECTION || 0^26` shared by the
/// NEA2 counter block and the NIA2 message.
fn prefix(
    count: u32,
    bearer: u8,
    direction: u8,
    octets: usize,
    bits: usize,
) -> Result<[u8; 8], Error> {
    if bearer > MAX_BEARER {
        return Err(Error::BadBearer(bearer));
    }
    if direction > 1 {
        return Err(Error::BadDirection(direction));
    }
    let needed = bits.div_ceil(8);
    if needed > octets {
        return Err(Error::BitsTooLong {
            bits,
            available: octets.saturating_mul(8),
        });
    }
    if needed < octets {
        return Err(Error::DataLongerThanBits { bits, octets });
    }
    let [c0, c1, c2, c3] = count.to_be_bytes();
    // TS 33.401 B.1.3 / B.2.3: BEARER in the 5 high bits of octet 4, then
    // DIRECTION, then 26 zero bits.
    Ok([c0, c1, c2, c3, (bearer << 3) | (direction << 2), 0, 0, 0])
}

/// The mask keeping the `bits % 8` leading bits of a final partial octet, or
/// `None` when `bits` is a whole number of octets.
const fn partial_mask(bits: usize) -> Option<u8> {
    match bits % 8 {
        0 => None,
        // r in 1..=7, so the shift is in range.
        r => Some(0xff << (8 - r)),
    }
}

/// 128-NEA2 under one key: AES-128 in counter mode, key schedule done once.
///
/// The initial counter block is `T1 = COUNT || BEARER || DIRECTION || 0^26 ||
/// 0^64` and each further block adds one to its low 64 bits (TS 33.401 B.1.3:
/// the standard incrementing function of SP 800-38A B.1 with m = 64). That is
/// the `Ctr64BE` flavour of the `ctr` crate; `Ctr128BE` would carry into the
/// high 64 bits after 2^64 blocks, which the spec's function never does. No
/// message comes near 2^64 blocks, so the two give the same keystream, but
/// `Ctr64BE` is the one that states the spec.
///
/// Encryption and decryption are the same operation ([`Nea2::apply`]).
#[derive(Clone)]
pub struct Nea2 {
    aes: Aes128,
}

impl Nea2 {
    /// Expands `key` for 128-NEA2.
    #[must_use]
    pub fn new(key: &AlgKey) -> Self {
        Nea2 {
            aes: Aes128::new(key.as_bytes().into()),
        }
    }

    /// Encrypts or decrypts the leading `bits` bits of `data` in place.
    ///
    /// `data` must be exactly `ceil(bits / 8)` octets. When `bits` is not a
    /// multiple of 8 the unused trailing bits of the last octet are set to
    /// zero, as in the published test data. On error `data` is unchanged.
    ///
    /// # Errors
    /// - [`Error::BadBearer`] when `bearer > 31`;
    /// - [`Error::BadDirection`] when `direction > 1`;
    /// - [`Error::BitsTooLong`] when `data` is shorter than `ceil(bits / 8)`;
    /// - [`Error::DataLongerThanBits`] when it is longer.
    pub fn apply(
        &self,
        count: u32,
        bearer: u8,
        direction: u8,
        data: &mut [u8],
        bits: usize,
    ) -> Result<(), Error> {
        let p = prefix(count, bearer, direction, data.len(), bits)?;
        let [c0, c1, c2, c3, b, z0, z1, z2] = p;
        let t1 = aes::Block::from([c0, c1, c2, c3, b, z0, z1, z2, 0, 0, 0, 0, 0, 0, 0, 0]);
        // The 64-bit counter allows 2^64 blocks (2^68 octets); no slice is
        // that long, so `apply_keystream_partial` cannot run out and panic.
        CtrCore::<&Aes128, Ctr64BE>::inner_iv_init(&self.aes, &t1)
            .apply_keystream_partial(data.into());
        if let (Some(mask), Some(last)) = (partial_mask(bits), data.last_mut()) {
            *last &= mask;
        }
        Ok(())
    }
}

impl ZeroizeOnDrop for Nea2 {}

impl core::fmt::Debug for Nea2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Nea2(<redacted>)")
    }
}

/// AES-128-CMAC (NIST SP 800-38B; RFC 4493 for octet strings) over messages
/// of any length in bits, key schedule and subkeys computed once.
#[derive(Clone)]
pub struct AesCmac {
    aes: Aes128,
    k1: [u8; 16],
    k2: [u8; 16],
}

/// RFC 4493 2.3 / SP 800-38B 6.1: multiply by x in GF(2^128), constant time.
fn dbl(block: [u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(block);
    // R_128 = 0^120 || 10000111, added when the top bit shifts out.
    ((v << 1) ^ ((v >> 127) * 0x87)).to_be_bytes()
}

/// XORs `src` into the front of `dst` (`src.len() <= 16`).
fn xor_into(dst: &mut aes::Block, src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= *s;
    }
}

/// The CBC-MAC chain of a CMAC computation: `x` holds the chaining value with
/// the current block's octets already added in; `fill` counts them. It runs
/// on the AES backend directly, so the per-block cost is one AES call.
struct Chain<'a, B: BlockCipherEncBackend<BlockSize = U16>> {
    aes: &'a B,
    x: aes::Block,
    fill: usize,
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Chain<'_, B> {
    /// Absorbs whole octets. A full block is only encrypted once more data
    /// follows, because the last block is treated differently.
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.fill == 16 {
                self.aes.encrypt_block_inplace(&mut self.x);
                self.fill = 0;
            }
            let take = (16 - self.fill).min(data.len());
            let (now, rest) = data.split_at(take);
            if let Some(dst) = self.x.get_mut(self.fill..) {
                for (d, s) in dst.iter_mut().zip(now) {
                    *d ^= *s;
                }
            }
            self.fill += take;
            data = rest;
        }
    }

    /// Absorbs one final octet of which only the `r` leading bits (1..=7)
    /// belong to the message, with the padding bit right after them, and
    /// returns the tag (the block is necessarily incomplete: subkey K2).
    fn finish_partial(mut self, last: u8, mask: u8, k2: &[u8; 16]) -> [u8; 16] {
        // The padding "1" sits just below the kept bits: mask's lowest set
        // bit, shifted one right.
        let pad = (mask & mask.wrapping_neg()) >> 1;
        self.update(&[(last & mask) | pad]);
        xor_into(&mut self.x, k2);
        self.aes.encrypt_block_inplace(&mut self.x);
        self.x.into()
    }

    /// Finishes an octet-aligned message: a complete last block takes K1,
    /// otherwise (including the empty message) pad with `10*` and take K2.
    fn finish_aligned(mut self, k1: &[u8; 16], k2: &[u8; 16]) -> [u8; 16] {
        if self.fill == 16 {
            xor_into(&mut self.x, k1);
        } else {
            if let Some(b) = self.x.get_mut(self.fill) {
                *b ^= 0x80;
            }
            xor_into(&mut self.x, k2);
        }
        self.aes.encrypt_block_inplace(&mut self.x);
        self.x.into()
    }
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Drop for Chain<'_, B> {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl AesCmac {
    /// Expands `key` and derives the subkeys K1, K2 (RFC 4493 2.3).
    #[must_use]
    pub fn new(key: &AlgKey) -> Self {
        let aes = Aes128::new(key.as_bytes().into());
        let mut l = aes::Block::default();
        aes.encrypt_block(&mut l);
        let mut l_bytes: [u8; 16] = l.into();
        let k1 = dbl(l_bytes);
        let k2 = dbl(k1);
        l_bytes.zeroize();
        l.zeroize();
        AesCmac { aes, k1, k2 }
    }

    /// The CMAC of an octet string (RFC 4493).
    #[must_use]
    pub fn mac(&self, message: &[u8]) -> [u8; 16] {
        self.mac_parts(&[], message, None)
    }

    /// The CMAC of the leading `bits` bits of `message` (SP 800-38B); the
    /// unused trailing bits of the last octet are ignored.
    ///
    /// # Errors
    /// [`Error::BitsTooLong`] when `message` is shorter than `ceil(bits / 8)`
    /// octets, [`Error::DataLongerThanBits`] when it is longer.
    pub fn mac_bits(&self, message: &[u8], bits: usize) -> Result<[u8; 16], Error> {
        let needed = bits.div_ceil(8);
        if needed > message.len() {
            return Err(Error::BitsTooLong {
                bits,
                available: message.len().saturating_mul(8),
            });
        }
        if needed < message.len() {
            return Err(Error::DataLongerThanBits {
                bits,
                octets: message.len(),
            });
        }
        Ok(self.mac_parts(&[], message, partial_mask(bits)))
    }

    /// CMAC over `head || message`, where `head` is whole octets and, when
    /// `mask` is given, only the masked leading bits of `message`'s last
    /// octet belong to the input. Callers have checked the lengths.
    fn mac_parts(&self, head: &[u8], message: &[u8], mask: Option<u8>) -> [u8; 16] {
        let mut out = [0u8; 16];
        self.aes.encrypt_with_backend(MacRun {
            cmac: self,
            head,
            message,
            mask,
            out: &mut out,
        });
        out
    }
}

/// One CMAC computation handed to the AES backend (the `cipher` crate's
/// closure pattern, as the `cmac` crate uses it).
struct MacRun<'a> {
    cmac: &'a AesCmac,
    head: &'a [u8],
    message: &'a [u8],
    mask: Option<u8>,
    out: &'a mut [u8; 16],
}

impl BlockSizeUser for MacRun<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for MacRun<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let MacRun {
            cmac,
            head,
            message,
            mask,
            out,
        } = self;
        let mut chain = Chain {
            aes: backend,
            x: aes::Block::default(),
            fill: 0,
        };
        chain.update(head);
        *out = if let (Some(mask), Some((&last, body))) = (mask, message.split_last()) {
            chain.update(body);
            chain.finish_partial(last, mask, &cmac.k2)
        } else {
            chain.update(message);
            chain.finish_aligned(&cmac.k1, &cmac.k2)
        };
    }
}

impl Drop for AesCmac {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

impl ZeroizeOnDrop for AesCmac {}

impl core::fmt::Debug for AesCmac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AesCmac(<redacted>)")
    }
}

/// 128-NIA2 under one key: the first 32 bits of AES-128-CMAC over
/// `COUNT || BEARER || DIRECTION || 0^26 || MESSAGE` (TS 33.401 B.2.3), where
/// MESSAGE is LENGTH bits long.
#[derive(Clone)]
pub struct Nia2 {
    cmac: AesCmac,
}

impl Nia2 {
    /// Expands `key` for 128-NIA2.
    #[must_use]
    pub fn new(key: &AlgKey) -> Self {
        Nia2 {
            cmac: AesCmac::new(key),
        }
    }

    /// The 32-bit MAC of the leading `bits` bits of `message`.
    ///
    /// `message` must be exactly `ceil(bits / 8)` octets; the unused trailing
    /// bits of its last octet do not enter the MAC.
    ///
    /// # Errors
    /// - [`Error::BadBearer`] when `bearer > 31`;
    /// - [`Error::BadDirection`] when `direction > 1`;
    /// - [`Error::BitsTooLong`] when `message` is shorter than `ceil(bits / 8)`;
    /// - [`Error::DataLongerThanBits`] when it is longer.
    pub fn mac(
        &self,
        count: u32,
        bearer: u8,
        direction: u8,
        message: &[u8],
        bits: usize,
    ) -> Result<[u8; MAC_LEN], Error> {
        let p = prefix(count, bearer, direction, message.len(), bits)?;
        let mut t = self.cmac.mac_parts(&p, message, partial_mask(bits));
        // TS 33.401 B.2.3: MACT is the first 32 bits of the CMAC output.
        let [a, b, c, d, ..] = t;
        t.zeroize();
        Ok([a, b, c, d])
    }

    /// Checks a received MAC in constant time.
    ///
    /// # Errors
    /// [`Error::BadTag`] when the MAC does not match, and the input errors of
    /// [`Nia2::mac`].
    pub fn verify(
        &self,
        count: u32,
        bearer: u8,
        direction: u8,
        message: &[u8],
        bits: usize,
        mac: &[u8; MAC_LEN],
    ) -> Result<(), Error> {
        let expected = self.mac(count, bearer, direction, message, bits)?;
        if bool::from(expected.ct_eq(mac)) {
            Ok(())
        } else {
            Err(Error::BadTag)
        }
    }
}

impl ZeroizeOnDrop for Nia2 {}

impl core::fmt::Debug for Nia2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Nia2(<redacted>)")
    }
}

/// One-shot 128-NEA2: [`Nea2::new`] then [`Nea2::apply`].
///
/// # Errors
/// As [`Nea2::apply`].
pub fn nea2(
    key: &AlgKey,
    count: u32,
    bearer: u8,
    direction: u8,
    data: &mut [u8],
    bits: usize,
) -> Result<(), Error> {
    Nea2::new(key).apply(count, bearer, direction, data, bits)
}

/// One-shot 128-NIA2: [`Nia2::new`] then [`Nia2::mac`].
///
/// # Errors
/// As [`Nia2::mac`].
pub fn nia2(
    key: &AlgKey,
    count: u32,
    bearer: u8,
    direction: u8,
    message: &[u8],
    bits: usize,
) -> Result<[u8; MAC_LEN], Error> {
    Nia2::new(key).mac(count, bearer, direction, message, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex: &[u8; 16]) -> AlgKey {
        AlgKey::from_bytes(*hex)
    }

    // TS 33.401 C.2 test set 1 (LENGTH = 58).
    const NIA2_SET1_KEY: [u8; 16] = [
        0x2b, 0xd6, 0x45, 0x9f, 0x82, 0xc5, 0xb3, 0x00, 0x95, 0x2c, 0x49, 0x10, 0x48, 0x81, 0xff,
        0x48,
    ];
    const NIA2_SET1_MSG: [u8; 8] = [0x33, 0x32, 0x34, 0x62, 0x63, 0x39, 0x38, 0x40];

    // RFC 4493 4: the key of all four examples.
    const RFC4493_KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f,
        0x3c,
    ];

    #[test]
    fn subkeys_match_rfc4493_section_4() {
        let c = AesCmac::new(&key(&RFC4493_KEY));
        assert_eq!(
            c.k1,
            [
                0xfb, 0xee, 0xd6, 0x18, 0x35, 0x71, 0x33, 0x66, 0x7c, 0x85, 0xe0, 0x8f, 0x72, 0x36,
                0xa8, 0xde
            ]
        );
        assert_eq!(
            c.k2,
            [
                0xf7, 0xdd, 0xac, 0x30, 0x6a, 0xe2, 0x66, 0xcc, 0xf9, 0x0b, 0xc1, 0x1e, 0xe4, 0x6d,
                0x51, 0x3b
            ]
        );
    }

    #[test]
    fn dbl_reduces_when_top_bit_is_set() {
        let mut top = [0u8; 16];
        top[0] = 0x80;
        let mut want = [0u8; 16];
        want[15] = 0x87;
        assert_eq!(dbl(top), want);
        let mut one = [0u8; 16];
        one[15] = 1;
        let mut two = [0u8; 16];
        two[15] = 2;
        assert_eq!(dbl(one), two);
    }

    #[test]
    fn empty_message_cmac_matches_rfc4493_example_1() {
        let c = AesCmac::new(&key(&RFC4493_KEY));
        assert_eq!(
            c.mac(&[]),
            [
                0xbb, 0x1d, 0x69, 0x29, 0xe9, 0x59, 0x37, 0x28, 0x7f, 0xa3, 0x7d, 0x12, 0x9b, 0x75,
                0x67, 0x46
            ]
        );
        assert_eq!(c.mac_bits(&[], 0), Ok(c.mac(&[])));
    }

    #[test]
    fn octet_cmac_agrees_with_the_cmac_crate_for_lengths_0_to_100() {
        use cmac::{Cmac, Mac};
        let k = key(&RFC4493_KEY);
        let ours = AesCmac::new(&k);
        let mut msg = [0u8; 100];
        for (i, b) in msg.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for len in 0..=msg.len() {
            let mut theirs = <Cmac<Aes128> as cmac::KeyInit>::new(k.as_bytes().into());
            theirs.update(&msg[..len]);
            let want: [u8; 16] = theirs.finalize().into_bytes().into();
            assert_eq!(ours.mac(&msg[..len]), want, "length {len}");
            assert_eq!(
                ours.mac_bits(&msg[..len], len * 8),
                Ok(want),
                "length {len} as bits"
            );
        }
    }

    #[test]
    fn bit_cmac_ignores_unused_trailing_bits() {
        let c = AesCmac::new(&key(&RFC4493_KEY));
        // 13 bits: only the top 5 bits of the second octet count.
        let a = c.mac_bits(&[0xa5, 0b1011_0000], 13);
        let b = c.mac_bits(&[0xa5, 0b1011_0111], 13);
        assert_eq!(a, b);
        let flipped = c.mac_bits(&[0xa5, 0b1010_0000], 13);
        assert_ne!(a, flipped);
    }

    #[test]
    fn bit_cmac_pads_right_after_the_last_bit() {
        // A 7-bit message equals the octet-aligned message whose last octet
        // already carries the padding bit, minus the aligned padding: check
        // it against the definition on one block, E((M || 1 0*) ^ K2).
        let c = AesCmac::new(&key(&RFC4493_KEY));
        let mut block = aes::Block::default();
        block[0] = 0b1010_1011; // 1010101 then the padding 1
        xor_into(&mut block, &c.k2);
        c.aes.encrypt_block(&mut block);
        let want: [u8; 16] = block.into();
        assert_eq!(c.mac_bits(&[0b1010_1010], 7), Ok(want));
    }

    #[test]
    fn bit_cmac_with_a_full_128_bit_block_uses_k1() {
        // 128 bits of message: complete block, no padding.
        let c = AesCmac::new(&key(&RFC4493_KEY));
        let msg = [0x5au8; 16];
        let mut block = aes::Block::from(msg);
        xor_into(&mut block, &c.k1);
        c.aes.encrypt_block(&mut block);
        let want: [u8; 16] = block.into();
        assert_eq!(c.mac_bits(&msg, 128), Ok(want));
    }

    #[test]
    fn nia2_set1_with_58_bits_matches_published_mac() {
        let mac = nia2(&key(&NIA2_SET1_KEY), 0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58);
        assert_eq!(mac, Ok([0x11, 0x8c, 0x6e, 0xb8]));
    }

    #[test]
    fn nia2_verify_accepts_the_right_mac_and_rejects_others() {
        let n = Nia2::new(&key(&NIA2_SET1_KEY));
        let good = [0x11, 0x8c, 0x6e, 0xb8];
        assert_eq!(
            n.verify(0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58, &good),
            Ok(())
        );
        for bit in 0..32 {
            let mut bad = good;
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(
                n.verify(0x38a6_f056, 24, 0, &NIA2_SET1_MSG, 58, &bad),
                Err(Error::BadTag),
                "bit {bit}"
            );
        }
        // Every input bit is covered: COUNT, BEARER and DIRECTION too.
        assert_eq!(
            n.verify(0x38a6_f057, 24, 0, &NIA2_SET1_MSG, 58, &good),
            Err(Error::BadTag)
        );
        assert_eq!(
            n.verify(0x38a6_f056, 25, 0, &NIA2_SET1_MSG, 58, &good),
            Err(Error::BadTag)
        );
        assert_eq!(
            n.verify(0x38a6_f056, 24, 1, &NIA2_SET1_MSG, 58, &good),
            Err(Error::BadTag)
        );
    }

    #[test]
    fn nia2_rejects_bad_bearer_direction_and_lengths() {
        let n = Nia2::new(&key(&NIA2_SET1_KEY));
        assert_eq!(n.mac(0, 32, 0, &[0], 8), Err(Error::BadBearer(32)));
        assert_eq!(n.mac(0, 0, 2, &[0], 8), Err(Error::BadDirection(2)));
        assert_eq!(
            n.mac(0, 0, 0, &[0], 9),
            Err(Error::BitsTooLong {
                bits: 9,
                available: 8
            })
        );
        assert_eq!(
            n.mac(0, 0, 0, &[0, 0], 8),
            Err(Error::DataLongerThanBits { bits: 8, octets: 2 })
        );
        assert!(n.mac(0, 31, 1, &[], 0).is_ok());
    }

    #[test]
    fn nea2_zeroes_unused_trailing_bits_and_round_trips() {
        let k = key(&NIA2_SET1_KEY);
        let plain = [0xffu8; 5];
        let mut buf = plain;
        nea2(&k, 7, 3, 1, &mut buf, 35).unwrap();
        assert_eq!(buf[4] & 0x1f, 0, "trailing 5 bits must be zero");
        nea2(&k, 7, 3, 1, &mut buf, 35).unwrap();
        assert_eq!(buf, [0xff, 0xff, 0xff, 0xff, 0xe0]);
    }

    #[test]
    fn nea2_keystream_starts_at_count_bearer_direction_block() {
        // The first keystream block is AES_K(T1) with T1 built per B.1.3.
        let k = key(&NIA2_SET1_KEY);
        let mut data = [0u8; 16];
        nea2(&k, 0x0102_0304, 0b10101, 1, &mut data, 128).unwrap();
        let aes = Aes128::new(k.as_bytes().into());
        let mut t1 = aes::Block::from([1, 2, 3, 4, 0b1010_1100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        aes.encrypt_block(&mut t1);
        let want: [u8; 16] = t1.into();
        assert_eq!(data, want);
    }

    #[test]
    fn nea2_counter_increments_the_low_64_bits() {
        // Second keystream block is AES_K(T1 + 1).
        let k = key(&NIA2_SET1_KEY);
        let mut data = [0u8; 32];
        Nea2::new(&k)
            .apply(0xffff_ffff, 31, 1, &mut data, 256)
            .unwrap();
        let aes = Aes128::new(k.as_bytes().into());
        let mut t2 = aes::Block::from([
            0xff, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ]);
        aes.encrypt_block(&mut t2);
        let want: [u8; 16] = t2.into();
        assert_eq!(data[16..], want);
    }

    #[test]
    fn nea2_rejects_bad_inputs_and_leaves_data_unchanged() {
        let n = Nea2::new(&key(&NIA2_SET1_KEY));
        let mut data = [0xa5u8; 3];
        assert_eq!(n.apply(0, 32, 0, &mut data, 24), Err(Error::BadBearer(32)));
        assert_eq!(n.apply(0, 0, 2, &mut data, 24), Err(Error::BadDirection(2)));
        assert_eq!(
            n.apply(0, 0, 0, &mut data, 25),
            Err(Error::BitsTooLong {
                bits: 25,
                available: 24
            })
        );
        assert_eq!(
            n.apply(0, 0, 0, &mut data, 16),
            Err(Error::DataLongerThanBits {
                bits: 16,
                octets: 3
            })
        );
        assert_eq!(data, [0xa5; 3]);
    }

    #[test]
    fn nea2_of_nothing_is_nothing() {
        let mut data: [u8; 0] = [];
        assert_eq!(
            Nea2::new(&key(&NIA2_SET1_KEY)).apply(0, 0, 0, &mut data, 0),
            Ok(())
        );
    }

    #[test]
    fn debug_does_not_print_key_material() {
        extern crate std;
        use std::format;
        let k = key(&NIA2_SET1_KEY);
        assert_eq!(format!("{:?}", Nea2::new(&k)), "Nea2(<redacted>)");
        assert_eq!(format!("{:?}", Nia2::new(&k)), "Nia2(<redacted>)");
        assert_eq!(format!("{:?}", AesCmac::new(&k)), "AesCmac(<redacted>)");
    }

    #[test]
    fn keyed_types_zeroize_on_drop() {
        fn assert_zod<T: ZeroizeOnDrop>() {}
        assert_zod::<Aes128>();
        assert_zod::<Nea2>();
        assert_zod::<Nia2>();
        assert_zod::<AesCmac>();
    }
}
