//! Hostile datagrams: garbage (random, cut short, bit-flipped, or a real
//! message with a field no version-2 endpoint accepts), forgeries (well-formed
//! messages with made-up tags: data, hellos, triggers, key-expired errors) and
//! replays of authentic messages, as an on-path attacker sends them.
//!
//! Every injected datagram is noted in a [`Registry`] before it is sent, so
//! the receiving side can tell it apart from honest traffic and count how it
//! was handled.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use ciot_e2e::kdf::{KdfProfile, Rand};
use ciot_e2e::wire::{
    self, Cause, HelloPacket, HelloRepr, KeyExpiredPacket, KeyExpiredRepr, Ksi, MessageType, Suite,
    TriggerPacket, TriggerRepr, VERSION,
};

use super::identity;
use crate::rng::Rng;

/// Peer index of the stranger: an address no UE said hello from (unless a
/// replayed hello moved a UE there).
pub const STRANGER: u32 = u32::MAX;

/// What an injected datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Random or damaged octets.
    Garbage,
    /// A well-formed protocol message with a made-up tag.
    Forged,
    /// An authentic message sent again later.
    Replayed,
}

impl Class {
    /// All classes, in report order.
    pub const ALL: [Class; 3] = [Class::Garbage, Class::Forged, Class::Replayed];

    /// Index into per-class arrays.
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Class::Garbage => 0,
            Class::Forged => 1,
            Class::Replayed => 2,
        }
    }

    /// Name in the report.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Class::Garbage => "garbage",
            Class::Forged => "forged",
            Class::Replayed => "replayed",
        }
    }
}

/// An injected datagram's class and kind.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// Its class.
    pub class: Class,
    /// What it is, for the report.
    pub what: &'static str,
}

/// Injected datagrams on their way, keyed by receiver (toward UEs) or sender
/// (toward the EESE) and content.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<u64, (Kind, u32)>>);

fn key(peer: u32, bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    peer.hash(&mut h);
    bytes.hash(&mut h);
    h.finish()
}

impl Registry {
    /// Notes an injected datagram for `peer`.
    pub fn put(&self, peer: u32, bytes: &[u8], kind: Kind) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key(peer, bytes)).or_insert((kind, 0)).1 += 1;
    }

    /// If this datagram of `peer` was injected, what it is.
    pub fn take(&self, peer: u32, bytes: &[u8]) -> Option<Kind> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let k = key(peer, bytes);
        let (kind, left) = map.get_mut(&k)?;
        let kind = *kind;
        *left -= 1;
        if *left == 0 {
            map.remove(&k);
        }
        Some(kind)
    }

    /// Injected datagrams never received, per class.
    pub fn unreceived(&self) -> [u64; 3] {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = [0u64; 3];
        for (kind, left) in map.values() {
            n[kind.class.index()] += u64::from(*left);
        }
        n
    }
}

/// What the attacker knows of the two ends, to make forgeries that look
/// current (an on-path attacker sees identifiers, KSIs, counters and sequence
/// numbers go by).
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The UE's index (its identifier follows from it).
    pub ue: u32,
    /// KSI in use, if any.
    pub ksi: Option<Ksi>,
    /// Latest trigger counter.
    pub counter: u64,
    /// Suite in use.
    pub suite: Suite,
    /// The UE's last uplink sequence number seen, if any.
    pub seq: Option<u32>,
}

fn kind(class: Class, what: &'static str) -> Kind {
    Kind { class, what }
}

/// A damaged copy of `real` (to or from `peer`), or random octets; toward
/// the EESE, sometimes from the stranger's address.
pub fn garbage(rng: &mut Rng, toward_ue: bool, peer: u32, real: &[u8]) -> (u32, Vec<u8>, Kind) {
    let garbage = |what| kind(Class::Garbage, what);
    let pick = if real.len() < 5 { 0 } else { rng.below(5) };
    match pick {
        1 => {
            let n = 1 + rng.index(real.len() - 1);
            (peer, real[..n].to_vec(), garbage("truncated message"))
        }
        2 => {
            // One to three distinct bits, so the message always changes.
            let mut d = real.to_vec();
            let bits = d.len() * 8;
            let first = rng.index(bits);
            let flips = 1 + rng.index(3);
            for j in 0..flips {
                let bit = (first + j * (1 + bits / 3)) % bits;
                d[bit / 8] ^= 1 << (bit % 8);
            }
            (peer, d, garbage("bit-flipped message"))
        }
        3 => {
            let mut d = real.to_vec();
            let what = bad_field(rng, &mut d);
            (peer, d, garbage(what))
        }
        4 if !toward_ue => {
            let mut d = vec![0u8; 1 + rng.index(100)];
            rng.fill(&mut d);
            (STRANGER, d, garbage("datagram from a stranger"))
        }
        _ => {
            let mut d = vec![0u8; 1 + rng.index(100)];
            rng.fill(&mut d);
            if d.len() >= 2 && rng.chance(0.5) {
                d[0] = VERSION;
                d[1] = 1 + rng.below(4) as u8;
            }
            (peer, d, garbage("random octets"))
        }
    }
}

