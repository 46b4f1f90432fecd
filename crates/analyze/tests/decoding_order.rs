//! The lax dissector reports what the wire module's decoder reports: for
//! any octets, its first finding is the error `Message::parse` returns (the
//! same sentence), and it finds nothing wrong exactly when the decoder
//! accepts. Checked on every cut of every message type, on every octet of
//! each set to values that break a field, and with octets appended.

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    Cause, ControlAuth, Direction, HelloRepr, KeyExpiredRepr, Ksi, Message, Suite, TriggerRepr,
};
use ciot_e2e_analyze::dissect::Dissection;

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x42; 32]));
    let prepared = PreparedRoot::new(&root, KdfProfile::Ts33220);
    let control = ControlAuth::new(&prepared.control_key());
    let nonce = UeNonce::from_bytes([0x5a; 16]);
    let answer = control.answer(&nonce);
    let mut out = Vec::new();
    for confirm in [false, true] {
        let mut buf = vec![0u8; TriggerRepr::LEN];
        TriggerRepr {
            ksi: Ksi(4),
            confirm,
            counter: 1_025_024,
            rand: Rand([0x11; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 3600,
            tag: [0; 16],
        }
        .emit_signed(&answer, &mut buf)
        .unwrap();
        out.push(("trigger", buf));
    }
    for refused in [None, Some(9)] {
        let mut buf = vec![0u8; KeyExpiredRepr::LEN];
        KeyExpiredRepr {
            ksi: Ksi(4),
            cause: Cause::TE2E_EXPIRED,
            counter: 1_025_024,
            refused,
            tag: [0; 16],
        }
        .emit_signed(&answer, &mut buf)
        .unwrap();
        out.push(("key-expired", buf));
    }
    for id in [&b"ue-7"[..], &[b'x'; 35], &[b'y'; 36], &[0x80; 64]] {
        let mut buf = vec![0u8; HelloRepr::MAX_LEN];
        let n = HelloRepr {
            ksi: Ksi(0),
            rekey: true,
            counter: 0,
            seq: 0,
            nonce,
            id,
            tag: [0; 16],
        }
        .emit_signed(&control, &mut buf)
        .unwrap();
        buf.truncate(n);
        out.push(("hello", buf));
    }
    let keyset = prepared.keyset(&Rand([0x22; 16]));
    for suite in [Suite::AES_128_GCM, Suite::NEA2_NIA2] {
        let cipher = SuiteKeys::derive(KdfProfile::Ts33220, &keyset, suite, 7, &nonce)
            .unwrap()
            .cipher();
        for payload in [&b""[..], b"meter 42"] {
            let mut buf = vec![0u8; 64];
            let n = cipher
                .seal(Ksi(4), Direction::Downlink, 3, payload, &mut buf)
                .unwrap();
            buf.truncate(n);
            out.push(("data", buf));
        }
    }
    out
}

#[track_caller]
fn agree(what: &str, bytes: &[u8], d: &mut Dissection) {
    d.run(bytes, None);
    let ours = d.findings().first().map(|f| f.message.clone());
    let theirs = Message::parse(bytes).err().map(|e| e.to_string());
    assert_eq!(ours, theirs, "{what}: {}", hex(bytes));
    assert_eq!(d.is_malformed(), theirs.is_some(), "{what}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_cut_of_every_message_gets_the_decoders_error_first() {
    let mut d = Dissection::new();
    for (name, msg) in messages() {
        for cut in 0..=msg.len() {
            agree(&format!("{name} cut at {cut}"), &msg[..cut], &mut d);
        }
    }
}

#[test]
fn every_octet_set_to_a_breaking_value_gets_the_decoders_error_first() {
    // Values that hit every check: versions 1-3, every type, flag bits,
    // identifier lengths in and out of 1..=64, unknown codes, zero.
    let values = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x09, 0x23, 0x24, 0x40, 0x41, 0x80, 0xff,
    ];
    let mut d = Dissection::new();
    for (name, msg) in messages() {
        for at in 0..msg.len() {
            for v in values {
                let mut m = msg.clone();
                m[at] = v;
                agree(&format!("{name} octet {at} = {v:#04x}"), &m, &mut d);
                // Broken twice: the first break and a cut, or more octets.
                for cut in [at + 1, msg.len().saturating_sub(1), 84.min(m.len())] {
                    agree(
                        &format!("{name} octet {at} = {v:#04x}, cut at {cut}"),
                        &m[..cut],
                        &mut d,
                    );
                }
                m.extend_from_slice(&[0, 1]);
                agree(&format!("{name} octet {at} = {v:#04x}, +2"), &m, &mut d);
            }
        }
    }
}

#[test]
fn octets_after_a_message_get_the_decoders_error_first() {
    let mut d = Dissection::new();
    for (name, msg) in messages() {
        for extra in 1..=3 {
            let mut m = msg.clone();
            m.extend(std::iter::repeat_n(0xa5, extra));
            agree(&format!("{name} + {extra}"), &m, &mut d);
        }
    }
}
