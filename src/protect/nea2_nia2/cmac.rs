//! AES-128-CMAC over bit strings (NIST SP 800-38B; RFC 4493 on octets):
//! what 128-NIA2 runs on. Written here because the `cmac` crate takes
//! octets only (see the module doc of `nea2_nia2`).

use aes::Aes128;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Error, partial_mask};
use crate::kdf::AlgKey;

/// AES-128-CMAC (NIST SP 800-38B; RFC 4493 for octet strings) over messages
/// of any length in bits, key schedule and subkeys computed once.
#[derive(Clone)]
pub struct AesCmac {
    pub(super) aes: Aes128,
    pub(super) k1: [u8; 16],
    pub(super) k2: [u8; 16],
}

/// RFC 4493 2.3 / SP 800-38B 6.1: multiply by x in GF(2^128), constant time.
pub(super) fn dbl(block: [u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(block);
    // R_128 = 0^120 || 10000111, added when the top bit shifts out.
    ((v << 1) ^ ((v >> 127) * 0x87)).to_be_bytes()
}

/// XORs `src` into the front of `dst` (`src.len() <= 16`).
pub(super) fn xor_into(dst: &mut aes::Block, src: &[u8]) {
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
    pub(super) fn mac_parts(&self, head: &[u8], message: &[u8], mask: Option<u8>) -> [u8; 16] {
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
