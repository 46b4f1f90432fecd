//! AES-128-GCM (NIST SP 800-38D) with a 96-bit nonce and a 16-octet tag,
//! encrypting in place with the tag detached.
//!
//! [`Gcm::open`] verifies the tag over the ciphertext *before* decrypting:
//! `aes-gcm` 0.11's `decrypt_inout_detached` computes GHASH over the input,
//! compares the tag in constant time and applies the keystream only when it
//! matches. A failed open therefore leaves the buffer exactly as it was (the
//! tests flip every bit of ciphertext, tag and AAD and check this).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{A_MAX, Aes128Gcm, P_MAX};
use zeroize::ZeroizeOnDrop;

use super::Error;
use crate::kdf::AlgKey;

/// Length of the authentication tag in octets.
pub const TAG_LEN: usize = 16;

/// Length of the nonce in octets (96 bits, the GCM default).
pub const NONCE_LEN: usize = 12;

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
    aead: Aes128Gcm,
}

fn check_lengths(aad: &[u8], data: &[u8]) -> Result<(), Error> {
    // SP 800-38D 5.2.1.1; the same limits `aes-gcm` enforces.
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
        Gcm {
            aead: Aes128Gcm::new(key.as_bytes().into()),
        }
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
        let data_len = buf.len();
        self.aead
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .map(Into::into)
            // Unreachable after `check_lengths`, which applies the same limits.
            .map_err(|_| Error::GcmTooLong {
                data: data_len,
                aad: aad.len(),
            })
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
        self.aead
            .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            .map_err(|_| Error::BadTag)
    }
}

// `Aes128Gcm` is `ZeroizeOnDrop` with the `zeroize` feature (its AES key
// schedule and GHASH state clear themselves); `Gcm` holds nothing else.
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
        assert_zod::<Aes128Gcm>();
        assert_zod::<Gcm>();
    }
}
