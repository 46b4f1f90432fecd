//! Endpoint target: one UE and one EESE session over a scripted network.

use core::time::Duration;

use sha2::Digest;
use std::collections::HashSet;
use std::vec::Vec;

use ciot_e2e::endpoint::{Config, EeseSession, Event, Instant, RandSource, Reject, Sent, Sink, Ue};
use ciot_e2e::kdf::{KdfProfile, Rand, RootBytes, RootKey, RootKind};
use ciot_e2e::wire::{Cause, Ksi, Message, Suite};

use super::reader::{Reader, Writer};
use super::unprotect::Mutation;

/// The UE's hold buffer: small, so payloads that do not fit are exercised.
pub(crate) const HOLD: usize = 48;
const SCRATCH: usize = 1024;
const MAX_STEPS: usize = 96;
const MAX_QUEUE: usize = 64;
const MAX_HISTORY: usize = 128;

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// EESE → UE.
    ToUe,
    /// UE → EESE.
    ToEese,
}

impl Side {
    fn read(r: &mut Reader<'_>) -> Self {
        if r.u8() & 1 == 0 {
            Side::ToUe
        } else {
            Side::ToEese
        }
    }

    fn code(self) -> u8 {
        match self {
            Side::ToUe => 0,
            Side::ToEese => 1,
        }
    }
}

