//! The bad-input table of docs/SECURITY.md (section 2), row by row, at the
//! endpoints: each hostile or broken datagram is refused with its own
//! `Reject`, leaves the endpoint as it was (everything it shows of itself,
//! compared before and after), reports and delivers nothing, is answered by
//! the EESE only within its budget, and the authentic traffic that follows
//! still goes through.
//!
//! What "as it was" means here: for a UE its `Debug` form (its start's nonce,
//! the highest trigger counter it accepted, keyset state, held payload's
//! state, hello timer), `status()`, `current_keys()`, `last_counter()`,
//! `holding()`, `nonce()` and `poll_timeout()`; for an EESE `status(now)`
//! (the keyset in use, the offer out, the counter), `current_keys()` and
//! `poll_timeout()`; for the session table also its size, the UE's proven
//! address and which UE is at which address. A UE keeps nothing across a
//! restart: every start draws a new nonce, and a trigger or error made for
//! another start is not authentic to it.
//!
//! The answers the EESE may give, checked on every datagram it handles here:
//! - to a fresh, authentic hello: at most a key-expired error and a trigger
//!   (33 + 50 = 83 octets, never more than the hello, which has at least 84),
//!   bound to the hello's start, to the address the hello came from;
//! - to refused data over the UE's proven address: when the EESE cannot
//!   authenticate it (a bad tag or MAC, an unknown KSI, a suite that is not
//!   the keyset's, a message under a keyset restored from a snapshot), the
//!   trigger of the offer out or of the keyset in use (50 octets), at most
//!   once per `unsolicited_interval`; when it is authentic under an expired
//!   keyset, a key-expired error naming it and the next offer's trigger (83
//!   octets). Both only within a credit: every datagram from that address
//!   adds its octets, up to 512, and every such answer spends its octets
//!   (so a UE that moves has, at its new address, only what that address
//!   sent; an EESE that restarts has nothing);
//! - to anything else, and to any datagram from another address: nothing.
//!
//! (The repeats of an offer on the EESE's timer, with the refusal that
//! preceded it, to the proven address, at most `trigger_attempts` of them,
//! are not answers to one datagram and are not counted here.)
//!
//! The proven address moves only when the UE uses, from a new address, an
//! offer made to it there; a fresh hello from a new address makes that
//! address a candidate, which gets the answer to that hello and nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, KeysetState, Received, Reject,
    SendOutcome, Sent, SessionStatus, Ue, UeConfig, UeId, UeStatus,
};
use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootKey, UeNonce};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    self, Cause, ControlAuth, DataPacket, FieldName, HelloPacket, HelloRepr, KeyExpiredRepr, Ksi,
    MAX_MESSAGE_LEN, Message, MessageType, Suite, TriggerPacket, TriggerRepr, peek_type,
};
use ciot_e2e_testkit::pair::{Pair, TestRands, test_nonce, test_root};
use ciot_e2e_testkit::rng::Rng;

const SUITES: [Suite; 2] = [Suite::AES_128_GCM, Suite::NEA2_NIA2];

fn ue_cfg() -> UeConfig {
    UeConfig::default()
}

fn eese_cfg(suite: Suite) -> EeseConfig {
    EeseConfig {
        suite,
        te2e: Duration::from_secs(60),
        ..EeseConfig::default()
    }
}

// ---- Messages made with the root (authentic) or broken on purpose. ----

/// The control key of root `seed` under `profile`; the pairs here share
/// root 1 and the TS 33.220 profile.
fn auth_of(seed: u8, profile: KdfProfile) -> ControlAuth {
    ControlAuth::new(&PreparedRoot::new(&test_root(seed), profile).control_key())
}

fn control_auth() -> ControlAuth {
    auth_of(1, KdfProfile::Ts33220)
}

/// The nonce of the pair's UE's first start (`Pair` starts it with it).
fn first_start() -> UeNonce {
    test_nonce(1)
}

/// A trigger's fields, with CONFIRM, the AES suite and a minute's te2e.
fn trigger_repr(ksi: u8, counter: u64, profile: KdfProfile) -> TriggerRepr {
    TriggerRepr {
        ksi: Ksi(ksi),
        confirm: true,
        counter,
        rand: Rand([0xaa; 16]),
        profile,
        suite: Suite::AES_128_GCM,
        lifetime: 60,
        tag: [0; 16],
    }
}

/// A trigger signed with `auth` for the UE start `nonce`.
fn sign_trigger(auth: &ControlAuth, nonce: &UeNonce, repr: &TriggerRepr) -> Vec<u8> {
    let mut t = vec![0u8; TriggerRepr::LEN];
    repr.emit_signed(&auth.answer(nonce), &mut t).unwrap();
    t
}

fn signed_trigger(nonce: &UeNonce, ksi: u8, counter: u64, profile: KdfProfile) -> Vec<u8> {
    sign_trigger(&control_auth(), nonce, &trigger_repr(ksi, counter, profile))
}

/// A key-expired error signed with `auth` for the UE start `nonce`.
fn sign_error(
    auth: &ControlAuth,
    nonce: &UeNonce,
    ksi: u8,
    cause: Cause,
    counter: u64,
    refused: Option<u32>,
) -> Vec<u8> {
    let mut e = vec![0u8; KeyExpiredRepr::LEN];
    KeyExpiredRepr {
        ksi: Ksi(ksi),
        cause,
        counter,
        refused,
        tag: [0; 16],
    }
    .emit_signed(&auth.answer(nonce), &mut e)
    .unwrap();
    e
}

fn signed_error(
    nonce: &UeNonce,
    ksi: u8,
    cause: Cause,
    counter: u64,
    refused: Option<u32>,
) -> Vec<u8> {
    sign_error(&control_auth(), nonce, ksi, cause, counter, refused)
}

/// A hello of the UE start `nonce`, signed with `auth`.
fn sign_hello(auth: &ControlAuth, id: &[u8], nonce: &UeNonce, counter: u64, seq: u32) -> Vec<u8> {
    let repr = HelloRepr {
        ksi: Ksi(0),
        rekey: false,
        counter,
        seq,
        nonce: *nonce,
        id,
        tag: [0; 16],
    };
    let mut h = vec![0u8; repr.buffer_len()];
    repr.emit_signed(auth, &mut h).unwrap();
    h
}

fn signed_hello(id: &[u8], nonce: &UeNonce, counter: u64, seq: u32) -> Vec<u8> {
    sign_hello(&control_auth(), id, nonce, counter, seq)
}

/// Signs a hello again after it was changed, so that only the change (not
/// the tag) can be what it is refused for.
fn resign_hello(m: &mut [u8], auth: &ControlAuth) {
    let at = m.len() - wire::CONTROL_TAG_LEN;
    let tag = auth.tag(&m[..at]);
    m[at..].copy_from_slice(&tag);
}

/// Signs a trigger or an error again, for the UE start `nonce`.
fn resign_answer(m: &mut [u8], auth: &ControlAuth, nonce: &UeNonce) {
    let at = m.len() - wire::CONTROL_TAG_LEN;
    let tag = auth.answer(nonce).tag(&m[..at]);
    m[at..].copy_from_slice(&tag);
}

fn with(m: &[u8], at: usize, v: u8) -> Vec<u8> {
    let mut m = m.to_vec();
    m[at] = v;
    m
}

fn flip(m: &[u8], bit: usize) -> Vec<u8> {
    let mut m = m.to_vec();
    m[bit / 8] ^= 1 << (bit % 8);
    m
}

fn wire_err(e: wire::Error) -> Reject {
    Reject::Malformed(e)
}

fn truncated(needed: usize, got: usize) -> Reject {
    wire_err(wire::Error::Truncated { needed, got })
}

fn malformed(field: FieldName, value: u64) -> Reject {
    wire_err(wire::Error::Malformed { field, value })
}

fn trailing(expected: usize, got: usize) -> Reject {
    wire_err(wire::Error::TrailingData { expected, got })
}

fn seq_of(data: &[u8]) -> u32 {
    DataPacket::new_checked(data).unwrap().seq()
}

/// Uplink data under `ksi` with `len` octets of payload and a tag that
/// does not verify (AES-128-GCM, sequence number 1).
fn junk_data(ksi: u8, len: usize) -> Vec<u8> {
    let mut d = vec![
        wire::VERSION,
        MessageType::DATA.0,
        ksi,
        0,
        Suite::AES_128_GCM.0,
        0,
        0,
        0,
        1,
    ];
    d.resize(9 + len + Suite::AES_128_GCM.tag_len(), 0x5a);
    d
}

fn trigger_of(t: &[u8]) -> TriggerPacket<&[u8]> {
    TriggerPacket::new_checked(t).expect("a trigger")
}

/// (KSI, counter) of a trigger.
fn names(t: &[u8]) -> (Ksi, u64) {
    let t = trigger_of(t);
    (t.ksi(), t.counter())
}

/// Data the EESE cannot authenticate (or, under a keyset restored from a
/// snapshot, cannot know to be fresh), which it may answer with a trigger.
fn unauthenticated(r: Reject) -> bool {
    matches!(
        r,
        Reject::Unauthentic
            | Reject::UnknownKsi(_)
            | Reject::RetiredKsi(_)
            | Reject::SuiteMismatch { .. }
    )
}

// ---- What the endpoints show of themselves. ----

#[derive(Debug, PartialEq)]
struct UeView {
    debug: String,
    nonce: UeNonce,
    status: Option<UeStatus>,
    keys: Option<(Rand, SuiteKeys)>,
    last_counter: u64,
    holding: bool,
    timeout: Option<Instant>,
}

fn ue_view<const N: usize>(ue: &Ue<N>) -> UeView {
    UeView {
        debug: format!("{ue:?}"),
        nonce: *ue.nonce(),
        status: ue.status(),
        keys: ue.current_keys().map(|(r, k)| (r.clone(), k.clone())),
        last_counter: ue.last_counter(),
        holding: ue.holding(),
        timeout: ue.poll_timeout(),
    }
}

#[derive(Debug, PartialEq)]
struct EeseView {
    status: SessionStatus,
    keys: Option<(Rand, SuiteKeys)>,
    timeout: Option<Instant>,
}

/// How much each side of a pair has persisted, sent, delivered and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Marks {
    eese_disk: usize,
    sent_by_ue: usize,
    sent_by_eese: usize,
    to_ue: usize,
    to_eese: usize,
    at_ue: usize,
    at_eese: usize,
    ue_events: usize,
    eese_events: usize,
}

// ---- The answer budget. ----

/// The most octets of answers input over the UE's proven address may bank.
const CREDIT_CAP: usize = 512;
/// A key-expired error and a trigger: the most any one datagram is
/// answered with.
const REFUSAL_LEN: usize = KeyExpiredRepr::LEN + TriggerRepr::LEN;

/// What came to the EESE from each address and what it answered there (see
/// the module doc).
struct Budget {
    interval: Duration,
    /// Octets each address may still be answered with.
    credit: HashMap<SocketAddr, usize>,
    /// Octets in and out over the whole test.
    received: usize,
    answered: usize,
    /// Answers to input it could not authenticate, and the last one's time.
    answers: usize,
    last: Option<Instant>,
}

impl Budget {
    fn new(interval: Duration) -> Self {
        Budget {
            interval,
            credit: HashMap::new(),
            received: 0,
            answered: 0,
            answers: 0,
            last: None,
        }
    }

    /// A datagram of `len` octets came from `from`.
    fn took(&mut self, from: SocketAddr, len: usize) {
        self.received += len;
        let c = self.credit.entry(from).or_default();
        *c = (*c + len).min(CREDIT_CAP);
    }

    fn credit(&self, at: SocketAddr) -> usize {
        self.credit.get(&at).copied().unwrap_or(0)
    }

    /// The EESE restarted: it knows nothing of what came before.
    fn forget(&mut self) {
        self.credit.clear();
        self.last = None;
    }

    fn spend(&mut self, at: SocketAddr, octets: usize, what: &str) {
        let credit = self.credit(at);
        assert!(
            octets <= credit,
            "{what}: {octets} octets answered to {at} with a credit of {credit} ({} octets \
             received, {} answered before)",
            self.received,
            self.answered
        );
        self.credit.insert(at, credit - octets);
        self.answered += octets;
    }

    /// Checks the datagrams the EESE sent to `to` in answer to `input`
    /// (which it took or refused as `r`) against the rules of the module
    /// doc. `status` is the session's after it; `nonce` the start of the UE
    /// at the proven address.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        to: SocketAddr,
        input: &[u8],
        r: Result<&Received, Reject>,
        answers: &[Vec<u8>],
        now: Instant,
        status: Option<&SessionStatus>,
        nonce: &UeNonce,
        what: &str,
    ) {
        if answers.is_empty() {
            return;
        }
        let control = control_auth();
        let types: Vec<_> = answers.iter().map(|a| peek_type(a).unwrap()).collect();
        let octets: usize = answers.iter().map(Vec::len).sum();
        match r {
            Ok(Received::Control(MessageType::HELLO)) => {
                // Bound to the hello's start, never more than the hello.
                let hello = HelloPacket::new_checked(input).unwrap().nonce();
                assert!(
                    matches!(
                        types[..],
                        [MessageType::DERIVE_TRIGGER]
                            | [MessageType::KEY_EXPIRED]
                            | [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
                    ),
                    "{what}: a hello answered with {types:?}"
                );
                assert!(
                    octets <= input.len() && octets <= REFUSAL_LEN,
                    "{what}: {octets} octets answered to a hello of {}",
                    input.len()
                );
                for a in answers {
                    control
                        .verify_message(a, &hello)
                        .unwrap_or_else(|e| panic!("{what}: not made for the hello's start: {e}"));
                }
            }
            Err(e) if unauthenticated(e) => {
                assert_eq!(answers.len(), 1, "{what}: more than one datagram back");
                let a = &answers[0];
                let t = TriggerPacket::new_checked(&a[..]).unwrap_or_else(|e| {
                    panic!("{what}: answered with something else than a trigger: {e}")
                });
                control
                    .verify_message(a, nonce)
                    .expect("an authentic trigger for the UE's start");
                let status = status.expect("a session");
                let got = Some((t.ksi(), t.counter()));
                let in_use = status.keyset.map(|k| (k.ksi, k.counter));
                assert!(
                    if t.confirm() {
                        got == status.offered
                    } else {
                        got == in_use
                    },
                    "{what}: {got:?} (CONFIRM {}) is neither the offer out {:?} nor the \
                     keyset in use {in_use:?}",
                    t.confirm(),
                    status.offered
                );
                self.spend(to, a.len(), what);
                if let Some(last) = self.last {
                    assert!(
                        last.until(now) >= self.interval,
                        "{what}: answered twice within {:?}",
                        self.interval
                    );
                }
                self.last = Some(now);
                self.answers += 1;
            }
            Err(Reject::ExpiredKsi(_)) => {
                assert_eq!(
                    types,
                    [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER],
                    "{what}"
                );
                for a in answers {
                    control
                        .verify_message(a, nonce)
                        .expect("authentic, for the UE's start");
                }
                self.spend(to, octets, what);
            }
            other => panic!("{what}: {other:?} was answered with {types:?}"),
        }
    }
}

