//! The lax dissector, the capture reader and writers, and the key log.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use ciot_e2e::kdf::{AlgKey, Rand};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Direction, Ksi, MessageType};
use ciot_e2e_analyze::dissect::pcap::{
    CaptureError, CaptureReader, PcapNgCaptureWriter, UdpPcapWriter, User0PcapWriter,
};
use ciot_e2e_analyze::dissect::udp::{find_message, link};
use ciot_e2e_analyze::dissect::{Dissection, FindingKind, Value};
use ciot_e2e_analyze::keylog::{KeyLog, KeyLogFile, KeyLogWriter};

/// docs/wire-format.md, "Derive trigger": with CONFIRM, answering the UE
/// start of nonce f0 f1 … ff.
const TRIGGER: &str = "03010101\
    0000000000000001\
    000102030405060708090a0b0c0d0e0f\
    01\
    02\
    00000e10\
    e33925d0ee09e5cda5c6f9a2448f8fbc";

/// docs/wire-format.md, "Key-expired error" (no message named).
const KEY_EXPIRED: &str = "03020100\
    01\
    0000000000000001\
    00000000\
    79c3865c5cfb610679486a550af26ec0";

/// docs/wire-format.md, "Key-expired error" naming seq 3 (NAMED).
const KEY_EXPIRED_NAMED: &str = "03020101\
    01\
    0000000000000001\
    00000003\
    1a94762b044b29e43de5f932285b8a23";

/// docs/wire-format.md, "Hello": "ue-0001", padded to 84 octets.
const HELLO: &str = "03040101\
    0000000000000001\
    00000002\
    f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\
    07\
    75652d30303031\
    00000000000000000000000000000000000000000000000000000000\
    f0d00efe8f3ca3e0b1b94054522e9979";

/// docs/wire-format.md, "Hello": a 58-octet identifier, 107 octets, no
/// padding; the first hello (seq 0) of a UE start.
const HELLO_LONG: &str = "03040001\
    0000000000000000\
    00000000\
    f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\
    3a\
    75652d303030312e73656e736f72732e706c616e742d372e6275696c64696e672d31322e6578616d706c652e636f6d2e656e7465727072697365\
    7ffb48c8e401dc36201f0b1db7d8851b";

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

/// (abbrev, offset, len, value) of every field, in order.
fn layout(d: &Dissection) -> Vec<(&'static str, usize, usize, Option<u64>)> {
    d.fields()
        .iter()
        .map(|f| (f.abbrev, f.offset, f.len, f.uint()))
        .collect()
}

fn gcm_keys() -> SuiteKeys {
    SuiteKeys::Aes128Gcm(AlgKey::from_bytes([0x11; 16]))
}

fn nea2_keys() -> SuiteKeys {
    SuiteKeys::Nea2Nia2 {
        enc: AlgKey::from_bytes([0x22; 16]),
        int: AlgKey::from_bytes([0x33; 16]),
    }
}

