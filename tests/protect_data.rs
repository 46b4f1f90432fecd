//! Data messages through the suites: the golden examples of
//! docs/wire-format.md, tampering, replay, and keys bound to the trigger
//! counter and to the UE start (its nonce).

use std::collections::HashSet;

use ciot_e2e::kdf::{
    self, Algorithm, KdfProfile, KeySet, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce,
};
use ciot_e2e::protect::Error;
use ciot_e2e::protect::aes_gcm::nonce as nonce_of;
use ciot_e2e::protect::replay::ReplayWindow;
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{Direction, Ksi, Suite};

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
/// The UE start of the examples (the nonce its hello carried).
const NONCE: UeNonce = UeNonce([
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
]);
/// Another start of the same UE.
const OTHER_NONCE: UeNonce = UeNonce([
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
]);
// KSI 1, uplink, seq 0, "Hello", under the keyset trigger counter 1 installed
// for the start [`NONCE`]. Made by the crate and recomputed apart with
// Python's `hmac` and `cryptography` (AESGCM; AES-CTR and CMAC for
// 128-NEA2/NIA2), from the root, RAND, counter and nonce alone; the same
// script gives the version 2 examples back when the nonce is left out.
const GOLDEN_GCM: &str = "0303010002000000008e58e77d83c1937085964f93d4185b20f828c95723";
const GOLDEN_NEA2_NIA2: &str = "0303010001000000000c36b81cdae8c1441f";
/// The same message when trigger counter 2 brought the same RAND again.
const GOLDEN_GCM_COUNTER_2: &str = "030301000200000000787959ccbeede4582f9aee64ed0d846e46e0210435";
/// The same message under the keyset of counter 1 made for another start of
/// the UE ([`OTHER_NONCE`]).
const GOLDEN_GCM_OTHER_NONCE: &str = "030301000200000000fe3a1dc53c19abf578c12e23ab731396e6ef9175d3";
/// [`GOLDEN_GCM`] sent downlink: the direction is in the flags and the GCM
/// nonce.
const GOLDEN_GCM_DOWNLINK: &str = "0303010102000000008d94f571b14c2b23bc1b2f9083963f6c30d10a9a52";

fn doc_keyset() -> KeySet {
    let root = RootKey::new(
        RootKind::IntKey,
        RootBytes::from_slice(&hex::decode(ROOT).unwrap()).unwrap(),
    );
    PreparedRoot::new(&root, KdfProfile::Ts33220)
        .keyset(&Rand::from_slice(&hex::decode(RAND).unwrap()).unwrap())
}

fn cipher_at(suite: Suite, counter: u64) -> SuiteCipher {
    cipher_for(suite, counter, &NONCE)
}

fn cipher_for(suite: Suite, counter: u64, nonce: &UeNonce) -> SuiteCipher {
    SuiteKeys::derive(KdfProfile::Ts33220, &doc_keyset(), suite, counter, nonce)
        .unwrap()
        .cipher()
}

fn cipher(suite: Suite) -> SuiteCipher {
    cipher_at(suite, 1)
}

fn seal(suite: Suite, seq: u32, payload: &[u8]) -> Vec<u8> {
    seal_at(suite, 1, seq, payload)
}

fn seal_at(suite: Suite, counter: u64, seq: u32, payload: &[u8]) -> Vec<u8> {
    seal_for(suite, counter, &NONCE, seq, payload)
}

fn seal_for(suite: Suite, counter: u64, nonce: &UeNonce, seq: u32, payload: &[u8]) -> Vec<u8> {
    let c = cipher_for(suite, counter, nonce);
    let mut out = vec![0u8; c.message_len(payload.len())];
    c.seal(Ksi(1), Direction::Uplink, seq, payload, &mut out)
        .unwrap();
    out
}