// ---- One UE and one EESE. ----

/// Where the pair's UE is, for the budget (the one-UE EESE knows no
/// addresses: everything comes from where the UE is).
const HERE: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 1),
    33863,
));

struct Bench {
    p: Pair,
    budget: Budget,
}

impl Bench {
    /// Keyset 0 on both sides, and one payload delivered each way (the EESE
    /// took the keyset into use, the UE heard back).
    fn new(suite: Suite) -> Self {
        Self::with(ue_cfg(), eese_cfg(suite))
    }

    fn with(ue: UeConfig, eese: EeseConfig) -> Self {
        let mut b = Bench::from_pair(Pair::started(ue, eese));
        assert_eq!(b.p.eese.status(b.p.now).offered, None, "the offer in use");
        b.exchange(b"first up", b"first down");
        b
    }

    fn from_pair(p: Pair) -> Self {
        let mut budget = Budget::new(p.eese_cfg.unsolicited_interval);
        // What the UE sent so far reached the EESE.
        for d in &p.sent_by_ue {
            budget.took(HERE, d.len());
        }
        Bench { p, budget }
    }

    /// The UE's start.
    fn nonce(&self) -> UeNonce {
        *self.p.ue.nonce()
    }

    fn marks(&self) -> Marks {
        let p = &self.p;
        Marks {
            eese_disk: p.eese_disk.len(),
            sent_by_ue: p.sent_by_ue.len(),
            sent_by_eese: p.sent_by_eese.len(),
            to_ue: p.to_ue.len(),
            to_eese: p.to_eese.len(),
            at_ue: p.at_ue.len(),
            at_eese: p.at_eese.len(),
            ue_events: p.ue_events.len(),
            eese_events: p.eese_events.len(),
        }
    }

    fn status(&self) -> SessionStatus {
        self.p.eese.status(self.p.now)
    }

    fn eese_view(&self) -> EeseView {
        let e = &self.p.eese;
        EeseView {
            status: self.status(),
            keys: e.current_keys().map(|(r, k)| (r.clone(), k.clone())),
            timeout: e.poll_timeout(),
        }
    }

    /// The EESE's keyset in use (KSI, counter).
    fn current(&self) -> Option<(Ksi, u64)> {
        let k = self.status().keyset?;
        Some((k.ksi, k.counter))
    }

    /// The counter of the keyset in use at the EESE.
    fn counter(&self) -> u64 {
        self.current().expect("a keyset in use").1
    }

    /// The UE's keyset (KSI, counter, usable).
    fn ue_keyset(&self) -> Option<(Ksi, u64, bool)> {
        self.p.ue.status().map(|s| (s.ksi, s.counter, s.usable))
    }

    /// Runs the timers due now, so that only the datagram can change what
    /// follows.
    fn quiesce(&mut self) {
        self.p.ue.handle_timeout(self.p.now);
        self.p.eese.handle_timeout(self.p.now);
        self.p.drain();
    }

    /// An uplink data message, not delivered.
    fn uplink(&mut self, payload: &[u8]) -> Vec<u8> {
        let n = self.p.to_eese.len();
        assert_eq!(self.p.ue.send(self.p.now, payload), Ok(Sent::Queued));
        self.p.drain();
        assert_eq!(self.p.to_eese.len(), n + 1, "one datagram from the UE");
        let d = self.p.to_eese.pop().unwrap();
        assert_eq!(peek_type(&d), Ok(MessageType::DATA));
        d
    }

    /// A downlink data message, not delivered.
    fn downlink(&mut self, payload: &[u8]) -> Vec<u8> {
        let n = self.p.to_ue.len();
        self.p.eese_send(payload).expect("the EESE seals");
        assert_eq!(self.p.to_ue.len(), n + 1, "one datagram from the EESE");
        let d = self.p.to_ue.pop().unwrap();
        assert_eq!(peek_type(&d), Ok(MessageType::DATA));
        d
    }

    /// The trigger of a new keyset the EESE offers now (with CONFIRM), not
    /// delivered.
    fn trigger(&mut self) -> Vec<u8> {
        let n = self.p.to_ue.len();
        let before = self.status().counter;
        self.p.eese.rekey(self.p.now);
        self.p.drain();
        assert_eq!(self.p.to_ue.len(), n + 1, "one trigger");
        let t = self.p.to_ue.pop().unwrap();
        assert!(trigger_of(&t).confirm(), "an offer");
        assert!(names(&t).1 > before, "a new keyset");
        assert_eq!(self.status().offered, Some(names(&t)));
        t
    }

    /// A new keyset offered, taken by the UE and confirmed (a hello naming
    /// it), in use at both ends; returns its trigger.
    fn rekeyed(&mut self) -> Vec<u8> {
        let t = self.trigger();
        assert_eq!(
            self.p.deliver_to_ue(t.clone()),
            Ok(Received::Control(MessageType::DERIVE_TRIGGER))
        );
        self.settle();
        let (ksi, counter) = names(&t);
        assert_eq!(self.current(), Some((ksi, counter)));
        assert_eq!(self.ue_keyset(), Some((ksi, counter, true)));
        t
    }

    /// Hands a datagram from the UE's address to the EESE; the answers are
    /// checked against the budget and left on their way to the UE.
    fn up(&mut self, d: Vec<u8>) -> Result<Received, Reject> {
        self.up_answered(d).0
    }

    fn up_answered(&mut self, mut d: Vec<u8>) -> (Result<Received, Reject>, Vec<Vec<u8>>) {
        let input = d.clone();
        let sent = self.p.sent_by_eese.len();
        self.budget.took(HERE, d.len());
        let r = self.p.eese.handle_datagram(self.p.now, &mut d);
        match &r {
            Ok(Received::Data(got)) => self.p.at_eese.push(d[got.payload.clone()].to_vec()),
            Ok(_) => {}
            Err(e) => self.p.eese_rejects.push(*e),
        }
        self.p.drain();
        let answers = self.p.sent_by_eese[sent..].to_vec();
        let (status, nonce, now) = (self.status(), self.nonce(), self.p.now);
        let what = format!("{:?} from the UE, {r:?}", peek_type(&input));
        self.budget.check(
            HERE,
            &input,
            r.as_ref().map_err(|e| *e),
            &answers,
            now,
            Some(&status),
            &nonce,
            &what,
        );
        (r, answers)
    }

    /// Delivers everything until the network is quiet (as `Pair::settle`,
    /// with the EESE's answers checked).
    fn settle(&mut self) {
        for _ in 0..32 {
            self.p.drain();
            if self.p.to_ue.is_empty() && self.p.to_eese.is_empty() {
                return;
            }
            for d in std::mem::take(&mut self.p.to_eese) {
                let _ = self.up(d);
            }
            for d in std::mem::take(&mut self.p.to_ue) {
                let _ = self.p.deliver_to_ue(d);
            }
        }
        panic!("the network does not quiet down");
    }

    /// The EESE restarts from snapshot `which` of its disk (the last one
    /// when `None`): nothing it banked for answers is left.
    fn crash_eese(&mut self, which: Option<usize>) {
        self.p.crash_eese(which);
        self.budget.forget();
    }

    /// Spends what the UE's address banked: a datagram under an unknown KSI
    /// once per interval, until one is not answered (the EESE's credit for
    /// the address is then below a trigger's worth).
    fn spend_credit(&mut self) {
        let junk = junk_data(9, 1);
        for _ in 0..64 {
            self.p.advance(self.p.eese_cfg.unsolicited_interval);
            let answers = self.budget.answers;
            self.refused_by_eese(&junk, Reject::UnknownKsi(Ksi(9)), "spending the credit");
            if self.budget.answers == answers {
                return;
            }
        }
        panic!("the credit never ran out");
    }

    /// One payload each way, delivered.
    fn exchange(&mut self, up: &[u8], down: &[u8]) {
        let m = self.uplink(up);
        let r = self.up(m);
        assert!(matches!(r, Ok(Received::Data(_))), "uplink: {r:?}");
        assert_eq!(self.p.at_eese.last().map(Vec::as_slice), Some(up));
        let m = self.downlink(down);
        let r = self.p.deliver_to_ue(m);
        assert!(matches!(r, Ok(Received::Data(_))), "downlink: {r:?}");
        assert_eq!(self.p.at_ue.last().map(Vec::as_slice), Some(down));
    }

    /// Authentic data still goes through both ways.
    fn still_works(&mut self) {
        self.exchange(b"still up", b"still down");
    }

    /// Feeds `bad` to the UE: refused (with `want` when given), nothing the
    /// UE shows changed, nothing sent, delivered or reported, the caller's
    /// buffer left as it was.
    fn ue_drops(&mut self, bad: &[u8], want: Option<Reject>, what: &str) -> Reject {
        self.quiesce();
        let (view, marks) = (ue_view(&self.p.ue), self.marks());
        let mut buf = bad.to_vec();
        let r = self.p.ue.handle_datagram(self.p.now, &mut buf);
        self.p.drain();
        let r = match r {
            Err(r) => r,
            Ok(got) => panic!("{what}: the UE took it: {got:?}"),
        };
        if let Some(w) = want {
            assert_eq!(r, w, "{what}");
        }
        assert_eq!(
            ue_view(&self.p.ue),
            view,
            "{what} ({r:?}): the UE's state changed"
        );
        assert_eq!(
            self.marks(),
            marks,
            "{what} ({r:?}): something was sent, delivered or reported"
        );
        assert_eq!(buf, bad, "{what} ({r:?}): the buffer changed");
        r
    }

    fn refused_by_ue(&mut self, bad: &[u8], want: Reject, what: &str) {
        self.ue_drops(bad, Some(want), what);
    }

    /// Feeds `bad` to the EESE: refused (with `want` when given), nothing it
    /// shows changed, nothing persisted, delivered or reported, and an answer
    /// only as the budget allows (the answer is then dropped).
    fn eese_drops(&mut self, bad: &[u8], want: Option<Reject>, what: &str) -> Reject {
        self.quiesce();
        let (view, ue, marks) = (self.eese_view(), ue_view(&self.p.ue), self.marks());
        let mut buf = bad.to_vec();
        self.budget.took(HERE, bad.len());
        let r = self.p.eese.handle_datagram(self.p.now, &mut buf);
        self.p.drain();
        let r = match r {
            Err(r) => r,
            Ok(got) => panic!("{what}: the EESE took it: {got:?}"),
        };
        if let Some(w) = want {
            assert_eq!(r, w, "{what}");
        }
        assert_eq!(
            self.eese_view(),
            view,
            "{what} ({r:?}): the EESE's state changed"
        );
        assert_eq!(ue_view(&self.p.ue), ue, "{what}: the UE changed");
        let answers = self.p.sent_by_eese[marks.sent_by_eese..].to_vec();
        self.p.to_ue.truncate(marks.to_ue);
        let after = Marks {
            sent_by_eese: marks.sent_by_eese,
            ..self.marks()
        };
        assert_eq!(
            after, marks,
            "{what} ({r:?}): something was persisted, delivered or reported"
        );
        let (status, nonce, now) = (self.status(), self.nonce(), self.p.now);
        self.budget.check(
            HERE,
            bad,
            Err(r),
            &answers,
            now,
            Some(&status),
            &nonce,
            what,
        );
        // A message under a restored keyset is opened in place to learn
        // whether it is authentic; on any other refusal the octets stay.
        if !matches!(r, Reject::RetiredKsi(_)) {
            assert_eq!(buf, bad, "{what} ({r:?}): the buffer changed");
        }
        r
    }

    fn refused_by_eese(&mut self, bad: &[u8], want: Reject, what: &str) {
        self.eese_drops(bad, Some(want), what);
    }

    /// Feeds an authentic repeat of the trigger in use to the UE: taken,
    /// and nothing changes, except that it counts as contact with the EESE
    /// (the keepalive is timed from it).
    fn ue_takes_unchanged(&mut self, m: &[u8], what: &str) {
        self.quiesce();
        let (view, marks) = (ue_view(&self.p.ue), self.marks());
        let mut buf = m.to_vec();
        let r = self.p.ue.handle_datagram(self.p.now, &mut buf);
        self.p.drain();
        assert_eq!(
            r,
            Ok(Received::Control(MessageType::DERIVE_TRIGGER)),
            "{what}"
        );
        let after = UeView {
            timeout: view.timeout,
            ..ue_view(&self.p.ue)
        };
        assert_eq!(after, view, "{what}: the UE's state changed");
        assert_eq!(self.marks(), marks, "{what}: something happened");
    }
}

