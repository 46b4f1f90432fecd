//! Wire format v3: golden bytes from docs/wire-format.md (their tags also
//! recomputed here with the `hmac` crate alone), view/Repr agreement, round
//! trips of random Reprs, every error branch and every truncation, and the
//! binding of triggers and key-expired errors to the UE nonce they answer.

use ciot_e2e::kdf::{
    self, Ck, CkIk, Fc, Ik, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce,
    int_key,
};
use ciot_e2e::wire::{
    Cause, ControlAuth, DataPacket, DataRepr, Direction, Error, FieldName, HelloPacket, HelloRepr,
    KeyExpiredPacket, KeyExpiredRepr, Ksi, MAX_MESSAGE_LEN, Message, MessageType, Suite,
    TriggerPacket, TriggerRepr, VERSION, hello, trigger,
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

/// The UE nonce of the worked examples: the hellos carry it, the trigger and
/// the errors answer it.
const DOC_NONCE: UeNonce = UeNonce([
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
]);

// The goldens below were made by the crate and each tag recomputed apart with
// Python's `hmac`, from the root above alone:
//
//   ck = hmac.new(root, bytes([0x92, 0x01, 0x00, 0x01]), sha256).digest()
//   trigger, error: hmac.new(ck, octets_before_tag + nonce, sha256).digest()[:16]
//   hello:          hmac.new(ck, octets_before_tag, sha256).digest()[:16]
//
// `tags_are_hmac_of_the_control_key_over_the_covered_octets_and_the_nonce`
// does the same with the `hmac` crate.

/// KSI 1, counter 1, RAND 00..0f, 3gpp, aes-128-gcm, 3600 s, signed for
/// [`DOC_NONCE`]: the trigger of a keyset in use (no CONFIRM).
const GOLDEN_TRIGGER: &str = "030101000000000000000001000102030405060708090a0b0c0d0e0f010200000e10f3e3fa0751fc8777653a76f2c3197533";
/// The same keyset offered (flag CONFIRM): only the flags and the tag differ.
const GOLDEN_TRIGGER_CONFIRM: &str = "030101010000000000000001000102030405060708090a0b0c0d0e0f010200000e10e33925d0ee09e5cda5c6f9a2448f8fbc";
/// KSI 1 refused (te2e-expired), counter 1, no message named, signed for
/// [`DOC_NONCE`].
const GOLDEN_KEY_EXPIRED: &str =
    "030201000100000000000000010000000079c3865c5cfb610679486a550af26ec0";
/// The same, naming the refused message: seq 3 (flag NAMED).
const GOLDEN_KEY_EXPIRED_NAMED: &str =
    "03020101010000000000000001000000031a94762b044b29e43de5f932285b8a23";
/// "ue-0001", KSI 1, counter 1, hello seq 2, nonce [`DOC_NONCE`], REKEY:
/// padded to 84 octets.
const GOLDEN_HELLO: &str = "03040101000000000000000100000002f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0775652d3030303100000000000000000000000000000000000000000000000000000000f0d00efe8f3ca3e0b1b94054522e9979";
/// A 58-octet identifier, no keyset yet (KSI 0, counter 0), the first hello
/// of the start (seq 0), REKEY: 33 + 58 + 16 = 107 octets, no padding.
const GOLDEN_HELLO_LONG: &str = "03040001000000000000000000000000f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff3a75652d303030312e73656e736f72732e706c616e742d372e6275696c64696e672d31322e6578616d706c652e636f6d2e656e74657270726973657ffb48c8e401dc36201f0b1db7d8851b";
const LONG_ID: &[u8] = b"ue-0001.sensors.plant-7.building-12.example.com.enterprise";

/// The version 2 examples of docs/wire-format.md, as version 2 of the crate
/// sent them (no nonce in the hello, tags not bound to one).
const V2_TRIGGER: &str = "020101000000000000000001000102030405060708090a0b0c0d0e0f010200000e10fca967a1394be69ed4e1fbdcb34ff9bf";
const V2_KEY_EXPIRED: &str = "0202010001000000000000000100000000eb711eaf6c18a46be8442892bb66936a";
const V2_HELLO: &str = "020401010000000000000001000000020775652d303030310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b676b84856f7abad540797024b6630f3";
const V2_DATA: &str = "0203010002000000001ac6fd14dc627cfe8ac1ce51a5418499cb14136dfd";

fn doc_trigger() -> TriggerRepr {
    TriggerRepr {
        ksi: Ksi(1),
        confirm: false,
        counter: 1,
        rand: Rand(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"),
        profile: KdfProfile::Ts33220,
        suite: Suite::AES_128_GCM,
        lifetime: 3600,
        tag: [0; 16],
    }
}

/// `nonce` with bit `bit` (0..128) flipped.
fn flipped(nonce: UeNonce, bit: usize) -> UeNonce {
    let mut b = *nonce.as_bytes();
    b[bit / 8] ^= 1 << (bit % 8);
    UeNonce::from_bytes(b)
}

#[test]
fn golden_triggers_match_the_format_doc() {
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
    for (confirm, flags, golden) in [
        (false, 0x00, GOLDEN_TRIGGER),
        (true, trigger::FLAG_CONFIRM, GOLDEN_TRIGGER_CONFIRM),
    ] {
        let repr = TriggerRepr {
            confirm,
            ..doc_trigger()
        };
        let mut buf = [0u8; 50];
        assert_eq!(repr.emit_signed(&auth, &mut buf), Ok(50));
        assert_eq!(hex::encode(buf), golden);
        let t = auth.open_trigger(&buf, 0).unwrap();
        assert_eq!(
            (t.ksi, t.confirm, t.counter, t.lifetime, t.suite),
            (Ksi(1), confirm, 1, 3600, Suite::AES_128_GCM)
        );
        assert_eq!((buf[0], buf[3]), (VERSION, flags));
        assert_eq!(&repr.to_signed_bytes(&auth)[..], &buf[..]);
    }
}

#[test]
fn golden_key_expired_matches_the_format_doc() {
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
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
        assert_eq!(repr.emit_signed(&auth, &mut buf), Ok(33));
        assert_eq!(hex::encode(buf), golden);
        assert_eq!(&repr.to_signed_bytes(&auth)[..], &buf[..]);
        let got = auth.open_key_expired(&buf).unwrap();
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
        nonce: DOC_NONCE,
        id: b"ue-0001",
        tag: [0; 16],
    };
    assert_eq!(short.emit_signed(&auth, &mut buf), Ok(84));
    assert_eq!(hex::encode(&buf[..84]), GOLDEN_HELLO);
    let got = auth.open_hello(&buf[..84]).unwrap();
    assert_eq!(
        (got.ksi, got.rekey, got.counter, got.seq, got.nonce, got.id),
        (Ksi(1), true, 1, 2, DOC_NONCE, &b"ue-0001"[..])
    );
    assert_eq!(&buf[hello::field::NONCE], DOC_NONCE.as_bytes());

    let long = HelloRepr {
        ksi: Ksi(0),
        rekey: true,
        counter: 0,
        seq: 0,
        nonce: DOC_NONCE,
        id: LONG_ID,
        tag: [0; 16],
    };
    assert_eq!(long.emit_signed(&auth, &mut buf), Ok(107));
    assert_eq!(hex::encode(&buf[..107]), GOLDEN_HELLO_LONG);
    assert_eq!(auth.open_hello(&buf[..107]).unwrap().id, LONG_ID);
}

/// The control key computed with the raw TS 33.220 KDF (held to published
/// vectors in tests/kdf_vectors.rs), and every golden tag recomputed from
/// it with the `hmac` crate: the trigger's and the errors' over the octets
/// before the tag followed by the nonce, the hellos' over those octets alone.
#[test]
fn tags_are_hmac_of_the_control_key_over_the_covered_octets_and_the_nonce() {
    use hmac::{Hmac, KeyInit, Mac};
    let root: [u8; 32] = unhex("780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57")
        .try_into()
        .unwrap();
    let control_key = kdf::kdf(&root, Fc::new(0x92).unwrap(), &[&[0x01]]).unwrap();
    assert_eq!(doc_root().control_key().as_bytes(), &control_key);
    let tag = |parts: &[&[u8]]| {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&control_key).unwrap();
        for p in parts {
            mac.update(p);
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    };
    for golden in [
        GOLDEN_TRIGGER,
        GOLDEN_TRIGGER_CONFIRM,
        GOLDEN_KEY_EXPIRED,
        GOLDEN_KEY_EXPIRED_NAMED,
    ] {
        let m = unhex(golden);
        let (covered, carried) = m.split_at(m.len() - 16);
        assert_eq!(
            tag(&[covered, DOC_NONCE.as_bytes()]),
            hex::encode(carried),
            "{golden}"
        );
        // Not the hello's rule: the nonce is part of what is signed.
        assert_ne!(tag(&[covered]), hex::encode(carried), "{golden}");
    }
    for golden in [GOLDEN_HELLO, GOLDEN_HELLO_LONG] {
        let m = unhex(golden);
        let (covered, carried) = m.split_at(m.len() - 16);
        assert_eq!(tag(&[covered]), hex::encode(carried), "{golden}");
        assert_eq!(&covered[16..32], DOC_NONCE.as_bytes(), "{golden}");
    }
}

#[test]
fn a_trigger_or_error_signed_for_one_nonce_verifies_for_no_other() {
    let control = doc_auth();
    for golden in [
        GOLDEN_TRIGGER,
        GOLDEN_TRIGGER_CONFIRM,
        GOLDEN_KEY_EXPIRED,
        GOLDEN_KEY_EXPIRED_NAMED,
    ] {
        let m = unhex(golden);
        assert_eq!(control.verify_message(&m, &DOC_NONCE), Ok(()), "{golden}");
        for bit in 0..128 {
            let other = flipped(DOC_NONCE, bit);
            assert_ne!(other, DOC_NONCE);
            let auth = control.answer(&other);
            assert_eq!(auth.nonce(), &other);
            assert_eq!(
                control.verify_message(&m, &other),
                Err(Error::BadTag),
                "{golden}: nonce bit {bit}"
            );
            if m[1] == MessageType::DERIVE_TRIGGER.0 {
                let p = TriggerPacket::new_checked(&m[..]).unwrap();
                assert_eq!(p.verify(&auth), Err(Error::BadTag), "nonce bit {bit}");
                assert_eq!(auth.open_trigger(&m, 0), Err(Error::BadTag), "bit {bit}");
            } else {
                let p = KeyExpiredPacket::new_checked(&m[..]).unwrap();
                assert_eq!(p.verify(&auth), Err(Error::BadTag), "nonce bit {bit}");
                assert_eq!(auth.open_key_expired(&m), Err(Error::BadTag), "bit {bit}");
            }
        }
        // Nor for a nonce of all zeros or all ones.
        for other in [
            UeNonce::from_bytes([0; 16]),
            UeNonce::from_bytes([0xff; 16]),
        ] {
            assert_eq!(control.verify_message(&m, &other), Err(Error::BadTag));
        }
    }
    // The same trigger signed for another nonce carries another tag, and
    // nothing else differs: the nonce is not sent.
    let (a, b) = (DOC_NONCE, flipped(DOC_NONCE, 127));
    let one = doc_trigger().to_signed_bytes(&control.answer(&a));
    let two = doc_trigger().to_signed_bytes(&control.answer(&b));
    assert_eq!(one[..34], two[..34]);
    assert_ne!(one[34..], two[34..]);
    assert_eq!(
        control.answer(&b).open_trigger(&two, 0).map(|t| t.counter),
        Ok(1)
    );
}

#[test]
fn a_hellos_nonce_is_covered_by_its_tag() {
    let auth = doc_auth();
    for golden in [GOLDEN_HELLO, GOLDEN_HELLO_LONG] {
        let good = unhex(golden);
        assert_eq!(auth.open_hello(&good).map(|h| h.nonce), Ok(DOC_NONCE));
        for bit in 0..128 {
            let mut forged = good.clone();
            forged[hello::field::NONCE.start + bit / 8] ^= 1 << (bit % 8);
            // Still well formed: only the tag tells.
            let p = HelloPacket::new_checked(&forged[..]).unwrap();
            assert_eq!(p.nonce(), flipped(DOC_NONCE, bit));
            assert_eq!(
                p.verify(&auth),
                Err(Error::BadTag),
                "{golden} nonce bit {bit}"
            );
            assert_eq!(auth.open_hello(&forged), Err(Error::BadTag));
            // The nonce a hello's tag is checked with does not matter: a
            // hello is signed with the control key alone.
            assert_eq!(
                auth.verify_message(&forged, &flipped(DOC_NONCE, bit)),
                Err(Error::BadTag)
            );
        }
        assert_eq!(
            auth.verify_message(&good, &UeNonce::from_bytes([0; 16])),
            Ok(())
        );
    }
}

#[test]
fn the_confirm_flag_is_bit_0_of_a_trigger_and_covered_by_its_tag() {
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
    let offer = unhex(GOLDEN_TRIGGER_CONFIRM);
    assert!(TriggerPacket::new_checked(&offer[..]).unwrap().confirm());
    // Clearing CONFIRM is well formed, but no longer verifies.
    let mut cleared = offer.clone();
    cleared[3] = 0;
    let p = TriggerPacket::new_checked(&cleared[..]).unwrap();
    assert!(!p.confirm());
    assert_eq!(p.verify(&auth), Err(Error::BadTag));
    // The same keyset's trigger without CONFIRM (a keyset in use, repeated)
    // verifies, and differs in the flags and the tag only.
    let repeated = unhex(GOLDEN_TRIGGER);
    let t = auth.open_trigger(&repeated, 0).unwrap();
    assert!(!t.confirm);
    let differ: Vec<usize> = (0..34).filter(|&i| repeated[i] != offer[i]).collect();
    assert_eq!(differ, vec![3]);
    assert_ne!(repeated[34..], offer[34..]);
    // Set and read through the view.
    let mut buf = [0u8; 50];
    let mut v = TriggerPacket::new_unchecked(&mut buf[..]);
    v.set_header(Ksi(9), true);
    assert_eq!((buf[0], buf[1], buf[2], buf[3]), (VERSION, 0x01, 9, 0x01));
    TriggerPacket::new_unchecked(&mut buf[..]).set_header(Ksi(9), false);
    assert_eq!(buf[3], 0x00);
}

#[test]
fn a_hello_is_never_shorter_than_the_trigger_that_answers_it() {
    // Answering a hello with one derive trigger never amplifies.
    let shortest = HelloRepr {
        ksi: Ksi(0),
        rekey: true,
        counter: 0,
        seq: 0,
        nonce: UeNonce::from_bytes([0; 16]),
        id: b"x",
        tag: [0; 16],
    };
    assert_eq!(shortest.buffer_len(), HelloRepr::MIN_LEN);
    const {
        assert!(HelloRepr::MIN_LEN >= TriggerRepr::LEN);
        assert!(HelloRepr::MIN_LEN >= KeyExpiredRepr::LEN);
    }
    assert!(unhex(GOLDEN_HELLO).len() >= unhex(GOLDEN_TRIGGER).len());
    assert!(
        unhex(GOLDEN_HELLO).len() >= unhex(GOLDEN_TRIGGER).len() + unhex(GOLDEN_KEY_EXPIRED).len()
    );
}

#[test]
fn view_and_repr_agree_on_golden_messages() {
    for (golden, confirm) in [(GOLDEN_TRIGGER, false), (GOLDEN_TRIGGER_CONFIRM, true)] {
        let t = unhex(golden);
        let p = TriggerPacket::new_checked(&t[..]).unwrap();
        let r = TriggerRepr::parse(&p).unwrap();
        assert_eq!(
            (p.ksi(), p.confirm(), p.counter(), p.rand(), p.suite()),
            (r.ksi, confirm, r.counter, r.rand.clone(), r.suite)
        );
        assert_eq!(r.confirm, confirm);
        assert_eq!(p.lifetime(), r.lifetime);
        assert_eq!((p.kdf_code(), p.tag()), (r.profile.code(), &r.tag[..]));
    }
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
        assert_eq!((p.nonce(), r.nonce), (DOC_NONCE, DOC_NONCE));
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
                    confirm: rng.next() % 2 == 0,
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
                    nonce: UeNonce::from_bytes(rng.bytes()),
                    id: &payload[..id_len],
                    tag: rng.bytes(),
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut HelloPacket::new_unchecked(&mut b[..]));
                assert_eq!(b.len(), 84.max(49 + id_len), "case {i}");
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
    let mut m = unhex("030301000200000000");
    m.extend_from_slice(&[0xaa; 5]);
    m.extend_from_slice(&[0xbb; 16]);
    m
}