/// One step of an `endpoint` script.
#[derive(Clone, Debug)]
pub(crate) enum Op<'a> {
    /// `EeseSession::on_connect`.
    Connect,
    /// `Ue::send`.
    UeSend(&'a [u8]),
    /// `EeseSession::send`.
    EeseSend(&'a [u8]),
    /// Take the `idx`-th queued datagram (any order) and deliver it.
    Deliver(Side, u8),
    /// Take the `idx`-th queued datagram and lose it.
    Drop(Side, u8),
    /// Deliver a copy of the `idx`-th queued datagram, keeping it queued.
    Duplicate(Side, u8),
    /// Deliver a changed copy of the `idx`-th queued datagram.
    Mutate(Side, u8, Mutation),
    /// Deliver again the `idx`-th datagram ever sent that way (replay).
    Replay(Side, u16),
    /// Deliver a changed copy of the `idx`-th datagram ever sent that way.
    MutateOld(Side, u16, Mutation),
    /// Deliver the `idx`-th queued datagram to its sender (reflection).
    Reflect(Side, u8),
    /// Deliver octets from the input.
    Forge(Side, &'a [u8]),
    /// Deliver everything queued, both ways, in order.
    Flush,
    /// Advance the clock by `ms`, or by seconds when `secs`, and run timers.
    Advance { secs: bool, amount: u16 },
    /// Jump to the earliest timer and run it.
    AdvanceToTimer,
    /// `EeseSession::expire_now`.
    ExpireNow,
    /// A new AKA run: both sides get a new root.
    ReplaceRoot,
    /// Whether the EESE's RAND source answers.
    RandAvailable(bool),
    /// `EeseSession::provide_rand`.
    ProvideRand([u8; 8]),
}

impl<'a> Op<'a> {
    pub(crate) fn read(r: &mut Reader<'a>) -> Self {
        match r.u8() % 18 {
            0 => Op::Connect,
            1 => Op::UeSend(r.bytes8()),
            2 => Op::EeseSend(r.bytes8()),
            3 => Op::Deliver(Side::read(r), r.u8()),
            4 => Op::Drop(Side::read(r), r.u8()),
            5 => Op::Duplicate(Side::read(r), r.u8()),
            6 => Op::Mutate(Side::read(r), r.u8(), Mutation::read(r)),
            7 => Op::Replay(Side::read(r), r.u16()),
            8 => Op::MutateOld(Side::read(r), r.u16(), Mutation::read(r)),
            9 => Op::Reflect(Side::read(r), r.u8()),
            10 => Op::Forge(Side::read(r), r.bytes8()),
            11 => Op::Flush,
            12 => Op::Advance {
                secs: r.u8() & 1 == 1,
                amount: r.u16(),
            },
            13 => Op::AdvanceToTimer,
            14 => Op::ExpireNow,
            15 => Op::ReplaceRoot,
            16 => Op::RandAvailable(r.u8() & 1 == 1),
            _ => Op::ProvideRand(r.array()),
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        match *self {
            Op::Connect => {
                w.u8(0);
            }
            Op::UeSend(p) => {
                w.u8(1).bytes8(p);
            }
            Op::EeseSend(p) => {
                w.u8(2).bytes8(p);
            }
            Op::Deliver(s, i) => {
                w.u8(3).u8(s.code()).u8(i);
            }
            Op::Drop(s, i) => {
                w.u8(4).u8(s.code()).u8(i);
            }
            Op::Duplicate(s, i) => {
                w.u8(5).u8(s.code()).u8(i);
            }
            Op::Mutate(s, i, m) => {
                w.u8(6).u8(s.code()).u8(i);
                m.write(w);
            }
            Op::Replay(s, i) => {
                w.u8(7).u8(s.code()).u16(i);
            }
            Op::MutateOld(s, i, m) => {
                w.u8(8).u8(s.code()).u16(i);
                m.write(w);
            }
            Op::Reflect(s, i) => {
                w.u8(9).u8(s.code()).u8(i);
            }
            Op::Forge(s, b) => {
                w.u8(10).u8(s.code()).bytes8(b);
            }
            Op::Flush => {
                w.u8(11);
            }
            Op::Advance { secs, amount } => {
                w.u8(12).u8(u8::from(secs)).u16(amount);
            }
            Op::AdvanceToTimer => {
                w.u8(13);
            }
            Op::ExpireNow => {
                w.u8(14);
            }
            Op::ReplaceRoot => {
                w.u8(15);
            }
            Op::RandAvailable(a) => {
                w.u8(16).u8(u8::from(a));
            }
            Op::ProvideRand(b) => {
                w.u8(17).raw(&b);
            }
        }
    }
}

/// The configuration both sides share, from the script's first octets.
pub(crate) fn read_config(r: &mut Reader<'_>) -> Config {
    let b = r.array::<6>();
    Config {
        profile: if b[0] & 1 == 0 {
            KdfProfile::Ts33220
        } else {
            KdfProfile::HkdfSha256
        },
        suite: Suite::KNOWN[usize::from((b[0] >> 1) & 1)],
        te2e: Duration::from_secs(u64::from(b[1] % 16) + 1),
        grace: Duration::from_millis(u64::from(b[2]) * 40),
        // Small limits make the EESE renew on data; 0x80 and up is the default.
        soft_limit: if b[3] < 0x80 {
            u32::from(b[3])
        } else {
            ciot_e2e::protect::replay::DEFAULT_SOFT_LIMIT
        },
        trigger_retransmit: Duration::from_millis(u64::from(b[4] % 16) * 100 + 100),
        trigger_attempts: (b[4] >> 4) & 7,
        unsolicited_interval: Duration::from_millis(u64::from(b[5]) * 20),
    }
}

/// An event with its payload copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data {
        ksi: Ksi,
        seq: u32,
        payload: Vec<u8>,
    },
    Rekeyed {
        ksi: Ksi,
        counter: u64,
    },
    KeysExpired {
        ksi: Ksi,
        cause: Cause,
    },
    RandNeeded,
    Retransmitted {
        ksi: Ksi,
        seq: u32,
    },
    Rejected(Reject),
}

/// Records what a side transmits and reports.
#[derive(Default)]
struct Rec {
    tx: Vec<Vec<u8>>,
    ev: Vec<Ev>,
}

impl Sink for Rec {
    fn transmit(&mut self, datagram: &[u8]) {
        self.tx.push(datagram.to_vec());
    }

    fn event(&mut self, event: Event<'_>) {
        self.ev.push(match event {
            Event::Data { ksi, seq, payload } => Ev::Data {
                ksi,
                seq,
                payload: payload.to_vec(),
            },
            Event::Rekeyed { ksi, counter } => Ev::Rekeyed { ksi, counter },
            Event::KeysExpired { ksi, cause } => Ev::KeysExpired { ksi, cause },
            Event::RandNeeded => Ev::RandNeeded,
            Event::Retransmitted { ksi, seq } => Ev::Retransmitted { ksi, seq },
            Event::Rejected(r) => Ev::Rejected(r),
            _ => return,
        });
    }
}

/// The EMKS: fresh RANDs (a counter makes every one unique, as real RANDs
/// are), when available.
struct Emks {
    available: bool,
    issued: u64,
}

impl Emks {
    fn fresh(&mut self, tail: [u8; 8]) -> Rand {
        self.issued += 1;
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&self.issued.to_be_bytes());
        r[8..].copy_from_slice(&tail);
        Rand(r)
    }
}