#[test]
fn golden_data_messages_match_the_format_doc() {
    assert_eq!(
        hex::encode(seal(Suite::AES_128_GCM, 0, b"Hello")),
        GOLDEN_GCM
    );
    assert_eq!(
        hex::encode(seal(Suite::NEA2_NIA2, 0, b"Hello")),
        GOLDEN_NEA2_NIA2
    );
    assert_eq!(
        hex::encode(seal_at(Suite::AES_128_GCM, 2, 0, b"Hello")),
        GOLDEN_GCM_COUNTER_2
    );
    assert_eq!(
        hex::encode(seal_for(Suite::AES_128_GCM, 1, &OTHER_NONCE, 0, b"Hello")),
        GOLDEN_GCM_OTHER_NONCE
    );
    let c = cipher(Suite::AES_128_GCM);
    let mut down = vec![0u8; c.message_len(5)];
    c.seal(Ksi(1), Direction::Downlink, 0, b"Hello", &mut down)
        .unwrap();
    assert_eq!(hex::encode(&down), GOLDEN_GCM_DOWNLINK);
}

/// A RAND source that repeats a RAND gives the same e2eKEYSET twice, but
/// the two triggers carry different counters, so the algorithm keys differ
/// and no (key, nonce) of one keyset is ever a (key, nonce) of the other.
#[test]
fn a_repeated_rand_under_another_counter_never_repeats_a_key_and_nonce() {
    let keyset = doc_keyset();
    for profile in [KdfProfile::Ts33220, KdfProfile::HkdfSha256] {
        for suite in Suite::KNOWN {
            assert_ne!(
                SuiteKeys::derive(profile, &keyset, *suite, 1, &NONCE).unwrap(),
                SuiteKeys::derive(profile, &keyset, *suite, 2, &NONCE).unwrap(),
                "{profile:?} {suite}"
            );
        }
        // (key, nonce) of AES-128-GCM; for 128-NEA2/NIA2 the nonce is
        // (COUNT, BEARER, DIRECTION), again taken from the header alone.
        for alg in [Algorithm::Aes128Gcm, Algorithm::Nea2, Algorithm::Nia2] {
            let pairs = |counter: u64| -> HashSet<([u8; 16], [u8; 12])> {
                let key = *kdf::alg_key(profile, &keyset, alg, counter, &NONCE).as_bytes();
                let mut out = HashSet::new();
                for dir in [0u8, 1] {
                    for seq in (0..512).chain([u32::MAX - 1, u32::MAX]) {
                        out.insert((key, nonce_of(dir, seq)));
                    }
                }
                out
            };
            let (one, two) = (pairs(1), pairs(2));
            assert_eq!(one.len(), 2 * 514);
            assert!(one.is_disjoint(&two), "{profile:?} {alg:?}");
        }
    }
    // The same header and payload seal to different octets, and a message
    // of one keyset does not open under the other.
    for suite in Suite::KNOWN {
        let one = seal_at(*suite, 1, 0, b"Hello");
        let two = seal_at(*suite, 2, 0, b"Hello");
        assert_eq!(one[..9], two[..9], "{suite}: same header");
        assert_ne!(one[9..14], two[9..14], "{suite}: same keystream");
        assert_eq!(
            cipher_at(*suite, 2).open_in_place(&mut one.clone()),
            Err(Error::BadTag),
            "{suite}"
        );
        assert_eq!(
            cipher_at(*suite, 1).open_in_place(&mut two.clone()),
            Err(Error::BadTag),
            "{suite}"
        );
    }
}

