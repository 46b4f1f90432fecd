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
//!
//! The code is split by concept: [`nea2`](self) (`nea2.rs`), the bit-level
//! CMAC (`cmac.rs`) and 128-NIA2 on top of it (`nia2.rs`); this file holds
//! the 3GPP inputs they share.

use super::Error;
use crate::kdf::AlgKey;

mod cmac;
mod nea2;
mod nia2;
#[cfg(test)]
mod tests;

pub use cmac::AesCmac;
pub use nea2::Nea2;
pub use nia2::Nia2;

/// Length of a 128-NIA2 MAC in octets (32 bits, TS 33.401 B.2.3).
pub const MAC_LEN: usize = 4;

/// Largest BEARER value (5 bits).
pub const MAX_BEARER: u8 = 31;

/// Checks the 3GPP inputs and the bit length against the data and returns the
/// 8-octet prefix `COUNT || BEARER || DIRECTION || 0^26` shared by the
/// NEA2 counter block and the NIA2 message.
pub(crate) fn prefix(
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
pub(crate) const fn partial_mask(bits: usize) -> Option<u8> {
    match bits % 8 {
        0 => None,
        // r in 1..=7, so the shift is in range.
        r => Some(0xff << (8 - r)),
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