impl RandSource for Emks {
    fn rand(&mut self) -> Option<Rand> {
        self.available.then(|| self.fresh([0x5a; 8]))
    }
}

/// What a side's keysets are, as its events say: the current one (KSI,
/// counter, valid) and the previous one (KSI, expired, accepted until).
#[derive(Clone, Copy, Debug, Default)]
struct Model {
    cur: Option<(Ksi, u64, bool)>,
    prev: Option<(Ksi, bool, Instant)>,
}

impl Model {
    /// Data under `ksi` may be accepted at `now`: under the current keyset
    /// while valid, or under the previous one during its grace period if it
    /// was valid when replaced.
    fn may_accept(&self, ksi: Ksi, now: Instant) -> bool {
        self.cur.is_some_and(|(k, _, valid)| k == ksi && valid)
            || self
                .prev
                .is_some_and(|(k, expired, until)| k == ksi && !expired && now < until)
    }
}

struct World {
    seed: [u8; 32],
    cfg: Config,
    now: Instant,
    epoch: u64,
    ue: Ue<HOLD>,
    eese: EeseSession,
    emks: Emks,
    to_ue: Vec<Vec<u8>>,
    to_eese: Vec<Vec<u8>>,
    /// Every datagram each side ever transmitted: the genuine ones.
    sent_by_eese: HashSet<Vec<u8>>,
    sent_by_ue: HashSet<Vec<u8>>,
    hist_to_ue: Vec<Vec<u8>>,
    hist_to_eese: Vec<Vec<u8>>,
    /// (root epoch, KSI, seq, payload) of every data message sealed.
    up: HashSet<(u64, Ksi, u32, Vec<u8>)>,
    down: HashSet<(u64, Ksi, u32, Vec<u8>)>,
    /// The payload the UE holds for retransmission, as its API promises.
    held: Option<Vec<u8>>,
    ue_model: Model,
    eese_model: Model,
    scratch: Vec<u8>,
}

/// The root of one epoch. Derived from a hash of the whole input, so that a
/// datagram the fuzzer learned in another run is a forgery here, as it would
/// be between two real sessions.
fn root(seed: &[u8; 32], epoch: u64) -> RootKey {
    let mut b = *seed;
    for (x, e) in b.iter_mut().zip(epoch.to_be_bytes()) {
        *x ^= e;
    }
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes(b))
}

