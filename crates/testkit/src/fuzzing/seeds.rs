//! The seed corpus, built from the crate itself so that it stays valid as the
//! format evolves. `tests/fuzz_corpus.rs` checks that `fuzz/corpus/` holds
//! every seed and rewrites them when asked (`CIOT_E2E_WRITE_SEEDS=1`).

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use ciot_e2e::kdf::{KdfProfile, KeySet, Rand};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    Cause, ControlAuth, Direction, HelloRepr, KeyExpiredRepr, Ksi, MAX_MESSAGE_LEN, Suite,
    TriggerRepr, data, hello,
};

use super::kdf::Input;
use super::reader::Writer;
use super::unprotect::{Mutation, Op as U};
use super::wire::fixed_auth;

/// A seed: the target it feeds, a file name, the octets.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
#[must_use]
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    for (name, bytes) in messages() {
        out.push(("decode_any", name.clone(), bytes.clone()));
        out.push(("repr_roundtrip", name, bytes));
    }
    for which in 0u8..6 {
        let bytes: Vec<u8> = core::iter::once(which)
            .chain((0u8..96).map(|i| i.wrapping_mul(37) ^ which))
            .collect();
        out.push(("repr_roundtrip", format!("pattern-{which}"), bytes));
    }
    for (name, bytes) in unprotect_scripts() {
        out.push(("unprotect", name, bytes));
    }
    for (name, bytes) in kdf_inputs() {
        out.push(("kdf", name, bytes));
    }
    for (name, bytes) in endpoint_scripts() {
        out.push(("endpoint", name, bytes));
    }
    out
}

fn trigger(auth: &ControlAuth, profile: KdfProfile, suite: Suite, lifetime: u32) -> Vec<u8> {
    let r = TriggerRepr {
        ksi: Ksi(1),
        counter: 1,
        rand: Rand([0x42; 16]),
        profile,
        suite,
        lifetime,
        tag: [0; 16],
    };
    let mut buf = [0u8; TriggerRepr::LEN];
    r.emit_signed(auth, &mut buf).expect("exact buffer");
    buf.to_vec()
}

fn data_msg(suite: Suite, dir: Direction, seq: u32, payload: &[u8]) -> Vec<u8> {
    let c = SuiteKeys::derive(
        KdfProfile::Ts33220,
        &KeySet::from_bytes([0x77; 32]),
        suite,
        1,
    )
    .expect("known")
    .cipher();
    let mut buf = vec![0u8; c.message_len(payload.len())];
    c.seal(Ksi(3), dir, seq, payload, &mut buf)
        .expect("exact buffer");
    buf
}

/// Valid messages of every type and their edge cases.
fn messages() -> Vec<(String, Vec<u8>)> {
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
        r.emit_signed(&auth, &mut buf).expect("exact buffer");
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
    out.push(("version-only".to_string(), vec![0x02]));
    out.push(("unknown-version".to_string(), vec![0x01, 0x01, 0, 0]));
    // A whole version 1 key-expired error (29 octets): an unknown version.
    let mut v1 = unnamed[..29].to_vec();
    v1[0] = 0x01;
    out.push(("v1-key-expired".to_string(), v1));
    out.push(("unknown-type".to_string(), vec![0x02, 0x05, 0, 0]));
    out.push((
        "data-header-only".to_string(),
        vec![0x02, 0x03, 0, 0, 0x01, 0, 0, 0, 0],
    ));
    out
}

