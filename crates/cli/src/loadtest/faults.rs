//! The fault layer, applied where each side sends: it drops, duplicates and
//! delays (so reorders) real datagrams, and injects hostile ones — garbage,
//! forged and replayed protocol messages — from the address the receiver
//! trusts (a UE's own socket toward the EESE, the EESE's socket toward a UE),
//! which is what an on-path attacker can do.
//!
//! Every injected datagram is noted in a [`Registry`] before it is sent, so
//! the receiving thread can tell it apart from honest traffic and count how
//! it was handled.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use ciot_e2e::kdf::{KdfProfile, Rand};
use ciot_e2e::wire::{
    Cause, KeyExpiredPacket, KeyExpiredRepr, Ksi, MessageType, Suite, TriggerPacket, TriggerRepr,
    VERSION,
};

use super::rng::Rng;

/// Peer index of the stranger: an address the EESE has no session for.
pub const STRANGER: u32 = u32::MAX;

/// Real datagrams remembered for replays.
const HISTORY: usize = 4096;
/// Longest extra delay of a reordered datagram.
const MAX_DELAY_MS: u64 = 40;
/// A replayed datagram is at least this old, so the original has long
/// arrived (or been dropped).
const REPLAY_MIN_AGE_MS: u64 = 300;

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
    pub const fn index(self) -> usize {
        match self {
            Class::Garbage => 0,
            Class::Forged => 1,
            Class::Replayed => 2,
        }
    }

    /// Name in the report.
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

/// Injected datagrams on their way, keyed by receiver and content.
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

    /// If this datagram received by `peer` was injected, what it is.
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

/// What the sender knows of the receiver's keys, to make forgeries that look
/// current (an on-path attacker sees KSIs and counters go by).
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// KSI in use, if any.
    pub ksi: Option<Ksi>,
    /// Latest trigger counter.
    pub counter: u64,
    /// Suite in use.
    pub suite: Suite,
}

/// Fault probabilities.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// A real datagram is dropped.
    pub loss: f64,
    /// A real datagram is sent twice.
    pub dup: f64,
    /// A real datagram is held back 1–40 ms, so later ones overtake it.
    pub reorder: f64,
    /// A hostile datagram is injected next to a real one.
    pub garbage: f64,
}

/// Where datagrams go out.
pub trait Emit {
    /// Sends `bytes` to (or, toward the EESE, from) `peer`.
    fn emit(&mut self, peer: u32, bytes: &[u8]);
}

/// What the fault layer did.
#[derive(Clone, Debug, Default)]
pub struct FaultStats {
    /// Real datagrams handed to the layer.
    pub real: u64,
    /// Dropped.
    pub dropped: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Delayed (reordered).
    pub delayed: u64,
    /// Delayed datagrams still held when the run ended.
    pub delayed_discarded: u64,
    /// Injected, per class.
    pub injected: [u64; 3],
    /// Injected, per kind.
    pub kinds: BTreeMap<&'static str, u64>,
}

/// A held-back datagram: due time (ms), order of arrival, peer, octets.
type Delayed = Reverse<(u64, u64, u32, Vec<u8>)>;

/// The fault layer of one sending side.
pub struct Faults {
    p: Params,
    rng: Rng,
    toward_ue: bool,
    delayed: BinaryHeap<Delayed>,
    seq: u64,
    history: Vec<(u32, u64, Vec<u8>)>,
    hist_next: usize,
    remembered_at: u64,
    /// Counts.
    pub stats: FaultStats,
}

impl Faults {
    /// The layer in front of the UEs' sockets (`toward_ue` false) or the
    /// EESE's (`toward_ue` true).
    pub fn new(p: Params, seed: u64, toward_ue: bool) -> Self {
        Faults {
            p,
            rng: Rng::new(seed),
            toward_ue,
            delayed: BinaryHeap::new(),
            seq: 0,
            history: Vec::with_capacity(HISTORY),
            hist_next: 0,
            remembered_at: 0,
            stats: FaultStats::default(),
        }
    }

