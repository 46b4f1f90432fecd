//! Wire format v2: golden bytes from docs/wire-format.md, view/Repr agreement,
//! round trips of random Reprs, every error branch and every truncation.

use ciot_e2e::kdf::{
    Ck, CkIk, Ik, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, int_key,
};
use ciot_e2e::wire::{
    Cause, ControlAuth, DataPacket, DataRepr, Direction, Error, FieldName, HelloPacket, HelloRepr,
    KeyExpiredPacket, KeyExpiredRepr, Ksi, MAX_MESSAGE_LEN, Message, MessageType, Suite,
    TriggerPacket, TriggerRepr,
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The root of the worked examples in docs/wire-format.md:
/// CK = 0123456789abcdeffedcba9876543210, IK = 00112233445566778899aabbccddeeff.
fn doc_root() -> PreparedRoot {
    let ck = Ck::from_slice(&unhex("0123456789abcdeffedcba9876543210")).unwrap();
    let ik = Ik::from_slice(&unhex("00112233445566778899aabbccddeeff")).unwrap();
    let root = int_key(KdfProfile::Ts33220, &CkIk::new(&ck, &ik));
    assert_eq!(
        hex::encode(root.key().as_bytes()),
        "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57"
    );
    PreparedRoot::new(&root, KdfProfile::Ts33220)
}

fn doc_auth() -> ControlAuth {
    ControlAuth::new(&doc_root().control_key())
}

const GOLDEN_TRIGGER: &str = "020101000000000000000001000102030405060708090a0b0c0d0e0f010200000e10fca967a1394be69ed4e1fbdcb34ff9bf";
/// KSI 1 refused (te2e-expired), counter 1, no message named.
const GOLDEN_KEY_EXPIRED: &str =
    "0202010001000000000000000100000000eb711eaf6c18a46be8442892bb66936a";
/// The same, naming the refused message: seq 3 (flag NAMED).
const GOLDEN_KEY_EXPIRED_NAMED: &str =
    "020201010100000000000000010000000398fb34a3b962e182a826a3a4c7a0f31e";
/// "ue-0001", KSI 1, counter 1, hello seq 2, REKEY: padded to 84 octets.
const GOLDEN_HELLO: &str = "020401010000000000000001000000020775652d303030310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b676b84856f7abad540797024b6630f3";
/// A 58-octet identifier, no keyset yet (KSI 0, counter 0), seq 1, REKEY:
/// 17 + 58 + 16 = 91 octets, no padding.
const GOLDEN_HELLO_LONG: &str = "020400010000000000000000000000013a75652d303030312e73656e736f72732e706c616e742d372e6275696c64696e672d31322e6578616d706c652e636f6d2e656e7465727072697365d92649bf7238e06cfb6753d6b10cf372";
const LONG_ID: &[u8] = b"ue-0001.sensors.plant-7.building-12.example.com.enterprise";

fn doc_trigger() -> TriggerRepr {
    TriggerRepr {
        ksi: Ksi(1),
        counter: 1,
        rand: Rand(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"),
        profile: KdfProfile::Ts33220,
        suite: Suite::AES_128_GCM,
        lifetime: 3600,
        tag: [0; 16],
    }
}

#[test]
fn golden_trigger_matches_the_format_doc() {
    let mut buf = [0u8; 50];
    assert_eq!(doc_trigger().emit_signed(&doc_auth(), &mut buf), Ok(50));
    assert_eq!(hex::encode(buf), GOLDEN_TRIGGER);
    let t = doc_auth().open_trigger(&buf, 0).unwrap();
    assert_eq!(
        (t.ksi, t.counter, t.lifetime, t.suite),
        (Ksi(1), 1, 3600, Suite::AES_128_GCM)
    );
}

#[test]
fn golden_key_expired_matches_the_format_doc() {
    for (refused, golden) in [
        (None, GOLDEN_KEY_EXPIRED),
        (Some(3), GOLDEN_KEY_EXPIRED_NAMED),
    ] {
        let mut buf = [0u8; 33];
        let repr = KeyExpiredRepr {
            ksi: Ksi(1),
            cause: Cause::TE2E_EXPIRED,
            counter: 1,
            refused,
            tag: [0; 16],
        };
        assert_eq!(repr.emit_signed(&doc_auth(), &mut buf), Ok(33));
        assert_eq!(hex::encode(buf), golden);
        let got = doc_auth().open_key_expired(&buf).unwrap();
        assert_eq!(
            (got.ksi, got.cause, got.counter, got.refused),
            (Ksi(1), Cause::TE2E_EXPIRED, 1, refused)
        );
    }
}

#[test]
fn named_and_unnamed_errors_differ_in_the_flag_and_the_seq_only() {
    let unnamed = unhex(GOLDEN_KEY_EXPIRED);
    let named = unhex(GOLDEN_KEY_EXPIRED_NAMED);
    let differ: Vec<usize> = (0..17).filter(|&i| unnamed[i] != named[i]).collect();
    assert_eq!(differ, vec![3, 16], "flags octet and the seq's last octet");
    assert_eq!((unnamed[3], named[3]), (0x00, 0x01));
}

#[test]
fn golden_hellos_match_the_format_doc() {
    let auth = doc_auth();
    let mut buf = [0u8; HelloRepr::MAX_LEN];
    let short = HelloRepr {
        ksi: Ksi(1),
        rekey: true,
        counter: 1,
        seq: 2,
        id: b"ue-0001",
        tag: [0; 16],
    };
    assert_eq!(short.emit_signed(&auth, &mut buf), Ok(84));
    assert_eq!(hex::encode(&buf[..84]), GOLDEN_HELLO);
    let got = auth.open_hello(&buf[..84]).unwrap();
    assert_eq!(
        (got.ksi, got.rekey, got.counter, got.seq, got.id),
        (Ksi(1), true, 1, 2, &b"ue-0001"[..])
    );

    let long = HelloRepr {
        ksi: Ksi(0),
        rekey: true,
        counter: 0,
        seq: 1,
        id: LONG_ID,
        tag: [0; 16],
    };
    assert_eq!(long.emit_signed(&auth, &mut buf), Ok(91));
    assert_eq!(hex::encode(&buf[..91]), GOLDEN_HELLO_LONG);
    assert_eq!(auth.open_hello(&buf[..91]).unwrap().id, LONG_ID);
}

#[test]
fn a_hello_is_never_shorter_than_the_trigger_that_answers_it() {
    // Answering a hello with one derive trigger never amplifies.
    let shortest = HelloRepr {
        ksi: Ksi(0),
        rekey: true,
        counter: 0,
        seq: 0,
        id: b"x",
        tag: [0; 16],
    };
    assert_eq!(shortest.buffer_len(), HelloRepr::MIN_LEN);
    const {
        assert!(HelloRepr::MIN_LEN >= TriggerRepr::LEN);
        assert!(HelloRepr::MIN_LEN >= KeyExpiredRepr::LEN);
    }
    assert!(unhex(GOLDEN_HELLO).len() >= unhex(GOLDEN_TRIGGER).len());
}

#[test]
fn view_and_repr_agree_on_golden_messages() {
    let t = unhex(GOLDEN_TRIGGER);
    let p = TriggerPacket::new_checked(&t[..]).unwrap();
    let r = TriggerRepr::parse(&p).unwrap();
    assert_eq!(
        (p.ksi(), p.counter(), p.rand(), p.suite(), p.lifetime()),
        (r.ksi, r.counter, r.rand.clone(), r.suite, r.lifetime)
    );
    assert_eq!((p.kdf_code(), p.tag()), (r.profile.code(), &r.tag[..]));
    for golden in [GOLDEN_KEY_EXPIRED, GOLDEN_KEY_EXPIRED_NAMED] {
        let k = unhex(golden);
        let p = KeyExpiredPacket::new_checked(&k[..]).unwrap();
        let r = KeyExpiredRepr::parse(&p).unwrap();
        assert_eq!(
            (p.ksi(), p.cause(), p.counter(), p.tag()),
            (r.ksi, r.cause, r.counter, &r.tag[..])
        );
        assert_eq!(p.named().then(|| p.seq()), r.refused);
    }
    for golden in [GOLDEN_HELLO, GOLDEN_HELLO_LONG] {
        let h = unhex(golden);
        let p = HelloPacket::new_checked(&h[..]).unwrap();
        let r = HelloRepr::parse(&p).unwrap();
        assert_eq!(
            (p.ksi(), p.rekey(), p.counter(), p.seq(), p.id(), p.tag()),
            (r.ksi, r.rekey, r.counter, r.seq, r.id, &r.tag[..])
        );
        assert_eq!(&h[p.id_field()], r.id);
        assert_eq!(p.covered(), &h[..h.len() - 16]);
    }
}

/// A small deterministic generator for random Reprs (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        core::array::from_fn(|_| self.next() as u8)
    }
}