/// An arbitrary script of network and application events for one UE and one
/// EESE session sharing a root (`Config` from the first octets).
///
/// Oracle, checked after every step:
/// - nothing panics, and every datagram either side transmits parses;
/// - `Event::Data` comes only under the receiver's current valid keyset or its
///   previous one within the grace period (never under an expired or unknown
///   KSI), and carries exactly a payload the peer sealed under that root,
///   KSI and sequence number (retransmissions included);
/// - a datagram that is not octet-for-octet one the peer transmitted (a
///   mutation, a forgery, a reflection) changes neither side's keyset
///   (`current()`, `current_keys()`, the UE's `last_counter()`), raises no
///   event but `Rejected`, and makes the UE send nothing and the EESE at most
///   an error and a trigger;
/// - `current()` of each side agrees with what its events announced;
/// - whenever both sides report the same KSI and counter, `current_keys()`
///   are equal;
/// - the EESE's trigger counters only increase, and the UE's last accepted
///   counter never decreases under one root.
///
/// RANDs are fresh (unique), as the EMKS guarantees; each root replacement
/// installs a root never used before, and the roots of one input are never
/// those of another (they hash the input).
pub fn endpoint(bytes: &[u8]) {
    let seed: [u8; 32] = sha2::Sha256::digest(bytes).into();
    let mut r = Reader::new(bytes);
    let cfg = read_config(&mut r);
    let mut w = World {
        seed,
        cfg,
        now: Instant(1_000),
        epoch: 0,
        ue: Ue::with_config(root(&seed, 0), &cfg),
        eese: EeseSession::new(root(&seed, 0)),
        emks: Emks {
            available: true,
            issued: 0,
        },
        to_ue: Vec::new(),
        to_eese: Vec::new(),
        sent_by_eese: HashSet::new(),
        sent_by_ue: HashSet::new(),
        hist_to_ue: Vec::new(),
        hist_to_eese: Vec::new(),
        up: HashSet::new(),
        down: HashSet::new(),
        held: None,
        ue_model: Model::default(),
        eese_model: Model::default(),
        scratch: std::vec![0u8; SCRATCH],
    };
    let mut steps = 0;
    while !r.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let op = Op::read(&mut r);
        w.step(&op);
        w.check_pair();
    }
}

pub(crate) fn describe(bytes: &[u8]) -> std::string::String {
    use core::fmt::Write;
    let mut r = Reader::new(bytes);
    let mut out = std::format!("{:?}\n", read_config(&mut r));
    let mut steps = 0;
    while !r.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let _ = writeln!(out, "{:?}", Op::read(&mut r));
    }
    out
}