/// A UE that starts again draws a new nonce. Whatever it kept, lost or
/// rolled back, and whatever the EESE answers (the same RAND, the same
/// counter: an EESE restored from an old snapshot, a RAND source that
/// repeats itself), the keys of the new start are new, so its sequence
/// numbers starting at 0 again never repeat a (key, nonce).
#[test]
fn a_new_ue_start_under_the_same_keyset_and_counter_never_repeats_a_key_and_nonce() {
    let keyset = doc_keyset();
    for profile in [KdfProfile::Ts33220, KdfProfile::HkdfSha256] {
        for suite in Suite::KNOWN {
            for counter in [1, 2, u64::MAX] {
                assert_ne!(
                    SuiteKeys::derive(profile, &keyset, *suite, counter, &NONCE).unwrap(),
                    SuiteKeys::derive(profile, &keyset, *suite, counter, &OTHER_NONCE).unwrap(),
                    "{profile:?} {suite} counter {counter}"
                );
            }
        }
        for alg in [Algorithm::Aes128Gcm, Algorithm::Nea2, Algorithm::Nia2] {
            let pairs = |nonce: &UeNonce| -> HashSet<([u8; 16], [u8; 12])> {
                let key = *kdf::alg_key(profile, &keyset, alg, 1, nonce).as_bytes();
                let mut out = HashSet::new();
                for dir in [0u8, 1] {
                    for seq in (0..512).chain([u32::MAX - 1, u32::MAX]) {
                        out.insert((key, nonce_of(dir, seq)));
                    }
                }
                out
            };
            let mine = pairs(&NONCE);
            assert_eq!(mine.len(), 2 * 514);
            assert!(
                mine.is_disjoint(&pairs(&OTHER_NONCE)),
                "{profile:?} {alg:?}"
            );
            // One bit of the nonce is enough.
            for bit in [0, 63, 64, 127] {
                let mut b = *NONCE.as_bytes();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    mine.is_disjoint(&pairs(&UeNonce(b))),
                    "{profile:?} {alg:?} nonce bit {bit}"
                );
            }
        }
    }
    // The same header and payload seal to other octets, and a message of
    // one start does not open under the keys of the other.
    for suite in Suite::KNOWN {
        let mine = seal_for(*suite, 1, &NONCE, 0, b"Hello");
        let other = seal_for(*suite, 1, &OTHER_NONCE, 0, b"Hello");
        assert_eq!(mine[..9], other[..9], "{suite}: same header");
        assert_ne!(mine[9..14], other[9..14], "{suite}: same keystream");
        assert_eq!(
            cipher_for(*suite, 1, &OTHER_NONCE).open_in_place(&mut mine.clone()),
            Err(Error::BadTag),
            "{suite}"
        );
        assert_eq!(
            cipher_for(*suite, 1, &NONCE).open_in_place(&mut other.clone()),
            Err(Error::BadTag),
            "{suite}"
        );
        let mut back = other.clone();
        let opened = cipher_for(*suite, 1, &OTHER_NONCE)
            .open_in_place(&mut back)
            .unwrap();
        assert_eq!(&back[opened.payload], b"Hello", "{suite}");
    }
}

#[test]
fn flipping_any_bit_of_a_protected_message_makes_unprotect_fail_and_changes_nothing() {
    for suite in [Suite::AES_128_GCM, Suite::NEA2_NIA2] {
        let c = cipher(suite);
        let good = seal(suite, 7, b"sensor reading 42");
        for bit in 0..good.len() * 8 {
            let mut m = good.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let tampered = m.clone();
            let mut window = ReplayWindow::new();
            assert!(
                c.open_with_window(&mut m, &mut window).is_err(),
                "{suite}: bit {bit} flip accepted"
            );
            assert_eq!(
                m, tampered,
                "{suite}: bit {bit}: buffer changed by a failed unprotect"
            );
            assert_eq!(
                window,
                ReplayWindow::new(),
                "{suite}: bit {bit}: window changed"
            );
        }
    }
}

#[test]
fn replayed_and_old_messages_are_rejected_with_their_own_errors() {
    for suite in [Suite::AES_128_GCM, Suite::NEA2_NIA2] {
        let c = cipher(suite);
        let mut w = ReplayWindow::new();
        let m0 = seal(suite, 0, b"zero");
        assert!(
            c.open_with_window(&mut m0.clone(), &mut w).is_ok(),
            "sequence number 0 is accepted"
        );
        assert_eq!(
            c.open_with_window(&mut m0.clone(), &mut w),
            Err(Error::Replayed { seq: 0 })
        );
        assert!(
            c.open_with_window(&mut seal(suite, 100, b"x"), &mut w)
                .is_ok()
        );
        // 63 behind the highest is inside the window, once.
        let late = seal(suite, 37, b"late");
        assert!(c.open_with_window(&mut late.clone(), &mut w).is_ok());
        assert_eq!(
            c.open_with_window(&mut late.clone(), &mut w),
            Err(Error::Replayed { seq: 37 })
        );
        // 64 behind is left of the window.
        assert_eq!(
            c.open_with_window(&mut seal(suite, 36, b"old"), &mut w),
            Err(Error::TooOld {
                seq: 36,
                lowest: 37
            })
        );
    }
}