/// Puts a value no version-2 endpoint accepts into one field of `d` (at
/// least 5 octets); returns what it did.
fn bad_field(rng: &mut Rng, d: &mut [u8]) -> &'static str {
    match rng.below(4) {
        0 => {
            // Any version but this one.
            let v = rng.below(255) as u8;
            d[0] = if v >= VERSION { v + 1 } else { v };
            "unknown version"
        }
        1 => {
            d[1] = 5 + rng.below(251) as u8;
            "unknown type"
        }
        2 => {
            d[3] |= 2 << rng.below(7);
            "reserved flag set"
        }
        _ => match MessageType(d[1]) {
            MessageType::DATA => {
                d[4] = 3 + rng.below(253) as u8;
                "unknown suite"
            }
            MessageType::DERIVE_TRIGGER if d.len() > 29 => {
                if rng.chance(0.5) {
                    d[29] = 3 + rng.below(253) as u8;
                    "unknown suite"
                } else {
                    d[28] = 3 + rng.below(253) as u8;
                    "unknown KDF profile"
                }
            }
            MessageType::HELLO if d.len() >= HelloRepr::MIN_LEN => {
                let id_len = usize::from(d[wire::hello::field::ID_LEN]);
                let pad = wire::hello::field::ID + id_len;
                if rng.chance(0.5) || pad >= d.len() - 16 {
                    d[wire::hello::field::ID_LEN] = if rng.chance(0.5) {
                        0
                    } else {
                        65 + rng.below(191) as u8
                    };
                    "bad identifier length"
                } else {
                    let at = pad + rng.index(d.len() - 16 - pad);
                    d[at] = 1 + rng.below(255) as u8;
                    "non-zero padding"
                }
            }
            _ => {
                // Key-expired error: octet 4 is the cause.
                d[4] = 6 + rng.below(250) as u8;
                "unknown cause"
            }
        },
    }
}

fn random_tag(rng: &mut Rng) -> [u8; 16] {
    let mut tag = [0u8; 16];
    rng.fill(&mut tag);
    tag
}

fn forged_data(rng: &mut Rng, toward_ue: bool, ksi: Ksi, suite: Suite) -> Vec<u8> {
    let flags = if toward_ue { 0x01 } else { 0x00 };
    let seq = rng.next_u64().to_be_bytes();
    let mut d = vec![VERSION, MessageType::DATA.0, ksi.0, flags, suite.0];
    d.extend_from_slice(&seq[..4]);
    let mut body = vec![0u8; suite.tag_len() + 8 + rng.index(40)];
    rng.fill(&mut body);
    d.extend_from_slice(&body);
    d
}

/// A hello with a made-up tag naming `id`, a little ahead of the UE.
fn forged_hello(rng: &mut Rng, t: &Target, id: &[u8]) -> Vec<u8> {
    let repr = HelloRepr {
        ksi: t.ksi.unwrap_or(Ksi(0)),
        rekey: rng.chance(0.5),
        counter: t.counter + rng.below(3),
        seq: rng.below(1 << 16) as u32,
        nonce: ciot_e2e::kdf::UeNonce::from_bytes({
            let mut n = [0u8; 16];
            rng.fill(&mut n);
            n
        }),
        id,
        tag: random_tag(rng),
    };
    let mut d = vec![0u8; repr.buffer_len()];
    repr.emit(&mut HelloPacket::new_unchecked(&mut d[..]));
    d
}

fn forged_trigger(rng: &mut Rng, ksi: Ksi, counter: u64, suite: Suite) -> Vec<u8> {
    let mut rand = [0u8; 16];
    rng.fill(&mut rand);
    let repr = TriggerRepr {
        ksi,
        confirm: rng.chance(0.5),
        counter,
        rand: Rand(rand),
        profile: KdfProfile::Ts33220,
        suite,
        lifetime: 3600,
        tag: random_tag(rng),
    };
    let mut d = vec![0u8; TriggerRepr::LEN];
    repr.emit(&mut TriggerPacket::new_unchecked(&mut d[..]));
    d
}