#[test]
fn random_reprs_round_trip_through_emit_and_parse() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut payload = vec![0u8; 2048];
    for i in 0..5_000 {
        let suite = Suite::KNOWN[(rng.next() % 2) as usize];
        let msg_bytes: Vec<u8> = match i % 4 {
            0 => {
                let r = TriggerRepr {
                    ksi: Ksi(rng.next() as u8),
                    counter: rng.next(),
                    rand: Rand(rng.bytes()),
                    profile: if rng.next() % 2 == 0 {
                        KdfProfile::Ts33220
                    } else {
                        KdfProfile::HkdfSha256
                    },
                    suite,
                    lifetime: (rng.next() as u32).max(1),
                    tag: rng.bytes(),
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut TriggerPacket::new_unchecked(&mut b[..]));
                let back = Message::parse(&b).unwrap();
                assert_eq!(back, Message::Trigger(r), "case {i}");
                b
            }
            1 => {
                let r = KeyExpiredRepr {
                    ksi: Ksi(rng.next() as u8),
                    cause: Cause::KNOWN[(rng.next() % Cause::KNOWN.len() as u64) as usize],
                    counter: rng.next(),
                    refused: (rng.next() % 2 == 0).then(|| rng.next() as u32),
                    tag: rng.bytes(),
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut KeyExpiredPacket::new_unchecked(&mut b[..]));
                assert_eq!(
                    Message::parse(&b).unwrap(),
                    Message::KeyExpired(r),
                    "case {i}"
                );
                b
            }
            2 => {
                let id_len = 1 + (rng.next() % 64) as usize;
                for x in payload.iter_mut().take(id_len) {
                    *x = rng.next() as u8;
                }
                let r = HelloRepr {
                    ksi: Ksi(rng.next() as u8),
                    rekey: rng.next() % 2 == 0,
                    counter: rng.next(),
                    seq: rng.next() as u32,
                    id: &payload[..id_len],
                    tag: rng.bytes(),
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut HelloPacket::new_unchecked(&mut b[..]));
                assert_eq!(b.len(), 84.max(33 + id_len), "case {i}");
                assert_eq!(Message::parse(&b).unwrap(), Message::Hello(r), "case {i}");
                b
            }
            _ => {
                let len = (rng.next() % 1500) as usize;
                for x in payload.iter_mut().take(len + 16) {
                    *x = rng.next() as u8;
                }
                let r = DataRepr {
                    ksi: Ksi(rng.next() as u8),
                    direction: if rng.next() % 2 == 0 {
                        Direction::Uplink
                    } else {
                        Direction::Downlink
                    },
                    suite,
                    seq: rng.next() as u32,
                    ciphertext: &payload[..len],
                    tag: &payload[len..len + suite.tag_len()],
                };
                let mut b = vec![0u8; r.buffer_len()];
                assert_eq!(r.emit_into(&mut b), Ok(b.len()));
                assert_eq!(Message::parse(&b).unwrap(), Message::Data(r), "case {i}");
                b
            }
        };
        // Canonical: re-encoding the decoded message gives the same octets.
        let msg = Message::parse(&msg_bytes).unwrap();
        let mut again = vec![0u8; msg.buffer_len()];
        assert_eq!(msg.emit_into(&mut again), Ok(msg_bytes.len()));
        assert_eq!(again, msg_bytes, "case {i} is not canonical");
    }
}