    /// Sends one real datagram to `peer` through the faults.
    pub fn send(
        &mut self,
        now_ms: u64,
        peer: u32,
        d: &[u8],
        target: &Target,
        reg: &Registry,
        out: &mut impl Emit,
    ) {
        self.stats.real += 1;
        if !d.is_empty() {
            self.remember(now_ms, peer, d);
        }
        if self.rng.chance(self.p.garbage) {
            self.inject(now_ms, peer, d, target, reg, out);
        }
        if self.rng.chance(self.p.loss) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.p.dup) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(self.p.reorder) {
                self.stats.delayed += 1;
                self.seq += 1;
                let at = now_ms + 1 + self.rng.below(MAX_DELAY_MS);
                self.delayed.push(Reverse((at, self.seq, peer, d.to_vec())));
            } else {
                out.emit(peer, d);
            }
        }
    }

    /// Sends the delayed datagrams that are due.
    pub fn release(&mut self, now_ms: u64, out: &mut impl Emit) {
        while self
            .delayed
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= now_ms)
        {
            if let Some(Reverse((_, _, peer, d))) = self.delayed.pop() {
                out.emit(peer, &d);
            }
        }
    }

    /// Drops what is still delayed (end of the run).
    pub fn discard(&mut self) {
        self.stats.delayed_discarded += self.delayed.len() as u64;
        self.delayed.clear();
    }

    fn remember(&mut self, now_ms: u64, peer: u32, d: &[u8]) {
        // At most one a millisecond, so the history spans seconds however
        // fast the traffic, and replays are of old messages.
        if self.history.len() >= 64 && now_ms <= self.remembered_at {
            return;
        }
        self.remembered_at = now_ms;
        let entry = (peer, now_ms, d.to_vec());
        if self.history.len() < HISTORY {
            self.history.push(entry);
        } else if let Some(slot) = self.history.get_mut(self.hist_next) {
            *slot = entry;
        }
        self.hist_next = (self.hist_next + 1) % HISTORY;
    }

    fn inject(
        &mut self,
        now_ms: u64,
        peer: u32,
        real: &[u8],
        t: &Target,
        reg: &Registry,
        out: &mut impl Emit,
    ) {
        let roll = self.rng.below(100);
        let (to, bytes, kind) = if roll < 20 {
            match self.replay(now_ms) {
                Some(r) => r,
                None => self.garbage(peer, real),
            }
        } else if roll < 50 {
            self.forged(peer, t)
        } else {
            self.garbage(peer, real)
        };
        self.stats.injected[kind.class.index()] += 1;
        *self.stats.kinds.entry(kind.what).or_insert(0) += 1;
        reg.put(to, &bytes, kind);
        out.emit(to, &bytes);
    }

    fn replay(&mut self, now_ms: u64) -> Option<(u32, Vec<u8>, Kind)> {
        for _ in 0..8 {
            let i = self.rng.index(self.history.len());
            let (peer, at, d) = self.history.get(i)?;
            if now_ms.saturating_sub(*at) < REPLAY_MIN_AGE_MS {
                continue;
            }
            let what = match d.get(1).map(|t| MessageType(*t)) {
                Some(MessageType::DERIVE_TRIGGER) => "replayed trigger",
                Some(MessageType::KEY_EXPIRED) => "replayed key-expired error",
                _ => "replayed data",
            };
            let kind = Kind {
                class: Class::Replayed,
                what,
            };
            return Some((*peer, d.clone(), kind));
        }
        None
    }

    fn garbage(&mut self, peer: u32, real: &[u8]) -> (u32, Vec<u8>, Kind) {
        let kind = |what| Kind {
            class: Class::Garbage,
            what,
        };
        let pick = if real.len() < 5 { 0 } else { self.rng.below(5) };
        match pick {
            1 => {
                let n = 1 + self.rng.index(real.len() - 1);
                (peer, real[..n].to_vec(), kind("truncated message"))
            }
            2 => {
                // One to three distinct bits, so the message always changes.
                let mut d = real.to_vec();
                let bits = d.len() * 8;
                let first = self.rng.index(bits);
                let flips = 1 + self.rng.index(3);
                for j in 0..flips {
                    let bit = (first + j * (1 + bits / 3)) % bits;
                    d[bit / 8] ^= 1 << (bit % 8);
                }
                (peer, d, kind("bit-flipped message"))
            }
            3 => {
                let mut d = real.to_vec();
                let what = match self.rng.below(4) {
                    0 => {
                        d[0] = 2 + self.rng.below(254) as u8;
                        "unknown version"
                    }
                    1 => {
                        d[1] = 4 + self.rng.below(252) as u8;
                        "unknown type"
                    }
                    2 => {
                        d[3] |= 2 << self.rng.below(7);
                        "reserved flag set"
                    }
                    _ => match MessageType(d[1]) {
                        MessageType::DATA => {
                            d[4] = 3 + self.rng.below(253) as u8;
                            "unknown suite"
                        }
                        MessageType::DERIVE_TRIGGER if d.len() > 29 => {
                            d[29] = 3 + self.rng.below(253) as u8;
                            "unknown suite"
                        }
                        _ => {
                            // Key-expired error: octet 4 is the cause.
                            d[4] = 5 + self.rng.below(251) as u8;
                            "unknown cause"
                        }
                    },
                };
                (peer, d, kind(what))
            }
            4 if !self.toward_ue => {
                let mut d = vec![0u8; 1 + self.rng.index(80)];
                self.rng.fill(&mut d);
                (STRANGER, d, kind("datagram from a stranger"))
            }
            _ => {
                let mut d = vec![0u8; 1 + self.rng.index(80)];
                self.rng.fill(&mut d);
                if d.len() >= 2 && self.rng.chance(0.5) {
                    d[0] = VERSION;
                    d[1] = 1 + self.rng.below(3) as u8;
                }
                (peer, d, kind("random octets"))
            }
        }
    }

    fn random_tag(&mut self) -> [u8; 16] {
        let mut tag = [0u8; 16];
        self.rng.fill(&mut tag);
        tag
    }

    fn forged_data(&mut self, ksi: Ksi, suite: Suite) -> Vec<u8> {
        let flags = if self.toward_ue { 0x01 } else { 0x00 };
        let seq = self.rng.next_u64().to_be_bytes();
        let mut d = vec![VERSION, MessageType::DATA.0, ksi.0, flags, suite.0];
        d.extend_from_slice(&seq[..4]);
        let mut body = vec![0u8; suite.tag_len() + 8 + self.rng.index(40)];
        self.rng.fill(&mut body);
        d.extend_from_slice(&body);
        d
    }

    fn forged(&mut self, peer: u32, t: &Target) -> (u32, Vec<u8>, Kind) {
        let kind = |what| Kind {
            class: Class::Forged,
            what,
        };
        let ksi = t.ksi.unwrap_or(Ksi(0));
        let pick = self.rng.below(3);
        if self.toward_ue {
            match pick {
                0 => {
                    let mut rand = [0u8; 16];
                    self.rng.fill(&mut rand);
                    let repr = TriggerRepr {
                        ksi: t.ksi.map_or(Ksi(0), Ksi::next),
                        counter: t.counter + 1 + self.rng.below(3),
                        rand: Rand(rand),
                        profile: KdfProfile::Ts33220,
                        suite: t.suite,
                        lifetime: 3600,
                        tag: self.random_tag(),
                    };
                    let mut d = vec![0u8; TriggerRepr::LEN];
                    repr.emit(&mut TriggerPacket::new_unchecked(&mut d[..]));
                    (peer, d, kind("forged trigger"))
                }
                1 => {
                    let repr = KeyExpiredRepr {
                        ksi,
                        cause: Cause::TE2E_EXPIRED,
                        counter: t.counter,
                        tag: self.random_tag(),
                    };
                    let mut d = vec![0u8; KeyExpiredRepr::LEN];
                    repr.emit(&mut KeyExpiredPacket::new_unchecked(&mut d[..]));
                    (peer, d, kind("forged key-expired error"))
                }
                _ => (peer, self.forged_data(ksi, t.suite), kind("forged data")),
            }
        } else {
            match pick {
                0 => (peer, self.forged_data(ksi, t.suite), kind("forged data")),
                1 => {
                    let other = Ksi(ksi.0.wrapping_add(100 + self.rng.below(50) as u8));
                    let d = self.forged_data(other, t.suite);
                    (peer, d, kind("forged data, unknown KSI"))
                }
                _ => {
                    let repr = TriggerRepr {
                        ksi,
                        counter: t.counter + 1,
                        rand: Rand([0; 16]),
                        profile: KdfProfile::Ts33220,
                        suite: t.suite,
                        lifetime: 3600,
                        tag: self.random_tag(),
                    };
                    let mut d = vec![0u8; TriggerRepr::LEN];
                    repr.emit(&mut TriggerPacket::new_unchecked(&mut d[..]));
                    (peer, d, kind("trigger sent to the EESE"))
                }
            }
        }
    }
}
