//! 128-NIA2: the first 32 bits of AES-128-CMAC over the 3GPP prefix and the
//! message (TS 33.401 B.2.3).

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::cmac::AesCmac;
use super::{Error, MAC_LEN, partial_mask, prefix};
use crate::kdf::AlgKey;

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
