//! Valid and damaged messages of every type and suite (decode_any, repr_roundtrip).

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use ciot_e2e::kdf::{KdfProfile, KeySet, Rand, UeNonce};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    Cause, ControlAuth, Direction, HelloRepr, KeyExpiredRepr, Ksi, MAX_MESSAGE_LEN, Suite,
    TriggerRepr, data, hello,
};

use super::super::wire::{FIXED_NONCE, fixed_auth};

fn trigger(auth: &ControlAuth, profile: KdfProfile, suite: Suite, lifetime: u32) -> Vec<u8> {
    let r = TriggerRepr {
        ksi: Ksi(1),
        confirm: true,
        counter: 1,
        rand: Rand([0x42; 16]),
        profile,
        suite,
        lifetime,
        tag: [0; 16],
    };
    let mut buf = [0u8; TriggerRepr::LEN];
    r.emit_signed(&auth.answer(&FIXED_NONCE), &mut buf)
        .expect("exact buffer");
    buf.to_vec()
}

pub(super) fn data_msg(suite: Suite, dir: Direction, seq: u32, payload: &[u8]) -> Vec<u8> {
    let c = SuiteKeys::derive(
        KdfProfile::Ts33220,
        &KeySet::from_bytes([0x77; 32]),
        suite,
        1,
        &UeNonce([0x77; 16]),
    )
    .expect("known")
    .cipher();
    let mut buf = vec![0u8; c.message_len(payload.len())];
    c.seal(Ksi(3), dir, seq, payload, &mut buf)
        .expect("exact buffer");
    buf
}

/// Valid messages of every type and their edge cases.
pub(super) fn messages() -> Vec<(String, Vec<u8>)> {
    let auth = fixed_auth();
    let mut out = Vec::new();
    for profile in [KdfProfile::Ts33220, KdfProfile::HkdfSha256] {
        for suite in Suite::KNOWN {
            out.push((
                format!("trigger-{}-{}", profile.name(), suite),
                trigger(&auth, profile, *suite, 3600),
            ));
        }
    }
    let t = trigger(&auth, KdfProfile::Ts33220, Suite::AES_128_GCM, 1);
    out.push(("trigger-lifetime-1".to_string(), t.clone()));
    out.push((
        "trigger-lifetime-0".to_string(),
        trigger(&auth, KdfProfile::Ts33220, Suite::NEA2_NIA2, 0),
    ));
    out.push(("trigger-truncated".to_string(), t[..t.len() - 1].to_vec()));
    out.push(("trigger-trailing".to_string(), [&t[..], &[0]].concat()));
    let mut bad = t.clone();
    bad[3] = 0x80;
    out.push(("trigger-flags".to_string(), bad));
    let mut bad = t.clone();
    bad[28] = 0x03;
    out.push(("trigger-unknown-kdf".to_string(), bad));
    let mut bad = t;
    bad[29] = 0x00;
    out.push(("trigger-unknown-suite".to_string(), bad));

    let key_expired = |cause: Cause, refused: Option<u32>| {
        let r = KeyExpiredRepr {
            ksi: Ksi(7),
            cause,
            counter: u64::MAX,
            refused,
            tag: [0; 16],
        };
        let mut buf = [0u8; KeyExpiredRepr::LEN];
        r.emit_signed(&auth.answer(&FIXED_NONCE), &mut buf)
            .expect("exact buffer");
        buf.to_vec()
    };
    for cause in Cause::KNOWN {
        out.push((format!("key-expired-{cause}"), key_expired(*cause, Some(3))));
    }
    let unnamed = key_expired(Cause::REPLACED, None);
    out.push(("key-expired-unnamed".to_string(), unnamed.clone()));
    out.push((
        "key-expired-named-seq-max".to_string(),
        key_expired(Cause::TE2E_EXPIRED, Some(u32::MAX)),
    ));
    let mut bad = unnamed.clone();
    bad[4] = 0x06;
    out.push(("key-expired-unknown-cause".to_string(), bad));
    let mut bad = unnamed.clone();
    bad[16] = 0x01;
    out.push(("key-expired-seq-without-named".to_string(), bad));
    let mut bad = unnamed.clone();
    bad[3] = 0x02;
    out.push(("key-expired-flags".to_string(), bad));
    out.push((
        "key-expired-truncated".to_string(),
        unnamed[..unnamed.len() - 1].to_vec(),
    ));
    out.push((
        "key-expired-trailing".to_string(),
        [&unnamed[..], &[0]].concat(),
    ));
    out.extend(hellos(&auth));

    for suite in Suite::KNOWN {
        for dir in [Direction::Uplink, Direction::Downlink] {
            out.push((
                format!("data-{suite}-{}", dir.name()),
                data_msg(*suite, dir, 5, b"hello"),
            ));
        }
        let empty = data_msg(*suite, Direction::Uplink, u32::MAX, b"");
        out.push((format!("data-{suite}-empty"), empty.clone()));
        out.push((
            format!("data-{suite}-short-tag"),
            empty[..empty.len() - 1].to_vec(),
        ));
    }
    let max = MAX_MESSAGE_LEN - data::HEADER_LEN - Suite::NEA2_NIA2.tag_len();
    out.push((
        "data-max-len".to_string(),
        data_msg(Suite::NEA2_NIA2, Direction::Uplink, 0, &vec![0; max]),
    ));
    let mut over = data_msg(Suite::NEA2_NIA2, Direction::Uplink, 0, &vec![0; max]);
    over.push(0);
    out.push(("data-over-max-len".to_string(), over));
    let mut bad = data_msg(Suite::AES_128_GCM, Direction::Downlink, 1, b"x");
    bad[3] = 0x03;
    out.push(("data-reserved-flag".to_string(), bad));
    out.push(("empty".to_string(), Vec::new()));
    out.push(("version-only".to_string(), vec![0x03]));
    // A whole version 2 trigger: an unknown version now.
    let mut v2 = trigger(&auth, KdfProfile::Ts33220, Suite::AES_128_GCM, 60);
    v2[0] = 0x02;
    out.push(("v2-trigger".to_string(), v2));
    out.push(("unknown-version".to_string(), vec![0x01, 0x01, 0, 0]));
    // A whole version 1 key-expired error (29 octets): an unknown version.
    let mut v1 = unnamed[..29].to_vec();
    v1[0] = 0x01;
    out.push(("v1-key-expired".to_string(), v1));
    out.push(("unknown-type".to_string(), vec![0x03, 0x05, 0, 0]));
    out.push((
        "data-header-only".to_string(),
        vec![0x03, 0x03, 0, 0, 0x01, 0, 0, 0, 0],
    ));
    out
}