#[test]
fn every_truncation_of_every_message_is_reported_as_truncated() {
    for (name, full) in [
        ("trigger", unhex(GOLDEN_TRIGGER)),
        ("trigger confirm", unhex(GOLDEN_TRIGGER_CONFIRM)),
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
    assert_eq!(Message::parse(&[4, 1]), Err(Error::UnknownVersion(4)));
    assert_eq!(Message::parse(&[0xff]), Err(Error::UnknownVersion(0xff)));
}

#[test]
fn version_2_messages_are_refused_as_unknown_version_2() {
    // Version 2 hellos carry no nonce and its tags are bound to none, its
    // data keys are derived without one: no part of it is read as version 3.
    let control = doc_auth();
    for v2 in [V2_TRIGGER, V2_KEY_EXPIRED, V2_HELLO, V2_DATA] {
        let m = unhex(v2);
        assert_eq!(m[0], 2);
        assert_eq!(Message::parse(&m), Err(Error::UnknownVersion(2)), "{v2}");
        assert_eq!(
            control.verify_message(&m, &DOC_NONCE),
            Err(Error::UnknownVersion(2)),
            "{v2}"
        );
        // Every cut of it too, as soon as the version octet is there.
        for n in 1..m.len() {
            assert_eq!(
                Message::parse(&m[..n]),
                Err(Error::UnknownVersion(2)),
                "{v2} cut at {n}"
            );
        }
    }
    assert_eq!(
        TriggerPacket::new_checked(&unhex(V2_TRIGGER)[..]),
        Err(Error::UnknownVersion(2))
    );
    assert_eq!(
        KeyExpiredPacket::new_checked(&unhex(V2_KEY_EXPIRED)[..]),
        Err(Error::UnknownVersion(2))
    );
    assert_eq!(
        HelloPacket::new_checked(&unhex(V2_HELLO)[..]),
        Err(Error::UnknownVersion(2))
    );
    assert_eq!(
        DataPacket::new_checked(&unhex(V2_DATA)[..]),
        Err(Error::UnknownVersion(2))
    );
    assert_eq!(
        control
            .answer(&DOC_NONCE)
            .open_trigger(&unhex(V2_TRIGGER), 0),
        Err(Error::UnknownVersion(2))
    );
    assert_eq!(
        control.open_hello(&unhex(V2_HELLO)),
        Err(Error::UnknownVersion(2))
    );
    // A version 3 message with its version octet set to 2 likewise.
    for golden in [
        GOLDEN_TRIGGER,
        GOLDEN_KEY_EXPIRED,
        GOLDEN_HELLO,
        GOLDEN_HELLO_LONG,
    ] {
        let mut m = unhex(golden);
        m[0] = 2;
        assert_eq!(
            Message::parse(&m),
            Err(Error::UnknownVersion(2)),
            "{golden}"
        );
    }
    let mut d = golden_data();
    d[0] = 2;
    assert_eq!(Message::parse(&d), Err(Error::UnknownVersion(2)));
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
    for (golden, len) in [(GOLDEN_HELLO, 84), (GOLDEN_HELLO_LONG, 107)] {
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
    // Bit 0 is CONFIRM in a trigger, NAMED in a key-expired error and REKEY
    // in a hello; bits 1-7 are reserved in each, with bit 0 set or not.
    for golden in [GOLDEN_TRIGGER, GOLDEN_KEY_EXPIRED, GOLDEN_HELLO] {
        for bit in 1..8 {
            let mut m = unhex(golden);
            m[3] = 1 << bit;
            assert_eq!(
                Message::parse(&m),
                Err(Error::Malformed {
                    field: FieldName::Flags,
                    value: 1 << bit
                }),
                "{golden} bit {bit} alone"
            );
        }
    }
    for golden in [
        GOLDEN_TRIGGER_CONFIRM,
        GOLDEN_KEY_EXPIRED_NAMED,
        GOLDEN_HELLO,
    ] {
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
    assert_eq!(
        doc_auth().answer(&DOC_NONCE).open_key_expired(&k),
        Err(Error::BadTag)
    );
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
    assert_eq!(hello::field::ID_LEN, 32);
    assert_eq!(h[hello::field::ID_LEN], 7);
    for bad in [0u8, 65, 0xff] {
        let mut m = h.clone();
        m[hello::field::ID_LEN] = bad;
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
    m[hello::field::ID_LEN] = 60;
    assert_eq!(
        Message::parse(&m),
        Err(Error::Truncated {
            needed: 109,
            got: 84
        })
    );
    let mut m = unhex(GOLDEN_HELLO_LONG);
    m[hello::field::ID_LEN] = 7;
    assert_eq!(
        Message::parse(&m),
        Err(Error::TrailingData {
            expected: 84,
            got: 107
        })
    );
    // Every padding octet (40..68, after the 7-octet identifier at 33) must
    // be zero.
    for at in 40..68 {
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
        nonce: DOC_NONCE,
        id: b"",
        tag: [0; 16],
    };
    assert_eq!(
        empty.emit_signed(&doc_auth(), &mut [0u8; HelloRepr::MAX_LEN]),
        Err(Error::Malformed {
            field: FieldName::IdLength,
            value: 0
        })
    );
    assert_eq!(
        Message::Hello(empty).emit_into(&mut [0u8; HelloRepr::MAX_LEN]),
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
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
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
        .emit_signed(
            &ControlAuth::new(&other.control_key()).answer(&DOC_NONCE),
            &mut buf,
        )
        .unwrap();
    assert_eq!(auth.open_trigger(&buf, 0), Err(Error::BadTag));
    // Same root octets, other kind (domain separation of control keys).
    let as_e2m = PreparedRoot::new(
        &RootKey::new(RootKind::E2mKey, RootBytes::from_bytes(*doc_root_bytes())),
        KdfProfile::Ts33220,
    );
    assert_eq!(
        ControlAuth::new(&as_e2m.control_key())
            .answer(&DOC_NONCE)
            .open_trigger(&good, 0),
        Err(Error::BadTag)
    );
    // Signed as a hello is (without the nonce): not a trigger's tag.
    let mut as_hello = good.clone();
    let tag = control.tag(&as_hello[..34]);
    as_hello[34..].copy_from_slice(&tag);
    assert_eq!(auth.open_trigger(&as_hello, 0), Err(Error::BadTag));
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
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
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
    let control = doc_auth();
    let auth = control.answer(&DOC_NONCE);
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    k[4] = Cause::ROOT_REPLACED.0;
    assert_eq!(auth.open_key_expired(&k), Err(Error::BadTag));
    // Naming another message is a forgery too.
    let mut k = unhex(GOLDEN_KEY_EXPIRED_NAMED);
    k[16] = 4;
    assert_eq!(auth.open_key_expired(&k), Err(Error::BadTag));
    assert_eq!(
        control.verify_message(&unhex(GOLDEN_KEY_EXPIRED_NAMED), &DOC_NONCE),
        Ok(())
    );
    // Signed as a hello is (without the nonce): not an error's tag.
    let mut k = unhex(GOLDEN_KEY_EXPIRED);
    let tag = control.tag(&k[..17]);
    k[17..].copy_from_slice(&tag);
    assert_eq!(auth.open_key_expired(&k), Err(Error::BadTag));
}

#[test]
fn forged_hello_is_detected_by_verification() {
    let auth = doc_auth();
    for golden in [GOLDEN_HELLO, GOLDEN_HELLO_LONG] {
        let good = unhex(golden);
        assert_eq!(auth.verify_message(&good, &DOC_NONCE), Ok(()));
        // Another UE's name, a higher seq, REKEY cleared, another start's
        // nonce: all forgeries.
        for (at, xor) in [(33, 0x01), (15, 0x01), (3, 0x01), (16, 0x80), (31, 0x01)] {
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