fn data_message(keys: &SuiteKeys, ksi: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = keys
        .cipher()
        .seal(Ksi(ksi), Direction::Downlink, 7, payload, &mut buf)
        .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn golden_trigger_every_field_at_its_offset() {
    let msg = bytes(TRIGGER);
    let d = Dissection::of(&msg, None);
    assert_eq!(
        layout(&d),
        vec![
            ("ciot_e2e.version", 0, 1, Some(3)),
            ("ciot_e2e.type", 1, 1, Some(1)),
            ("ciot_e2e.ksi", 2, 1, Some(1)),
            ("ciot_e2e.flags", 3, 1, Some(1)),
            ("ciot_e2e.flags.confirm", 3, 1, Some(1)),
            ("ciot_e2e.flags.reserved", 3, 1, Some(0)),
            ("ciot_e2e.trigger.counter", 4, 8, Some(1)),
            ("ciot_e2e.trigger.rand", 12, 16, None),
            ("ciot_e2e.trigger.kdf", 28, 1, Some(1)),
            ("ciot_e2e.trigger.suite", 29, 1, Some(2)),
            ("ciot_e2e.trigger.lifetime", 30, 4, Some(3600)),
            ("ciot_e2e.trigger.tag", 34, 16, None),
        ]
    );
    assert!(d.findings().is_empty());
    assert_eq!(d.message_type(), Some(MessageType::DERIVE_TRIGGER));
    let rand = d.field("ciot_e2e.trigger.rand").unwrap();
    assert_eq!(rand.raw(&msg, &d), &msg[12..28]);
    assert_eq!(
        rand.display(&msg, &d).to_string(),
        "000102030405060708090a0b0c0d0e0f"
    );
    let suite = d.field("ciot_e2e.trigger.suite").unwrap();
    assert_eq!(suite.display(&msg, &d).to_string(), "aes-128-gcm (0x02)");
    assert_eq!(
        d.field("ciot_e2e.trigger.kdf")
            .unwrap()
            .display(&msg, &d)
            .to_string(),
        "3gpp (0x01)"
    );
    assert_eq!(
        d.field("ciot_e2e.trigger.lifetime")
            .unwrap()
            .display(&msg, &d)
            .to_string(),
        "3600 s"
    );
    for (i, mask) in [(4, 0x01), (5, 0xfe)] {
        assert_eq!(
            (d.fields()[i].depth, d.fields()[i].mask),
            (1, Some(mask)),
            "CONFIRM and the reserved bits are children of the flags"
        );
    }
    // Without CONFIRM (a repeat of the keyset in use): the same fields.
    let mut m = msg.clone();
    m[3] = 0;
    let d = Dissection::of(&m, None);
    assert_eq!(d.field("ciot_e2e.flags.confirm").unwrap().uint(), Some(0));
    assert!(d.findings().is_empty());
}

#[test]
fn golden_key_expired_every_field_at_its_offset() {
    for (golden, named, seq) in [(KEY_EXPIRED, 0, 0), (KEY_EXPIRED_NAMED, 1, 3)] {
        let msg = bytes(golden);
        let d = Dissection::of(&msg, None);
        assert_eq!(
            layout(&d),
            vec![
                ("ciot_e2e.version", 0, 1, Some(3)),
                ("ciot_e2e.type", 1, 1, Some(2)),
                ("ciot_e2e.ksi", 2, 1, Some(1)),
                ("ciot_e2e.flags", 3, 1, Some(named)),
                ("ciot_e2e.flags.named", 3, 1, Some(named)),
                ("ciot_e2e.flags.reserved", 3, 1, Some(0)),
                ("ciot_e2e.key_expired.cause", 4, 1, Some(1)),
                ("ciot_e2e.key_expired.counter", 5, 8, Some(1)),
                ("ciot_e2e.key_expired.seq", 13, 4, Some(seq)),
                ("ciot_e2e.key_expired.tag", 17, 16, None),
            ]
        );
        assert!(d.findings().is_empty());
        assert_eq!(
            d.field("ciot_e2e.key_expired.cause")
                .unwrap()
                .display(&msg, &d)
                .to_string(),
            "te2e-expired (0x01)"
        );
        let flag = d.field("ciot_e2e.flags.named").unwrap();
        assert_eq!((flag.mask, flag.depth), (Some(0x01), 1));
    }
    let mut m = bytes(KEY_EXPIRED);
    m[4] = 0x05;
    let d = Dissection::of(&m, None);
    assert_eq!(
        d.field("ciot_e2e.key_expired.cause")
            .unwrap()
            .display(&m, &d)
            .to_string(),
        "replaced (0x05)"
    );
    assert!(d.findings().is_empty());
}

#[test]
fn golden_hellos_every_field_at_its_offset() {
    let msg = bytes(HELLO);
    let d = Dissection::of(&msg, None);
    assert_eq!(
        layout(&d),
        vec![
            ("ciot_e2e.version", 0, 1, Some(3)),
            ("ciot_e2e.type", 1, 1, Some(4)),
            ("ciot_e2e.ksi", 2, 1, Some(1)),
            ("ciot_e2e.flags", 3, 1, Some(1)),
            ("ciot_e2e.flags.rekey", 3, 1, Some(1)),
            ("ciot_e2e.flags.reserved", 3, 1, Some(0)),
            ("ciot_e2e.hello.counter", 4, 8, Some(1)),
            ("ciot_e2e.hello.seq", 12, 4, Some(2)),
            ("ciot_e2e.hello.nonce", 16, 16, None),
            ("ciot_e2e.hello.id_len", 32, 1, Some(7)),
            ("ciot_e2e.hello.id", 33, 7, None),
            ("ciot_e2e.hello.padding", 40, 28, None),
            ("ciot_e2e.hello.tag", 68, 16, None),
        ]
    );
    assert!(d.findings().is_empty());
    assert_eq!(d.message_type(), Some(MessageType::HELLO));
    let id = d.field("ciot_e2e.hello.id").unwrap();
    assert_eq!(id.raw(&msg, &d), b"ue-0001");
    assert_eq!(id.display(&msg, &d).to_string(), "\"ue-0001\"");
    let nonce = d.field("ciot_e2e.hello.nonce").unwrap();
    assert_eq!(
        nonce.display(&msg, &d).to_string(),
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    );

    let msg = bytes(HELLO_LONG);
    let d = Dissection::of(&msg, None);
    assert_eq!(
        layout(&d)[6..],
        [
            ("ciot_e2e.hello.counter", 4, 8, Some(0)),
            ("ciot_e2e.hello.seq", 12, 4, Some(0)),
            ("ciot_e2e.hello.nonce", 16, 16, None),
            ("ciot_e2e.hello.id_len", 32, 1, Some(58)),
            ("ciot_e2e.hello.id", 33, 58, None),
            ("ciot_e2e.hello.tag", 91, 16, None),
        ],
        "no padding past 35 octets of identifier"
    );
    assert!(d.findings().is_empty());

    // An identifier that is not text (a control octet, a space, an octet
    // past ASCII) is shown in hex: printable means ASCII graphic.
    for (octets, shown) in [
        (&[0x00, 0xff, 0x0a][..], "00ff0a30303031"),
        (&[0x75, 0x65, 0x20][..], "75652030303031"),
        (&[0x21, 0x7e, 0x2d][..], "\"!~-0001\""),
    ] {
        let mut m = bytes(HELLO);
        m[33..36].copy_from_slice(octets);
        let d = Dissection::of(&m, None);
        assert_eq!(
            d.field("ciot_e2e.hello.id")
                .unwrap()
                .display(&m, &d)
                .to_string(),
            shown
        );
    }
}

#[test]
fn malformed_hellos_and_errors_get_their_own_findings() {
    let kinds = |m: &[u8]| -> Vec<FindingKind> {
        Dissection::of(m, None)
            .findings()
            .iter()
            .map(|x| x.kind)
            .collect()
    };
    // Identifier length out of 1..=64: the rest is undissected.
    for bad in [0u8, 65, 0xff] {
        let mut m = bytes(HELLO);
        m[32] = bad;
        let d = Dissection::of(&m, None);
        assert_eq!(kinds(&m), vec![FindingKind::BadIdLength], "{bad}");
        assert_eq!(
            d.findings()[0].message,
            format!("malformed identifier length: value {bad:#x} is not allowed")
        );
        let body = d.field("ciot_e2e.body").unwrap();
        assert_eq!((body.offset, body.len), (33, 51));
        assert!(d.field("ciot_e2e.hello.tag").is_none());
        // Shorter than any hello: truncated first, as the decoder says.
        assert_eq!(
            kinds(&m[..40]),
            vec![FindingKind::Truncated, FindingKind::BadIdLength]
        );
    }
    // A length that the octets do not match.
    let mut m = bytes(HELLO);
    m[32] = 60;
    let d = Dissection::of(&m, None);
    assert_eq!(kinds(&m), vec![FindingKind::Truncated]);
    assert_eq!(
        d.findings()[0].message,
        "truncated: needed 109 octets, got 84"
    );
    let mut m = bytes(HELLO_LONG);
    m[32] = 7;
    let d = Dissection::of(&m, None);
    assert_eq!(
        kinds(&m),
        vec![FindingKind::TrailingData, FindingKind::NonzeroPadding]
    );
    assert_eq!(d.field("ciot_e2e.trailing").unwrap().offset, 84);
    // Non-zero padding: found at its octet.
    let mut m = bytes(HELLO);
    m[50] = 0x7e;
    let d = Dissection::of(&m, None);
    assert_eq!(kinds(&m), vec![FindingKind::NonzeroPadding]);
    assert_eq!(d.findings()[0].offset, 50);
    assert_eq!(
        d.findings()[0].message,
        "malformed padding: value 0x7e is not allowed"
    );
    // Reserved flag bits beside REKEY, NAMED and CONFIRM.
    for golden in [HELLO, KEY_EXPIRED_NAMED, TRIGGER] {
        let mut m = bytes(golden);
        m[3] |= 0x40;
        assert_eq!(kinds(&m), vec![FindingKind::ReservedBits], "{golden}");
    }
    // A seq without NAMED.
    let mut m = bytes(KEY_EXPIRED_NAMED);
    m[3] = 0;
    let d = Dissection::of(&m, None);
    assert_eq!(kinds(&m), vec![FindingKind::UnnamedSeq]);
    assert_eq!(
        d.findings()[0].message,
        "malformed seq: value 0x3 is not allowed"
    );
    assert_eq!(FindingKind::UnnamedSeq.as_str(), "unnamed_seq");
    assert_eq!(FindingKind::BadIdLength.as_str(), "bad_id_length");
    assert_eq!(FindingKind::NonzeroPadding.as_str(), "nonzero_padding");
}

#[test]
fn data_message_every_field_for_both_suites() {
    for (keys, t) in [(gcm_keys(), 16), (nea2_keys(), 4)] {
        let msg = data_message(&keys, 5, b"hello");
        let d = Dissection::of(&msg, None);
        let len = msg.len();
        assert_eq!(len, 9 + 5 + t);
        assert_eq!(
            layout(&d),
            vec![
                ("ciot_e2e.version", 0, 1, Some(3)),
                ("ciot_e2e.type", 1, 1, Some(3)),
                ("ciot_e2e.ksi", 2, 1, Some(5)),
                ("ciot_e2e.flags", 3, 1, Some(1)),
                ("ciot_e2e.flags.direction", 3, 1, Some(1)),
                ("ciot_e2e.flags.reserved", 3, 1, Some(0)),
                ("ciot_e2e.data.suite", 4, 1, Some(u64::from(keys.suite().0))),
                ("ciot_e2e.data.seq", 5, 4, Some(7)),
                ("ciot_e2e.data.payload", 9, 5, None),
                ("ciot_e2e.data.tag", 14, t, None),
            ]
        );
        assert_eq!(d.fields()[4].mask, Some(0x01));
        assert_eq!(
            d.fields()[4].display(&msg, &d).to_string(),
            "downlink (0x01)"
        );
        assert!(d.findings().is_empty());
        assert_eq!(d.tag_valid(), None, "no keys, no verdict");
    }
}

#[test]
fn every_truncation_keeps_the_complete_fields_and_says_what_is_missing() {
    let gcm = data_message(&gcm_keys(), 1, b"abc");
    for (name, msg, needed_at) in [
        ("trigger", bytes(TRIGGER), 50),
        ("key-expired", bytes(KEY_EXPIRED), 33),
        ("key-expired named", bytes(KEY_EXPIRED_NAMED), 33),
        ("hello", bytes(HELLO), 84),
        ("hello long", bytes(HELLO_LONG), 107),
        ("data", gcm.clone(), 0),
    ] {
        let full = Dissection::of(&msg, None);
        // A data message is whole from its header and tag on (9 + 16).
        let whole_from = if name == "data" { 25 } else { msg.len() };
        for cut in 0..whole_from {
            let d = Dissection::of(&msg[..cut], None);
            // Every field that fits is there, with the same position.
            for f in full.fields() {
                let fits = f.offset + f.len <= cut;
                let there = d
                    .fields()
                    .iter()
                    .any(|g| g.abbrev == f.abbrev && g.offset == f.offset);
                if f.abbrev == "ciot_e2e.data.payload" || f.abbrev == "ciot_e2e.data.tag" {
                    continue; // their place depends on the length
                }
                assert_eq!(there, fits, "{name} cut at {cut}: {}", f.abbrev);
            }
            let t: Vec<_> = d
                .findings()
                .iter()
                .filter(|x| x.kind == FindingKind::Truncated)
                .collect();
            assert_eq!(t.len(), 1, "{name} cut at {cut}: {:?}", d.findings());
            let needed = match (name, cut) {
                (_, 0..=1) => 4,
                ("data", 2..=8) => 9,
                ("data", _) => 25,
                // No hello is shorter than 84 octets, whatever its
                // identifier length says; from 84 on its length counts.
                ("hello long", 2..=83) => 84,
                _ => needed_at,
            };
            assert_eq!(
                t[0].message,
                format!("truncated: needed {needed} octets, got {cut}"),
                "{name} cut at {cut}"
            );
            assert!(d.is_malformed());
        }
    }
    // A data message cut inside its tag shows the octets after the header.
    let d = Dissection::of(&gcm[..20], None);
    let body = d.field("ciot_e2e.body").unwrap();
    assert_eq!((body.offset, body.len), (9, 11));
}

#[test]
fn unknown_type_shows_its_header_and_the_rest() {
    let msg = [0x03, 0x7f, 0x09, 0x00, 0xaa, 0xbb];
    let d = Dissection::of(&msg, None);
    assert_eq!(
        layout(&d),
        vec![
            ("ciot_e2e.version", 0, 1, Some(3)),
            ("ciot_e2e.type", 1, 1, Some(0x7f)),
            ("ciot_e2e.ksi", 2, 1, Some(9)),
            ("ciot_e2e.flags", 3, 1, Some(0)),
            ("ciot_e2e.body", 4, 2, None),
        ]
    );
    assert_eq!(d.findings()[0].kind, FindingKind::UnknownType);
    assert_eq!(d.findings()[0].message, "unknown message type 0x7f");
    assert_eq!(
        d.fields()[1].display(&msg, &d).to_string(),
        "unknown (0x7f)"
    );
}

#[test]
fn unknown_version_shows_the_version_and_the_rest() {
    // Version 1 and version 2 messages are an unknown version now.
    for version in [1u8, 2] {
        let d = Dissection::of(&[version, 0x01, 0x00], None);
        assert_eq!(
            layout(&d),
            vec![
                ("ciot_e2e.version", 0, 1, Some(u64::from(version))),
                ("ciot_e2e.body", 1, 2, None)
            ]
        );
        assert_eq!(d.findings()[0].kind, FindingKind::UnknownVersion);
        assert_eq!(
            d.findings()[0].message,
            format!("unknown protocol version {version} (this crate speaks version 3)")
        );
        assert_eq!(d.message_type(), None);
    }
    // The version 2 hello of docs/wire-format.md's previous edition.
    let v2 = hex::decode("020401010000000000000001000000020775652d303030310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b676b84856f7abad540797024b6630f3").unwrap();
    let d = Dissection::of(&v2, None);
    assert_eq!(
        d.findings().iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![FindingKind::UnknownVersion]
    );
    assert!(d.field("ciot_e2e.hello.id").is_none());
}

#[test]
fn reserved_bits_unknown_codes_and_trailing_data_are_findings_not_stops() {
    let mut t = bytes(TRIGGER);
    t[3] = 0x80;
    t[28] = 0x07;
    t[29] = 0x09;
    t[30..34].fill(0);
    t.extend_from_slice(&[1, 2, 3]);
    let d = Dissection::of(&t, None);
    let kinds: Vec<_> = d.findings().iter().map(|x| x.kind).collect();
    // In the decoder's order: the header's flags, the length, then the
    // fields TriggerRepr::parse checks.
    assert_eq!(
        kinds,
        vec![
            FindingKind::ReservedBits,
            FindingKind::TrailingData,
            FindingKind::UnknownKdf,
            FindingKind::UnknownSuite,
            FindingKind::ZeroLifetime,
        ]
    );
    assert!(d.field("ciot_e2e.trigger.tag").is_some());
    let trailing = d.field("ciot_e2e.trailing").unwrap();
    assert_eq!((trailing.offset, trailing.len), (50, 3));
    assert_eq!(
        d.findings()[0].message,
        "malformed flags: value 0x80 is not allowed"
    );

    let mut k = bytes(KEY_EXPIRED);
    k[4] = 0x42;
    let d = Dissection::of(&k, None);
    assert_eq!(d.findings()[0].kind, FindingKind::UnknownCause);

    let mut m = data_message(&gcm_keys(), 1, b"abc");
    m[3] = 0x03;
    m[4] = 0x05;
    let d = Dissection::of(&m, None);
    let kinds: Vec<_> = d.findings().iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        vec![FindingKind::ReservedBits, FindingKind::UnknownSuite]
    );
    assert_eq!(d.field("ciot_e2e.data.seq").unwrap().uint(), Some(7));
    assert_eq!(d.field("ciot_e2e.body").unwrap().offset, 9);
}

