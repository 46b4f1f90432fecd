//! 128-NEA2: AES-128 in counter mode (TS 33.401 B.1.3).

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr64BE;
use zeroize::ZeroizeOnDrop;

use super::{Error, partial_mask, prefix};
use crate::kdf::AlgKey;

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
        // that long, so the keystream cannot run out. The fallible call
        // keeps the panicking one's unreachable branch out of the build.
        CtrCore::<&Aes128, Ctr64BE>::inner_iv_init(&self.aes, &t1)
            .try_apply_keystream_partial(data.into())
            .map_err(|_| Error::BitsTooLong {
                bits,
                available: usize::MAX,
            })?;
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
