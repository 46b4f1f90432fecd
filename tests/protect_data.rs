//! Data messages through the suites: the golden examples of
//! docs/wire-format.md, tampering and replay.

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind};
use ciot_e2e::protect::Error;
use ciot_e2e::protect::replay::ReplayWindow;
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{Direction, Ksi, Suite};

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
const GOLDEN_GCM: &str = "0103010002000000007731df5429aa7684fb9c8d8c2a8ac4c0db48cbf45d";
const GOLDEN_NEA2_NIA2: &str = "010301000100000000e2845c2d48647b88e4";

fn cipher(suite: Suite) -> SuiteCipher {
    let root = RootKey::new(
        RootKind::IntKey,
        RootBytes::from_slice(&hex::decode(ROOT).unwrap()).unwrap(),
    );
    let keyset = PreparedRoot::new(&root, KdfProfile::Ts33220)
        .keyset(&Rand::from_slice(&hex::decode(RAND).unwrap()).unwrap());
    SuiteKeys::derive(KdfProfile::Ts33220, &keyset, suite)
        .unwrap()
        .cipher()
}

fn seal(suite: Suite, seq: u32, payload: &[u8]) -> Vec<u8> {
    let c = cipher(suite);
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