fn hello_msg(auth: &ControlAuth, id: &[u8], rekey: bool) -> Vec<u8> {
    let r = HelloRepr {
        ksi: Ksi(2),
        rekey,
        counter: 5,
        seq: 9,
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
    for n in [1, 51, 52, hello::MAX_ID_LEN] {
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
    bad[hello::field::ID_LEN] = 40; // needs 73 octets
    out.push(("hello-id-len-past-end".to_string(), bad));
    let mut bad = short.clone();
    bad[30] = 0x01;
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

fn script<'a>(ops: impl IntoIterator<Item = U<'a>>) -> Vec<u8> {
    let mut w = Writer::default();
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

fn unprotect_scripts() -> Vec<(String, Vec<u8>)> {
    let flip = Mutation {
        kind: 0,
        pos: 77,
        val: 0,
    };
    let mut out = Vec::new();
    for c in 0u8..6 {
        out.push((
            format!("seal-open-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"hello",
                },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c: c ^ 1, idx: 0 },
                U::OpenSealed { c: c ^ 2, idx: 0 },
                U::Seal {
                    c,
                    ksi: 33,
                    downlink: true,
                    seq: 100,
                    payload: b"",
                },
                U::OpenSealed { c, idx: 1 },
                U::OpenMutated {
                    c,
                    idx: 1,
                    mutation: flip,
                },
            ]),
        ));
        out.push((
            format!("window-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 10,
                    payload: b"a",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 80,
                    payload: b"b",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: 17,
                    payload: b"c",
                },
                U::Seal {
                    c,
                    ksi: 2,
                    downlink: true,
                    seq: u32::MAX,
                    payload: b"d",
                },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 1 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c, idx: 2 },
                U::OpenSealed { c, idx: 3 },
                U::OpenSealed { c, idx: 2 },
            ]),
        ));
    }
    for kind in 0u8..5 {
        out.push((
            format!("mutate-{kind}"),
            script([
                U::Seal {
                    c: 1,
                    ksi: 9,
                    downlink: false,
                    seq: 7,
                    payload: b"payload under test",
                },
                U::OpenMutated {
                    c: 1,
                    idx: 0,
                    mutation: Mutation {
                        kind,
                        pos: 3,
                        val: 0xff,
                    },
                },
                U::OpenMutated {
                    c: 1,
                    idx: 0,
                    mutation: Mutation {
                        kind,
                        pos: 20,
                        val: 0x01,
                    },
                },
                U::OpenSealed { c: 1, idx: 0 },
            ]),
        ));
    }
    // One keyset under trigger counters 1 and 2 (ciphers 0/4 and 1/5): what
    // one seals, the other must not open.
    for c in 0u8..2 {
        out.push((
            format!("counter-bound-{c}"),
            script([
                U::Seal {
                    c,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"Hello",
                },
                U::Seal {
                    c: c + 4,
                    ksi: 1,
                    downlink: false,
                    seq: 0,
                    payload: b"Hello",
                },
                U::OpenSealed { c: c + 4, idx: 0 },
                U::OpenSealed { c, idx: 1 },
                U::OpenSealed { c, idx: 0 },
                U::OpenSealed { c: c + 4, idx: 1 },
            ]),
        ));
    }
    // The largest payload NEA2/NIA2 takes, and one octet more.
    let max = vec![0x5a; MAX_MESSAGE_LEN - data::HEADER_LEN - Suite::NEA2_NIA2.tag_len()];
    out.push((
        "payload-limit".to_string(),
        script([
            U::Seal {
                c: 0,
                ksi: 0,
                downlink: false,
                seq: 1,
                payload: &max,
            },
            U::Seal {
                c: 0,
                ksi: 0,
                downlink: false,
                seq: 2,
                payload: &[&max[..], &[0]].concat(),
            },
            U::OpenSealed { c: 0, idx: 0 },
        ]),
    ));
    let raw = data_msg(Suite::NEA2_NIA2, Direction::Uplink, 5, b"hello");
    out.push((
        "raw".to_string(),
        script([
            U::OpenRaw { c: 0, bytes: &raw },
            U::OpenRaw {
                c: 0,
                bytes: &raw[..9],
            },
        ]),
    ));
    out.push((
        "restore".to_string(),
        script([
            U::Restore {
                highest: None,
                bitmap: 0,
            },
            U::Restore {
                highest: None,
                bitmap: 1,
            },
            U::Restore {
                highest: Some(0),
                bitmap: 1,
            },
            U::Restore {
                highest: Some(0),
                bitmap: 3,
            },
            U::Restore {
                highest: Some(62),
                bitmap: u64::MAX >> 1,
            },
            U::Restore {
                highest: Some(62),
                bitmap: u64::MAX,
            },
            U::Restore {
                highest: Some(63),
                bitmap: u64::MAX,
            },
            U::Restore {
                highest: Some(u32::MAX),
                bitmap: 0x8000_0000_0000_0001,
            },
        ]),
    ));
    out
}