#[test]
fn any_octets_dissect_without_panicking() {
    let mut d = Dissection::new();
    let mut state = 0x1234_5678u32;
    let mut buf = [0u8; 120];
    for round in 0..20_000 {
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
        buf[0] = 3;
        buf[1] = (round % 6) as u8;
        if round % 3 == 0 {
            // A plausible identifier length, so hellos get past it.
            buf[32] = (round % 70) as u8;
        }
        let len = round % buf.len();
        d.run(&buf[..len], None);
        for f in d.fields() {
            assert!(f.offset + f.len <= len, "{f:?} beyond {len} octets");
        }
    }
}

#[test]
fn key_log_round_trip_and_decryption_tries_every_keyset_of_a_ksi() {
    let old = nea2_keys();
    let new = gcm_keys();
    let other = SuiteKeys::Aes128Gcm(AlgKey::from_bytes([0x44; 16]));
    let mut w = KeyLogWriter::new_insecure(Vec::new());
    w.append(Ksi(4), Some(1), &Rand([1; 16]), &old).unwrap();
    w.append(Ksi(4), Some(257), &Rand([2; 16]), &new).unwrap();
    w.append(Ksi(4), None, &Rand([3; 16]), &other).unwrap();
    let text = String::from_utf8(w.into_inner()).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("CIOT_E2E_KEYSET 4 ")),
        "{text}"
    );
    let log = KeyLog::parse(&format!("# comment\n\nOTHER_LABEL x\n{text}")).unwrap();
    assert_eq!(log.entries().len(), 3);
    assert_eq!(log.entries()[0].keys, old);
    assert_eq!(log.entries()[1].counter, Some(257));
    assert_eq!(log.entries()[2].counter, None);
    assert_eq!(log.entries()[1].rand, Rand([2; 16]));

    // KSI 4 after the wrap: two AES-GCM keysets share it, the right one is
    // found by its tag.
    let msg = data_message(&new, 4, b"meter reading 42");
    let d = Dissection::of(&msg, Some(&log));
    assert_eq!(d.tag_valid(), Some(true));
    assert_eq!(d.plaintext(), Some(&b"meter reading 42"[..]));
    let plain = d.field("ciot_e2e.data.plaintext").unwrap();
    assert_eq!(
        (plain.offset, plain.len, plain.depth, plain.value),
        (9, 16, 1, Value::Plaintext)
    );
    assert_eq!(plain.raw(&msg, &d), b"meter reading 42");
    assert_eq!(
        d.field("ciot_e2e.data.tag_valid").unwrap().value,
        Value::Bool(true)
    );

    let msg = data_message(&old, 4, b"x");
    assert_eq!(
        Dissection::of(&msg, Some(&log)).plaintext(),
        Some(&b"x"[..])
    );

    // A flipped tag bit: keys exist, none verifies.
    let mut bad = data_message(&new, 4, b"abc");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let d = Dissection::of(&bad, Some(&log));
    assert_eq!(d.tag_valid(), Some(false));
    assert_eq!(d.plaintext(), None);
    assert_eq!(d.findings()[0].kind, FindingKind::BadTag);

    // No keys for the KSI: no verdict.
    let d = Dissection::of(&data_message(&new, 9, b"abc"), Some(&log));
    assert_eq!(d.tag_valid(), None);
}

