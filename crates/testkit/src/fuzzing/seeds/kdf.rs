//! Inputs for the kdf target.

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::super::kdf::Input;
use super::super::reader::Writer;

pub(super) fn kdf_inputs() -> Vec<(String, Vec<u8>)> {
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
