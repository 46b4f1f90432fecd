//! Wire-format targets: decoding any octets, and Repr round trips.

use std::vec;

use arbitrary::{Arbitrary, Unstructured};

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e::wire::{
    self, ControlAuth, DataPacket, DataRepr, Error, FieldName, HelloPacket, HelloRepr,
    KeyExpiredPacket, KeyExpiredRepr, Message, MessageType, Suite, TriggerPacket, TriggerRepr,
    data, hello, peek_type,
};

/// A fixed control key, for signing and verifying in the targets.
pub(crate) fn fixed_auth() -> ControlAuth {
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x5a; 32]));
    ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key())
}

/// The UE start the targets' triggers and errors answer.
pub(crate) const FIXED_NONCE: UeNonce = UeNonce([0xa7; 16]);

/// Any octets through [`Message::parse`].
///
/// Oracle: parsing never panics; when it succeeds, `emit_into` into a buffer of
/// `buffer_len()` octets gives exactly the input (the format is canonical), a
/// buffer one octet short is refused, the view of the message type agrees
/// with the Repr field by field (a key-expired error's NAMED flag and seq,
/// a hello's identifier, its zero padding and its length
/// `max(84, 49 + idlen)` included), and `peek_type` names the same type.
/// When it fails, the type's own view/Repr path fails with the same error.
/// Opening a control message under the fixed key agrees with verifying it.
pub fn decode_any(bytes: &[u8]) {
    let control = fixed_auth();
    let auth = control.answer(&FIXED_NONCE);
    // Must not panic, whatever it answers: tags are random here.
    let verified = control.verify_message(bytes, &FIXED_NONCE);
    let _ = auth.open_trigger(bytes, 0);
    let opened_error = auth.open_key_expired(bytes);
    let opened_hello = control.open_hello(bytes);
    if opened_error.is_ok() || opened_hello.is_ok() {
        assert_eq!(verified, Ok(()), "opened but does not verify");
    }

    let msg = match Message::parse(bytes) {
        Ok(msg) => msg,
        Err(e) => {
            if let Ok(ty) = peek_type(bytes) {
                assert_eq!(
                    Some(e),
                    view_error(ty, bytes),
                    "parse and view disagree on {bytes:02x?}"
                );
            }
            return;
        }
    };
    assert_eq!(peek_type(bytes), Ok(msg.message_type()));
    assert_eq!(msg.buffer_len(), bytes.len(), "buffer_len of {msg:?}");

    let mut out = vec![0xa5u8; bytes.len()];
    assert_eq!(msg.emit_into(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes, "re-encoding {msg:?} is not canonical");
    let mut bigger = vec![0xa5u8; bytes.len() + 3];
    assert_eq!(msg.emit_into(&mut bigger), Ok(bytes.len()));
    assert_eq!(&bigger[..bytes.len()], bytes);
    assert_eq!(
        &bigger[bytes.len()..],
        &[0xa5; 3],
        "emit_into wrote past its length"
    );
    let short = bytes.len() - 1;
    assert!(
        matches!(
            msg.emit_into(&mut out[..short]),
            Err(Error::BufferTooSmall { .. })
        ),
        "emit_into accepted a buffer one octet short"
    );

    match &msg {
        Message::Trigger(r) => {
            let p = TriggerPacket::new_checked(bytes).expect("parsed trigger fails its view");
            assert_eq!(
                (
                    p.ksi(),
                    p.counter(),
                    &p.rand(),
                    p.kdf_code(),
                    p.suite(),
                    p.lifetime(),
                    p.tag()
                ),
                (
                    r.ksi,
                    r.counter,
                    &r.rand,
                    r.profile.code(),
                    r.suite,
                    r.lifetime,
                    &r.tag[..]
                )
            );
            assert_eq!(p.covered(), &bytes[..bytes.len() - wire::CONTROL_TAG_LEN]);
            assert_eq!(TriggerRepr::parse(&p).as_ref(), Ok(r));
        }
        Message::KeyExpired(r) => {
            let p =
                KeyExpiredPacket::new_checked(bytes).expect("parsed key-expired fails its view");
            assert_eq!(
                (p.ksi(), p.cause(), p.counter(), p.tag()),
                (r.ksi, r.cause, r.counter, &r.tag[..])
            );
            assert_eq!(p.named().then(|| p.seq()), r.refused);
            assert!(p.named() || p.seq() == 0, "an unnamed error with a seq");
            assert_eq!(bytes[3] & 1 == 1, r.refused.is_some());
            assert_eq!(bytes.len(), KeyExpiredRepr::LEN);
            assert_eq!(p.covered(), &bytes[..bytes.len() - wire::CONTROL_TAG_LEN]);
            assert!(r.cause.is_known());
            assert_eq!(KeyExpiredRepr::parse(&p).as_ref(), Ok(r));
            assert_eq!(
                opened_error.is_ok(),
                p.verify(&auth).is_ok(),
                "open_key_expired and verify disagree"
            );
        }
        Message::Data(r) => {
            let p = DataPacket::new_checked(bytes).expect("parsed data fails its view");
            assert_eq!(
                (
                    p.ksi(),
                    p.direction(),
                    p.suite(),
                    p.seq(),
                    p.ciphertext(),
                    p.tag()
                ),
                (r.ksi, r.direction, r.suite, r.seq, r.ciphertext, r.tag)
            );
            assert_eq!((p.len(), p.is_empty()), (bytes.len(), false));
            assert_eq!(p.header(), &bytes[..data::HEADER_LEN]);
            assert_eq!(r.tag.len(), r.suite.tag_len());
            assert!(r.suite.is_known());
            // The mutable view splits the same way.
            let mut copy = bytes.to_vec();
            let mut view = DataPacket::new_unchecked(&mut copy[..]);
            let (head, payload, tag) = view.split_mut();
            assert_eq!((head, &*payload, &*tag), (p.header(), r.ciphertext, r.tag));
        }
        Message::Hello(r) => {
            let p = HelloPacket::new_checked(bytes).expect("parsed hello fails its view");
            assert_eq!(
                (
                    p.ksi(),
                    p.rekey(),
                    p.counter(),
                    p.seq(),
                    p.nonce(),
                    p.id(),
                    p.tag()
                ),
                (r.ksi, r.rekey, r.counter, r.seq, r.nonce, r.id, &r.tag[..])
            );
            assert_eq!(bytes.len(), HelloRepr::len_for(r.id.len()));
            assert_eq!(bytes.len(), 84.max(49 + r.id.len()));
            assert!((1..=hello::MAX_ID_LEN).contains(&r.id.len()));
            assert_eq!(usize::from(bytes[hello::field::ID_LEN]), r.id.len());
            assert_eq!(&bytes[p.id_field()], r.id);
            let padding = &bytes[p.id_field().end..bytes.len() - wire::CONTROL_TAG_LEN];
            assert!(padding.iter().all(|&b| b == 0), "non-zero padding parsed");
            assert_eq!(p.covered(), &bytes[..bytes.len() - wire::CONTROL_TAG_LEN]);
            assert!(
                bytes.len() >= TriggerRepr::LEN,
                "a hello shorter than a trigger"
            );
            assert_eq!(HelloRepr::parse(&p).as_ref(), Ok(r));
            assert_eq!(
                opened_hello.as_ref().ok(),
                p.verify(&control).is_ok().then_some(r),
                "open_hello and verify disagree"
            );
        }
    }
}

/// What the type's own view and Repr say about `bytes`.
fn view_error(ty: MessageType, bytes: &[u8]) -> Option<Error> {
    match ty {
        MessageType::DERIVE_TRIGGER => TriggerPacket::new_checked(bytes)
            .and_then(|p| TriggerRepr::parse(&p))
            .err(),
        MessageType::KEY_EXPIRED => KeyExpiredPacket::new_checked(bytes)
            .and_then(|p| KeyExpiredRepr::parse(&p))
            .err(),
        MessageType::HELLO => HelloPacket::new_checked(bytes)
            .and_then(|p| HelloRepr::parse(&p))
            .err(),
        _ => DataPacket::new_checked(bytes)
            .and_then(|p| DataRepr::parse(&p))
            .err(),
    }
}

/// An arbitrary Repr → emit → parse.
///
/// Oracle: parse gives the Repr back (a trigger with lifetime 0 is the one
/// Repr the format refuses, with `Malformed(Lifetime)`); a signed control
/// message (trigger, key-expired error named or not, hello) verifies and
/// opens, and any single bit flip makes it fail; a data Repr whose tag
/// length or suite does not fit, and a hello whose identifier is empty or
/// longer than 64 octets, are refused by `emit_into` and `emit_signed`
/// rather than written.
pub fn repr_roundtrip(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok(which) = u.int_in_range(0u8..=5) else {
        return;
    };
    let flip: u16 = u.arbitrary().unwrap_or(0);
    match which {
        0 => {
            if let Ok(r) = TriggerRepr::arbitrary(&mut u) {
                trigger_roundtrip(&r, flip);
            }
        }
        1 => {
            if let Ok(r) = KeyExpiredRepr::arbitrary(&mut u) {
                key_expired_roundtrip(&r, flip);
            }
        }
        2 => {
            if let Ok(r) = DataRepr::arbitrary(&mut u) {
                data_roundtrip(&r);
            }
        }
        3 => {
            if let Ok(r) = HelloRepr::arbitrary(&mut u) {
                hello_roundtrip(&r, flip);
            }
        }
        4 => hello_misfit(&mut u),
        _ => data_misfit(&mut u),
    }
}

fn hello_roundtrip(r: &HelloRepr<'_>, flip: u16) {
    let len = r.buffer_len();
    assert_eq!(len, 84.max(49 + r.id.len()));
    let mut buf = std::vec![0xa5u8; len + 1];
    assert_eq!(Message::Hello(*r).emit_into(&mut buf), Ok(len));
    assert_eq!(buf[len], 0xa5, "emit_into wrote past its length");
    assert_eq!(Message::parse(&buf[..len]), Ok(Message::Hello(*r)));
    assert_eq!(
        Message::Hello(*r).emit_into(&mut buf[..len - 1]),
        Err(Error::BufferTooSmall {
            needed: len,
            got: len - 1
        })
    );

    let auth = fixed_auth();
    let buf = &mut buf[..len];
    assert_eq!(r.emit_signed(&auth, buf), Ok(len));
    assert_eq!(auth.verify_message(buf, &FIXED_NONCE), Ok(()));
    let signed = HelloRepr {
        tag: auth.tag(&buf[..len - wire::CONTROL_TAG_LEN]),
        ..*r
    };
    assert_eq!(auth.open_hello(buf), Ok(signed));
    let bit = usize::from(flip) % (len * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    assert!(
        auth.open_hello(buf).is_err(),
        "hello with bit {bit} flipped opened"
    );
}

/// Hellos whose identifier is empty or over 64 octets: never written.
fn hello_misfit(u: &mut Unstructured<'_>) {
    let (Ok(long), Ok(extra)) = (u.arbitrary::<bool>(), u.int_in_range(1usize..=32)) else {
        return;
    };
    let id = [0x69u8; hello::MAX_ID_LEN + 32];
    let id = if long {
        &id[..hello::MAX_ID_LEN + extra]
    } else {
        &id[..0]
    };
    let r = HelloRepr {
        ksi: wire::Ksi(u.arbitrary().unwrap_or(0)),
        rekey: u.arbitrary().unwrap_or(false),
        counter: u.arbitrary().unwrap_or(0),
        seq: u.arbitrary().unwrap_or(0),
        nonce: UeNonce(u.arbitrary().unwrap_or([0; 16])),
        id,
        tag: [0; 16],
    };
    let refused = Err(Error::Malformed {
        field: FieldName::IdLength,
        value: id.len() as u64,
    });
    let mut buf = std::vec![0x5au8; 2 * HelloRepr::MAX_LEN];
    assert_eq!(Message::Hello(r).emit_into(&mut buf), refused);
    assert_eq!(r.emit_signed(&fixed_auth(), &mut buf), refused);
    assert!(
        buf.iter().all(|&b| b == 0x5a),
        "a refused hello was written"
    );
}

fn trigger_roundtrip(r: &TriggerRepr, flip: u16) {
    let mut buf = [0u8; TriggerRepr::LEN];
    assert_eq!(
        Message::Trigger(r.clone()).emit_into(&mut buf),
        Ok(TriggerRepr::LEN)
    );
    let parsed = Message::parse(&buf);
    if r.lifetime == 0 {
        assert_eq!(
            parsed,
            Err(Error::Malformed {
                field: FieldName::Lifetime,
                value: 0
            })
        );
        return;
    }
    assert_eq!(parsed, Ok(Message::Trigger(r.clone())));

    let control = fixed_auth();
    let auth = control.answer(&FIXED_NONCE);
    assert_eq!(r.emit_signed(&auth, &mut buf), Ok(TriggerRepr::LEN));
    assert_eq!(control.verify_message(&buf, &FIXED_NONCE), Ok(()));
    // Made for one start of the UE: no other start's key opens it.
    let other = UeNonce([0xa8; 16]);
    assert_eq!(
        control.verify_message(&buf, &other),
        Err(Error::BadTag),
        "a trigger verified for another UE start"
    );
    let opened = auth.open_trigger(&buf, r.counter.wrapping_sub(1));
    if r.counter == 0 {
        assert_eq!(
            opened,
            Err(Error::StaleCounter {
                counter: 0,
                last: u64::MAX
            })
        );
    } else {
        let signed = TriggerRepr {
            tag: auth.tag(&buf[..trigger::COVERED]),
            ..r.clone()
        };
        assert_eq!(opened, Ok(signed));
    }
    assert_eq!(
        auth.open_trigger(&buf, r.counter),
        Err(Error::StaleCounter {
            counter: r.counter,
            last: r.counter
        })
    );
    let bit = usize::from(flip) % (TriggerRepr::LEN * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    assert!(
        auth.open_trigger(&buf, 0).is_err(),
        "trigger with bit {bit} flipped opened"
    );
}

mod trigger {
    pub(super) const COVERED: usize = ciot_e2e::wire::trigger::field::TAG.start;
}

use ciot_e2e::wire::key_expired::field as key_expired_field;

fn key_expired_roundtrip(r: &KeyExpiredRepr, flip: u16) {
    let mut buf = [0u8; KeyExpiredRepr::LEN];
    assert_eq!(
        Message::KeyExpired(*r).emit_into(&mut buf),
        Ok(KeyExpiredRepr::LEN)
    );
    assert_eq!(Message::parse(&buf), Ok(Message::KeyExpired(*r)));
    // NAMED and the seq field say the same thing.
    assert_eq!(buf[3], u8::from(r.refused.is_some()));
    assert_eq!(
        buf[key_expired_field::SEQ],
        r.refused.unwrap_or(0).to_be_bytes()
    );
    let control = fixed_auth();
    let auth = control.answer(&FIXED_NONCE);
    assert_eq!(r.emit_signed(&auth, &mut buf), Ok(KeyExpiredRepr::LEN));
    assert_eq!(
        control.answer(&UeNonce([0xa8; 16])).open_key_expired(&buf),
        Err(Error::BadTag),
        "an error opened for another UE start"
    );
    let covered = ciot_e2e::wire::key_expired::field::TAG.start;
    let signed = KeyExpiredRepr {
        tag: auth.tag(&buf[..covered]),
        ..*r
    };
    assert_eq!(auth.open_key_expired(&buf), Ok(signed));
    let bit = usize::from(flip) % (KeyExpiredRepr::LEN * 8);
    buf[bit / 8] ^= 1 << (bit % 8);
    assert!(
        auth.open_key_expired(&buf).is_err(),
        "key-expired with bit {bit} flipped opened"
    );
}

fn data_roundtrip(r: &DataRepr<'_>) {
    let len = r.buffer_len();
    let mut buf = vec![0xa5u8; len + 1];
    assert_eq!(r.emit_into(&mut buf), Ok(len));
    assert_eq!(buf[len], 0xa5, "emit_into wrote past its length");
    assert_eq!(Message::parse(&buf[..len]), Ok(Message::Data(*r)));
    assert_eq!(
        Message::Data(*r).emit_into(&mut buf[..len - 1]),
        Err(Error::BufferTooSmall {
            needed: len,
            got: len - 1
        })
    );
}

/// Data Reprs that do not fit the format: any suite octet, any tag length.
fn data_misfit(u: &mut Unstructured<'_>) {
    let (Ok(suite), Ok(tag_len), Ok(ciphertext)) = (
        u.arbitrary::<u8>(),
        u.int_in_range(0usize..=20),
        u.arbitrary::<&[u8]>(),
    ) else {
        return;
    };
    let tag = [0x11u8; 20];
    let r = DataRepr {
        ksi: wire::Ksi(u.arbitrary().unwrap_or(0)),
        direction: wire::Direction::from_bit(u.arbitrary().unwrap_or(0)),
        suite: Suite(suite),
        seq: u.arbitrary().unwrap_or(0),
        ciphertext,
        tag: &tag[..tag_len],
    };
    let mut buf = vec![0u8; r.buffer_len()];
    let got = r.emit_into(&mut buf);
    if !r.suite.is_known() {
        assert_eq!(
            got,
            Err(Error::Malformed {
                field: FieldName::Suite,
                value: u64::from(suite)
            })
        );
    } else if tag_len != r.suite.tag_len() {
        assert_eq!(
            got,
            Err(Error::Malformed {
                field: FieldName::TagLength,
                value: tag_len as u64
            })
        );
    } else {
        assert_eq!(got, Ok(buf.len()));
        assert_eq!(Message::parse(&buf), Ok(Message::Data(r)));
    }
}
