//! The HKDF-SHA-256 profile (RFC 5869).
//!
//! Every derivation of the crate builds the same S string as the TS 33.220
//! profile and hands it to HKDF as `info`:
//! `OKM = HKDF-Expand(HKDF-Extract(salt = none, IKM = key), info = S, L = 32)`.
//! With no salt, RFC 5869 §2.2 uses 32 zero octets. For L = 32, HKDF-Expand is
//! one HMAC: `T(1) = HMAC-SHA-256(PRK, info || 0x01)` (§2.3). The PRK is
//! extracted once per key and kept as a prepared HMAC key, so a derivation
//! costs the same two SHA-256 compressions as the TS 33.220 profile. The
//! tests check this against the `hkdf` crate and the RFC's vectors.

use zeroize::Zeroize;

use super::ts33220::Ts33220Key;

/// A key prepared for the HKDF profile: the PRK as a prepared HMAC key,
/// zeroized on drop.
#[derive(Clone)]
pub struct HkdfKey {
    prk: Ts33220Key,
}

impl HkdfKey {
    /// Runs HKDF-Extract on `ikm` with no salt and keeps the PRK.
    #[must_use]
    pub fn new(ikm: &[u8]) -> Self {
        // RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM), salt = HashLen zeros.
        let mut prk = Ts33220Key::new(&[0u8; 32]).mac(ikm);
        let key = HkdfKey {
            prk: Ts33220Key::new(&prk),
        };
        prk.zeroize();
        key
    }

    /// HKDF-Expand with `info` for 32 octets: `HMAC(PRK, info || 0x01)`.
    #[must_use]
    pub fn expand(&self, info: &[u8]) -> [u8; 32] {
        self.prk.mac2(info, &[0x01])
    }

    /// [`HkdfKey::expand`] for an `info` that the caller has laid out, with
    /// the counter octet `0x01` and the SHA-256 padding, as one block.
    pub(crate) fn expand_block(&self, block: &[u8; 64]) -> [u8; 32] {
        self.prk.mac_block(block)
    }
}
