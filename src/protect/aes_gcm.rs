//! AES-128-GCM (NIST SP 800-38D) with a 96-bit nonce and a 16-octet tag,
//! encrypting in place with the tag detached.
//!
//! [`Gcm::open`] verifies the tag over the ciphertext *before* decrypting:
//! GHASH runs over the input, the tag is compared in constant time, and the
//! keystream is applied only when it matches. A failed open therefore
//! leaves the buffer exactly as it was (the tests flip every bit of
//! ciphertext, tag and AAD and check this).
//!
//! # Why GCM is composed here
//! The mode is SP 800-38D §7 on three RustCrypto crates, `aes` (the block
//! cipher), `ctr` (GCTR: `Ctr32BE` is the mode's inc32) and `ghash`. The
//! `aes-gcm` crate composes the same, but applies the keystream with a call
//! that panics when the 32-bit counter would run out: unreachable for any
//! message this crate handles (under 65 507 octets, 2^32 blocks are 64 GiB),
//! yet linked into every build, where the device builds prove at link time
//! that no panic is reachable (`ci/footprint.sh`). Here that call is the
//! fallible one and its error is [`Error::GcmTooLong`]. The tests check the
//! composition against the `aes-gcm` crate for every length from 0 to 100
//! octets and against the published GCM vectors (tests/protect_vectors.rs).
//!
//! # Two backends, one chosen at build time
//! With the feature `platform-aes-gcm` (std builds: the service, the CLI
//! and the analyzer turn it on, through the crate's default features),
//! [`Gcm`] is `ring`'s AES-128-GCM, BoringSSL's stitched AES-NI/PCLMULQDQ
//! (or ARMv8 Crypto Extensions) assembly, 1.7 to 2.5 times faster on a
//! server than the composition. Without it (every device build, the C
//! API, `no_std`) it is the composition above. Both have the same API,
//! the same errors and the same guarantee that a failed open leaves the
//! buffer as it was; every test runs against both (`.ci/run`). Never per
//! message: the choice is the type.

use super::Error;

#[cfg(feature = "platform-aes-gcm")]
mod platform;
#[cfg(not(feature = "platform-aes-gcm"))]
mod soft;

#[cfg(feature = "platform-aes-gcm")]
pub use platform::Gcm;
#[cfg(not(feature = "platform-aes-gcm"))]
pub use soft::Gcm;

/// Which AES-128-GCM this build has: `"ring"` (the platform backend,
/// feature `platform-aes-gcm`) or `"rustcrypto"` (the portable one).
pub const BACKEND: &str = if cfg!(feature = "platform-aes-gcm") {
    "ring"
} else {
    "rustcrypto"
};

/// Length of the authentication tag in octets.
pub const TAG_LEN: usize = 16;

/// Length of the nonce in octets (96 bits, the GCM default).
pub const NONCE_LEN: usize = 12;

/// The most plaintext one nonce may protect, in octets (SP 800-38D 5.2.1.1:
/// 2^39 - 256 bits).
const P_MAX: u64 = (1 << 36) - 32;

/// The most associated data, in octets (2^64 - 1 bits).
const A_MAX: u64 = (1 << 61) - 1;

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