/// The refusal a cut of a message of type `ty` (full length `full`, data
/// under `suite`) gets, cut to `n` octets.
fn cut_reject(ty: MessageType, full: usize, suite: Suite, n: usize) -> Reject {
    if n < 2 {
        return truncated(4, n);
    }
    match ty {
        MessageType::DERIVE_TRIGGER => truncated(TriggerRepr::LEN, n),
        MessageType::KEY_EXPIRED => truncated(KeyExpiredRepr::LEN, n),
        MessageType::HELLO if n < HelloRepr::MIN_LEN => truncated(HelloRepr::MIN_LEN, n),
        MessageType::HELLO => truncated(full, n),
        _ if n < 9 => truncated(9, n),
        _ if n < 9 + suite.tag_len() => truncated(9 + suite.tag_len(), n),
        // A whole header and a tag's worth: a shorter message whose tag
        // does not verify.
        _ => Reject::Unauthentic,
    }
}

#[test]
fn truncated_messages_are_refused_and_change_nothing() {
    for suite in SUITES {
        let mut b = Bench::new(suite);
        let (nonce, counter) = (b.nonce(), b.counter());
        let down = b.downlink(b"downlink payload");
        let up = b.uplink(b"uplink payload");
        let trigger = b.trigger();
        let error = signed_error(&nonce, 0, Cause::TE2E_EXPIRED, counter, None);
        let hello = signed_hello(PAIR_ID, &nonce, counter, 1000);
        let long_hello = signed_hello(&[b'x'; 60], &nonce, counter, 1001);
        let longest = signed_hello(&[b'x'; 64], &nonce, counter, 1002);
        assert_eq!(
            (hello.len(), long_hello.len(), longest.len()),
            (84, 109, HelloRepr::MAX_LEN)
        );
        for (name, full) in [
            ("trigger", &trigger),
            ("key-expired error", &error),
            ("downlink data", &down),
        ] {
            let ty = peek_type(full).unwrap();
            for n in 0..full.len() {
                let want = cut_reject(ty, full.len(), suite, n);
                b.refused_by_ue(&full[..n], want, &format!("{suite}: {name} cut at {n}"));
            }
        }
        for (name, full) in [
            ("uplink data", &up),
            ("hello", &hello),
            ("hello with a 60-octet identifier", &long_hello),
            ("hello with a 64-octet identifier", &longest),
        ] {
            let ty = peek_type(full).unwrap();
            for n in 0..full.len() {
                let want = cut_reject(ty, full.len(), suite, n);
                b.refused_by_eese(&full[..n], want, &format!("{suite}: {name} cut at {n}"));
            }
        }
        // The whole messages are still good: nothing moved a counter or a
        // window. (The downlink is under the keyset the trigger replaces at
        // the UE, which still receives for the grace period; the uplink is
        // under the keyset still in use at the EESE.)
        assert_eq!(
            b.p.deliver_to_ue(trigger.clone()),
            Ok(Received::Control(MessageType::DERIVE_TRIGGER))
        );
        let (ksi, next) = names(&trigger);
        assert_eq!((ksi, next), (Ksi(1), counter + 1));
        assert_eq!(b.ue_keyset(), Some((ksi, next, true)));
        assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
        assert!(matches!(b.up(up), Ok(Received::Data(_))));
        b.still_works();
        assert_eq!(b.current(), Some((ksi, next)), "used, so in use");
    }
}

#[test]
fn oversized_and_overlong_messages_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    let too_long = MAX_MESSAGE_LEN + 1;
    let bad_length = wire_err(wire::Error::BadLength {
        max: MAX_MESSAGE_LEN,
        got: too_long,
    });
    let mut big = b.downlink(b"x");
    big.resize(too_long, 0);
    b.refused_by_ue(&big, bad_length, "oversized downlink data");
    let mut big = b.uplink(b"x");
    big.resize(too_long, 0);
    b.refused_by_eese(&big, bad_length, "oversized uplink data");
    let t = b.trigger();
    let mut long = t.clone();
    long.push(0);
    b.refused_by_ue(&long, trailing(50, 51), "trigger with a trailing octet");
    let mut e = signed_error(&nonce, 0, Cause::TE2E_EXPIRED, counter, None);
    e.push(0);
    b.refused_by_ue(
        &e,
        trailing(33, 34),
        "key-expired error with a trailing octet",
    );
    let mut h = signed_hello(PAIR_ID, &nonce, counter, 1000);
    h.push(0);
    b.refused_by_eese(&h, trailing(84, 85), "hello with a trailing octet");
    let mut h = signed_hello(&[b'x'; 64], &nonce, counter, 1001);
    h.push(0);
    b.refused_by_eese(
        &h,
        trailing(HelloRepr::MAX_LEN, HelloRepr::MAX_LEN + 1),
        "the longest hello with a trailing octet",
    );
    assert_eq!(
        b.p.deliver_to_ue(t),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    b.still_works();
}

#[test]
fn unknown_version_type_suite_and_reserved_bits_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    // Long enough for the other suite's tag, so that a suite mismatch is not
    // a truncation.
    let down = b.downlink(b"a downlink payload of some length");
    let up = b.uplink(b"an uplink payload of some length");
    let trigger = b.trigger();
    assert_eq!(trigger[3], wire::trigger::FLAG_CONFIRM, "an offer: CONFIRM");
    let error = signed_error(&nonce, 0, Cause::TE2E_EXPIRED, counter, None);
    let hello = signed_hello(PAIR_ID, &nonce, counter, 1000);
    for (m, name) in [
        (&trigger, "trigger"),
        (&error, "key-expired error"),
        (&down, "data"),
    ] {
        // Version 2 is the format before the UE's nonce.
        for v in [1, 2, 4, 0xff] {
            b.refused_by_ue(
                &with(m, 0, v),
                wire_err(wire::Error::UnknownVersion(v)),
                &format!("{name}, version {v}"),
            );
        }
        for t in [0, 5, 0x7f] {
            b.refused_by_ue(
                &with(m, 1, t),
                wire_err(wire::Error::UnknownType(t)),
                &format!("{name}, type {t}"),
            );
        }
        for bit in [0x02, 0x80] {
            b.refused_by_ue(
                &with(m, 3, m[3] | bit),
                malformed(FieldName::Flags, u64::from(m[3] | bit)),
                &format!("{name}, reserved flag {bit:#04x}"),
            );
        }
    }
    for s in [0, 3, 9] {
        b.refused_by_ue(
            &with(&trigger, 29, s),
            malformed(FieldName::Suite, u64::from(s)),
            &format!("trigger, suite {s}"),
        );
        b.refused_by_ue(
            &with(&down, 4, s),
            malformed(FieldName::Suite, u64::from(s)),
            &format!("data, suite {s}"),
        );
        b.refused_by_eese(
            &with(&up, 4, s),
            malformed(FieldName::Suite, u64::from(s)),
            &format!("uplink, suite {s}"),
        );
    }
    for k in [0, 3, 9] {
        b.refused_by_ue(
            &with(&trigger, 28, k),
            malformed(FieldName::KdfProfile, u64::from(k)),
            &format!("trigger, KDF {k}"),
        );
    }
    let mut zero = trigger.clone();
    zero[30..34].fill(0);
    b.refused_by_ue(
        &zero,
        malformed(FieldName::Lifetime, 0),
        "trigger, lifetime 0",
    );
    for c in [0, 6, 0xff] {
        b.refused_by_ue(
            &with(&error, 4, c),
            malformed(FieldName::Cause, u64::from(c)),
            &format!("key-expired error, cause {c}"),
        );
    }
    // A known suite that is not the keyset's.
    b.refused_by_ue(
        &with(&down, 4, Suite::NEA2_NIA2.0),
        Reject::SuiteMismatch {
            expected: Suite::AES_128_GCM,
            got: Suite::NEA2_NIA2,
        },
        "data, the other suite",
    );
    b.refused_by_eese(
        &with(&up, 4, Suite::NEA2_NIA2.0),
        Reject::SuiteMismatch {
            expected: Suite::AES_128_GCM,
            got: Suite::NEA2_NIA2,
        },
        "uplink, the other suite",
    );
    for (m, name) in [(&up, "uplink"), (&hello, "hello")] {
        for v in [1, 2] {
            b.refused_by_eese(
                &with(m, 0, v),
                wire_err(wire::Error::UnknownVersion(v)),
                &format!("{name}, version {v}"),
            );
        }
        b.refused_by_eese(
            &with(m, 1, 5),
            wire_err(wire::Error::UnknownType(5)),
            &format!("{name}, type 5"),
        );
        b.refused_by_eese(
            &with(m, 3, m[3] | 0x02),
            malformed(FieldName::Flags, u64::from(m[3] | 0x02)),
            &format!("{name}, reserved flag bit 1"),
        );
    }
    // The messages themselves (not delivered above) are good.
    assert_eq!(
        b.p.deliver_to_ue(trigger),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
    assert!(matches!(b.up(up), Ok(Received::Data(_))));
    b.still_works();
}

#[test]
fn forged_trigger_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let t = b.trigger();
    for bit in 0..t.len() * 8 {
        let (at, mask) = (bit / 8, 1u8 << (bit % 8));
        let m = flip(&t, bit);
        let want = match at {
            0 => wire_err(wire::Error::UnknownVersion(m[0])),
            // Type 3: read as a data message (downlink: CONFIRM is its
            // direction bit) whose suite octet is the counter's first
            // octet (0).
            1 if mask == 0x02 => malformed(FieldName::Suite, u64::from(t[4])),
            1 => wire_err(wire::Error::UnknownType(m[1])),
            // CONFIRM cleared: well formed, not authentic.
            3 if mask == wire::trigger::FLAG_CONFIRM => Reject::Unauthentic,
            3 => malformed(FieldName::Flags, u64::from(m[3])),
            28 => malformed(FieldName::KdfProfile, u64::from(m[28])),
            29 => malformed(FieldName::Suite, u64::from(m[29])),
            30..34 if u32::from_be_bytes(m[30..34].try_into().unwrap()) == 0 => {
                malformed(FieldName::Lifetime, 0)
            }
            // KSI, counter, RAND, lifetime, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_ue(&m, want, &format!("trigger, bit {bit} flipped"));
    }
    let nonce = b.nonce();
    for (auth, start, name) in [
        (auth_of(2, KdfProfile::Ts33220), nonce, "another root"),
        (
            auth_of(1, KdfProfile::HkdfSha256),
            nonce,
            "the other profile's control key",
        ),
        (control_auth(), test_nonce(2), "the key of another UE start"),
    ] {
        let mut forged = t.clone();
        resign_answer(&mut forged, &auth, &start);
        b.refused_by_ue(
            &forged,
            Reject::Unauthentic,
            &format!("trigger signed with {name}"),
        );
    }
    assert_eq!(
        b.p.deliver_to_ue(t.clone()),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    let (ksi, counter) = names(&t);
    assert_eq!(b.ue_keyset(), Some((ksi, counter, true)));
    b.still_works();
}

#[test]
fn replayed_old_trigger_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // The offer of keyset 0 (and anything else the EESE sent it).
    let mut old: Vec<_> =
        b.p.sent_by_eese
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::DERIVE_TRIGGER))
            .cloned()
            .collect();
    assert!(!old.is_empty());
    old.push(b.rekeyed());
    let third = b.rekeyed();
    let last = names(&third).1;
    assert_eq!(b.p.ue.last_counter(), last);
    for (i, t) in old.iter().enumerate() {
        let counter = names(t).1;
        assert!(counter < last);
        b.refused_by_ue(
            t,
            Reject::StaleTrigger { counter, last },
            &format!("trigger {i} (counter {counter}) replayed"),
        );
    }
    b.still_works();
}

#[test]
fn duplicate_trigger_is_idempotent() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    let offer = b.rekeyed();
    assert!(trigger_of(&offer).confirm());
    // Its offer (CONFIRM) again, within the back-off since the UE confirmed
    // it: no new keyset, no reset window, no second confirmation.
    b.ue_takes_unchanged(&offer, "the offer in use, replayed");
    b.exchange(b"under keyset 1", b"under keyset 1");
    // A keepalive hello: the EESE answers with the trigger of the keyset in
    // use again, without CONFIRM.
    let sent = b.p.sent_by_eese.len();
    b.p.advance(Duration::from_secs(30));
    b.settle();
    let repeat = b.p.sent_by_eese[sent..]
        .iter()
        .find(|d| peek_type(d) == Ok(MessageType::DERIVE_TRIGGER))
        .expect("the keepalive answered")
        .clone();
    assert_eq!(names(&repeat), names(&offer));
    assert!(!trigger_of(&repeat).confirm());
    // That trigger, again (the EESE repeats it to a UE that may have missed
    // it): nothing changes, at any time.
    b.ue_takes_unchanged(&repeat, "the trigger in use, replayed");
    // The offer again, past the back-off: the UE confirms it once more with
    // one hello naming it, and nothing else changes.
    b.quiesce();
    let (view, marks) = (ue_view(&b.p.ue), b.marks());
    assert_eq!(
        b.p.deliver_to_ue(offer.clone()),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    assert_eq!(b.p.ue.status(), view.status);
    assert_eq!(b.p.ue.last_counter(), view.last_counter);
    assert_eq!(
        b.p.ue.current_keys().map(|(r, k)| (r.clone(), k.clone())),
        view.keys
    );
    let sent = &b.p.sent_by_ue[marks.sent_by_ue..];
    assert_eq!(sent.len(), 1, "one confirmation");
    let h = HelloPacket::new_checked(&sent[0][..]).unwrap();
    assert_eq!(
        (h.ksi(), h.counter(), h.rekey()),
        (names(&offer).0, names(&offer).1, false)
    );
    assert_eq!(b.p.ue_events.len(), marks.ue_events, "no rekey");
    // At most once per back-off.
    b.ue_takes_unchanged(&offer, "the offer in use, replayed again");
    b.settle();
    b.still_works();
}

