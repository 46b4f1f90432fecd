//! Data messages through the suites: the golden examples of
//! docs/wire-format.md, tampering, replay, and keys bound to the trigger
//! counter.

use std::collections::HashSet;

use ciot_e2e::kdf::{
    self, Algorithm, KdfProfile, KeySet, PreparedRoot, Rand, RootBytes, RootKey, RootKind,
};
use ciot_e2e::protect::Error;
use ciot_e2e::protect::aes_gcm::nonce;
use ciot_e2e::protect::replay::ReplayWindow;
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{Direction, Ksi, Suite};

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
/// KSI 1, uplink, seq 0, "Hello", under the keyset trigger counter 1 installed.
const GOLDEN_GCM: &str = "0203010002000000001ac6fd14dc627cfe8ac1ce51a5418499cb14136dfd";
const GOLDEN_NEA2_NIA2: &str = "0203010001000000006591f51a19bc3205d9";
/// The same message when trigger counter 2 brought the same RAND again.
const GOLDEN_GCM_COUNTER_2: &str = "02030100020000000061801740f3c05754d793e0e2f876a3df264a712350";

fn doc_keyset() -> KeySet {
    let root = RootKey::new(
        RootKind::IntKey,
        RootBytes::from_slice(&hex::decode(ROOT).unwrap()).unwrap(),
    );
    PreparedRoot::new(&root, KdfProfile::Ts33220)
        .keyset(&Rand::from_slice(&hex::decode(RAND).unwrap()).unwrap())
}

fn cipher_at(suite: Suite, counter: u64) -> SuiteCipher {
    SuiteKeys::derive(KdfProfile::Ts33220, &doc_keyset(), suite, counter)
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
    let c = cipher_at(suite, counter);
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
                SuiteKeys::derive(profile, &keyset, *suite, 1).unwrap(),
                SuiteKeys::derive(profile, &keyset, *suite, 2).unwrap(),
                "{profile:?} {suite}"
            );
        }
        // (key, nonce) of AES-128-GCM; for 128-NEA2/NIA2 the nonce is
        // (COUNT, BEARER, DIRECTION), again taken from the header alone.
        for alg in [Algorithm::Aes128Gcm, Algorithm::Nea2, Algorithm::Nia2] {
            let pairs = |counter: u64| -> HashSet<([u8; 16], [u8; 12])> {
                let key = *kdf::alg_key(profile, &keyset, alg, counter).as_bytes();
                let mut out = HashSet::new();
                for dir in [0u8, 1] {
                    for seq in (0..512).chain([u32::MAX - 1, u32::MAX]) {
                        out.insert((key, nonce(dir, seq)));
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