fn kdf_inputs() -> Vec<(String, Vec<u8>)> {
    // RFC 5448 Appendix C test case 1: CK'||IK', FC 0x20, "WLAN", SQN xor AK.
    let rfc5448_key = [
        0x53, 0x49, 0xfb, 0xe0, 0x98, 0x64, 0x9f, 0x94, 0x8f, 0x5d, 0x2e, 0x97, 0x3a, 0x81, 0xc0,
        0x0f, 0x97, 0x44, 0x87, 0x1a, 0xd3, 0x2b, 0xf9, 0xbb, 0xd1, 0xdd, 0x5c, 0xe5, 0x4e, 0x3e,
        0x2e, 0x5a,
    ];
    let base = Input {
        key: &rfc5448_key,
        fc: &[0x20],
        params: vec![b"WLAN", &[0xbb, 0x52, 0xe9, 0x1c, 0x74, 0x7a]],
        kind: 1,
        root: [7; 32],
        rand: [0x42; 16],
        ck_ik: [0x11; 32],
        ..Input::default()
    };
    let long_key = [0x0bu8; 100];
    let block = [0xa5u8; 60];
    let cases: Vec<(&str, Input<'_>)> = vec![
        ("rfc5448", base.clone()),
        (
            "fc-two-octets",
            Input {
                fc: &[0xff, 0x01],
                text: b"ff01",
                ..base.clone()
            },
        ),
        (
            "fc-reserved",
            Input {
                fc: &[0xff],
                ..base.clone()
            },
        ),
        (
            "fc-empty",
            Input {
                fc: &[],
                ..base.clone()
            },
        ),
        (
            "fc-three-octets",
            Input {
                fc: &[0xff, 1, 2],
                ..base.clone()
            },
        ),
        (
            "fc-two-not-ff",
            Input {
                fc: &[0x10, 0x01],
                ..base.clone()
            },
        ),
        (
            "long-key",
            Input {
                key: &long_key,
                ..base.clone()
            },
        ),
        (
            "empty-key-no-params",
            Input {
                key: &[],
                params: vec![],
                ..base.clone()
            },
        ),
        (
            "s-one-block-edge",
            Input {
                params: vec![&block[..52]],
                ..base.clone()
            },
        ),
        (
            "s-two-blocks",
            Input {
                params: vec![&block[..53], &block],
                ..base.clone()
            },
        ),
        (
            "param-too-long",
            Input {
                flags: 1,
                long_at: 1,
                ..base.clone()
            },
        ),
        (
            "hkdf-e2m-key",
            Input {
                profile: 1,
                kind: 3,
                text: b"e2m-keyset",
                ..base.clone()
            },
        ),
        (
            "unknown-kind",
            Input {
                kind: 9,
                text: b"int-key",
                ..base.clone()
            },
        ),
        (
            "name-suite",
            Input {
                text: b"aes-128-gcm",
                ..base.clone()
            },
        ),
        (
            "name-cause",
            Input {
                text: b" te2e-expired ",
                ..base.clone()
            },
        ),
        (
            "name-type",
            Input {
                text: b"derive-trigger",
                ..base.clone()
            },
        ),
        (
            "hex-root",
            Input {
                text: &[b'a'; 64],
                ..base.clone()
            },
        ),
        (
            "hex-rand",
            Input {
                text: b"000102030405060708090A0B0C0D0E0F",
                ..base.clone()
            },
        ),
        (
            "not-utf8",
            Input {
                text: &[0xff, 0xfe, b'i'],
                ..base
            },
        ),
    ];
    cases
        .into_iter()
        .map(|(name, input)| {
            let mut w = Writer::default();
            input.write(&mut w);
            (name.to_string(), w.0)
        })
        .collect()
}

/// Simulator schedules: some drawn from seeds, some written to reach the
/// paths where crashes and restores meet the rekey procedure.
fn endpoint_scripts() -> Vec<(String, Vec<u8>)> {
    use crate::sim::{Action as A, Forgery, Source};
    let mut out = Vec::new();
    for seed in [1u16, 2, 3, 5, 8, 13, 21, 34] {
        let actions = crate::sim::schedule(u64::from(seed), 64);
        out.push((
            format!("schedule-{seed}"),
            super::endpoint::encode(seed, &actions),
        ));
    }
    let written: [(&str, u16, Vec<A>); 5] = [
        (
            "crash-during-write",
            4,
            vec![
                A::DeliverAll,
                A::Disk {
                    eese: false,
                    ue: 0,
                    slow: true,
                },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::CrashUe {
                    ue: 0,
                    newer: false,
                },
                A::Replay {
                    pick: 1,
                    spoof: false,
                },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::DeliverAll,
            ],
        ),
        (
            "eese-restart-and-replay",
            6,
            vec![
                A::DeliverAll,
                A::DeliverAll,
                A::UeSend { ue: 1 },
                A::DeliverAll,
                A::CrashEese { newer: true },
                A::Replay {
                    pick: 5,
                    spoof: false,
                },
                A::EeseSend { ue: 1 },
                A::Advance { ms: 6_000 },
                A::DeliverAll,
            ],
        ),
        (
            "expiry-and-lost-answers",
            7,
            vec![
                A::DeliverAll,
                A::DeliverAll,
                A::Advance { ms: 300_000 },
                A::UeSend { ue: 0 },
                A::DeliverAll,
                A::Drop { pick: 0 },
                A::Drop { pick: 0 },
                A::Advance { ms: 6_000 },
                A::DeliverAll,
                A::DeliverAll,
            ],
        ),
        (
            "forgeries",
            9,
            vec![
                A::DeliverAll,
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Hello,
                    from: Source::Attacker(1),
                    seed: 3,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Data,
                    from: Source::Ue(0),
                    seed: 4,
                },
                A::Forge {
                    to_eese: false,
                    ue: 0,
                    kind: Forgery::Control,
                    from: Source::Attacker(0),
                    seed: 5,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Mutation,
                    from: Source::Ue(0),
                    seed: 6,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Empty,
                    from: Source::Attacker(2),
                    seed: 7,
                },
                A::DeliverAll,
                A::Reflect { pick: 0 },
            ],
        ),
        (
            "new-root-and-rebind",
            10,
            vec![
                A::DeliverAll,
                A::ReplaceRoot { ue: 0 },
                A::Rebind { ue: 0 },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::EeseSend { ue: 0 },
                A::DeliverAll,
                A::ExpireAll,
                A::SetTe2e { ue: 0, secs: 5 },
                A::ProvideRand { ue: 0 },
                A::Late { ms: 9_000 },
                A::DeliverAll,
            ],
        ),
    ];
    for (name, seed, actions) in written {
        out.push((name.to_string(), super::endpoint::encode(seed, &actions)));
    }
    out
}