#[test]
fn key_log_file_appends_and_rejects_bad_lines_with_their_number() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.log");
    let _ = std::fs::remove_file(&path);
    KeyLogFile::create_insecure(&path)
        .unwrap()
        .append(Ksi(1), Some(1), &Rand([9; 16]), &gcm_keys())
        .unwrap();
    KeyLogFile::create_insecure(&path)
        .unwrap()
        .append(Ksi(2), Some(2), &Rand([8; 16]), &nea2_keys())
        .unwrap();
    let log = KeyLog::read(&path).unwrap();
    assert_eq!(log.entries().len(), 2);
    assert_eq!(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with('#'))
            .count(),
        1
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o077,
            0
        );
    }
    for (bad, why) in [
        (
            "CIOT_E2E_KEYSET 300 1 00000000000000000000000000000000 aes-128-gcm 00000000000000000000000000000000",
            "KSI",
        ),
        (
            "CIOT_E2E_KEYSET 1 1 0000 aes-128-gcm 00000000000000000000000000000000",
            "RAND",
        ),
        (
            "CIOT_E2E_KEYSET 1 1 00000000000000000000000000000000 rc4 00",
            "suite",
        ),
        (
            "CIOT_E2E_KEYSET 1 1 00000000000000000000000000000000 nea2-nia2 00000000000000000000000000000000",
            "key",
        ),
        (
            "CIOT_E2E_KEYSET 1 x 00000000000000000000000000000000 aes-128-gcm 00000000000000000000000000000000",
            "counter",
        ),
    ] {
        let err = KeyLog::parse(&format!("# header\n{bad}\n")).unwrap_err();
        assert_eq!(err.line, 2, "{bad}");
        assert!(err.reason.contains(why), "{bad}: {}", err.reason);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn ue() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50000)
}