#[test]
fn authentic_trigger_with_an_old_counter_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let first = b.counter();
    b.rekeyed();
    b.rekeyed();
    let nonce = b.nonce();
    let (ksi, last, usable) = b.ue_keyset().unwrap();
    assert_eq!((ksi, last, usable), (Ksi(2), first + 2, true));
    // Freshly signed with the real control key for this start (not a replay
    // of old octets): only the counter is wrong.
    for counter in [0, 1, first, first + 1] {
        let t = signed_trigger(&nonce, 3, counter, KdfProfile::Ts33220);
        b.refused_by_ue(
            &t,
            Reject::StaleTrigger { counter, last },
            &format!("counter {counter}"),
        );
    }
    // The counter in use with other contents is not the keyset in use: no
    // rollback, no switch.
    let rand = b.p.ue.current_keys().unwrap().0.clone();
    let in_use = TriggerRepr {
        rand,
        ..trigger_repr(ksi.0, last, KdfProfile::Ts33220)
    };
    for (repr, name) in [
        (
            TriggerRepr {
                rand: Rand([0xbb; 16]),
                ..in_use.clone()
            },
            "another RAND",
        ),
        (
            TriggerRepr {
                ksi: Ksi(7),
                ..in_use.clone()
            },
            "another KSI",
        ),
        (
            TriggerRepr {
                suite: Suite::NEA2_NIA2,
                ..in_use.clone()
            },
            "another suite",
        ),
    ] {
        let t = sign_trigger(&control_auth(), &nonce, &repr);
        b.refused_by_ue(
            &t,
            Reject::StaleTrigger {
                counter: last,
                last,
            },
            &format!("the counter in use with {name}"),
        );
    }
    // The very keyset in use (another lifetime, no CONFIRM): a repeat.
    let t = sign_trigger(
        &control_auth(),
        &nonce,
        &TriggerRepr {
            confirm: false,
            lifetime: 5,
            ..in_use
        },
    );
    b.ue_takes_unchanged(&t, "the keyset in use, signed again");
    b.still_works();
}

#[test]
fn trigger_for_another_kdf_profile_is_refused_and_the_payload_stays_held() {
    let p = Pair::new(ue_cfg(), eese_cfg(Suite::AES_128_GCM), test_root(1));
    let mut b = Bench::from_pair(p);
    assert_eq!(b.p.ue.send(b.p.now, b"held reading"), Ok(Sent::Held));
    b.p.drain();
    let hello = b.p.to_eese.pop().expect("the UE asks for a keyset");
    assert_eq!(peek_type(&hello), Ok(MessageType::HELLO));
    assert!(b.p.ue.holding());
    let nonce = b.nonce();
    // Authentic under the UE's control key, but the KDF octet names the
    // other profile: the EESE is misconfigured.
    let t = signed_trigger(&nonce, 0, 1, KdfProfile::HkdfSha256);
    b.refused_by_ue(
        &t,
        Reject::ProfileMismatch {
            configured: KdfProfile::Ts33220,
            got: KdfProfile::HkdfSha256.code(),
        },
        "trigger naming the HKDF profile",
    );
    // Made with the other profile's control key: not authentic at all.
    let t = sign_trigger(
        &auth_of(1, KdfProfile::HkdfSha256),
        &nonce,
        &trigger_repr(0, 1, KdfProfile::HkdfSha256),
    );
    b.refused_by_ue(
        &t,
        Reject::Unauthentic,
        "trigger of an HKDF-configured EESE",
    );
    assert_eq!((b.p.ue.status(), b.p.ue.last_counter()), (None, 0));
    // The hello reaches the (rightly configured) EESE: the held payload goes.
    b.p.to_eese.push(hello);
    b.settle();
    assert_eq!(b.p.at_eese, [b"held reading".to_vec()]);
}

#[test]
fn forged_key_expired_error_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    // Names the keyset in use, so it would stop it if it were taken.
    let e = signed_error(&nonce, 0, Cause::TE2E_EXPIRED, counter, None);
    for bit in 0..e.len() * 8 {
        let (at, mask) = (bit / 8, 1u8 << (bit % 8));
        let m = flip(&e, bit);
        let want = match at {
            0 => wire_err(wire::Error::UnknownVersion(m[0])),
            // Type 3: read as uplink data (flags 0), suite octet = cause 1.
            1 if mask == 0x01 => Reject::WrongDirection,
            1 => wire_err(wire::Error::UnknownType(m[1])),
            // NAMED with seq 0: well formed, not authentic.
            3 if mask == 0x01 => Reject::Unauthentic,
            3 => malformed(FieldName::Flags, u64::from(mask)),
            4 if !Cause(m[4]).is_known() => malformed(FieldName::Cause, u64::from(m[4])),
            13..17 => malformed(FieldName::Seq, u64::from(seq_field(&m))),
            // KSI, a known cause, counter, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_ue(&m, want, &format!("key-expired error, bit {bit} flipped"));
    }
    for (auth, start, name) in [
        (auth_of(2, KdfProfile::Ts33220), nonce, "another root"),
        (control_auth(), test_nonce(2), "the key of another UE start"),
    ] {
        let mut forged = e.clone();
        resign_answer(&mut forged, &auth, &start);
        b.refused_by_ue(
            &forged,
            Reject::Unauthentic,
            &format!("error signed with {name}"),
        );
    }
    b.still_works();
    // The genuine error is taken: the forgeries were refused for what they
    // are, not because the UE ignores errors.
    assert_eq!(
        b.p.deliver_to_ue(e),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    assert_eq!(b.ue_keyset().map(|s| s.2), Some(false));
    // The UE's hello gets it the next keyset.
    b.p.advance(Duration::from_secs(2));
    b.settle();
    assert_eq!(b.ue_keyset(), Some((Ksi(1), counter + 1, true)));
    b.still_works();
}

fn seq_field(error: &[u8]) -> u32 {
    u32::from_be_bytes(error[13..17].try_into().unwrap())
}

#[test]
fn key_expired_error_with_a_seq_but_not_named_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    // A named error for the keyset in use, then the flag cleared and the tag
    // made again: authentic octets that are not the one encoding of an
    // unnamed error (whose seq is 0).
    for seq in [1, 7, u32::MAX] {
        let mut e = signed_error(&nonce, 0, Cause::TE2E_EXPIRED, counter, Some(seq));
        assert_eq!(e[3], 0x01, "NAMED");
        e[3] = 0;
        resign_answer(&mut e, &control_auth(), &nonce);
        b.refused_by_ue(
            &e,
            malformed(FieldName::Seq, u64::from(seq)),
            &format!("seq {seq} without NAMED"),
        );
    }
    b.still_works();
}

#[test]
fn replayed_error_of_an_older_generation_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, first) = (b.nonce(), b.counter());
    // TR steps 2-5: te2e runs out, the UE's next message is refused by
    // name, a new keyset follows and the message goes again under it. (Long
    // enough that, with what the UE sent before, it pays for the error and
    // the trigger at once.)
    let payload = b"refused by name, then sent again";
    b.p.advance(b.p.eese_cfg.te2e);
    b.p.ue_send(payload);
    b.settle();
    assert_eq!(b.p.at_eese.last().map(Vec::as_slice), Some(&payload[..]));
    assert_eq!(b.ue_keyset(), Some((Ksi(1), first + 1, true)));
    let error =
        b.p.sent_by_eese
            .iter()
            .find(|d| peek_type(d) == Ok(MessageType::KEY_EXPIRED))
            .expect("the error went out")
            .clone();
    b.refused_by_ue(
        &error,
        Reject::StaleError {
            ksi: Ksi(0),
            counter: first,
        },
        "the named error replayed after its keyset was replaced",
    );
    // Authentic errors for other generations: another KSI, the KSI in use
    // under an older counter, a counter the UE never took.
    for (ksi, counter) in [(7, first), (1, first), (1, first + 2)] {
        let e = signed_error(&nonce, ksi, Cause::EXPIRED_BY_ENTERPRISE, counter, None);
        b.refused_by_ue(
            &e,
            Reject::StaleError {
                ksi: Ksi(ksi),
                counter,
            },
            &format!("error for KSI {ksi}, counter {counter}"),
        );
    }
    b.still_works();
}

#[test]
fn replayed_trigger_of_an_earlier_ue_start_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let earlier = b.nonce();
    let down = b.downlink(b"sealed for the earlier start");
    // Every trigger the earlier start got, and an offer it never got.
    let mut old: Vec<_> =
        b.p.sent_by_eese
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::DERIVE_TRIGGER))
            .cloned()
            .collect();
    old.push(b.trigger());
    let highest = old.iter().map(|t| names(t).1).max().unwrap();
    // And one made for it now, with a counter above any.
    old.push(signed_trigger(
        &earlier,
        9,
        highest + 1000,
        KdfProfile::Ts33220,
    ));
    // The UE restarts: a new start, with nothing of before. Its hello waits.
    b.p.restart_ue();
    assert_ne!(b.nonce(), earlier);
    assert_eq!((b.p.ue.status(), b.p.ue.last_counter()), (None, 0));
    for (i, t) in old.iter().enumerate() {
        // Each would install at a UE that accepted no counter yet, were it
        // not bound to the start it answers.
        b.refused_by_ue(
            t,
            Reject::Unauthentic,
            &format!("trigger {i} of the earlier start"),
        );
    }
    b.refused_by_ue(
        &down,
        Reject::UnknownKsi(Ksi(0)),
        "downlink under the earlier start's keyset",
    );
    // Its hello gets it a keyset of its own.
    b.settle();
    let (_, counter, usable) = b.ue_keyset().expect("a keyset");
    assert!(usable && counter > highest, "a new keyset: {counter}");
    b.still_works();
    for (i, t) in old.iter().enumerate() {
        b.refused_by_ue(
            t,
            Reject::Unauthentic,
            &format!("trigger {i} of the earlier start, now"),
        );
    }
    assert!(
        !b.p.at_ue
            .contains(&b"sealed for the earlier start".to_vec())
    );
}

#[test]
fn key_expired_error_of_an_earlier_ue_start_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let earlier = b.nonce();
    // A genuine error of the earlier start: te2e runs out, its message is
    // refused by name.
    b.p.advance(b.p.eese_cfg.te2e);
    let m = b.uplink(b"refused by name, for the earlier start");
    let (r, answers) = b.up_answered(m);
    assert_eq!(r, Err(Reject::ExpiredKsi(Ksi(0))));
    assert_eq!(answers.len(), 2, "an error and a trigger");
    b.p.to_ue.clear();
    // The UE restarts and gets a keyset of its own.
    b.p.restart_ue();
    b.settle();
    let (ksi, counter, usable) = b.ue_keyset().expect("a keyset");
    assert!(usable);
    // What was made for the earlier start, even naming what this one holds.
    b.refused_by_ue(
        &answers[0],
        Reject::Unauthentic,
        "the earlier start's error",
    );
    b.refused_by_ue(
        &answers[1],
        Reject::Unauthentic,
        "the trigger that followed it",
    );
    for refused in [None, Some(0)] {
        let e = signed_error(
            &earlier,
            ksi.0,
            Cause::EXPIRED_BY_ENTERPRISE,
            counter,
            refused,
        );
        b.refused_by_ue(
            &e,
            Reject::Unauthentic,
            &format!("an error for the earlier start naming the keyset in use ({refused:?})"),
        );
    }
    b.still_works();
    // Made for this start, the same error is taken.
    let e = signed_error(
        &b.nonce(),
        ksi.0,
        Cause::EXPIRED_BY_ENTERPRISE,
        counter,
        None,
    );
    assert_eq!(
        b.p.deliver_to_ue(e),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    assert_eq!(b.ue_keyset(), Some((ksi, counter, false)));
}

#[test]
fn tampered_ciphertext_or_tag_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut b = Bench::new(suite);
        let down = b.downlink(b"the real downlink payload");
        let up = b.uplink(b"the real uplink payload");
        for bit in 9 * 8..down.len() * 8 {
            b.refused_by_ue(
                &flip(&down, bit),
                Reject::Unauthentic,
                &format!("{suite}: downlink bit {bit}"),
            );
        }
        for bit in 9 * 8..up.len() * 8 {
            b.refused_by_eese(
                &flip(&up, bit),
                Reject::Unauthentic,
                &format!("{suite}: uplink bit {bit}"),
            );
        }
        assert_eq!(
            b.budget.answers, 1,
            "{suite}: answered once, within the budget"
        );
        // The windows did not move: the untampered messages are accepted.
        assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
        assert!(matches!(b.up(up), Ok(Received::Data(_))));
        b.still_works();
    }
}

/// What a data message with header octet `at` flipped by `mask` is refused
/// for: `m` is the changed message, `to_ue` says who receives it. Sequence
/// number 0 was delivered both ways before.
fn header_reject(m: &[u8], at: usize, mask: u8, to_ue: bool) -> Reject {
    match at {
        0 => wire_err(wire::Error::UnknownVersion(m[0])),
        // Type 2 and 1 at the UE: a key-expired error and a trigger of the
        // wrong length; at the EESE: control messages it never receives.
        1 if mask == 0x01 && to_ue && m.len() < 33 => truncated(33, m.len()),
        1 if mask == 0x01 && to_ue => trailing(33, m.len()),
        1 if mask == 0x02 && to_ue => truncated(50, m.len()),
        1 if mask <= 0x02 => Reject::Unexpected(MessageType(m[1])),
        1 => wire_err(wire::Error::UnknownType(m[1])),
        2 => Reject::UnknownKsi(Ksi(m[2])),
        3 if mask == 0x01 => Reject::WrongDirection,
        3 => malformed(FieldName::Flags, u64::from(m[3])),
        4 => malformed(FieldName::Suite, u64::from(m[4])),
        _ if seq_of(m) == 0 => Reject::Replayed { seq: 0 },
        _ => Reject::Unauthentic,
    }
}

