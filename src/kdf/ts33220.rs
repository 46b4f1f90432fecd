//! The generic key derivation function of TS 33.220 Annex B.2.
//!
//! `S = FC || P0 || L0 || P1 || L1 || … || Pn || Ln` and
//! `derived key = HMAC-SHA-256(Key, S)`.
//!
//! The S string is streamed into the MAC: no parameter is copied and nothing
//! allocates, whatever the parameters' lengths.

use hkdf::HmacImpl;
use hmac::Hmac;
use sha2::Sha256;

use super::Error;

/// The function code `FC` that starts every S string.
///
/// TS 33.220 B.2.2: FC is one octet; the value `0xFF` is reserved and means
/// "a second octet `FC2` follows", so `0xFF` alone is not a valid FC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fc(FcRepr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum FcRepr {
    One([u8; 1]),
    Two([u8; 2]),
}

impl Fc {
    /// A one-octet FC.
    ///
    /// # Errors
    /// [`Error::ReservedFc`] for `0xFF`, which TS 33.220 B.2.2 reserves as the
    /// escape to a two-octet FC (use [`Fc::extended`]).
    pub const fn new(fc: u8) -> Result<Self, Error> {
        if fc == 0xff {
            Err(Error::ReservedFc)
        } else {
            Ok(Fc(FcRepr::One([fc])))
        }
    }

    /// The two-octet form `0xFF || FC2`.
    #[must_use]
    pub const fn extended(fc2: u8) -> Self {
        Fc(FcRepr::Two([0xff, fc2]))
    }

    /// Parses one or two octets as written on the wire of S (`10`, `ff01`).
    ///
    /// # Errors
    /// [`Error::ReservedFc`] for the lone octet `0xFF`;
    /// [`Error::BadFcLength`] for an empty slice, more than two octets, or
    /// two octets not starting with `0xFF`.
    pub fn from_octets(octets: &[u8]) -> Result<Self, Error> {
        match *octets {
            [fc] => Fc::new(fc),
            [0xff, fc2] => Ok(Fc::extended(fc2)),
            _ => Err(Error::BadFcLength { len: octets.len() }),
        }
    }

    /// The octets this FC puts at the head of S.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            FcRepr::One(b) => b,
            FcRepr::Two(b) => b,
        }
    }
}

/// The largest parameter: `Li` is two octets (TS 33.220 B.2.1).
pub const MAX_PARAM_LEN: usize = u16::MAX as usize;

/// Feeds `S = FC || P0 || L0 || …` to `sink`, in order, without copying.
///
/// Checks every length before feeding anything, so a rejected call has fed
/// nothing.
///
/// # Errors
/// [`Error::ParamTooLong`] when a parameter exceeds [`MAX_PARAM_LEN`].
pub(crate) fn encode_s(
    fc: Fc,
    params: &[&[u8]],
    mut sink: impl FnMut(&[u8]),
) -> Result<(), Error> {
    for (index, p) in params.iter().enumerate() {
        if p.len() > MAX_PARAM_LEN {
            return Err(Error::ParamTooLong { index, len: p.len() });
        }
    }
    sink(fc.as_bytes());
    for p in params {
        sink(p);
        // TS 33.220 B.2.1: Li is the length of Pi in octets, two octets big endian.
        // The bound was checked above, so the cast keeps every bit.
        sink(&(p.len() as u16).to_be_bytes());
    }
    Ok(())
}