fn golden_data() -> Vec<u8> {
    // ksi 1, uplink, aes-128-gcm, seq 0, 5 octets payload, 16 tag octets.
    let mut m = unhex("020301000200000000");
    m.extend_from_slice(&[0xaa; 5]);
    m.extend_from_slice(&[0xbb; 16]);
    m
}

#[test]
fn every_truncation_of_every_message_is_reported_as_truncated() {
    for (name, full) in [
        ("trigger", unhex(GOLDEN_TRIGGER)),
        ("key-expired", unhex(GOLDEN_KEY_EXPIRED)),
        ("key-expired named", unhex(GOLDEN_KEY_EXPIRED_NAMED)),
        ("hello", unhex(GOLDEN_HELLO)),
        ("hello long", unhex(GOLDEN_HELLO_LONG)),
    ] {
        for n in 0..full.len() {
            // A hello is at least 84 octets whatever its identifier; past
            // that, its identifier length says how long it is.
            let needed = match n {
                0..2 => 4,
                _ if full[1] == 0x04 && n < 84 => 84,
                _ => full.len(),
            };
            assert_eq!(
                Message::parse(&full[..n]),
                Err(Error::Truncated { needed, got: n }),
                "{name} cut at {n}"
            );
        }
    }
    let data = golden_data();
    for n in 0..9 + 16 {
        let needed = if n < 2 {
            4
        } else if n < 9 {
            9
        } else {
            25
        };
        assert_eq!(
            Message::parse(&data[..n]),
            Err(Error::Truncated { needed, got: n }),
            "data cut at {n}"
        );
    }
    assert!(
        Message::parse(&data[..25]).is_ok(),
        "header + tag alone is an empty payload"
    );
}