fn eese() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 33863)
}

#[test]
fn pcap_written_by_the_udp_writer_reads_back() {
    let t = bytes(TRIGGER);
    let k = bytes(KEY_EXPIRED);
    let mut w = UdpPcapWriter::new(Vec::new()).unwrap();
    w.write(Duration::new(5, 250_000_000), eese(), ue(), &t)
        .unwrap();
    w.write(Duration::new(6, 0), eese(), ue(), &k).unwrap();
    let file = w.into_inner().unwrap();
    let mut r = CaptureReader::new(file.as_slice()).unwrap();
    assert_eq!(r.format(), "pcap");
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(
        (f.number, f.time, f.link),
        (1, Duration::new(5, 250_000_000), link::ETHERNET)
    );
    let found = find_message(f.link, f.data, &[33863]).unwrap();
    assert_eq!(found.payload, t.as_slice());
    assert_eq!(found.src, Some(SocketAddr::V4(eese())));
    assert_eq!(found.dst, Some(SocketAddr::V4(ue())));
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(
        find_message(f.link, f.data, &[33863]).unwrap().payload,
        k.as_slice()
    );
    assert!(r.next_frame().is_none());
}

#[test]
fn pcapng_with_ethernet_and_user0_interfaces_reads_back() {
    let t = bytes(TRIGGER);
    let mut w = PcapNgCaptureWriter::new(Vec::new()).unwrap();
    w.write_udp(Duration::new(7, 123_456_789), ue(), eese(), &t)
        .unwrap();
    w.write_user0(Duration::new(8, 1), &t[..10]).unwrap();
    let file = w.into_inner().unwrap();
    let mut r = CaptureReader::new(file.as_slice()).unwrap();
    assert_eq!(r.format(), "pcapng");
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(
        (f.number, f.time, f.link),
        (1, Duration::new(7, 123_456_789), link::ETHERNET)
    );
    assert_eq!(
        find_message(f.link, f.data, &[33863]).unwrap().payload,
        t.as_slice()
    );
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(
        (f.number, f.time, f.link),
        (2, Duration::new(8, 1), link::USER0)
    );
    let found = find_message(f.link, f.data, &[]).unwrap();
    assert_eq!((found.src, found.payload), (None, &t[..10]));
    assert!(r.next_frame().is_none());
}