#[test]
fn tampered_header_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut b = Bench::new(suite);
        let down = b.downlink(b"downlink payload");
        let up = b.uplink(b"uplink payload!!");
        // Neither is as long as a control message: a changed type gives a
        // length error, not a parse of other fields.
        for len in [down.len(), up.len()] {
            assert!(![33, 50].contains(&len));
        }
        for bit in 0..9 * 8 {
            let (at, mask) = (bit / 8, 1u8 << (bit % 8));
            let m = flip(&down, bit);
            let want = header_reject(&m, at, mask, true);
            b.refused_by_ue(&m, want, &format!("{suite}: downlink header bit {bit}"));
            let m = flip(&up, bit);
            let want = header_reject(&m, at, mask, false);
            b.refused_by_eese(&m, want, &format!("{suite}: uplink header bit {bit}"));
        }
        assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
        assert!(matches!(b.up(up), Ok(Received::Data(_))));
        b.still_works();
    }
}

#[test]
fn replayed_data_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut b = Bench::new(suite);
        let down = b.downlink(b"once");
        let up = b.uplink(b"once");
        assert!(matches!(
            b.p.deliver_to_ue(down.clone()),
            Ok(Received::Data(_))
        ));
        assert!(matches!(b.up(up.clone()), Ok(Received::Data(_))));
        // Again and again: a replay is authentic, so it is never answered
        // (though its octets count toward the credit).
        let (ds, us) = (seq_of(&down), seq_of(&up));
        for i in 0..8 {
            let what = format!("downlink replayed, #{i}");
            b.refused_by_ue(&down, Reject::Replayed { seq: ds }, &what);
            let what = format!("uplink replayed, #{i}");
            b.refused_by_eese(&up, Reject::Replayed { seq: us }, &what);
        }
        assert_eq!(b.budget.answers, 0);
        b.still_works();
    }
}

#[test]
fn data_left_of_the_replay_window_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // Sequence number 0 went in the set-up; 1..=65 now.
    let down: Vec<_> = (1..=65u8).map(|i| b.downlink(&[i])).collect();
    let up: Vec<_> = (1..=65u8).map(|i| b.uplink(&[i])).collect();
    assert_eq!((seq_of(&down[0]), seq_of(&up[64])), (1, 65));
    // 2..=65 arrive; 1 is then 64 behind the highest.
    for m in &down[1..] {
        assert!(matches!(
            b.p.deliver_to_ue(m.clone()),
            Ok(Received::Data(_))
        ));
    }
    for m in &up[1..] {
        assert!(matches!(b.up(m.clone()), Ok(Received::Data(_))));
    }
    let too_old = Reject::TooOld { seq: 1, lowest: 2 };
    for i in 0..8 {
        b.refused_by_ue(&down[0], too_old, &format!("downlink seq 1, #{i}"));
        b.refused_by_eese(&up[0], too_old, &format!("uplink seq 1, #{i}"));
    }
    assert_eq!(b.budget.answers, 0, "old authentic data is never answered");
    b.still_works();
}

#[test]
fn data_under_an_unknown_ksi_is_refused_and_answered_at_most_once_per_interval() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let down = with(&b.downlink(b"d"), 2, 9);
    b.refused_by_ue(&down, Reject::UnknownKsi(Ksi(9)), "downlink under KSI 9");
    let up = with(&b.uplink(b"u"), 2, 9);
    // Alone it would not pay for an answer; with what the UE's traffic
    // brought before, it does.
    assert!(up.len() < TriggerRepr::LEN);
    assert!(b.budget.credit(HERE) + up.len() >= TriggerRepr::LEN);
    for i in 0..100 {
        b.refused_by_eese(
            &up,
            Reject::UnknownKsi(Ksi(9)),
            &format!("uplink under KSI 9, #{i}"),
        );
    }
    assert_eq!(b.budget.answers, 1, "answered once in the interval");
    b.p.advance(b.p.eese_cfg.unsolicited_interval);
    b.refused_by_eese(&up, Reject::UnknownKsi(Ksi(9)), "after the interval");
    assert_eq!(b.budget.answers, 2, "answered again after the interval");
    // The answer is the trigger in use: the UE takes it as a repeat.
    let answer = b.p.sent_by_eese.last().unwrap().clone();
    assert!(!trigger_of(&answer).confirm());
    b.ue_takes_unchanged(&answer, "the EESE's answer");
    b.still_works();
}