#[cfg_attr(feature = "platform-aes-gcm", inline)]
pub(crate) fn check_lengths(aad: &[u8], data: &[u8]) -> Result<(), Error> {
    // SP 800-38D 5.2.1.1.
    let too_long = |len: usize, max: u64| u64::try_from(len).map_or(true, |l| l > max);
    if too_long(data.len(), P_MAX) || too_long(aad.len(), A_MAX) {
        return Err(Error::GcmTooLong {
            data: data.len(),
            aad: aad.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::AlgKey;

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
    fn a_failed_open_of_any_length_leaves_the_buffer_as_it_was() {
        // Every size class the platform backend keeps a copy in (64 and 256
        // octets on the stack, the thread's 2,048-octet array, the thread's
        // vector above), at and around each edge; the portable backend
        // checks before it decrypts.
        extern crate std;
        let g = Gcm::new(&AlgKey::from_bytes(KEY));
        let lens = [
            0usize, 1, 63, 64, 65, 255, 256, 257, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096,
            4097, 9000,
        ];
        for len in lens {
            let mut buf: std::vec::Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            let tag = g.seal(&nonce(1, 9), b"header", &mut buf).unwrap();
            let sealed = buf.clone();
            let mut bad = tag;
            bad[len % TAG_LEN] ^= 0x01;
            assert_eq!(
                g.open(&nonce(1, 9), b"header", &mut buf, &bad),
                Err(Error::BadTag),
                "length {len}"
            );
            assert_eq!(
                buf, sealed,
                "length {len}: a failed open changed the buffer"
            );
            g.open(&nonce(1, 9), b"header", &mut buf, &tag).unwrap();
            assert!(
                buf.iter().enumerate().all(|(i, b)| *b == (i * 7 + 1) as u8),
                "length {len}"
            );
        }
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
        fn assert_zod<T: zeroize::ZeroizeOnDrop>() {}
        assert_zod::<aes::Aes128>();
        assert_zod::<Gcm>();
    }

    #[test]
    fn composition_equals_the_aes_gcm_crate_for_every_length_up_to_100() {
        use aes_gcm::Aes128Gcm;
        use aes_gcm::aead::AeadInOut;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 * 7 + 3);
        let ours = Gcm::new(&AlgKey::from_bytes(key));
        let theirs = <Aes128Gcm as aes_gcm::aead::KeyInit>::new(&key.into());
        for len in 0..=100usize {
            let n = nonce((len % 2) as u8, len as u32 * 977);
            let aad: [u8; 9] = core::array::from_fn(|i| (len + i) as u8);
            let plain: [u8; 100] = core::array::from_fn(|i| (i * 31 + len) as u8);
            let (mut a, mut b) = (plain, plain);
            let tag = ours.seal(&n, &aad, &mut a[..len]).unwrap();
            let want = theirs
                .encrypt_inout_detached(&n.into(), &aad, (&mut b[..len]).into())
                .unwrap();
            assert_eq!(
                (&a[..len], &tag[..]),
                (&b[..len], &want[..]),
                "length {len}"
            );
            ours.open(&n, &aad, &mut a[..len], &tag).unwrap();
            assert_eq!(a[..len], plain[..len], "length {len}");
        }
    }

    #[test]
    fn composition_equals_the_aes_gcm_crate_for_every_aad_length_up_to_100_and_data_up_to_1100() {
        // Every way the blocks of AAD, data and lengths fall into GHASH's
        // runs of four (each may start, end or straddle a run), and the
        // messages too long to be laid out at once.
        use aes_gcm::Aes128Gcm;
        use aes_gcm::aead::AeadInOut;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 * 5 + 1);
        let ours = Gcm::new(&AlgKey::from_bytes(key));
        let theirs = <Aes128Gcm as aes_gcm::aead::KeyInit>::new(&key.into());
        let aad: [u8; 100] = core::array::from_fn(|i| (i * 13) as u8);
        let plain: [u8; 1100] = core::array::from_fn(|i| (i * 31 + 1) as u8);
        let longer = [255, 256, 257, 1000, 1023, 1024, 1025, 1100];
        for aad_len in 0..=100usize {
            for len in (0..=100usize).chain(longer) {
                let n = nonce(1, (aad_len * 101 + len) as u32);
                let (mut a, mut b) = (plain, plain);
                let tag = ours.seal(&n, &aad[..aad_len], &mut a[..len]).unwrap();
                let want = theirs
                    .encrypt_inout_detached(&n.into(), &aad[..aad_len], (&mut b[..len]).into())
                    .unwrap();
                assert_eq!(tag[..], want[..], "aad {aad_len}, data {len}");
                assert_eq!(a[..len], b[..len], "aad {aad_len}, data {len}");
                ours.open(&n, &aad[..aad_len], &mut a[..len], &tag).unwrap();
                assert_eq!(a[..len], plain[..len], "aad {aad_len}, data {len}");
            }
        }
    }
}