#[test]
fn pcapng_written_directly_with_pcap_file_and_default_resolution_reads_back() {
    use pcap_file::DataLink;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::{Block, PcapNgWriter};
    // Raw IPv6 / UDP, microsecond timestamps (no if_tsresol option).
    let msg = bytes(KEY_EXPIRED);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&u16::try_from(8 + msg.len()).unwrap().to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    ip.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    ip.extend_from_slice(&4000u16.to_be_bytes());
    ip.extend_from_slice(&5000u16.to_be_bytes());
    ip.extend_from_slice(&u16::try_from(8 + msg.len()).unwrap().to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(&msg);
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_block(&Block::InterfaceDescription(
        InterfaceDescriptionBlock::new(DataLink::IPV6, 65535),
    ))
    .unwrap();
    let epb = EnhancedPacketBlock {
        interface_id: 0,
        timestamp: Duration::from_nanos(3_000_001), // 3.000001 s in microsecond units
        original_len: ip.len() as u32,
        data: Cow::Borrowed(&ip),
        options: vec![],
    };
    w.write_block(&Block::EnhancedPacket(epb)).unwrap();
    let file = w.into_inner();
    let mut r = CaptureReader::new(file.as_slice()).unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(f.time, Duration::new(3, 1000));
    assert!(
        find_message(f.link, f.data, &[33863]).is_none(),
        "not our port"
    );
    let found = find_message(f.link, f.data, &[5000]).unwrap();
    assert_eq!(found.payload, msg.as_slice());
    assert_eq!(
        found.src,
        Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 4000))
    );
}

#[test]
fn user0_pcap_frames_are_whole_messages() {
    let mut w = User0PcapWriter::new(Vec::new()).unwrap();
    w.write(Duration::ZERO, &bytes(KEY_EXPIRED)).unwrap();
    let file = w.into_inner().unwrap();
    let mut r = CaptureReader::new(file.as_slice()).unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!(f.link, link::USER0);
    assert_eq!(
        find_message(f.link, f.data, &[]).unwrap().payload,
        bytes(KEY_EXPIRED).as_slice()
    );
}