#[test]
fn data_under_an_expired_keyset_is_not_delivered() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let first = b.counter();
    // te2e runs out at the EESE; the UE's keyset is still in its grace.
    b.p.advance(b.p.eese_cfg.te2e);
    assert_eq!(
        b.status().keyset.map(|k| k.state),
        Some(KeysetState::Expired(Cause::TE2E_EXPIRED))
    );
    let payload = b"real, under the expired keyset";
    let real = b.uplink(payload);
    let forged = flip(&real, real.len() * 8 - 1);
    // Forged: refused, no answer (no valid keyset, no offer), no rekey.
    b.refused_by_eese(
        &forged,
        Reject::Unauthentic,
        "forged data under the expired keyset",
    );
    assert_eq!(b.budget.answers, 0);
    // Authentic: not delivered; refused by name and a new keyset offered
    // (TR 33.863 §6.5.2.3 steps 3-4), the one change, by design; its answer
    // (83 octets) within the credit.
    let (r, answers) = b.up_answered(real.clone());
    assert_eq!(r, Err(Reject::ExpiredKsi(Ksi(0))));
    assert!(!b.p.at_eese.contains(&payload.to_vec()));
    let types: Vec<_> = answers.iter().map(|d| peek_type(d).unwrap()).collect();
    assert_eq!(
        types,
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    match Message::parse(&answers[0]) {
        Ok(Message::KeyExpired(k)) => assert_eq!(
            (k.ksi, k.cause, k.counter, k.refused),
            (Ksi(0), Cause::TE2E_EXPIRED, first, Some(seq_of(&real)))
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&answers[1]), (Ksi(1), first + 1));
    assert_eq!(b.status().offered, Some((Ksi(1), first + 1)));
    b.p.to_ue.clear();
    // Its replay: refused by the window, no second error, no second offer.
    b.refused_by_eese(
        &real,
        Reject::Replayed { seq: seq_of(&real) },
        "replay of the refused message",
    );
    // At the UE: the error stops the keyset, the trigger brings the next;
    // the refused payload goes again, and is delivered once.
    assert_eq!(
        b.p.deliver_to_ue(answers[0].clone()),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    assert_eq!(
        b.p.deliver_to_ue(answers[1].clone()),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    b.settle();
    assert_eq!(
        b.p.at_eese
            .iter()
            .filter(|m| m.as_slice() == payload)
            .count(),
        1
    );
    b.still_works();

    // At the UE: downlink under a keyset past its te2e and the grace it
    // receives for after it, when the EESE said nothing.
    let mut b = Bench::new(Suite::AES_128_GCM);
    let late = b.downlink(b"sealed before te2e ran out");
    let grace = b.p.ue_cfg.grace;
    b.p.advance(b.p.eese_cfg.te2e + grace + grace);
    assert_eq!(b.ue_keyset().map(|s| s.2), Some(false));
    b.refused_by_ue(
        &late,
        Reject::ExpiredKsi(Ksi(0)),
        "downlink under a keyset the UE no longer receives under",
    );
    // Its hello (asking for the next keyset) gets it one.
    b.settle();
    assert_eq!(b.ue_keyset().map(|s| s.2), Some(true));
    b.still_works();
    assert!(!b.p.at_ue.contains(&b"sealed before te2e ran out".to_vec()));
}

/// Regression: the UE went on receiving under a keyset the EESE refused
/// until the receive deadline it set at install (te2e + 2 × grace after the
/// trigger), not for a grace period after the refusal: after an "expire now"
/// early in a keyset's life, downlink under it was delivered for up to that
/// long.
#[test]
fn downlink_under_a_keyset_the_eese_refused_is_not_delivered_past_the_grace() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    let late = b.downlink(b"sealed before the keyset was refused");
    let e = signed_error(&nonce, 0, Cause::EXPIRED_BY_ENTERPRISE, counter, None);
    assert_eq!(
        b.p.deliver_to_ue(e),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    assert_eq!(b.ue_keyset(), Some((Ksi(0), counter, false)));
    // The EESE may have sent before it refused: a grace period, no more.
    b.p.advance(b.p.ue_cfg.grace + Duration::from_secs(20));
    b.refused_by_ue(
        &late,
        Reject::ExpiredKsi(Ksi(0)),
        "downlink under the refused keyset, past the grace",
    );
}

#[test]
fn refusal_of_authentic_data_is_answered_only_within_the_credit() {
    let cfg = UeConfig {
        probe_after: Some(Duration::from_millis(500)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    let first = b.counter();
    b.spend_credit();
    b.p.advance(b.p.eese_cfg.te2e);
    // Authentic under the expired keyset, but what the UE's address brought
    // no longer pays for an error and a trigger: neither goes out now. The
    // next keyset is offered all the same (nothing is sent under it).
    let m = b.uplink(b"x");
    let (r, answers) = b.up_answered(m.clone());
    assert_eq!(r, Err(Reject::ExpiredKsi(Ksi(0))));
    assert_eq!(answers, Vec::<Vec<u8>>::new(), "not within the credit");
    let offered = b.status().offered;
    assert_eq!(offered, Some((Ksi(1), first + 1)));
    b.refused_by_eese(
        &m,
        Reject::Replayed { seq: seq_of(&m) },
        "the refused message replayed",
    );
    // The UE hears nothing back and asks with a hello: the hello pays for
    // both (83 octets of 84), and the payload goes again under the new
    // keyset.
    b.p.advance(Duration::from_millis(500));
    let hello = b.p.to_eese.pop().expect("the UE's hello");
    let (r, answers) = b.up_answered(hello.clone());
    assert_eq!(r, Ok(Received::Control(MessageType::HELLO)));
    let types: Vec<_> = answers.iter().map(|d| peek_type(d).unwrap()).collect();
    assert_eq!(
        types,
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    assert!(answers.iter().map(Vec::len).sum::<usize>() <= hello.len());
    b.settle();
    assert_eq!(
        b.p.at_eese.iter().filter(|p| p.as_slice() == b"x").count(),
        1
    );
    assert_eq!(b.current(), offered);
    b.still_works();
}

/// Regression: a refusal the credit did not pay for was sent anyway by the
/// offer's repeat timer, `trigger_attempts` times: a held-back authentic
/// message relayed late drew 4 × 83 octets whatever the credit. Repeats of
/// an offer made in answer to input are now paid from the credit too.
#[test]
fn refusal_not_paid_for_waits_for_the_ues_next_hello() {
    let cfg = UeConfig {
        probe_after: None,
        keepalive: None,
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    b.spend_credit();
    b.p.advance(b.p.eese_cfg.te2e);
    let m = b.uplink(b"x");
    let (r, answers) = b.up_answered(m);
    assert_eq!(r, Err(Reject::ExpiredKsi(Ksi(0))));
    assert_eq!(answers, Vec::<Vec<u8>>::new(), "not within the credit");
    let sent = b.p.sent_by_eese.len();
    for _ in 0..6 {
        b.p.advance(b.p.eese_cfg.trigger_retransmit_max);
    }
    let types: Vec<_> = b.p.sent_by_eese[sent..]
        .iter()
        .map(|d| peek_type(d).unwrap())
        .collect();
    assert_eq!(types, [], "sent with no credit and no hello");
}

#[test]
fn data_under_a_restored_keyset_is_never_delivered() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let payload = b"sealed before the EESE restarted";
    let up = b.uplink(payload);
    // The EESE restarts from its snapshot: its keyset is retired.
    b.crash_eese(None);
    let restored = b.status();
    assert_eq!(restored.keyset.map(|k| k.state), Some(KeysetState::Retired));
    let forged = flip(&up, up.len() * 8 - 1);
    b.refused_by_eese(
        &forged,
        Reject::Unauthentic,
        "forged uplink under the restored keyset",
    );
    assert_eq!(b.budget.answers, 0, "no keyset to answer with");
    // Authentic, but it may be a replay from before the restart: never
    // delivered. It starts the keyset the restart made necessary (an offer,
    // by design), whose trigger goes out only within the budget.
    let (r, _) = b.up_answered(up.clone());
    assert_eq!(r, Err(Reject::RetiredKsi(Ksi(0))));
    let now = b.status();
    assert_eq!(now.keyset, restored.keyset, "still retired");
    assert!(now.counter > restored.counter, "a new keyset offered");
    assert!(now.offered.is_some());
    // Again (after the interval): refused, and now nothing changes.
    b.p.advance(b.p.eese_cfg.unsolicited_interval);
    b.refused_by_eese(&up, Reject::RetiredKsi(Ksi(0)), "the same message again");
    assert!(b.p.at_eese.iter().all(|m| m.as_slice() != payload));
    // The trigger reaches the UE; traffic goes on under the new keyset.
    b.settle();
    assert_eq!(b.current().map(|c| c.1), now.offered.map(|o| o.1));
    b.still_works();
}

/// Regression: an authentic message under a keyset restored from a
/// snapshot (which anyone who recorded it can replay) was answered with the
/// offer's trigger outside the answer budget, every replay at once: the
/// offer queued its trigger before the budget could charge it.
#[test]
fn replayed_data_under_a_restored_keyset_is_answered_only_within_the_budget() {
    let cfg = UeConfig {
        probe_after: Some(Duration::from_secs(2)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    let up = b.uplink(b"r");
    assert!(up.len() < TriggerRepr::LEN);
    b.crash_eese(None);
    // The first after the restart offers the next keyset (by design); its
    // trigger goes only as far as the credit allows.
    let (r, _) = b.up_answered(up.clone());
    assert_eq!(r, Err(Reject::RetiredKsi(Ksi(0))));
    for i in 0..8 {
        b.refused_by_eese(
            &up,
            Reject::RetiredKsi(Ksi(0)),
            &format!("replayed under the restored keyset, #{i}"),
        );
    }
    assert!(b.budget.answers <= 1, "once in the interval");
    // The UE's own next message is refused alike; hearing nothing (or the
    // offer), it asks with a hello, which fetches the offer.
    let m = b.uplink(b"after the restart");
    assert_eq!(b.up(m), Err(Reject::RetiredKsi(Ksi(0))));
    b.settle();
    b.p.advance(b.p.ue_cfg.probe_after.unwrap());
    b.settle();
    b.still_works();
}

#[test]
fn forged_data_under_an_offered_keyset_does_not_take_it_into_use() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let in_use = b.current();
    let t = b.trigger();
    let offered = Some(names(&t));
    assert_eq!(
        b.p.deliver_to_ue(t),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    // The UE's confirmation (a hello naming the keyset) is lost; its first
    // message under the keyset is caught and changed.
    let lost = b.p.to_eese.pop().expect("the confirmation");
    assert_eq!(peek_type(&lost), Ok(MessageType::HELLO));
    let up = b.uplink(b"the first message under the offered keyset");
    assert_eq!(
        Some(DataPacket::new_checked(&up[..]).unwrap().ksi()),
        offered.map(|o| o.0)
    );
    for bit in 9 * 8..up.len() * 8 {
        b.refused_by_eese(
            &flip(&up, bit),
            Reject::Unauthentic,
            &format!("uplink under the offer, bit {bit}"),
        );
    }
    assert_eq!((b.current(), b.status().offered), (in_use, offered));
    assert_eq!(
        b.budget.answers, 1,
        "answered once, with the offer's trigger"
    );
    // The real one: delivered, and the offer is the keyset in use.
    assert!(matches!(b.up(up), Ok(Received::Data(_))));
    assert_eq!((b.current(), b.status().offered), (offered, None));
    b.still_works();
}

#[test]
fn reflected_data_in_the_wrong_direction_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let up = b.uplink(b"up");
    let down = b.downlink(b"down");
    b.refused_by_ue(&up, Reject::WrongDirection, "uplink reflected to the UE");
    b.refused_by_eese(
        &down,
        Reject::WrongDirection,
        "downlink reflected to the EESE",
    );
    let hello = b.p.sent_by_ue[0].clone();
    assert_eq!(peek_type(&hello), Ok(MessageType::HELLO));
    b.refused_by_ue(
        &hello,
        Reject::Unexpected(MessageType::HELLO),
        "the UE's hello reflected to it",
    );
    b.still_works();
}

#[test]
fn control_messages_sent_to_the_eese_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let nonce = b.nonce();
    let t = b.trigger();
    b.p.deliver_to_ue(t.clone()).unwrap();
    b.refused_by_eese(
        &t,
        Reject::Unexpected(MessageType::DERIVE_TRIGGER),
        "trigger at the EESE",
    );
    let (ksi, counter) = names(&t);
    for refused in [None, Some(0)] {
        let e = signed_error(&nonce, ksi.0, Cause::TE2E_EXPIRED, counter, refused);
        b.refused_by_eese(
            &e,
            Reject::Unexpected(MessageType::KEY_EXPIRED),
            "key-expired error at the EESE",
        );
    }
    b.still_works();
}

// ---- Hellos. ----

/// The pair's UE identifier (13 octets, so its hello has 22 octets of
/// padding, 46..68).
const PAIR_ID: &[u8] = b"ue-under-test";

/// Hellos of the start `nonce` naming `id` that break a rule of the format,
/// each signed again with the root so that only the broken rule can be what
/// it is refused for, with the refusal.
fn malformed_hellos(id: &[u8], nonce: &UeNonce) -> Vec<(String, Vec<u8>, Reject)> {
    let auth = control_auth();
    let h = sign_hello(&auth, id, nonce, 1, 1000);
    let long = sign_hello(&auth, &[b'x'; 60], nonce, 1, 1001);
    assert_eq!((h.len(), long.len()), (84, 109));
    let (id_len, id_at) = (wire::hello::field::ID_LEN, wire::hello::field::ID);
    let mut out = Vec::new();
    let mut add = |name: String, mut m: Vec<u8>, r: Reject| {
        resign_hello(&mut m, &auth);
        out.push((name, m, r));
    };
    for n in [0u8, 65, 0xff] {
        add(
            format!("identifier length {n}"),
            with(&h, id_len, n),
            malformed(FieldName::IdLength, u64::from(n)),
        );
    }
    for at in [id_at + id.len(), 50, 67] {
        add(
            format!("padding octet {at} not zero"),
            with(&h, at, 0x5a),
            malformed(FieldName::Padding, 0x5a),
        );
    }
    add(
        "84 octets, identifier length 60".into(),
        with(&h, id_len, 60),
        truncated(109, 84),
    );
    let mut short_id = long.clone();
    short_id[id_len] = u8::try_from(id.len()).unwrap();
    short_id[id_at..id_at + id.len()].copy_from_slice(id);
    add(
        format!("109 octets, identifier length {}", id.len()),
        short_id,
        trailing(84, 109),
    );
    out
}

#[test]
fn malformed_hellos_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    for (name, m, want) in malformed_hellos(PAIR_ID, &b.nonce()) {
        b.refused_by_eese(&m, want, &format!("hello: {name}"));
    }
    b.still_works();
    // At the table, naming its UE, from where the UE is and from elsewhere.
    let mut n = Net::new();
    for (name, m, want) in malformed_hellos(UE_NAME, &net_start()) {
        for from in [n.ue_addr, stranger()] {
            n.table_drops(from, &m, Some(want), &format!("hello at the table: {name}"));
        }
    }
    n.still_works();
    // An empty table whose directory knows every name makes no session.
    let mut t = empty_table();
    for (name, m, want) in malformed_hellos(UE_NAME, &net_start()) {
        let r = t.handle_datagram(Instant(5), &stranger(), &mut m.clone(), resolve_any);
        assert_eq!(r.map(|(id, _)| id), Err(want), "{name}");
        assert_table_quiet(&mut t, &name);
    }
}

#[test]
fn forged_hello_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let (nonce, counter) = (b.nonce(), b.counter());
    let h = signed_hello(PAIR_ID, &nonce, counter, 1000);
    let (id_len, id_at) = (wire::hello::field::ID_LEN, wire::hello::field::ID);
    let padding = id_at + PAIR_ID.len()..h.len() - wire::CONTROL_TAG_LEN;
    assert_eq!(padding, 46..68);
    for bit in 0..h.len() * 8 {
        let (at, mask) = (bit / 8, 1u8 << (bit % 8));
        let m = flip(&h, bit);
        let want = match at {
            0 => wire_err(wire::Error::UnknownVersion(m[0])),
            1 => wire_err(wire::Error::UnknownType(m[1])),
            3 if mask == 0x01 => Reject::Unauthentic,
            3 => malformed(FieldName::Flags, u64::from(m[3])),
            _ if at == id_len => match usize::from(m[id_len]) {
                n if !(1..=64).contains(&n) => malformed(FieldName::IdLength, n as u64),
                // Part of the identifier is now padding.
                n if n < PAIR_ID.len() => malformed(FieldName::Padding, u64::from(h[id_at + n])),
                n if HelloRepr::len_for(n) > h.len() => truncated(HelloRepr::len_for(n), h.len()),
                // Zero padding is now part of the identifier.
                _ => Reject::Unauthentic,
            },
            _ if padding.contains(&at) => malformed(FieldName::Padding, u64::from(mask)),
            // KSI, REKEY, counter, seq, nonce, identifier, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_eese(&m, want, &format!("hello, bit {bit} flipped"));
    }
    let other = sign_hello(
        &auth_of(2, KdfProfile::Ts33220),
        PAIR_ID,
        &nonce,
        counter,
        1000,
    );
    b.refused_by_eese(
        &other,
        Reject::Unauthentic,
        "hello signed with another root",
    );
    assert_eq!(b.budget.answers, 0, "a forged hello is never answered");
    b.still_works();
}

#[test]
fn replayed_hello_is_refused_without_answer() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    let (nonce, counter) = (b.nonce(), b.counter());
    // A keepalive hello, answered with the trigger in use.
    b.p.advance(Duration::from_secs(31));
    b.settle();
    let hellos: Vec<_> =
        b.p.sent_by_ue
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::HELLO))
            .cloned()
            .collect();
    // Asking for a keyset, confirming it, keeping alive.
    assert_eq!(hellos.len(), 3);
    let last = 2;
    for (seq, h) in hellos.iter().enumerate() {
        let seq = u32::try_from(seq).unwrap();
        assert_eq!(HelloPacket::new_checked(&h[..]).unwrap().seq(), seq);
        b.refused_by_eese(
            h,
            Reject::StaleHello { seq, last },
            &format!("hello {seq} replayed"),
        );
    }
    // Freshly signed for the same start, but not newer than the last seen:
    // stale too.
    for seq in 0..=last {
        let h = signed_hello(PAIR_ID, &nonce, counter, seq);
        b.refused_by_eese(
            &h,
            Reject::StaleHello { seq, last },
            &format!("hello {seq} signed again"),
        );
    }
    assert_eq!(b.budget.answers, 0);
    b.still_works();
}

/// A hello of the UE start `ue` (its first datagram), not delivered.
fn first_hello<const N: usize>(ue: &mut Ue<N>, now: Instant) -> Vec<u8> {
    let mut out = [0u8; 512];
    let t = ue.poll_transmit(now, &mut out).unwrap().expect("a hello");
    let h = out[..t.len].to_vec();
    assert_eq!(peek_type(&h), Ok(MessageType::HELLO));
    h
}

#[test]
fn hello_of_another_ue_start_gets_an_offer_and_changes_nothing_else() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // A copy of the device (same root and identifier, another start) says
    // hello.
    let mut copy = b.p.another_ue();
    let hello = first_hello(&mut copy, b.p.now);
    let other = *copy.nonce();
    assert_ne!(other, b.nonce());
    b.quiesce();
    let (view, ue, marks) = (b.eese_view(), ue_view(&b.p.ue), b.marks());
    // Answered with an offer made for that start (checked: bound to it, no
    // more octets than the hello), and nothing else changes: the keyset in
    // use, its keys, its timers, the start in use; nothing written.
    let (r, answers) = b.up_answered(hello.clone());
    assert_eq!(r, Ok(Received::Control(MessageType::HELLO)));
    assert_eq!(answers.len(), 1);
    let offer = answers[0].clone();
    assert!(trigger_of(&offer).confirm());
    control_auth()
        .verify_message(&offer, &other)
        .expect("made for the other start");
    let after = b.eese_view();
    assert_eq!(
        (&after.keys, after.status.keyset, after.timeout),
        (&view.keys, view.status.keyset, view.timeout)
    );
    assert_eq!(after.status.offered, Some(names(&offer)));
    assert!(after.status.counter > view.status.counter);
    assert_eq!(
        b.p.eese_events[marks.eese_events..],
        [Event::Offered {
            ksi: names(&offer).0,
            counter: names(&offer).1
        }]
    );
    assert_eq!(b.p.eese_disk.len(), marks.eese_disk, "nothing written");
    assert_eq!(ue_view(&b.p.ue), ue);
    // The start in use cannot take it.
    assert_eq!(b.p.to_ue.pop(), Some(offer.clone()));
    b.refused_by_ue(
        &offer,
        Reject::Unauthentic,
        "the other start's offer at the start in use",
    );
    // The other start's hello again: stale for that start.
    b.refused_by_eese(
        &hello,
        Reject::StaleHello { seq: 0, last: 0 },
        "the other start's hello replayed",
    );
    // The start in use goes on as before.
    b.still_works();
    assert_eq!(b.current(), view.status.keyset.map(|k| (k.ksi, k.counter)));
}

#[test]
fn replayed_hello_of_an_earlier_ue_start_is_stale_or_gets_only_an_offer_it_cannot_use() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let earlier: Vec<_> =
        b.p.sent_by_ue
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::HELLO))
            .cloned()
            .collect();
    assert_eq!(earlier.len(), 2, "asking for a keyset, confirming it");
    // The UE restarts and gets a keyset of its own.
    b.p.restart_ue();
    b.settle();
    let in_use = b.current();
    assert_eq!(in_use.map(|c| c.1), b.ue_keyset().map(|s| s.1));
    // The EESE remembers the last hello of the start it replaced: the
    // earlier start's hellos, replayed, are stale.
    for (seq, h) in earlier.iter().enumerate() {
        let seq = u32::try_from(seq).unwrap();
        b.refused_by_eese(
            h,
            Reject::StaleHello { seq, last: 1 },
            &format!("hello {seq} of the earlier start"),
        );
    }
    // It remembers a few starts, not all: after as many more restarts, the
    // first start's hello is fresh again, and gets only an offer made for
    // that start, which the start in use cannot take.
    for _ in 0..ciot_e2e::endpoint::START_MARKS {
        b.p.restart_ue();
        b.settle();
    }
    let in_use = b.current();
    let (r, answers) = b.up_answered(earlier[1].clone());
    assert_eq!(r, Ok(Received::Control(MessageType::HELLO)));
    assert_eq!(answers.len(), 1);
    let t = b.p.to_ue.pop().unwrap();
    assert_eq!(t, answers[0]);
    control_auth()
        .verify_message(&t, &test_nonce(1))
        .expect("made for the first start");
    b.refused_by_ue(
        &t,
        Reject::Unauthentic,
        "the offer for the first start, at the start in use",
    );
    assert_eq!(b.current(), in_use);
    b.refused_by_eese(
        &earlier[1],
        Reject::StaleHello { seq: 1, last: 1 },
        "the first start's hello, again",
    );
    b.still_works();
}