impl World {
    fn step(&mut self, op: &Op<'_>) {
        match *op {
            Op::Connect => {
                let mut rec = Rec::default();
                self.eese
                    .on_connect(self.now, &self.cfg, &mut self.emks, &mut rec);
                self.eese_done(rec);
            }
            Op::UeSend(p) => self.ue_send(p),
            Op::EeseSend(p) => {
                let mut rec = Rec::default();
                let res = self.eese.send(
                    self.now,
                    &self.cfg,
                    p,
                    &mut self.scratch,
                    &mut self.emks,
                    &mut rec,
                );
                if let Ok((ksi, seq)) = res {
                    self.down.insert((self.epoch, ksi, seq, p.to_vec()));
                }
                self.eese_done(rec);
            }
            Op::Deliver(side, i) => {
                if let Some(d) = take(self.queue(side), i) {
                    self.deliver(side, d);
                }
            }
            Op::Drop(side, i) => {
                let _ = take(self.queue(side), i);
            }
            Op::Duplicate(side, i) => {
                if let Some(d) = peek(self.queue(side), usize::from(i)) {
                    self.deliver(side, d);
                }
            }
            Op::Mutate(side, i, m) => {
                if let Some(mut d) = peek(self.queue(side), usize::from(i)) {
                    m.apply(&mut d);
                    self.deliver(side, d);
                }
            }
            Op::Replay(side, i) => {
                if let Some(d) = peek(self.history(side), usize::from(i)) {
                    self.deliver(side, d);
                }
            }
            Op::MutateOld(side, i, m) => {
                if let Some(mut d) = peek(self.history(side), usize::from(i)) {
                    m.apply(&mut d);
                    self.deliver(side, d);
                }
            }
            Op::Reflect(side, i) => {
                if let Some(d) = peek(self.queue(side), usize::from(i)) {
                    let back = if side == Side::ToUe {
                        Side::ToEese
                    } else {
                        Side::ToUe
                    };
                    self.deliver(back, d);
                }
            }
            Op::Forge(side, b) => self.deliver(side, b.to_vec()),
            Op::Flush => {
                // Bounded: deliveries may queue answers.
                for _ in 0..8 {
                    if self.to_ue.is_empty() && self.to_eese.is_empty() {
                        break;
                    }
                    for d in core::mem::take(&mut self.to_ue) {
                        self.deliver(Side::ToUe, d);
                    }
                    for d in core::mem::take(&mut self.to_eese) {
                        self.deliver(Side::ToEese, d);
                    }
                }
            }
            Op::Advance { secs, amount } => {
                let ms = if secs {
                    u64::from(amount) * 1000
                } else {
                    u64::from(amount)
                };
                self.advance_to(Instant(self.now.0 + ms));
            }
            Op::AdvanceToTimer => {
                let next = [self.ue.poll_timeout(), self.eese.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = next.filter(|t| *t != Instant::NEVER) {
                    self.advance_to(t.max(self.now));
                }
            }
            Op::ExpireNow => {
                let mut rec = Rec::default();
                self.eese.expire_now(&mut rec);
                self.eese_done(rec);
            }
            Op::ReplaceRoot => {
                self.epoch += 1;
                let mut rec = Rec::default();
                self.eese
                    .replace_root(root(&self.seed, self.epoch), &mut rec);
                self.eese_done(rec);
                let mut rec = Rec::default();
                let lost = self.ue.current().map(|(ksi, _, _)| ksi);
                self.ue.replace_root(root(&self.seed, self.epoch), &mut rec);
                // The only thing said: the keyset in use is gone.
                let expected: Vec<Ev> = lost
                    .map(|ksi| Ev::KeysExpired {
                        ksi,
                        cause: Cause::ROOT_REPLACED,
                    })
                    .into_iter()
                    .collect();
                assert_eq!(rec.ev, expected, "UE root replacement events");
                assert!(rec.tx.is_empty(), "UE root replacement sends nothing");
                self.held = None;
                self.ue_model = Model::default();
                assert_eq!((self.ue.current(), self.ue.last_counter()), (None, 0));
            }
            Op::RandAvailable(a) => self.emks.available = a,
            Op::ProvideRand(tail) => {
                let rand = self.emks.fresh(tail);
                let mut rec = Rec::default();
                self.eese.provide_rand(self.now, &self.cfg, rand, &mut rec);
                self.eese_done(rec);
            }
        }
    }

    fn queue(&mut self, side: Side) -> &mut Vec<Vec<u8>> {
        match side {
            Side::ToUe => &mut self.to_ue,
            Side::ToEese => &mut self.to_eese,
        }
    }

    fn history(&mut self, side: Side) -> &mut Vec<Vec<u8>> {
        match side {
            Side::ToUe => &mut self.hist_to_ue,
            Side::ToEese => &mut self.hist_to_eese,
        }
    }

    fn advance_to(&mut self, t: Instant) {
        self.now = t;
        let mut rec = Rec::default();
        self.ue.handle_timeout(self.now);
        if self
            .ue_model
            .prev
            .is_some_and(|(_, _, until)| until <= self.now)
        {
            self.ue_model.prev = None;
        }
        self.ue_done(rec);
        rec = Rec::default();
        self.eese.handle_timeout(self.now, &self.cfg, &mut rec);
        self.eese_done(rec);
    }

    fn ue_send(&mut self, p: &[u8]) {
        let mut rec = Rec::default();
        let res = self.ue.send(p, &mut self.scratch, &mut rec);
        match res {
            Ok(Sent::Now { ksi, seq }) => {
                self.up.insert((self.epoch, ksi, seq, p.to_vec()));
                self.held = (p.len() <= HOLD).then(|| p.to_vec());
            }
            Ok(Sent::Held) => self.held = Some(p.to_vec()),
            Err(_) => {}
        }
        self.ue_done(rec);
    }

    /// Delivers `d` to the side `side` points at.
    fn deliver(&mut self, side: Side, mut d: Vec<u8>) {
        match side {
            Side::ToUe => {
                let genuine = self.sent_by_eese.contains(&d);
                let before = self.ue_state();
                let mut rec = Rec::default();
                self.ue
                    .handle_datagram(self.now, &self.cfg, &mut d, &mut self.scratch, &mut rec);
                if !genuine {
                    assert_eq!(
                        self.ue_state(),
                        before,
                        "UE state changed by a datagram the EESE never sent"
                    );
                    assert!(
                        rec.tx.is_empty(),
                        "UE answered a datagram the EESE never sent"
                    );
                    assert_only_rejections(&rec.ev, "UE");
                }
                self.ue_done(rec);
            }
            Side::ToEese => {
                let genuine = self.sent_by_ue.contains(&d);
                let before = self.eese_state();
                let mut rec = Rec::default();
                self.eese
                    .handle_datagram(self.now, &self.cfg, &mut d, &mut self.emks, &mut rec);
                if !genuine {
                    assert_eq!(
                        self.eese_state(),
                        before,
                        "EESE state changed by a datagram the UE never sent"
                    );
                    assert!(
                        rec.tx.len() <= 2,
                        "EESE answered a forgery with {} datagrams",
                        rec.tx.len()
                    );
                    assert_only_rejections(&rec.ev, "EESE");
                }
                self.eese_done(rec);
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn ue_state(
        &self,
    ) -> (
        Option<(Ksi, u64, bool)>,
        u64,
        Option<(Rand, ciot_e2e::protect::suite::SuiteKeys)>,
    ) {
        let keys = self.ue.current_keys().map(|(r, k)| (r.clone(), k.clone()));
        (self.ue.current(), self.ue.last_counter(), keys)
    }

    #[allow(clippy::type_complexity)]
    fn eese_state(
        &self,
    ) -> (
        Option<(Ksi, u64, bool)>,
        bool,
        Option<(Rand, ciot_e2e::protect::suite::SuiteKeys)>,
    ) {
        let keys = self
            .eese
            .current_keys()
            .map(|(r, k)| (r.clone(), k.clone()));
        (self.eese.current(), self.eese.rand_pending(), keys)
    }

    /// Checks and files what the UE did in one step.
    fn ue_done(&mut self, rec: Rec) {
        for ev in rec.ev {
            match ev {
                Ev::Data { ksi, seq, payload } => {
                    assert!(
                        self.ue_model.may_accept(ksi, self.now),
                        "UE accepted data under KSI {ksi} ({:?})",
                        self.ue_model
                    );
                    let key = (self.epoch, ksi, seq, payload);
                    assert!(
                        self.down.contains(&key),
                        "UE delivered data the EESE never sealed: {key:?}"
                    );
                }
                Ev::Rekeyed { ksi, counter } => {
                    let m = &mut self.ue_model;
                    assert!(
                        m.cur.is_none_or(|(_, c, _)| c < counter),
                        "UE counter went back to {counter}"
                    );
                    m.prev = m
                        .cur
                        .filter(|c| c.2)
                        .map(|(k, _, _)| (k, false, self.now.after(self.cfg.grace)));
                    m.cur = Some((ksi, counter, true));
                }
                Ev::KeysExpired { ksi, .. } => {
                    let cur = self
                        .ue_model
                        .cur
                        .as_mut()
                        .expect("UE expired keys it does not have");
                    assert_eq!(cur.0, ksi);
                    cur.2 = false;
                }
                Ev::Retransmitted { ksi, seq } => {
                    if let Some(p) = self.held.clone() {
                        self.up.insert((self.epoch, ksi, seq, p));
                    }
                }
                Ev::RandNeeded => panic!("the UE never needs a RAND"),
                Ev::Rejected(_) => {}
            }
        }
        assert_eq!(
            self.ue.current(),
            self.ue_model.cur,
            "UE current() and its events disagree"
        );
        for d in rec.tx {
            assert!(
                Message::parse(&d).is_ok(),
                "UE sent a malformed datagram {d:02x?}"
            );
            self.sent_by_ue.insert(d.clone());
            push_bounded(&mut self.hist_to_eese, d.clone(), MAX_HISTORY);
            push_bounded(&mut self.to_eese, d, MAX_QUEUE);
        }
    }

    /// Checks and files what the EESE did in one step.
    fn eese_done(&mut self, rec: Rec) {
        for ev in rec.ev {
            match ev {
                Ev::Data { ksi, seq, payload } => {
                    assert!(
                        self.eese_model.may_accept(ksi, self.now),
                        "EESE accepted data under KSI {ksi} ({:?})",
                        self.eese_model
                    );
                    let key = (self.epoch, ksi, seq, payload);
                    assert!(
                        self.up.contains(&key),
                        "EESE delivered data the UE never sealed: {key:?}"
                    );
                }
                Ev::Rekeyed { ksi, counter } => {
                    let m = &mut self.eese_model;
                    assert!(
                        m.cur.is_none_or(|(_, c, _)| c < counter),
                        "EESE counter went back to {counter}"
                    );
                    m.prev = m
                        .cur
                        .map(|(k, _, valid)| (k, !valid, self.now.after(self.cfg.grace)));
                    m.cur = Some((ksi, counter, true));
                }
                Ev::KeysExpired { ksi, cause } => {
                    if cause == Cause::ROOT_REPLACED {
                        self.eese_model = Model::default();
                    } else {
                        let cur = self
                            .eese_model
                            .cur
                            .as_mut()
                            .expect("EESE expired keys it does not have");
                        assert_eq!((cur.0, cur.2), (ksi, true), "EESE expired a keyset twice");
                        cur.2 = false;
                    }
                }
                Ev::Retransmitted { .. } => panic!("the EESE holds no data to retransmit"),
                Ev::RandNeeded | Ev::Rejected(_) => {}
            }
        }
        assert_eq!(
            self.eese.current(),
            self.eese_model.cur,
            "EESE current() and its events disagree"
        );
        for d in rec.tx {
            assert!(
                Message::parse(&d).is_ok(),
                "EESE sent a malformed datagram {d:02x?}"
            );
            self.sent_by_eese.insert(d.clone());
            push_bounded(&mut self.hist_to_ue, d.clone(), MAX_HISTORY);
            push_bounded(&mut self.to_ue, d, MAX_QUEUE);
        }
    }

    /// Same KSI and counter on both sides: same keys.
    fn check_pair(&self) {
        if let (Some(u), Some(e)) = (self.ue.current(), self.eese.current())
            && (u.0, u.1) == (e.0, e.1)
        {
            assert!(
                self.ue.current_keys() == self.eese.current_keys(),
                "KSI {} counter {}: keys differ",
                u.0,
                u.1
            );
        }
    }
}

fn assert_only_rejections(ev: &[Ev], who: &str) {
    assert!(
        ev.iter().all(|e| matches!(e, Ev::Rejected(_))),
        "{who} reported {ev:?} for a datagram its peer never sent"
    );
}

fn take(q: &mut Vec<Vec<u8>>, i: u8) -> Option<Vec<u8>> {
    let i = usize::from(i).checked_rem(q.len())?;
    Some(q.remove(i))
}

fn peek(q: &[Vec<u8>], i: usize) -> Option<Vec<u8>> {
    let i = i.checked_rem(q.len())?;
    Some(q[i].clone())
}

fn push_bounded(q: &mut Vec<Vec<u8>>, d: Vec<u8>, max: usize) {
    if q.len() >= max {
        q.remove(0);
    }
    q.push(d);
}