fn hello_msg(auth: &ControlAuth, id: &[u8], rekey: bool) -> Vec<u8> {
    let r = HelloRepr {
        ksi: Ksi(2),
        rekey,
        counter: 5,
        seq: 9,
        nonce: UeNonce([0x3c; 16]),
        id,
        tag: [0; 16],
    };
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit_signed(auth, &mut buf).expect("exact buffer");
    buf
}

/// Hellos at every length boundary, and each way one can be malformed.
fn hellos(auth: &ControlAuth) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let short = hello_msg(auth, b"ue-7", true);
    out.push(("hello-short".to_string(), short.clone()));
    out.push((
        "hello-no-rekey".to_string(),
        hello_msg(auth, b"ue-7", false),
    ));
    for n in [1, 35, 36, hello::MAX_ID_LEN] {
        out.push((
            format!("hello-id-{n}"),
            hello_msg(auth, &vec![b'u'; n], true),
        ));
    }
    out.push((
        "hello-id-not-text".to_string(),
        hello_msg(auth, &[0x00, 0xff, 0x22, 0x5c], true),
    ));
    for (name, len) in [("hello-id-len-0", 0u8), ("hello-id-len-65", 65)] {
        let mut bad = short.clone();
        bad[hello::field::ID_LEN] = len;
        out.push((name.to_string(), bad));
    }
    let mut bad = short.clone();
    bad[hello::field::ID_LEN] = 40; // needs 89 octets
    out.push(("hello-id-len-past-end".to_string(), bad));
    let mut bad = short.clone();
    bad[50] = 0x01;
    out.push(("hello-padding".to_string(), bad));
    let mut bad = short.clone();
    bad[3] = 0x81;
    out.push(("hello-flags".to_string(), bad));
    out.push((
        "hello-truncated".to_string(),
        short[..short.len() - 1].to_vec(),
    ));
    out.push(("hello-trailing".to_string(), [&short[..], &[0]].concat()));
    let long = hello_msg(auth, &[b'v'; 40], true);
    out.push((
        "hello-long-truncated".to_string(),
        long[..long.len() - 1].to_vec(),
    ));
    out
}
