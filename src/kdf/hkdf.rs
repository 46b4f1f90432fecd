//! The HKDF-SHA-256 profile (RFC 5869).
//!
//! Every derivation of the crate builds the same S string as the TS 33.220
//! profile and hands it to HKDF as `info`:
//! `OKM = HKDF-Expand(HKDF-Extract(salt = none, IKM = key), info = S, L = 32)`.
//! With no salt, RFC 5869 §2.2 uses 32 zero octets. The pseudo-random key is
//! extracted once per key and kept, so a derivation costs one HMAC.

use hkdf::Hkdf;
use sha2::Sha256;

/// A key prepared for the HKDF profile: the PRK's HMAC state, zeroized on drop.
#[derive(Clone)]
pub struct HkdfKey {
    hkdf: Hkdf<Sha256>,
}

impl HkdfKey {
    /// Runs HKDF-Extract on `ikm` with no salt and keeps the PRK state.
    #[must_use]
    pub fn new(ikm: &[u8]) -> Self {
        HkdfKey {
            hkdf: Hkdf::<Sha256>::new(None, ikm),
        }
    }

    /// HKDF-Expand with `info` for 32 octets (one HMAC with the kept PRK state).
    #[must_use]
    pub fn expand(&self, info: &[u8]) -> [u8; 32] {
        let mut okm = [0u8; 32];
        // 32 ≤ 255 × 32 (RFC 5869 §2.3), the only length check `expand` makes.
        if self.hkdf.expand(info, &mut okm).is_err() {
            unreachable!("32 octets is a valid HKDF-SHA-256 output length");
        }
        okm
    }
}