#[test]
fn replayed_hellos_of_earlier_ue_starts_stay_stale_in_any_order() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // Two restarts: the hellos of two earlier starts are on record.
    for _ in 0..2 {
        b.p.restart_ue();
        b.settle();
    }
    let earlier: Vec<Vec<u8>> =
        b.p.sent_by_ue
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::HELLO))
            .filter(|d| HelloPacket::new_checked(&d[..]).unwrap().nonce() != b.nonce())
            .cloned()
            .collect();
    let (a, z) = (earlier[1].clone(), earlier[3].clone());
    for h in [&a, &z] {
        let seq = HelloPacket::new_checked(&h[..]).unwrap().seq();
        assert_eq!(seq, 1, "each start's confirmation");
    }
    // Replayed in turn, whatever came between, both stay stale: no offer, no
    // RAND, no counter, no event.
    let marks = b.marks();
    for i in 0..4 {
        for h in [&a, &z] {
            b.refused_by_eese(
                h,
                Reject::StaleHello { seq: 1, last: 1 },
                &format!("an earlier start's hello replayed, round {i}"),
            );
        }
    }
    assert_eq!(b.p.eese_events.len(), marks.eese_events);
    assert_eq!(b.status().offered, None);
    b.still_works();
}

/// A hello the EESE answered without a new keyset (a keepalive, a check-in)
/// writes no snapshot, so a restored EESE takes its replay for fresh. Since
/// the EESE only offers a keyset to a hello (nothing is sent under it, and
/// its te2e does not start, before the UE uses it), that replay changes
/// nothing but an offer, as the UE's next contact would.
#[test]
fn replayed_hello_after_an_eese_restore_gets_only_an_offer() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    b.p.advance(Duration::from_secs(31));
    b.settle();
    let hello = b.p.sent_by_ue.last().unwrap().clone();
    assert_eq!(HelloPacket::new_checked(&hello[..]).unwrap().seq(), 2);
    // The EESE restarts from its last snapshot (it saw hello 1).
    b.crash_eese(None);
    b.quiesce();
    let (view, ue, marks) = (b.eese_view(), ue_view(&b.p.ue), b.marks());
    assert_eq!(
        view.status.keyset.map(|k| k.state),
        Some(KeysetState::Retired)
    );
    let (r, answers) = b.up_answered(hello.clone());
    assert_eq!(r, Ok(Received::Control(MessageType::HELLO)));
    assert_eq!(answers.len(), 1, "one trigger");
    let offer = answers[0].clone();
    assert!(trigger_of(&offer).confirm());
    let after = b.eese_view();
    assert_eq!(
        (after.status.keyset, &after.keys),
        (view.status.keyset, &view.keys),
        "the restored keyset stays as it was"
    );
    assert_eq!(after.status.offered, Some(names(&offer)));
    assert_eq!(
        b.p.eese_events[marks.eese_events..],
        [Event::Offered {
            ksi: names(&offer).0,
            counter: names(&offer).1
        }]
    );
    // (Its counter, past the reserve the restore skipped, is written, so
    // that no restore issues it again.)
    assert!(b.p.eese_disk.len() <= marks.eese_disk + 1);
    assert_eq!(ue_view(&b.p.ue), ue);
    // Again: stale now.
    assert_eq!(b.p.to_ue.pop(), Some(offer.clone()));
    b.refused_by_eese(
        &hello,
        Reject::StaleHello { seq: 2, last: 2 },
        "the UE's last hello, replayed again",
    );
    // The offer reaches the UE, which uses it.
    b.p.to_ue.push(offer.clone());
    b.settle();
    assert_eq!(b.current(), Some(names(&offer)));
    b.still_works();
}

// ---- Garbage. ----

/// Reproducible garbage from the test kit's generator.
struct Gen(Rng);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A datagram of 1 to 100 random octets; every other one with the
    /// version and a known type, so that it reaches the deeper checks, data
    /// often under the KSI in use with the suite in use, hellos often well
    /// formed (with a random tag).
    fn datagram(&mut self, i: u64) -> Vec<u8> {
        let len = (self.next() % 100) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        if i % 2 == 1 || len < 4 {
            return d;
        }
        d[0] = wire::VERSION;
        d[1] = 1 + (self.next() % 4) as u8;
        match MessageType(d[1]) {
            MessageType::DATA => {
                if i % 4 == 0 {
                    d[2] = 0;
                }
                d[3] = u8::from(i % 8 < 4);
                if len > 4 {
                    d[4] = Suite::AES_128_GCM.0;
                }
            }
            MessageType::HELLO if i % 3 == 0 => {
                let mut h = signed_hello(PAIR_ID, &first_start(), self.next(), self.next() as u32);
                let at = h.len() - 16;
                for o in &mut h[at..] {
                    *o = self.next() as u8;
                }
                d = h;
            }
            _ => {}
        }
        d
    }
}

#[test]
fn garbage_flood_changes_nothing_and_is_answered_at_most_once_per_interval() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let ue_before = ue_view(&b.p.ue);
    let keys_before = b.eese_view().keys;
    let mut g = Gen(Rng::new(42));
    let start = b.p.now;
    // 20,000 datagrams over 10 s, each to both ends.
    for i in 0..20_000u64 {
        b.p.now = start.after(Duration::from_micros(500 * i));
        let d = g.datagram(i);
        b.ue_drops(&d, None, &format!("garbage #{i} at the UE"));
        b.eese_drops(&d, None, &format!("garbage #{i} at the EESE"));
    }
    assert_eq!(ue_view(&b.p.ue), ue_before, "the UE changed");
    assert_eq!(b.eese_view().keys, keys_before, "the EESE's keys changed");
    assert!(b.budget.answers > 0, "the budget paid for some answers");
    b.still_works();
}

// ---- The session table: where UEs are. ----

const UE_NAME: &[u8] = b"ue-1";

/// The start of the table's UE.
fn net_start() -> UeNonce {
    test_nonce(7)
}

fn resolve(id: &[u8]) -> Option<(u32, RootKey)> {
    (id == UE_NAME).then(|| (1, test_root(1)))
}