#[test]
fn bad_files_are_errors_not_panics() {
    assert!(matches!(
        CaptureReader::new(&b"hello world"[..]),
        Err(CaptureError::NotACapture(_))
    ));
    assert!(matches!(
        CaptureReader::new(&b""[..]),
        Err(CaptureError::NotACapture(_))
    ));
    let mut w = UdpPcapWriter::new(Vec::new()).unwrap();
    for _ in 0..3 {
        w.write(Duration::ZERO, ue(), eese(), &bytes(TRIGGER))
            .unwrap();
    }
    let file = w.into_inner().unwrap();
    let mut ng = PcapNgCaptureWriter::new(Vec::new()).unwrap();
    for _ in 0..3 {
        ng.write_udp(Duration::ZERO, ue(), eese(), &bytes(TRIGGER))
            .unwrap();
    }
    let ng = ng.into_inner().unwrap();
    for whole in [&file, &ng] {
        for cut in 0..whole.len() {
            let Ok(mut r) = CaptureReader::new(&whole[..cut]) else {
                continue;
            };
            let mut frames = 0;
            let mut error = false;
            while let Some(f) = r.next_frame() {
                match f {
                    Ok(_) => frames += 1,
                    Err(_) => {
                        error = true;
                        break;
                    }
                }
            }
            assert!(frames <= 3);
            assert!(
                error || frames < 3 || cut == whole.len(),
                "cut {cut}: no error"
            );
        }
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_dissect_decrypts_a_generated_capture_with_its_key_log() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-cli-dissect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("c.pcap");
    let keys = dir.join("c.keys");
    let _ = std::fs::remove_file(&keys);
    let (p, k) = (pcap.to_str().unwrap(), keys.to_str().unwrap());
    assert!(
        cli(&[
            "gen-pcap",
            "--messages",
            "300",
            p,
            "--keylog",
            k,
            "--seed",
            "9"
        ])
        .status
        .success()
    );
    let out = cli(&["dissect", "--json", "--keylog", k, p]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 301);
    let summary = &lines[300]["summary"];
    assert_eq!(summary["messages"], 300);
    assert_eq!(summary["malformed"], 0);
    assert!(summary["types"]["hello"].as_u64().unwrap() > 0);
    assert!(
        lines[..300]
            .iter()
            .filter(|l| l["type"] == "key-expired")
            .count()
            > 0
    );
    let data = summary["types"]["data"].as_u64().unwrap();
    assert!(data > 100);
    assert_eq!(
        summary["decrypted"].as_u64().unwrap(),
        data,
        "every data message decrypts"
    );
    assert!(
        lines[..300]
            .iter()
            .filter(|l| l["type"] == "data")
            .all(|l| l["tag_valid"] == true && l["plaintext"].is_string())
    );

    // Text mode, and clear errors for bad files.
    let out = cli(&["dissect", p]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ciot_e2e.trigger.rand"));
    assert!(text.contains("ciot_e2e.hello.id"));
    assert!(text.lines().any(|l| l.starts_with("  hello: ")));
    std::fs::write(dir.join("not.pcap"), b"definitely not a capture").unwrap();
    let out = cli(&["dissect", dir.join("not.pcap").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("not a pcap or pcapng capture")
    );
    let whole = std::fs::read(&pcap).unwrap();
    std::fs::write(dir.join("cut.pcap"), &whole[..whole.len() - 5]).unwrap();
    let out = cli(&["dissect", dir.join("cut.pcap").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("truncated capture")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gen_pcap_is_deterministic_for_a_seed() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-genpcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.pcap");
    let b = dir.join("b.pcap");
    let c = dir.join("c.pcap");
    for (f, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let args = [
            "gen-pcap",
            "--messages",
            "200",
            "--malformed-ratio",
            "0.3",
            "--seed",
            seed,
            f.to_str().unwrap(),
        ];
        assert!(cli(&args).status.success());
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two data messages under the same keys, direction and seq with different
/// contents are a `nonce-reuse` finding; the same datagram captured twice
/// is not; the summary counts them.
#[test]
fn nonce_reuse_is_a_finding_and_a_duplicate_is_not() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-nonce-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = gcm_keys();
    let first = data_message(&keys, 3, b"first payload");
    let other = data_message(&keys, 3, b"other payload");
    let run = |messages: &[&[u8]]| -> String {
        let mut w = UdpPcapWriter::new(Vec::new()).unwrap();
        for (i, m) in messages.iter().enumerate() {
            w.write(Duration::new(1 + i as u64, 0), eese(), ue(), m)
                .unwrap();
        }
        let cap = dir.join("reuse.pcap");
        std::fs::write(&cap, w.into_inner().unwrap()).unwrap();
        let log = dir.join("reuse.keys");
        let mut kw = KeyLogWriter::new_insecure(Vec::new());
        kw.append(Ksi(3), Some(1), &Rand([5; 16]), &keys).unwrap();
        std::fs::write(&log, kw.into_inner()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
            .arg("dissect")
            .arg(&cap)
            .arg("--keylog")
            .arg(&log)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let dup = run(&[&first, &first]);
    assert!(dup.contains("  nonce-reuse: 0\n"), "{dup}");
    assert!(!dup.contains("(nonce-reuse)"), "{dup}");
    let reuse = run(&[&first, &first, &other]);
    assert!(reuse.contains("  nonce-reuse: 1\n"), "{reuse}");
    assert!(
        reuse.contains(
            "! error (nonce-reuse) at 5: nonce reuse: KSI 3, downlink seq 7 protected other contents in frame 1"
        ),
        "{reuse}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `dissect` and `decode` agree on every cut of a hello: the first finding
/// `dissect` shows is the error `decode` refuses it with (a hello shorter
/// than 84 octets is `truncated: needed 84`, whatever its identifier length
/// says), and the whole hello is fine for both. Also with a reserved flag
/// bit set and with an identifier length the octets do not match, where the
/// truncation, the flags and the length each come first for some cuts.
#[test]
fn dissect_and_decode_agree_on_every_cut_of_a_hello() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-hello-cuts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut flagged = bytes(HELLO_LONG);
    flagged[3] |= 0x40;
    let mut longer = bytes(HELLO);
    longer[32] = 60;
    let mut cuts: Vec<Vec<u8>> = Vec::new();
    for msg in [bytes(HELLO), bytes(HELLO_LONG), flagged, longer] {
        for cut in 0..=msg.len() {
            cuts.push(msg[..cut].to_vec());
        }
    }
    let mut w = User0PcapWriter::new(Vec::new()).unwrap();
    for c in &cuts {
        w.write(Duration::ZERO, c).unwrap();
    }
    let cap = dir.join("cuts.pcap");
    std::fs::write(&cap, w.into_inner().unwrap()).unwrap();
    let out = cli(&["dissect", "--json", cap.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let frames: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("summary").is_none())
        .collect();
    assert_eq!(frames.len(), cuts.len());
    let mut truncated_84 = 0;
    for (c, frame) in cuts.iter().zip(&frames) {
        let first = frame["findings"][0]["message"].as_str().map(str::to_owned);
        let out = cli(&["decode", &hex::encode(c)]);
        let decoded = if out.status.success() {
            None
        } else {
            let err = String::from_utf8(out.stderr).unwrap();
            let reason = err
                .trim_end()
                .strip_prefix("ciot-e2e: malformed message: ")
                .unwrap_or_else(|| panic!("{err}"))
                .to_owned();
            Some(reason)
        };
        assert_eq!(first, decoded, "{} octets: {}", c.len(), hex::encode(c));
        if (4..84).contains(&c.len()) {
            assert_eq!(
                decoded.as_deref(),
                Some(format!("truncated: needed 84 octets, got {}", c.len()).as_str())
            );
            truncated_84 += 1;
        }
    }
    assert_eq!(truncated_84, 4 * 80);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// gen-pcap models UE starts: a UE's hellos run from seq 0 under one nonce,
/// one more each time; a hello of seq 0 starts a new nonce and holds no
/// keyset (KSI 0, counter 0, REKEY). Valid captures only (no damage).
#[test]
fn gen_pcap_hellos_follow_the_starts_of_each_ue() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-starts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("starts.pcap");
    assert!(
        cli(&[
            "gen-pcap",
            "--messages",
            "3000",
            "--seed",
            "11",
            cap.to_str().unwrap()
        ])
        .status
        .success()
    );
    let out = cli(&["dissect", "--json", cap.to_str().unwrap()]);
    assert!(out.status.success());
    let field = |v: &serde_json::Value, abbrev: &str| -> Option<serde_json::Value> {
        fn find(fields: &serde_json::Value, abbrev: &str) -> Option<serde_json::Value> {
            fields.as_array()?.iter().find_map(|f| {
                if f["abbrev"] == abbrev {
                    Some(f["value"].clone())
                } else {
                    f.get("children").and_then(|c| find(c, abbrev))
                }
            })
        }
        find(&v["fields"], abbrev)
    };
    // UE address → (nonce, last seq) of its current start.
    let mut starts: std::collections::HashMap<String, (String, u64)> = Default::default();
    let (mut fresh, mut next, mut nonces) = (0, 0, std::collections::HashSet::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] != "hello" {
            continue;
        }
        assert_eq!(v["malformed"], false);
        let ue = v["src"].as_str().unwrap().to_owned();
        let nonce = field(&v, "ciot_e2e.hello.nonce").unwrap();
        let nonce = nonce.as_str().unwrap().to_owned();
        let seq = field(&v, "ciot_e2e.hello.seq").unwrap().as_u64().unwrap();
        if seq == 0 {
            assert!(
                nonces.insert(nonce.clone()),
                "a new start draws a new nonce"
            );
            assert_eq!(field(&v, "ciot_e2e.ksi").unwrap(), 0);
            assert_eq!(field(&v, "ciot_e2e.hello.counter").unwrap(), 0);
            assert_eq!(field(&v, "ciot_e2e.flags.rekey").unwrap(), 1);
            fresh += 1;
        } else {
            let (prev_nonce, prev_seq) = &starts[&ue];
            assert_eq!((prev_nonce, prev_seq + 1), (&nonce, seq), "{ue}");
            next += 1;
        }
        starts.insert(ue, (nonce, seq));
    }
    assert!(
        fresh > 64 && next > 64,
        "{fresh} starts, {next} later hellos"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
