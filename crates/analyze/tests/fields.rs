//! The tables of `dissect::FIELDS` and `FindingKind::ALL` are what the
//! dissector emits: every field of every message type (cut, damaged,
//! with octets appended, decrypted and not) has an entry with its name,
//! type and mask, every entry is emitted by some message, and every
//! finding has its kind's severity. A packet analyzer registers the tables
//! before it sees a message (`crates/analyze-capi`), so a field missing
//! from them would be a field it cannot show.

use std::collections::BTreeSet;

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    Cause, ControlAuth, Direction, HelloRepr, KeyExpiredRepr, Ksi, Suite, TriggerRepr,
};
use ciot_e2e_analyze::dissect::{
    Dissection, FIELDS, FieldType, FindingKind, NonceLedger, Shown, Value, field_index,
};
use ciot_e2e_analyze::keylog::{KeyLog, KeyLogEntry};

/// Every message type, signed or sealed, and the key log of the data.
fn messages() -> (Vec<Vec<u8>>, KeyLog) {
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
            counter: 7,
            rand: Rand([0x11; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 3600,
            tag: [0; 16],
        }
        .emit_signed(&answer, &mut buf)
        .unwrap();
        out.push(buf);
    }
    for refused in [None, Some(9)] {
        let mut buf = vec![0u8; KeyExpiredRepr::LEN];
        KeyExpiredRepr {
            ksi: Ksi(4),
            cause: Cause::TE2E_EXPIRED,
            counter: 7,
            refused,
            tag: [0; 16],
        }
        .emit_signed(&answer, &mut buf)
        .unwrap();
        out.push(buf);
    }
    for id in [&b"ue-7"[..], &[b'y'; 36]] {
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
        out.push(buf);
    }
    let keyset = prepared.keyset(&Rand([0x22; 16]));
    let mut log = KeyLog::new();
    for suite in [Suite::AES_128_GCM, Suite::NEA2_NIA2] {
        let keys = SuiteKeys::derive(KdfProfile::Ts33220, &keyset, suite, 7, &nonce).unwrap();
        let cipher = keys.clone().cipher();
        log.push(KeyLogEntry {
            ksi: Ksi(4),
            counter: Some(7),
            rand: Rand([0x22; 16]),
            keys,
            nonce: Some(nonce),
        });
        for payload in [&b""[..], b"meter 42"] {
            let mut buf = vec![0u8; 64];
            let n = cipher
                .seal(Ksi(4), Direction::Downlink, 3, payload, &mut buf)
                .unwrap();
            buf.truncate(n);
            out.push(buf);
        }
    }
    (out, log)
}

/// Every message, every cut of it, every octet set to a few values, and
/// octets appended.
fn variants() -> Vec<Vec<u8>> {
    let (messages, _) = messages();
    let mut all = Vec::new();
    // A zero lifetime (four octets) and a data message over the maximum.
    let mut zero = messages[0].clone();
    zero[30..34].fill(0);
    all.push(zero);
    let mut long = vec![3, 3, 4, 0, Suite::AES_128_GCM.0];
    long.resize(ciot_e2e::wire::MAX_MESSAGE_LEN + 1, 0);
    all.push(long);
    for m in messages {
        for cut in 0..m.len() {
            all.push(m[..cut].to_vec());
        }
        for at in 0..m.len() {
            for v in [0x00, 0x01, 0x02, 0x05, 0x7f, 0xff] {
                let mut d = m.clone();
                d[at] = v;
                all.push(d);
            }
        }
        let mut longer = m.clone();
        longer.extend_from_slice(&[0xee; 3]);
        all.push(longer);
        all.push(m);
    }
    all
}

#[test]
fn every_emitted_field_is_in_the_table_as_emitted_and_every_entry_is_emitted() {
    let (_, log) = messages();
    let mut d = Dissection::new();
    let mut emitted = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for bytes in variants() {
        for keys in [None, Some(&log)] {
            d.run(&bytes, keys);
            for f in d.fields() {
                let i = field_index(f.abbrev)
                    .unwrap_or_else(|| panic!("{} is emitted but not in FIELDS", f.abbrev));
                let spec = &FIELDS[i];
                assert_eq!(spec.name, f.name, "{}", f.abbrev);
                assert_eq!(spec.mask, f.mask, "{}", f.abbrev);
                match (f.value, spec.ty) {
                    (Value::Uint(_), FieldType::Uint(n)) => {
                        assert_eq!(f.len, usize::from(n), "{}", f.abbrev);
                    }
                    (Value::Bytes, FieldType::Bytes) => assert!(!spec.generated, "{}", f.abbrev),
                    (Value::Plaintext, FieldType::Bytes) | (Value::Bool(_), FieldType::Bool) => {
                        assert!(spec.generated, "{}", f.abbrev);
                    }
                    (v, t) => panic!("{}: value {v:?} but type {t:?}", f.abbrev),
                }
                assert_eq!(
                    spec.hex,
                    matches!(f.shown, Shown::Hex | Shown::Code(_)),
                    "{}",
                    f.abbrev
                );
                emitted.insert(f.abbrev);
            }
            for x in d.findings() {
                assert_eq!(x.severity, x.kind.severity(), "{}", x.message);
                kinds.insert(x.kind.as_str());
            }
        }
    }
    let never: Vec<_> = FIELDS
        .iter()
        .filter(|s| !emitted.contains(s.abbrev))
        .map(|s| s.abbrev)
        .collect();
    assert!(never.is_empty(), "never emitted: {never:?}");
    let abbrevs: BTreeSet<_> = FIELDS.iter().map(|s| s.abbrev).collect();
    assert_eq!(
        abbrevs.len(),
        FIELDS.len(),
        "an abbreviation twice in FIELDS"
    );
    // Nonce reuse needs two messages; every other kind one.
    let missing: Vec<_> = FindingKind::ALL
        .iter()
        .filter(|k| **k != FindingKind::NonceReuse && !kinds.contains(k.as_str()))
        .collect();
    assert!(missing.is_empty(), "kinds never found: {missing:?}");
}

#[test]
fn nonce_reuse_has_its_kinds_severity_and_all_kinds_have_distinct_names() {
    let (messages, log) = messages();
    let sealed: Vec<_> = messages
        .iter()
        .filter(|m| m[1] == 3 && m[4] == Suite::AES_128_GCM.0)
        .collect();
    // Both sealed under the same keys, direction and seq, other payloads.
    let (first, other) = (sealed[0], sealed[1]);
    assert_ne!(first, other);
    let mut ledger = NonceLedger::new();
    let mut d = Dissection::new();
    d.run(first, Some(&log));
    assert!(ledger.check(1, first, &d).is_none());
    d.run(other, Some(&log));
    let x = ledger.check(2, other, &d).expect("a nonce-reuse finding");
    assert_eq!(x.kind, FindingKind::NonceReuse);
    assert_eq!(x.severity, x.kind.severity());
    let names: BTreeSet<_> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
    let titles: BTreeSet<_> = FindingKind::ALL.iter().map(|k| k.title()).collect();
    assert_eq!(names.len(), FindingKind::ALL.len());
    assert_eq!(titles.len(), FindingKind::ALL.len());
}