/// A well-formed message with a made-up tag, for (or from) `peer`.
pub fn forged(rng: &mut Rng, toward_ue: bool, peer: u32, t: &Target) -> (u32, Vec<u8>, Kind) {
    let forged = |what| kind(Class::Forged, what);
    let ksi = t.ksi.unwrap_or(Ksi(0));
    let id = identity::id(t.ue);
    if toward_ue {
        match rng.below(4) {
            0 => {
                let next = t.ksi.map_or(Ksi(0), Ksi::next);
                let counter = t.counter + 1 + rng.below(3);
                let d = forged_trigger(rng, next, counter, t.suite);
                (peer, d, forged("forged trigger"))
            }
            1 => {
                let repr = KeyExpiredRepr {
                    ksi,
                    cause: Cause::TE2E_EXPIRED,
                    counter: t.counter,
                    refused: t.seq,
                    tag: random_tag(rng),
                };
                let mut d = vec![0u8; KeyExpiredRepr::LEN];
                repr.emit(&mut KeyExpiredPacket::new_unchecked(&mut d[..]));
                (peer, d, forged("forged key-expired error"))
            }
            2 => (
                peer,
                forged_data(rng, true, ksi, t.suite),
                forged("forged data"),
            ),
            _ => (
                peer,
                forged_hello(rng, t, id.as_bytes()),
                forged("hello sent to a UE"),
            ),
        }
    } else {
        match rng.below(6) {
            0 => (
                peer,
                forged_data(rng, false, ksi, t.suite),
                forged("forged data"),
            ),
            1 => {
                let other = Ksi(ksi.0.wrapping_add(100 + rng.below(50) as u8));
                let d = forged_data(rng, false, other, t.suite);
                (peer, d, forged("forged data, unknown KSI"))
            }
            2 => {
                let d = forged_trigger(rng, ksi, t.counter + 1, t.suite);
                (peer, d, forged("trigger sent to the EESE"))
            }
            3 => (
                peer,
                forged_hello(rng, t, id.as_bytes()),
                forged("forged hello"),
            ),
            4 => (
                STRANGER,
                forged_hello(rng, t, id.as_bytes()),
                forged("forged hello from a stranger"),
            ),
            _ => {
                // An identifier no UE has: the EESE must not make a session.
                let unknown = format!("ue-{}", u64::from(u32::MAX) + 1 + rng.below(1000));
                let d = forged_hello(rng, t, unknown.as_bytes());
                (peer, d, forged("forged hello, unknown UE"))
            }
        }
    }
}

/// An authentic datagram `d` of `peer`'s, sent again: to the same UE, or
/// toward the EESE from the same UE's address or (hellos, sometimes) from
/// the stranger's, as a NAT rebinding would look.
pub fn replayed(rng: &mut Rng, toward_ue: bool, peer: u32, d: &[u8]) -> (u32, Kind) {
    let replayed = |what| kind(Class::Replayed, what);
    match d.get(1).map(|t| MessageType(*t)) {
        Some(MessageType::DERIVE_TRIGGER) => (peer, replayed("replayed trigger")),
        Some(MessageType::KEY_EXPIRED) => (peer, replayed("replayed key-expired error")),
        Some(MessageType::HELLO) if !toward_ue && rng.chance(0.5) => {
            (STRANGER, replayed("replayed hello from another address"))
        }
        Some(MessageType::HELLO) => (peer, replayed("replayed hello")),
        _ => (peer, replayed("replayed data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciot_e2e::wire::Message;

    fn target() -> Target {
        Target {
            ue: 3,
            ksi: Some(Ksi(2)),
            counter: 5,
            suite: Suite::AES_128_GCM,
            seq: Some(9),
        }
    }

    #[test]
    fn forgeries_are_well_formed_and_garbage_is_not() {
        let mut rng = Rng::new(1);
        for toward_ue in [false, true] {
            for _ in 0..200 {
                let (_, d, k) = forged(&mut rng, toward_ue, 3, &target());
                let parsed = Message::parse(&d);
                assert!(parsed.is_ok(), "{} does not parse: {parsed:?}", k.what);
            }
        }
        // A real hello, damaged field by field: never well-formed.
        let hello = forged_hello(&mut rng, &target(), b"ue-3");
        for _ in 0..200 {
            let mut d = hello.clone();
            let what = bad_field(&mut rng, &mut d);
            assert!(Message::parse(&d).is_err(), "{what} parses");
        }
    }
}