#[test]
fn rejects_unknown_version() {
    // Version 1 is refused as a whole: its key-expired error is shorter and
    // its data keys are derived without the counter.
    let mut t = unhex(GOLDEN_TRIGGER);
    t[0] = 1;
    assert_eq!(Message::parse(&t), Err(Error::UnknownVersion(1)));
    let v1_key_expired = unhex("010201000100000000000000010608f2da38c4bf721c69f45a443f53fb");
    assert_eq!(
        Message::parse(&v1_key_expired),
        Err(Error::UnknownVersion(1))
    );
    assert_eq!(Message::parse(&[0]), Err(Error::UnknownVersion(0)));
    assert_eq!(Message::parse(&[3, 1]), Err(Error::UnknownVersion(3)));
}

#[test]
fn rejects_unknown_type() {
    for ty in [0x00, 0x05, 0xff] {
        let mut t = unhex(GOLDEN_TRIGGER);
        t[1] = ty;
        assert_eq!(Message::parse(&t), Err(Error::UnknownType(ty)));
    }
}

#[test]
fn rejects_trailing_data_after_control_messages() {
    let mut t = unhex(GOLDEN_TRIGGER);
    t.push(0);
    assert_eq!(
        Message::parse(&t),
        Err(Error::TrailingData {
            expected: 50,
            got: 51
        })
    );
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    k.push(0);
    assert_eq!(
        Message::parse(&k),
        Err(Error::TrailingData {
            expected: 33,
            got: 34
        })
    );
    for (golden, len) in [(GOLDEN_HELLO, 84), (GOLDEN_HELLO_LONG, 91)] {
        let mut h = unhex(golden);
        h.push(0);
        assert_eq!(
            Message::parse(&h),
            Err(Error::TrailingData {
                expected: len,
                got: len + 1
            })
        );
    }
}

#[test]
fn rejects_reserved_flags_in_control_messages() {
    for bit in 0..8 {
        let mut t = unhex(GOLDEN_TRIGGER);
        t[3] = 1 << bit;
        assert_eq!(
            Message::parse(&t),
            Err(Error::Malformed {
                field: FieldName::Flags,
                value: 1 << bit
            })
        );
    }
    // Bit 0 is NAMED in a key-expired error and REKEY in a hello.
    for golden in [GOLDEN_KEY_EXPIRED_NAMED, GOLDEN_HELLO] {
        for bit in 1..8 {
            let mut m = unhex(golden);
            m[3] |= 1 << bit;
            assert_eq!(
                Message::parse(&m),
                Err(Error::Malformed {
                    field: FieldName::Flags,
                    value: 1 | (1 << bit)
                }),
                "{golden} bit {bit}"
            );
        }
    }
}

#[test]
fn rejects_a_seq_in_an_unnamed_key_expired_error() {
    // Clearing NAMED leaves seq 3: one encoding per message, so refused.
    let mut k = unhex(GOLDEN_KEY_EXPIRED_NAMED);
    k[3] = 0;
    assert_eq!(
        Message::parse(&k),
        Err(Error::Malformed {
            field: FieldName::Seq,
            value: 3
        })
    );
    // Setting NAMED on an unnamed error names seq 0: well formed, but the
    // tag no longer verifies.
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    k[3] = 1;
    assert!(Message::parse(&k).is_ok());
    assert_eq!(doc_auth().open_key_expired(&k), Err(Error::BadTag));
}