/// Resolves any identifier to UE 1 (an EESE whose directory knows every
/// name): the hello itself must be what is refused.
fn resolve_any(_: &[u8]) -> Option<(u32, RootKey)> {
    Some((1, test_root(1)))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn stranger() -> SocketAddr {
    addr("198.51.100.7:40000")
}

type Table = EeseTable<u32, SocketAddr, TestRands>;

fn empty_table() -> Table {
    EeseTable::new(eese_cfg(Suite::AES_128_GCM), TestRands::default())
}

/// Nothing in a table that should hold nothing.
fn assert_table_quiet(t: &mut Table, what: &str) {
    assert_eq!(t.len(), 0, "{what}: a session was made");
    let mut out = [0u8; 512];
    assert!(t.poll_persist(&mut out).is_none(), "{what}: persisted");
    assert!(
        t.poll_transmit(Instant(5), &mut out).is_none(),
        "{what}: sent"
    );
    assert!(t.poll_event().is_none(), "{what}: reported");
    assert_eq!(t.ue_at(&stranger()), None);
}

#[derive(Debug, PartialEq)]
struct TableView {
    len: usize,
    status: Option<SessionStatus>,
    keys: Option<(Rand, SuiteKeys)>,
    peer: Option<SocketAddr>,
    at_ue_addr: Option<u32>,
    at_stranger: Option<u32>,
    last_active: Option<Instant>,
    timeout: Option<Instant>,
}

/// A table serving one UE, which found it with its hello.
struct Net {
    table: Table,
    ue: Ue<64>,
    now: Instant,
    ue_addr: SocketAddr,
    sent_by_ue: Vec<Vec<u8>>,
    /// Every datagram the table sent, and where to.
    sent: Vec<(SocketAddr, Vec<u8>)>,
    /// The table's snapshots, in the order written.
    disk: Vec<Vec<u8>>,
    events: Vec<Event>,
    at_table: Vec<Vec<u8>>,
    at_ue: Vec<Vec<u8>>,
    budget: Budget,
}

impl Net {
    fn new() -> Self {
        Self::with(ue_cfg())
    }

    fn with(cfg: UeConfig) -> Self {
        let id = UeId::new(UE_NAME).unwrap();
        let mut n = Net {
            table: empty_table(),
            ue: Ue::new(cfg, test_root(1), id, net_start()),
            now: Instant::from_millis(1_000),
            ue_addr: addr("192.0.2.1:33863"),
            sent_by_ue: Vec::new(),
            sent: Vec::new(),
            disk: Vec::new(),
            events: Vec::new(),
            at_table: Vec::new(),
            at_ue: Vec::new(),
            budget: Budget::new(eese_cfg(Suite::AES_128_GCM).unsolicited_interval),
        };
        n.settle();
        assert_eq!(n.table.len(), 1, "the UE's hello made its session");
        assert_eq!(
            n.table.peer(&1),
            Some(&n.ue_addr),
            "the UE used its offer from where it is"
        );
        n.exchange(b"first up", b"first down");
        n
    }

    fn view(&mut self) -> TableView {
        let t = &self.table;
        TableView {
            len: t.len(),
            status: t.status(self.now, &1),
            keys: t.current_keys(&1).map(|(r, k)| (r.clone(), k.clone())),
            peer: t.peer(&1).copied(),
            at_ue_addr: t.ue_at(&self.ue_addr).copied(),
            at_stranger: t.ue_at(&stranger()).copied(),
            last_active: t.last_active(&1),
            timeout: self.table.poll_timeout(),
        }
    }

    /// What the UE has to send, not delivered.
    fn ue_output(&mut self) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut out = [0u8; 512];
        while let Ok(Some(t)) = self.ue.poll_transmit(self.now, &mut out) {
            self.sent_by_ue.push(out[..t.len].to_vec());
            got.push(out[..t.len].to_vec());
        }
        while self.ue.poll_event().is_some() {}
        got
    }

    /// What the table has to do: snapshots (made durable at once), events,
    /// datagrams (those to where the UE is handed to it when `to_ue`).
    /// Returns the datagrams, and whether anything happened.
    fn pump(&mut self, to_ue: bool) -> (Vec<(SocketAddr, Vec<u8>)>, bool) {
        let mut sent = Vec::new();
        let mut progress = false;
        loop {
            let mut moved = false;
            let mut snap = [0u8; EESE_SNAPSHOT_LEN];
            if let Some((id, p)) = self.table.poll_persist(&mut snap) {
                self.disk.push(snap[..p.len()].to_vec());
                self.table.persisted(&id, p).unwrap();
                moved = true;
            }
            let mut out = [0u8; 512];
            while let Some((id, to, t)) = self.table.poll_transmit(self.now, &mut out) {
                assert_eq!(id, 1);
                let d = out[..t.len].to_vec();
                self.sent.push((to, d.clone()));
                sent.push((to, d.clone()));
                if to_ue && to == self.ue_addr {
                    let mut d = d;
                    if let Ok(Received::Data(got)) = self.ue.handle_datagram(self.now, &mut d) {
                        self.at_ue.push(d[got.payload].to_vec());
                    }
                }
                moved = true;
            }
            while let Some((_, e)) = self.table.poll_event() {
                self.events.push(e);
                moved = true;
            }
            if !moved {
                return (sent, progress);
            }
            progress = true;
        }
    }

    /// Hands `d` from `from` to the table, runs what follows (what goes to
    /// where the UE is reaches it), and checks the answers: to a hello only
    /// where it came from, else only to the proven address and only for
    /// input from there; within the budget.
    fn deliver(&mut self, from: SocketAddr, mut d: Vec<u8>) -> Result<(u32, Received), Reject> {
        let input = d.clone();
        self.budget.took(from, d.len());
        let r = self.table.handle_datagram(self.now, &from, &mut d, resolve);
        if let Ok((_, Received::Data(got))) = &r {
            self.at_table.push(d[got.payload.clone()].to_vec());
        }
        let (out, _) = self.pump(true);
        let what = format!("{:?} from {from}: {r:?}", peek_type(&input));
        self.check_answers(
            from,
            &input,
            r.as_ref().map(|(_, g)| g).map_err(|e| *e),
            &out,
            &what,
        );
        r
    }

    fn check_answers(
        &mut self,
        from: SocketAddr,
        input: &[u8],
        r: Result<&Received, Reject>,
        out: &[(SocketAddr, Vec<u8>)],
        what: &str,
    ) {
        let peer = self.table.peer(&1).copied();
        let hello = matches!(r, Ok(Received::Control(MessageType::HELLO)));
        let mut answers = Vec::new();
        for (to, d) in out {
            if peek_type(d) == Ok(MessageType::DATA) {
                // A payload that waited for its keyset.
                assert_eq!(Some(*to), peer, "{what}: a payload went elsewhere");
                continue;
            }
            if hello {
                assert_eq!(*to, from, "{what}: a hello answered elsewhere");
            } else {
                assert_eq!(
                    (Some(*to), Some(from)),
                    (peer, peer),
                    "{what}: answered elsewhere than where the UE is, proven"
                );
            }
            answers.push(d.clone());
        }
        let status = self.table.status(self.now, &1);
        let nonce = *self.ue.nonce();
        self.budget.check(
            from,
            input,
            r,
            &answers,
            self.now,
            status.as_ref(),
            &nonce,
            what,
        );
    }

    /// Both sides say what they have to say until the network is quiet.
    fn settle(&mut self) {
        for _ in 0..64 {
            let (_, mut progress) = self.pump(true);
            for d in self.ue_output() {
                let from = self.ue_addr;
                let _ = self.deliver(from, d);
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("the network does not quiet down");
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        self.ue.handle_timeout(self.now);
        self.table.handle_timeout(self.now);
        self.settle();
    }

    /// An uplink data message, not delivered.
    fn uplink(&mut self, payload: &[u8]) -> Vec<u8> {
        assert_eq!(self.ue.send(self.now, payload), Ok(Sent::Queued));
        let mut out = self.ue_output();
        assert_eq!(out.len(), 1);
        out.pop().unwrap()
    }

    /// The UE's next hello (due now), not delivered.
    fn hello(&mut self) -> Vec<u8> {
        self.ue.handle_timeout(self.now);
        let mut out = self.ue_output();
        assert_eq!(out.len(), 1, "one hello");
        let h = out.pop().unwrap();
        assert_eq!(peek_type(&h), Ok(MessageType::HELLO));
        h
    }

    fn exchange(&mut self, up: &[u8], down: &[u8]) {
        assert_eq!(self.ue.send(self.now, up), Ok(Sent::Queued));
        self.settle();
        assert_eq!(self.at_table.last().map(Vec::as_slice), Some(up));
        let mut out = [0u8; 512];
        match self.table.send(self.now, &1, down, &mut out) {
            Ok(SendOutcome::Sent { sealed, to }) => {
                assert_eq!(to, self.ue_addr, "sent where the UE is");
                let mut d = out[..sealed.len].to_vec();
                self.sent.push((to, d.clone()));
                let r = self.ue.handle_datagram(self.now, &mut d);
                let Ok(Received::Data(got)) = r else {
                    panic!("downlink: {r:?}")
                };
                assert_eq!(&d[got.payload], down);
            }
            other => panic!("{other:?}"),
        }
        self.settle();
    }

    fn still_works(&mut self) {
        self.exchange(b"still up", b"still down");
    }

    /// Feeds `bad` to the table from `from`: refused (with `want` when
    /// given), the table as it was, nothing persisted or reported, answers
    /// only to where the UE is (proven) for input from there, within the
    /// budget.
    fn table_drops(
        &mut self,
        from: SocketAddr,
        bad: &[u8],
        want: Option<Reject>,
        what: &str,
    ) -> Reject {
        self.table.handle_timeout(self.now);
        self.settle();
        let (view, ue) = (self.view(), ue_view(&self.ue));
        let mut buf = bad.to_vec();
        self.budget.took(from, bad.len());
        let r = match self
            .table
            .handle_datagram(self.now, &from, &mut buf, resolve)
        {
            Err(r) => r,
            Ok(got) => panic!("{what}: the table took it: {got:?}"),
        };
        if let Some(w) = want {
            assert_eq!(r, w, "{what}");
        }
        let mut snap = [0u8; EESE_SNAPSHOT_LEN];
        assert!(
            self.table.poll_persist(&mut snap).is_none(),
            "{what}: persisted"
        );
        assert!(self.table.poll_event().is_none(), "{what}: reported");
        let mut out = Vec::new();
        let mut o = [0u8; 512];
        while let Some((id, to, t)) = self.table.poll_transmit(self.now, &mut o) {
            assert_eq!(id, 1);
            self.sent.push((to, o[..t.len].to_vec()));
            out.push((to, o[..t.len].to_vec()));
        }
        assert_eq!(self.view(), view, "{what} ({r:?}): the table changed");
        assert_eq!(ue_view(&self.ue), ue, "{what}: the UE changed");
        self.check_answers(from, bad, Err(r), &out, what);
        r
    }
}

#[test]
fn datagram_from_a_peer_without_session_is_refused_without_answer() {
    // An empty table makes nothing for anyone.
    let mut t = empty_table();
    let junk = junk_data(0, 0);
    let r = t.handle_datagram(Instant(5), &stranger(), &mut junk.clone(), resolve);
    assert_eq!(r, Err(Reject::NoSession));
    assert_table_quiet(&mut t, "data from a stranger to an empty table");
    // A table with a UE: the UE's own authentic messages, sent from another
    // address, reach no session.
    let mut n = Net::new();
    let up = n.uplink(b"authentic, but from elsewhere");
    n.table_drops(
        stranger(),
        &up,
        Some(Reject::NoSession),
        "the UE's uplink from a stranger",
    );
    n.table_drops(
        stranger(),
        &junk,
        Some(Reject::NoSession),
        "junk data from a stranger",
    );
    let trigger = n
        .sent
        .iter()
        .find(|(_, d)| peek_type(d) == Ok(MessageType::DERIVE_TRIGGER));
    let trigger = trigger.unwrap().1.clone();
    n.table_drops(
        stranger(),
        &trigger,
        Some(Reject::NoSession),
        "a trigger from a stranger",
    );
    // A flood of garbage from the stranger: nothing made, nothing answered.
    let mut g = Gen(Rng::new(7));
    for i in 0..2_000 {
        n.table_drops(
            stranger(),
            &g.datagram(i),
            None,
            &format!("garbage #{i} from a stranger"),
        );
    }
    assert!(n.sent.iter().all(|(to, _)| *to == n.ue_addr));
    // The same uplink from where the UE is: delivered.
    let from = n.ue_addr;
    let r = n.deliver(from, up);
    assert!(matches!(r, Ok((1, Received::Data(_)))), "{r:?}");
    n.still_works();
}

#[test]
fn hello_from_an_unknown_ue_creates_nothing() {
    let mut n = Net::new();
    // Even signed with a root the EESE holds: the name is not one it serves.
    let h = signed_hello(b"ue-2", &test_nonce(8), 0, 0);
    for from in [stranger(), n.ue_addr] {
        n.table_drops(from, &h, Some(Reject::UnknownUe), "hello from ue-2");
    }
    n.still_works();
}

#[test]
fn forged_hello_creates_no_session_and_moves_no_ue() {
    let good = signed_hello(UE_NAME, &net_start(), 0, 0);
    let nonce_at = wire::hello::field::NONCE.start;
    let forgeries = [
        (
            "another root",
            sign_hello(
                &auth_of(2, KdfProfile::Ts33220),
                UE_NAME,
                &net_start(),
                0,
                0,
            ),
        ),
        ("a tag bit flipped", flip(&good, good.len() * 8 - 1)),
        ("the seq changed", flip(&good, 15 * 8)),
        ("the nonce changed", flip(&good, nonce_at * 8)),
    ];
    // An empty table verifies before it makes anything.
    let mut t = empty_table();
    for (name, h) in &forgeries {
        let r = t.handle_datagram(Instant(5), &stranger(), &mut h.clone(), resolve);
        assert_eq!(r.map(|(id, _)| id), Err(Reject::Unauthentic), "{name}");
        assert_table_quiet(&mut t, name);
    }
    // A table with the UE: forged hellos move it nowhere.
    let mut n = Net::new();
    let next = n.sent_by_ue.len();
    for (name, h) in &forgeries {
        for from in [stranger(), n.ue_addr] {
            n.table_drops(
                from,
                h,
                Some(Reject::Unauthentic),
                &format!("forged hello: {name}"),
            );
        }
    }
    assert_eq!(n.budget.answers, 0);
    assert_eq!(n.sent_by_ue.len(), next);
    n.still_works();
}

#[test]
fn replayed_hello_from_another_address_moves_no_ue() {
    let mut n = Net::new();
    let hellos: Vec<_> = n
        .sent_by_ue
        .iter()
        .filter(|d| peek_type(d) == Ok(MessageType::HELLO))
        .cloned()
        .collect();
    assert_eq!(hellos.len(), 2, "asking for a keyset, confirming it");
    for (seq, hello) in hellos.iter().enumerate() {
        let seq = u32::try_from(seq).unwrap();
        for from in [stranger(), n.ue_addr] {
            n.table_drops(
                from,
                hello,
                Some(Reject::StaleHello { seq, last: 1 }),
                &format!("the UE's hello {seq} replayed"),
            );
        }
    }
    n.still_works();
}

#[test]
fn relayed_hello_makes_its_address_a_candidate_only() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(5)),
        ..ue_cfg()
    };
    let mut n = Net::with(cfg);
    // The UE's next hello is caught on its way and relayed from elsewhere
    // before the UE's own copy arrives.
    n.now = n.now.after(Duration::from_secs(5));
    let hello = n.hello();
    let seq = HelloPacket::new_checked(&hello[..]).unwrap().seq();
    let before = n.view();
    let sent = n.sent.len();
    // Fresh and authentic: answered where it came from (an offer, no larger
    // than the hello), and that address is a candidate, nothing more.
    let r = n.deliver(stranger(), hello.clone());
    assert_eq!(r, Ok((1, Received::Control(MessageType::HELLO))));
    let answers = n.sent[sent..].to_vec();
    assert_eq!(answers.len(), 1);
    let (to, offer) = &answers[0];
    assert_eq!(*to, stranger());
    assert!(trigger_of(offer).confirm());
    let after = n.view();
    assert_eq!(after.peer, Some(n.ue_addr), "the proven address stays");
    assert_eq!(after.at_stranger, Some(1), "a candidate");
    assert_eq!(
        (&after.keys, after.status.and_then(|s| s.keyset)),
        (&before.keys, before.status.and_then(|s| s.keyset))
    );
    assert_eq!(after.status.and_then(|s| s.offered), Some(names(offer)));
    // Input from the candidate that cannot be authenticated: refused, never
    // answered.
    let unknown = junk_data(9, 1);
    for i in 0..20 {
        n.table_drops(
            stranger(),
            &unknown,
            Some(Reject::UnknownKsi(Ksi(9))),
            &format!("from the candidate, #{i}"),
        );
    }
    // The UE's own copy, late: stale.
    let from = n.ue_addr;
    n.table_drops(
        from,
        &hello,
        Some(Reject::StaleHello { seq, last: seq }),
        "the UE's own copy of the relayed hello",
    );
    // Payloads still go to the proven address.
    n.still_works();
    // The UE's next hello, from where it is, fetches the offer there; its use
    // of it proves the address it already had.
    n.advance(Duration::from_secs(5));
    assert_eq!(
        n.view()
            .status
            .and_then(|s| s.keyset)
            .map(|k| (k.ksi, k.counter)),
        Some(names(offer))
    );
    assert_eq!(n.table.peer(&1), Some(&n.ue_addr));
    n.still_works();
    let to_stranger = n.sent.iter().filter(|(to, _)| *to == stranger()).count();
    assert_eq!(to_stranger, 1, "nothing but the hello's answer went there");
}

#[test]
fn unauthenticated_input_at_the_table_is_answered_only_where_the_ue_is_within_its_budget() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(5)),
        ..ue_cfg()
    };
    let mut n = Net::with(cfg);
    let interval = n.table.config().unsolicited_interval;
    let unknown = junk_data(9, 1);
    assert!(unknown.len() < TriggerRepr::LEN);
    // From elsewhere: no session, no answer, and no credit at the UE's
    // address.
    for _ in 0..50 {
        n.table_drops(
            stranger(),
            &unknown,
            Some(Reject::NoSession),
            "from a stranger",
        );
    }
    // From the UE's address (spoofed or not): answered within what that
    // address brought, once per interval.
    let from = n.ue_addr;
    for _ in 0..20 {
        n.table_drops(
            from,
            &unknown,
            Some(Reject::UnknownKsi(Ksi(9))),
            "from the UE's address",
        );
    }
    assert_eq!(n.budget.answers, 1);
    n.advance(interval);
    n.table_drops(
        from,
        &unknown,
        Some(Reject::UnknownKsi(Ksi(9))),
        "after the interval",
    );
    assert_eq!(n.budget.answers, 2);
    // The UE moves (its keepalive hello comes from a new address, and it uses
    // the offer that answers it from there): the new address is where the
    // UE is, and its answers are paid by what the new address sent.
    let old = n.ue_addr;
    n.ue_addr = addr("203.0.113.9:5000");
    n.advance(Duration::from_secs(5));
    assert_eq!(n.table.peer(&1), Some(&n.ue_addr), "the UE moved");
    let answered = n.budget.answers;
    for i in 0..20 {
        n.advance(interval);
        let from = n.ue_addr;
        n.table_drops(
            from,
            &unknown,
            Some(Reject::UnknownKsi(Ksi(9))),
            &format!("from the new address, #{i}"),
        );
    }
    assert!(n.budget.answers > answered, "answered there");
    n.table_drops(
        old,
        &unknown,
        Some(Reject::NoSession),
        "from the address the UE left",
    );
    n.still_works();
}

/// The table version of `replayed_hello_after_an_eese_restore_gets_only_an_offer`:
/// the replay, from another address, gets an offer there (which no one but
/// the UE can use) and makes that address a candidate; the UE's proven
/// address, and where its payloads go, move only when the UE uses an offer.
#[test]
fn replayed_hello_after_a_restore_moves_no_ue() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut n = Net::with(cfg);
    n.advance(Duration::from_secs(31));
    let hello = n.sent_by_ue.last().unwrap().clone();
    assert_eq!(HelloPacket::new_checked(&hello[..]).unwrap().seq(), 2);
    let snapshot = n.disk.last().unwrap().clone();
    n.table.restore(1, test_root(1), &snapshot).unwrap();
    n.budget.forget();
    assert_eq!(
        n.table.peer(&1),
        None,
        "not known until the UE's next hello"
    );
    let sent = n.sent.len();
    let r = n.deliver(stranger(), hello);
    assert_eq!(r, Ok((1, Received::Control(MessageType::HELLO))));
    let answers = n.sent[sent..].to_vec();
    assert_eq!(answers.len(), 1, "one trigger");
    assert_eq!(answers[0].0, stranger());
    assert_eq!(
        n.table.peer(&1),
        None,
        "the stranger is not where the UE is"
    );
    // A payload for the UE waits for the UE's proven address.
    let mut out = [0u8; 512];
    assert_eq!(
        n.table.send(n.now, &1, b"for the UE only", &mut out),
        Ok(SendOutcome::Queued)
    );
    n.settle();
    // The UE's next hello, from where it is, takes the offer there; its use
    // proves its address, and the payload goes there.
    n.advance(Duration::from_secs(30));
    assert_eq!(n.table.peer(&1), Some(&n.ue_addr));
    assert!(n.at_ue.contains(&b"for the UE only".to_vec()));
    assert_eq!(
        n.sent.iter().filter(|(to, _)| *to == stranger()).count(),
        1,
        "nothing but the hello's answer went to the stranger"
    );
    n.still_works();
}