/// The TS 33.220 Annex B.2 KDF: `HMAC-SHA-256(key, FC || P0 || L0 || …)`.
///
/// ```
/// use ciot_e2e::kdf::{kdf, Fc};
/// // RFC 5448 Appendix C test case 1 (CK'||IK', FC 0x20).
/// let key = [0x53, 0x49, 0xfb, 0xe0, 0x98, 0x64, 0x9f, 0x94, 0x8f, 0x5d, 0x2e, 0x97,
///            0x3a, 0x81, 0xc0, 0x0f, 0x97, 0x44, 0x87, 0x1a, 0xd3, 0x2b, 0xf9, 0xbb,
///            0xd1, 0xdd, 0x5c, 0xe5, 0x4e, 0x3e, 0x2e, 0x5a];
/// let out = kdf(&key, Fc::new(0x20)?, &[b"WLAN", &[0xbb, 0x52, 0xe9, 0x1c, 0x74, 0x7a]])?;
/// assert_eq!(out[..4], [0x00, 0x93, 0x96, 0x2d]);
/// # Ok::<(), ciot_e2e::kdf::Error>(())
/// ```
///
/// # Errors
/// [`Error::ParamTooLong`] when a parameter is longer than 65535 octets.
pub fn kdf(key: &[u8], fc: Fc, params: &[&[u8]]) -> Result<[u8; 32], Error> {
    Ts33220Key::new(key).derive(fc, params)
}

/// A TS 33.220 KDF key with HMAC's inner and outer pads already absorbed.
///
/// Deriving from it costs the compressions of S and of the inner digest only
/// (two SHA-256 compressions for an S of up to 55 octets) instead of four.
/// The keyed state is zeroized on drop.
#[derive(Clone)]
pub struct Ts33220Key {
    mac: Hmac<Sha256>,
}

impl Ts33220Key {
    /// Absorbs `key` (any length, TS 33.220 uses 256 bits) into a reusable state.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Ts33220Key {
            mac: <Hmac<Sha256> as HmacImpl>::new_from_slice(key),
        }
    }

    /// Derives `HMAC-SHA-256(key, S)` for the given FC and parameters.
    ///
    /// # Errors
    /// [`Error::ParamTooLong`] when a parameter is longer than 65535 octets.
    pub fn derive(&self, fc: Fc, params: &[&[u8]]) -> Result<[u8; 32], Error> {
        let mut mac = self.mac.clone();
        encode_s(fc, params, |chunk| HmacImpl::update(&mut mac, chunk))?;
        Ok(HmacImpl::finalize(mac).into())
    }

    /// `HMAC-SHA-256(key, s)` for an S string that is already encoded.
    pub(crate) fn mac(&self, s: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        HmacImpl::update(&mut mac, s);
        HmacImpl::finalize(mac).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_ff_is_rejected() {
        assert_eq!(Fc::new(0xff), Err(Error::ReservedFc));
        assert_eq!(Fc::from_octets(&[0xff]), Err(Error::ReservedFc));
    }

    #[test]
    fn two_octet_fc_needs_ff_escape() {
        assert_eq!(Fc::from_octets(&[0xff, 0x01]).map(|f| f.as_bytes().len()), Ok(2));
        assert_eq!(Fc::from_octets(&[0x10, 0x01]), Err(Error::BadFcLength { len: 2 }));
        assert_eq!(Fc::from_octets(&[]), Err(Error::BadFcLength { len: 0 }));
        assert_eq!(Fc::from_octets(&[1, 2, 3]), Err(Error::BadFcLength { len: 3 }));
    }

    #[test]
    fn s_string_layout() {
        let mut s = [0u8; 32];
        let mut n = 0;
        encode_s(Fc::extended(0x07), &[&[0xaa, 0xbb], &[]], |c| {
            s[n..n + c.len()].copy_from_slice(c);
            n += c.len();
        })
        .unwrap();
        assert_eq!(&s[..n], &[0xff, 0x07, 0xaa, 0xbb, 0x00, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn param_of_65535_octets_is_accepted_and_65536_rejected() {
        static BIG: [u8; 65536] = [0u8; 65536];
        let fc = Fc::new(0x10).unwrap();
        assert!(kdf(&[1; 32], fc, &[&BIG[..65535]]).is_ok());
        assert_eq!(
            kdf(&[1; 32], fc, &[&[], &BIG[..]]),
            Err(Error::ParamTooLong { index: 1, len: 65536 })
        );
    }
}