#[test]
fn rejects_the_new_cause_only_when_unknown() {
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    k[4] = Cause::REPLACED.0;
    let Message::KeyExpired(r) = Message::parse(&k).unwrap() else {
        panic!("not a key-expired error")
    };
    assert_eq!(r.cause, Cause::REPLACED);
    k[4] = 0x06;
    assert_eq!(
        Message::parse(&k),
        Err(Error::Malformed {
            field: FieldName::Cause,
            value: 6
        })
    );
}

#[test]
fn rejects_bad_hello_identifier_lengths_and_padding() {
    let h = unhex(GOLDEN_HELLO);
    for bad in [0u8, 65, 0xff] {
        let mut m = h.clone();
        m[16] = bad;
        assert_eq!(
            Message::parse(&m),
            Err(Error::Malformed {
                field: FieldName::IdLength,
                value: u64::from(bad)
            }),
            "identifier length {bad}"
        );
    }
    // A valid identifier length that does not fit the octets there.
    let mut m = h.clone();
    m[16] = 60;
    assert_eq!(
        Message::parse(&m),
        Err(Error::Truncated {
            needed: 93,
            got: 84
        })
    );
    let mut m = unhex(GOLDEN_HELLO_LONG);
    m[16] = 7;
    assert_eq!(
        Message::parse(&m),
        Err(Error::TrailingData {
            expected: 84,
            got: 91
        })
    );
    // Every padding octet (24..68) must be zero.
    for at in 24..68 {
        let mut m = h.clone();
        m[at] = 0x5a;
        assert_eq!(
            Message::parse(&m),
            Err(Error::Malformed {
                field: FieldName::Padding,
                value: 0x5a
            }),
            "padding octet {at}"
        );
    }
    // emit refuses what parse would refuse.
    let empty = HelloRepr {
        ksi: Ksi(0),
        rekey: false,
        counter: 0,
        seq: 0,
        id: b"",
        tag: [0; 16],
    };
    assert_eq!(
        empty.emit_signed(&doc_auth(), &mut [0u8; 97]),
        Err(Error::Malformed {
            field: FieldName::IdLength,
            value: 0
        })
    );
    assert_eq!(
        Message::Hello(empty).emit_into(&mut [0u8; 97]),
        Err(Error::Malformed {
            field: FieldName::IdLength,
            value: 0
        })
    );
}

#[test]
fn rejects_oversized_data_message() {
    let mut m = golden_data();
    m.resize(MAX_MESSAGE_LEN + 1, 0);
    assert_eq!(
        Message::parse(&m),
        Err(Error::BadLength {
            max: MAX_MESSAGE_LEN,
            got: MAX_MESSAGE_LEN + 1
        })
    );
    m.truncate(MAX_MESSAGE_LEN);
    assert!(Message::parse(&m).is_ok());
}

#[test]
fn views_reject_other_message_types() {
    let k = unhex(GOLDEN_KEY_EXPIRED);
    assert_eq!(
        TriggerPacket::new_checked(&k[..]),
        Err(Error::WrongType {
            expected: ciot_e2e::wire::MessageType::DERIVE_TRIGGER,
            got: ciot_e2e::wire::MessageType::KEY_EXPIRED
        })
    );
    let t = unhex(GOLDEN_TRIGGER);
    assert!(matches!(
        DataPacket::new_checked(&t[..]),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        KeyExpiredPacket::new_checked(&t[..]),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(
        HelloPacket::new_checked(&t[..]),
        Err(Error::WrongType {
            expected: MessageType::HELLO,
            got: MessageType::DERIVE_TRIGGER
        })
    );
    let h = unhex(GOLDEN_HELLO);
    assert!(matches!(
        TriggerPacket::new_checked(&h[..]),
        Err(Error::WrongType { .. })
    ));
}

#[test]
fn forged_trigger_is_detected_by_verification() {
    let auth = doc_auth();
    let good = unhex(GOLDEN_TRIGGER);
    // Attacker-chosen RAND, same tag.
    let mut forged = good.clone();
    forged[12] ^= 0x01;
    assert_eq!(auth.open_trigger(&forged, 0), Err(Error::BadTag));
    // Made with another root.
    let other = PreparedRoot::new(
        &RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x66; 32])),
        KdfProfile::Ts33220,
    );
    let mut buf = [0u8; 50];
    doc_trigger()
        .emit_signed(&ControlAuth::new(&other.control_key()), &mut buf)
        .unwrap();
    assert_eq!(auth.open_trigger(&buf, 0), Err(Error::BadTag));
    // Same root octets, other kind (domain separation of control keys).
    let as_e2m = PreparedRoot::new(
        &RootKey::new(RootKind::E2mKey, RootBytes::from_bytes(*doc_root_bytes())),
        KdfProfile::Ts33220,
    );
    assert_eq!(
        ControlAuth::new(&as_e2m.control_key()).open_trigger(&good, 0),
        Err(Error::BadTag)
    );
}

fn doc_root_bytes() -> &'static [u8; 32] {
    static B: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        <[u8; 32]>::try_from(
            unhex("780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57").as_slice(),
        )
        .unwrap()
    })
}

#[test]
fn replayed_trigger_is_detected_by_verification() {
    let auth = doc_auth();
    let good = unhex(GOLDEN_TRIGGER);
    assert!(auth.open_trigger(&good, 0).is_ok());
    // Once counter 1 was accepted, the same bytes (or any older) are stale.
    assert_eq!(
        auth.open_trigger(&good, 1),
        Err(Error::StaleCounter {
            counter: 1,
            last: 1
        })
    );
    assert_eq!(
        auth.open_trigger(&good, 7),
        Err(Error::StaleCounter {
            counter: 1,
            last: 7
        })
    );
}

#[test]
fn forged_key_expired_is_detected_by_verification() {
    let auth = doc_auth();
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    k[4] = Cause::ROOT_REPLACED.0;
    assert_eq!(auth.open_key_expired(&k), Err(Error::BadTag));
    // Naming another message is a forgery too.
    let mut k = unhex(GOLDEN_KEY_EXPIRED_NAMED);
    k[16] = 4;
    assert_eq!(auth.open_key_expired(&k), Err(Error::BadTag));
    assert_eq!(
        auth.verify_message(&unhex(GOLDEN_KEY_EXPIRED_NAMED)),
        Ok(())
    );
}

#[test]
fn forged_hello_is_detected_by_verification() {
    let auth = doc_auth();
    for golden in [GOLDEN_HELLO, GOLDEN_HELLO_LONG] {
        let good = unhex(golden);
        assert_eq!(auth.verify_message(&good), Ok(()));
        // Another UE's name, a higher seq, REKEY cleared: all forgeries.
        for (at, xor) in [(17, 0x01), (15, 0x01), (3, 0x01)] {
            let mut forged = good.clone();
            forged[at] ^= xor;
            assert_eq!(auth.open_hello(&forged), Err(Error::BadTag), "{at}");
        }
    }
    // Same root octets, other kind: the control keys differ.
    let as_e2m = PreparedRoot::new(
        &RootKey::new(RootKind::E2mKey, RootBytes::from_bytes(*doc_root_bytes())),
        KdfProfile::Ts33220,
    );
    assert_eq!(
        ControlAuth::new(&as_e2m.control_key()).open_hello(&unhex(GOLDEN_HELLO)),
        Err(Error::BadTag)
    );
}

#[test]
fn data_payload_is_borrowed_not_copied() {
    let m = golden_data();
    let Message::Data(d) = Message::parse(&m).unwrap() else {
        panic!("not data")
    };
    assert_eq!(d.ciphertext.as_ptr(), m[9..].as_ptr());
    assert_eq!(d.tag.as_ptr(), m[14..].as_ptr());
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        Error::Truncated {
            needed: 50,
            got: 20
        }
        .to_string(),
        "truncated: needed 50 octets, got 20"
    );
    assert_eq!(
        Error::Malformed {
            field: FieldName::Suite,
            value: 9
        }
        .to_string(),
        "malformed suite: value 0x9 is not allowed"
    );
    assert_eq!(format!("{:?}", Suite(0x09)), "Suite(0x09)");
    assert_eq!(format!("{:?}", Suite::NEA2_NIA2), "nea2-nia2");
}
