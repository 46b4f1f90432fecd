//! The bad-input table of docs/SECURITY.md (section 2), row by row, at the
//! endpoints: each hostile or broken datagram is refused with its own
//! `Reject`, leaves the endpoint as it was (everything it shows of itself,
//! compared before and after), persists, reports and delivers nothing, is
//! answered by the EESE only within its budget for input it cannot
//! authenticate, and the authentic traffic that follows still goes through.
//!
//! What "as it was" means here: for a UE its `Debug` form (counters, keyset
//! state, held payload's state, durable state, hello timer), `status()`,
//! `current_keys()`, `last_counter()`, `holding()` and `poll_timeout()`; for
//! an EESE `status(now)`, `current_keys()` and `poll_timeout()`; for the
//! session table also its size, where each UE is and which UE is where.
//!
//! The answer budget: the EESE may answer input it cannot authenticate (a bad
//! tag or MAC, an unknown KSI, a suite that is not the keyset's, traffic under
//! a restored keyset) with its current trigger, never with more octets than
//! such input brought, and at most once per `unsolicited_interval`. Every
//! other refusal gets no answer at all.

use std::net::SocketAddr;
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Instant, Received, Reject, SendOutcome, Sent,
    SessionStatus, UE_SNAPSHOT_LEN, Ue, UeConfig, UeId, UeStatus,
};
use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootKey};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    self, Cause, ControlAuth, DataPacket, FieldName, HelloPacket, HelloRepr, KeyExpiredRepr, Ksi,
    MAX_MESSAGE_LEN, Message, MessageType, Suite, TriggerPacket, TriggerRepr, peek_type,
};
use ciot_e2e_testkit::pair::{Pair, test_root};
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

fn signed_trigger(auth: &ControlAuth, ksi: u8, counter: u64, profile: KdfProfile) -> Vec<u8> {
    let mut t = vec![0u8; TriggerRepr::LEN];
    TriggerRepr {
        ksi: Ksi(ksi),
        counter,
        rand: Rand([0xaa; 16]),
        profile,
        suite: Suite::AES_128_GCM,
        lifetime: 60,
        tag: [0; 16],
    }
    .emit_signed(auth, &mut t)
    .unwrap();
    t
}

fn signed_error(
    auth: &ControlAuth,
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
    .emit_signed(auth, &mut e)
    .unwrap();
    e
}

fn signed_hello(auth: &ControlAuth, id: &[u8], counter: u64, seq: u32) -> Vec<u8> {
    let repr = HelloRepr {
        ksi: Ksi(0),
        rekey: false,
        counter,
        seq,
        id,
        tag: [0; 16],
    };
    let mut h = vec![0u8; repr.buffer_len()];
    repr.emit_signed(auth, &mut h).unwrap();
    h
}

/// Signs a control message again after it was changed, so that only the
/// change (not the tag) can be what it is refused for.
fn resign(m: &mut [u8], auth: &ControlAuth) {
    let at = m.len() - wire::CONTROL_TAG_LEN;
    let tag = auth.tag(&m[..at]);
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

/// Input the EESE cannot authenticate, which its budget may answer.
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
    status: Option<UeStatus>,
    keys: Option<(Rand, SuiteKeys)>,
    last_counter: u64,
    holding: bool,
    timeout: Option<Instant>,
}

fn ue_view<const N: usize>(ue: &Ue<N>) -> UeView {
    UeView {
        debug: format!("{ue:?}"),
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
    ue_disk: usize,
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

/// What the EESE (or the table, for one address) received that it could not
/// authenticate, and what it answered.
struct Budget {
    interval: Duration,
    received: usize,
    answered: usize,
    answers: usize,
    last: Option<Instant>,
}

impl Budget {
    fn new(interval: Duration) -> Self {
        Budget {
            interval,
            received: 0,
            answered: 0,
            answers: 0,
            last: None,
        }
    }

    /// Checks the answers to one refused datagram of `len` octets against
    /// the budget rule; `current` is the EESE's keyset (KSI, counter).
    fn check(
        &mut self,
        r: Reject,
        len: usize,
        answers: &[Vec<u8>],
        now: Instant,
        current: Option<(Ksi, u64)>,
        what: &str,
    ) {
        let interval = self.interval;
        if unauthenticated(r) {
            self.received += len;
        }
        if answers.is_empty() {
            return;
        }
        assert!(unauthenticated(r), "{what}: {r:?} was answered");
        assert_eq!(answers.len(), 1, "{what}: more than one datagram back");
        let a = &answers[0];
        let t = TriggerPacket::new_checked(&a[..])
            .unwrap_or_else(|e| panic!("{what}: answered with something else than a trigger: {e}"));
        control_auth()
            .verify_message(a)
            .expect("an authentic trigger");
        assert_eq!(
            Some((t.ksi(), t.counter())),
            current,
            "{what}: not the current trigger"
        );
        self.answered += a.len();
        assert!(
            self.answered <= self.received,
            "{what}: {} octets answered to {} octets of unauthenticated input",
            self.answered,
            self.received
        );
        if let Some(last) = self.last {
            assert!(
                last.until(now) >= interval,
                "{what}: answered twice within {interval:?}"
            );
        }
        self.last = Some(now);
        self.answers += 1;
    }
}

// ---- One UE and one EESE. ----

struct Bench {
    p: Pair,
    budget: Budget,
}

impl Bench {
    /// Keyset 0 on both sides, and one payload delivered each way (the EESE
    /// saw the keyset confirmed, the UE heard back).
    fn new(suite: Suite) -> Self {
        Self::with(ue_cfg(), eese_cfg(suite))
    }

    fn with(ue: UeConfig, eese: EeseConfig) -> Self {
        let mut b = Bench::from_pair(Pair::started(ue, eese));
        b.exchange(b"first up", b"first down");
        b
    }

    fn from_pair(p: Pair) -> Self {
        let interval = p.eese_cfg.unsolicited_interval;
        Bench {
            p,
            budget: Budget::new(interval),
        }
    }

    fn marks(&self) -> Marks {
        let p = &self.p;
        Marks {
            ue_disk: p.ue_disk.len(),
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

    fn eese_view(&self) -> EeseView {
        let e = &self.p.eese;
        EeseView {
            status: e.status(self.p.now),
            keys: e.current_keys().map(|(r, k)| (r.clone(), k.clone())),
            timeout: e.poll_timeout(),
        }
    }

    fn current(&self) -> Option<(Ksi, u64)> {
        let k = self.p.eese.status(self.p.now).keyset?;
        Some((k.ksi, k.counter))
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

    /// The trigger of a new keyset the EESE starts now, not delivered.
    fn trigger(&mut self) -> Vec<u8> {
        let n = self.p.to_ue.len();
        self.p.eese.rekey(self.p.now);
        self.p.drain();
        assert_eq!(self.p.to_ue.len(), n + 1, "one trigger");
        let t = self.p.to_ue.pop().unwrap();
        assert_eq!(peek_type(&t), Ok(MessageType::DERIVE_TRIGGER));
        t
    }

    /// One payload each way, delivered.
    fn exchange(&mut self, up: &[u8], down: &[u8]) {
        let m = self.uplink(up);
        let r = self.p.deliver_to_eese(m);
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
    /// UE shows changed, nothing persisted, sent, delivered or reported, the
    /// caller's buffer left as it was.
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
            "{what} ({r:?}): something was persisted, sent, delivered or reported"
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
        let current = self.current();
        self.budget
            .check(r, bad.len(), &answers, self.p.now, current, what);
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
        let down = b.downlink(b"downlink payload");
        let up = b.uplink(b"uplink payload");
        let trigger = b.trigger();
        let error = signed_error(&control_auth(), 0, Cause::TE2E_EXPIRED, 1, None);
        let hello = signed_hello(&control_auth(), b"ue-under-test", 1, 1000);
        let long_hello = signed_hello(&control_auth(), &[b'x'; 60], 1, 1001);
        assert_eq!((hello.len(), long_hello.len()), (84, 93));
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
        ] {
            let ty = peek_type(full).unwrap();
            for n in 0..full.len() {
                let want = cut_reject(ty, full.len(), suite, n);
                b.refused_by_eese(&full[..n], want, &format!("{suite}: {name} cut at {n}"));
            }
        }
        // The whole messages are still good: nothing moved a counter or a
        // window. (The downlink and uplink are under the replaced keyset,
        // which is kept for the grace period.)
        assert_eq!(
            b.p.deliver_to_ue(trigger),
            Ok(Received::Control(MessageType::DERIVE_TRIGGER))
        );
        assert_eq!(
            b.p.ue.status().map(|s| (s.ksi, s.counter)),
            Some((Ksi(1), 2))
        );
        assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
        assert!(matches!(b.p.deliver_to_eese(up), Ok(Received::Data(_))));
        b.still_works();
    }
}

#[test]
fn oversized_and_overlong_messages_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
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
    let mut e = signed_error(&control_auth(), 1, Cause::TE2E_EXPIRED, 2, None);
    e.push(0);
    b.refused_by_ue(
        &e,
        trailing(33, 34),
        "key-expired error with a trailing octet",
    );
    let mut h = signed_hello(&control_auth(), b"ue-under-test", 1, 1000);
    h.push(0);
    b.refused_by_eese(&h, trailing(84, 85), "hello with a trailing octet");
    assert_eq!(
        b.p.deliver_to_ue(t),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    b.still_works();
}

#[test]
fn unknown_version_type_suite_and_reserved_bits_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // Long enough for the other suite's tag, so that a suite mismatch is not
    // a truncation.
    let down = b.downlink(b"a downlink payload of some length");
    let up = b.uplink(b"an uplink payload of some length");
    let trigger = b.trigger();
    let error = signed_error(&control_auth(), 0, Cause::TE2E_EXPIRED, 1, None);
    let hello = signed_hello(&control_auth(), b"ue-under-test", 1, 1000);
    for (m, name) in [
        (&trigger, "trigger"),
        (&error, "key-expired error"),
        (&down, "data"),
    ] {
        for v in [1, 3, 0xff] {
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
        b.refused_by_ue(
            &with(m, 3, m[3] | 0x80),
            malformed(FieldName::Flags, u64::from(m[3] | 0x80)),
            &format!("{name}, reserved flag bit 7"),
        );
    }
    b.refused_by_ue(
        &with(&trigger, 3, 0x01),
        malformed(FieldName::Flags, 1),
        "trigger, flag bit 0 (reserved in a trigger)",
    );
    b.refused_by_ue(
        &with(&error, 3, 0x02),
        malformed(FieldName::Flags, 2),
        "key-expired error, reserved flag bit 1",
    );
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
        b.refused_by_eese(
            &with(m, 0, 1),
            wire_err(wire::Error::UnknownVersion(1)),
            &format!("{name}, version 1"),
        );
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
    assert!(matches!(b.p.deliver_to_eese(up), Ok(Received::Data(_))));
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
            0 => wire_err(wire::Error::UnknownVersion(t[0] ^ mask)),
            // Type 3: read as a data message whose suite octet is the
            // counter's first octet (0).
            1 if mask == 0x02 => malformed(FieldName::Suite, u64::from(t[4])),
            1 => wire_err(wire::Error::UnknownType(t[1] ^ mask)),
            3 => malformed(FieldName::Flags, u64::from(mask)),
            28 => malformed(FieldName::KdfProfile, u64::from(t[28] ^ mask)),
            29 => malformed(FieldName::Suite, u64::from(t[29] ^ mask)),
            30..34 if u32::from_be_bytes(m[30..34].try_into().unwrap()) == 0 => {
                malformed(FieldName::Lifetime, 0)
            }
            // KSI, counter, RAND, lifetime, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_ue(&m, want, &format!("trigger, bit {bit} flipped"));
    }
    for (auth, name) in [
        (auth_of(2, KdfProfile::Ts33220), "another root"),
        (
            auth_of(1, KdfProfile::HkdfSha256),
            "the other profile's control key",
        ),
    ] {
        let mut forged = t.clone();
        resign(&mut forged, &auth);
        b.refused_by_ue(
            &forged,
            Reject::Unauthentic,
            &format!("trigger signed with {name}"),
        );
    }
    assert_eq!(
        b.p.deliver_to_ue(t),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    assert_eq!(
        b.p.ue.status().map(|s| (s.ksi, s.counter)),
        Some((Ksi(1), 2))
    );
    b.still_works();
}

#[test]
fn replayed_old_trigger_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let first = b.p.sent_by_eese[0].clone();
    assert_eq!(peek_type(&first), Ok(MessageType::DERIVE_TRIGGER));
    let second = b.trigger();
    b.p.deliver_to_ue(second.clone()).unwrap();
    let third = b.trigger();
    b.p.deliver_to_ue(third).unwrap();
    assert_eq!(b.p.ue.last_counter(), 3);
    for (t, counter) in [(first, 1), (second, 2)] {
        b.refused_by_ue(
            &t,
            Reject::StaleTrigger { counter, last: 3 },
            &format!("trigger {counter} replayed"),
        );
    }
    b.still_works();
}

#[test]
fn duplicate_trigger_is_idempotent() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let t = b.trigger();
    b.p.deliver_to_ue(t.clone()).unwrap();
    b.exchange(b"under keyset 1", b"under keyset 1");
    // The trigger of the keyset in use, again: a repeat the EESE may send
    // (to a UE that may have missed it); no new keyset, no reset window.
    b.ue_takes_unchanged(&t, "the trigger in use, replayed");
    b.still_works();
}

#[test]
fn authentic_trigger_with_an_old_counter_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    for _ in 0..2 {
        let t = b.trigger();
        b.p.deliver_to_ue(t).unwrap();
    }
    assert_eq!(
        b.p.ue.status().map(|s| (s.ksi, s.counter, s.usable)),
        Some((Ksi(2), 3, true))
    );
    // Freshly signed with the real control key (not a replay of old octets):
    // only the counter is wrong.
    for counter in [0, 1, 2] {
        let t = signed_trigger(&control_auth(), 3, counter, KdfProfile::Ts33220);
        b.refused_by_ue(
            &t,
            Reject::StaleTrigger { counter, last: 3 },
            &format!("counter {counter}"),
        );
    }
    // The counter in use with other contents: taken for a repeat of the
    // keyset in use; no rollback, no switch.
    let t = signed_trigger(&control_auth(), 7, 3, KdfProfile::Ts33220);
    b.ue_takes_unchanged(&t, "counter in use, other KSI and RAND");
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
    // Authentic under the UE's control key, but the KDF octet names the
    // other profile: the EESE is misconfigured.
    let t = signed_trigger(&control_auth(), 0, 1, KdfProfile::HkdfSha256);
    b.refused_by_ue(
        &t,
        Reject::ProfileMismatch {
            configured: KdfProfile::Ts33220,
            got: KdfProfile::HkdfSha256.code(),
        },
        "trigger naming the HKDF profile",
    );
    // Made with the other profile's control key: not authentic at all.
    let t = signed_trigger(
        &auth_of(1, KdfProfile::HkdfSha256),
        0,
        1,
        KdfProfile::HkdfSha256,
    );
    b.refused_by_ue(
        &t,
        Reject::Unauthentic,
        "trigger of an HKDF-configured EESE",
    );
    assert_eq!((b.p.ue.status(), b.p.ue.last_counter()), (None, 0));
    // The hello reaches the (rightly configured) EESE: the held payload goes.
    b.p.to_eese.push(hello);
    b.p.settle();
    assert_eq!(b.p.at_eese, [b"held reading".to_vec()]);
}

#[test]
fn forged_key_expired_error_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    // Names the keyset in use, so it would stop it if it were taken.
    let e = signed_error(&control_auth(), 0, Cause::TE2E_EXPIRED, 1, None);
    for bit in 0..e.len() * 8 {
        let (at, mask) = (bit / 8, 1u8 << (bit % 8));
        let m = flip(&e, bit);
        let want = match at {
            0 => wire_err(wire::Error::UnknownVersion(e[0] ^ mask)),
            // Type 3: read as uplink data (flags 0), suite octet = cause 1.
            1 if mask == 0x01 => Reject::WrongDirection,
            1 => wire_err(wire::Error::UnknownType(e[1] ^ mask)),
            // NAMED with seq 0: well formed, not authentic.
            3 if mask == 0x01 => Reject::Unauthentic,
            3 => malformed(FieldName::Flags, u64::from(mask)),
            4 if !Cause(e[4] ^ mask).is_known() => {
                malformed(FieldName::Cause, u64::from(e[4] ^ mask))
            }
            13..17 => malformed(FieldName::Seq, u64::from(seq_field(&m))),
            // KSI, a known cause, counter, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_ue(&m, want, &format!("key-expired error, bit {bit} flipped"));
    }
    let mut forged = e.clone();
    resign(&mut forged, &auth_of(2, KdfProfile::Ts33220));
    b.refused_by_ue(
        &forged,
        Reject::Unauthentic,
        "error signed with another root",
    );
    b.still_works();
    // The genuine error is taken: the forgeries were refused for what they
    // are, not because the UE ignores errors.
    assert_eq!(
        b.p.deliver_to_ue(e),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    assert_eq!(b.p.ue.status().map(|s| s.usable), Some(false));
    // The UE's hello gets it the next keyset.
    b.p.advance(Duration::from_secs(2));
    b.p.settle();
    assert_eq!(
        b.p.ue.status().map(|s| (s.counter, s.usable)),
        Some((2, true))
    );
    b.still_works();
}

fn seq_field(error: &[u8]) -> u32 {
    u32::from_be_bytes(error[13..17].try_into().unwrap())
}

#[test]
fn key_expired_error_with_a_seq_but_not_named_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let auth = control_auth();
    // A named error for the keyset in use, then the flag cleared and the tag
    // made again: authentic octets that are not the one encoding of an
    // unnamed error (whose seq is 0).
    for seq in [1, 7, u32::MAX] {
        let mut e = signed_error(&auth, 0, Cause::TE2E_EXPIRED, 1, Some(seq));
        assert_eq!(e[3], 0x01, "NAMED");
        e[3] = 0;
        resign(&mut e, &auth);
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
    // TR steps 2-5: te2e runs out, the UE's next message is refused by
    // name, a new keyset follows and the message goes again under it.
    b.p.advance(b.p.eese_cfg.te2e);
    b.p.ue_send(b"refused, then sent again");
    b.p.settle();
    assert_eq!(
        b.p.at_eese.last().map(Vec::as_slice),
        Some(&b"refused, then sent again"[..])
    );
    assert_eq!(
        b.p.ue.status().map(|s| (s.ksi, s.counter)),
        Some((Ksi(1), 2))
    );
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
            counter: 1,
        },
        "the named error replayed after its keyset was replaced",
    );
    // Authentic errors for other generations: another KSI, the KSI in use
    // under an older counter, a counter the UE never took.
    for (ksi, counter) in [(7, 1), (1, 1), (1, 3)] {
        let e = signed_error(
            &control_auth(),
            ksi,
            Cause::EXPIRED_BY_ENTERPRISE,
            counter,
            None,
        );
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
        assert!(matches!(b.p.deliver_to_eese(up), Ok(Received::Data(_))));
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
        assert!(matches!(b.p.deliver_to_eese(up), Ok(Received::Data(_))));
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
        assert!(matches!(
            b.p.deliver_to_eese(up.clone()),
            Ok(Received::Data(_))
        ));
        // Again and again: a replay is authentic, so it pays for no answer.
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
        assert!(matches!(
            b.p.deliver_to_eese(m.clone()),
            Ok(Received::Data(_))
        ));
    }
    let too_old = Reject::TooOld { seq: 1, lowest: 2 };
    for i in 0..8 {
        b.refused_by_ue(&down[0], too_old, &format!("downlink seq 1, #{i}"));
        b.refused_by_eese(&up[0], too_old, &format!("uplink seq 1, #{i}"));
    }
    assert_eq!(b.budget.answers, 0, "old authentic data pays for no answer");
    b.still_works();
}

#[test]
fn data_under_an_unknown_ksi_is_refused_and_answered_at_most_once_per_interval() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let down = with(&b.downlink(b"d"), 2, 9);
    b.refused_by_ue(&down, Reject::UnknownKsi(Ksi(9)), "downlink under KSI 9");
    let up = with(&b.uplink(b"u"), 2, 9);
    assert!(
        up.len() < TriggerRepr::LEN,
        "one alone does not pay for an answer"
    );
    for i in 0..100 {
        b.refused_by_eese(
            &up,
            Reject::UnknownKsi(Ksi(9)),
            &format!("uplink under KSI 9, #{i}"),
        );
    }
    assert_eq!(
        b.budget.answers, 1,
        "answered once the input paid for it, and once in the interval"
    );
    b.p.advance(b.p.eese_cfg.unsolicited_interval);
    b.refused_by_eese(&up, Reject::UnknownKsi(Ksi(9)), "after the interval");
    assert_eq!(b.budget.answers, 2, "answered again after the interval");
    // The answer is the trigger in use: the UE takes it as a repeat.
    let answer = b.p.sent_by_eese.last().unwrap().clone();
    b.ue_takes_unchanged(&answer, "the EESE's answer");
    b.still_works();
}

#[test]
fn data_under_an_expired_keyset_is_not_delivered() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let late = b.downlink(b"sealed before te2e ran out");
    // te2e runs out at the EESE; the UE's keyset is still in its grace.
    b.p.advance(b.p.eese_cfg.te2e);
    assert_eq!(
        b.p.eese.status(b.p.now).keyset.map(|k| k.state),
        Some(ciot_e2e::endpoint::KeysetState::Expired(
            Cause::TE2E_EXPIRED
        ))
    );
    let real = b.uplink(b"real");
    let forged = flip(&real, real.len() * 8 - 1);
    // Forged: refused, no answer (no valid keyset to offer), no rekey.
    b.refused_by_eese(
        &forged,
        Reject::Unauthentic,
        "forged data under the expired keyset",
    );
    assert_eq!(b.budget.answers, 0);
    // Authentic: not delivered; refused by name and a new keyset (TR 33.863
    // §6.5.2.3 steps 3-4), the one change, by design.
    let sent = b.p.sent_by_eese.len();
    assert_eq!(
        b.p.deliver_to_eese(real.clone()),
        Err(Reject::ExpiredKsi(Ksi(0)))
    );
    assert!(!b.p.at_eese.contains(&b"real".to_vec()));
    let answers = b.p.sent_by_eese[sent..].to_vec();
    let types: Vec<_> = answers.iter().map(|d| peek_type(d).unwrap()).collect();
    assert_eq!(
        types,
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    match Message::parse(&answers[0]) {
        Ok(Message::KeyExpired(k)) => assert_eq!(
            (k.ksi, k.cause, k.counter, k.refused),
            (Ksi(0), Cause::TE2E_EXPIRED, 1, Some(seq_of(&real)))
        ),
        other => panic!("{other:?}"),
    }
    b.p.to_ue.clear();
    // Its replay: refused by the window, no second error, no second rekey.
    b.refused_by_eese(
        &real,
        Reject::Replayed { seq: seq_of(&real) },
        "replay of the refused message",
    );
    // At the UE, once the error arrived: downlink under the refused keyset
    // is not delivered and changes nothing.
    assert_eq!(
        b.p.deliver_to_ue(answers[0].clone()),
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    );
    b.refused_by_ue(
        &late,
        Reject::ExpiredKsi(Ksi(0)),
        "downlink under the refused keyset",
    );
    // The trigger: the refused payload goes again, and is delivered once.
    assert_eq!(
        b.p.deliver_to_ue(answers[1].clone()),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    b.p.settle();
    assert_eq!(
        b.p.at_eese
            .iter()
            .filter(|m| m.as_slice() == b"real")
            .count(),
        1
    );
    b.still_works();
}

#[test]
fn data_under_a_restored_keyset_is_never_delivered() {
    // The UE restarts from its snapshot: its keyset receives nothing.
    let mut b = Bench::new(Suite::AES_128_GCM);
    let down = b.downlink(b"sealed before the UE restarted");
    b.p.crash_ue(None);
    assert_eq!(b.p.ue.status().map(|s| s.retired), Some(true));
    b.refused_by_ue(
        &down,
        Reject::RetiredKsi(Ksi(0)),
        "downlink under the UE's restored keyset",
    );
    // Its hello (sent at the restart) gets it a new keyset.
    b.p.settle();
    assert_eq!(
        b.p.ue.status().map(|s| (s.counter, s.usable)),
        Some((2, true))
    );
    b.still_works();
    assert!(
        !b.p.at_ue
            .contains(&b"sealed before the UE restarted".to_vec())
    );

    // The EESE restarts from its snapshot.
    let mut b = Bench::new(Suite::AES_128_GCM);
    let up = b.uplink(b"sealed before the EESE restarted");
    b.p.crash_eese(None);
    let restored = b.p.eese.status(b.p.now);
    let forged = flip(&up, up.len() * 8 - 1);
    b.refused_by_eese(
        &forged,
        Reject::Unauthentic,
        "forged uplink under the restored keyset",
    );
    // Authentic, but it may be a replay from before the restart: never
    // delivered. It starts the keyset the restart made necessary (by
    // design), whose trigger goes out only within the budget.
    let sent = b.p.sent_by_eese.len();
    let r = b.p.eese.handle_datagram(b.p.now, &mut up.clone());
    b.p.drain();
    assert_eq!(r, Err(Reject::RetiredKsi(Ksi(0))));
    let now = b.p.eese.status(b.p.now);
    assert!(now.counter > restored.counter, "a new keyset");
    let answers = b.p.sent_by_eese[sent..].to_vec();
    let (t, current) = (b.p.now, b.current());
    b.budget.check(
        Reject::RetiredKsi(Ksi(0)),
        up.len(),
        &answers,
        t,
        current,
        "authentic uplink under the restored keyset",
    );
    // Again: refused, and now nothing changes.
    b.refused_by_eese(&up, Reject::RetiredKsi(Ksi(0)), "the same message again");
    assert!(
        b.p.at_eese
            .iter()
            .all(|m| m.as_slice() != b"sealed before the EESE restarted")
    );
    // The trigger reaches the UE; traffic goes on under the new keyset.
    b.p.settle();
    b.still_works();
}

#[test]
fn data_under_a_keyset_not_yet_durable_is_held_back_and_not_consumed() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let t = b.trigger();
    let down = b.downlink(b"under keyset 1");
    // The UE takes the trigger; its snapshot is not written yet.
    b.p.auto_persist = false;
    assert_eq!(
        b.p.deliver_to_ue(t),
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    );
    b.refused_by_ue(
        &down,
        Reject::NotDurable(Ksi(1)),
        "downlink before the keyset is durable",
    );
    // Once it is, the same message is delivered: the refusal used nothing up.
    b.p.auto_persist = true;
    b.p.drain();
    assert!(matches!(b.p.deliver_to_ue(down), Ok(Received::Data(_))));
    assert_eq!(
        b.p.at_ue.last().map(Vec::as_slice),
        Some(&b"under keyset 1"[..])
    );
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
    let t = b.trigger();
    b.p.deliver_to_ue(t.clone()).unwrap();
    b.refused_by_eese(
        &t,
        Reject::Unexpected(MessageType::DERIVE_TRIGGER),
        "trigger at the EESE",
    );
    for refused in [None, Some(0)] {
        let e = signed_error(&control_auth(), 1, Cause::TE2E_EXPIRED, 2, refused);
        b.refused_by_eese(
            &e,
            Reject::Unexpected(MessageType::KEY_EXPIRED),
            "key-expired error at the EESE",
        );
    }
    b.still_works();
}

// ---- Hellos. ----

/// The pair's UE identifier (13 octets, so its hello has 38 octets of
/// padding, 30..68).
const PAIR_ID: &[u8] = b"ue-under-test";

/// Hellos naming `id` that break a rule of the format, each signed again
/// with the root so that only the broken rule can be what it is refused
/// for, with the refusal.
fn malformed_hellos(id: &[u8]) -> Vec<(String, Vec<u8>, Reject)> {
    let auth = control_auth();
    let h = signed_hello(&auth, id, 1, 1000);
    let long = signed_hello(&auth, &[b'x'; 60], 1, 1001);
    assert_eq!((h.len(), long.len()), (84, 93));
    let mut out = Vec::new();
    let mut add = |name: String, mut m: Vec<u8>, r: Reject| {
        resign(&mut m, &auth);
        out.push((name, m, r));
    };
    for n in [0u8, 65, 0xff] {
        add(
            format!("identifier length {n}"),
            with(&h, 16, n),
            malformed(FieldName::IdLength, u64::from(n)),
        );
    }
    for at in [17 + id.len(), 50, 67] {
        add(
            format!("padding octet {at} not zero"),
            with(&h, at, 0x5a),
            malformed(FieldName::Padding, 0x5a),
        );
    }
    add(
        "84 octets, identifier length 60".into(),
        with(&h, 16, 60),
        truncated(93, 84),
    );
    let mut short_id = long.clone();
    short_id[16] = u8::try_from(id.len()).unwrap();
    short_id[17..17 + id.len()].copy_from_slice(id);
    add(
        format!("93 octets, identifier length {}", id.len()),
        short_id,
        trailing(84, 93),
    );
    out
}

#[test]
fn malformed_hellos_are_refused_and_change_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    for (name, m, want) in malformed_hellos(PAIR_ID) {
        b.refused_by_eese(&m, want, &format!("hello: {name}"));
    }
    b.still_works();
    // At the table, naming its UE, from where the UE is and from elsewhere.
    let mut n = Net::new();
    for (name, m, want) in malformed_hellos(UE_NAME) {
        for from in [n.ue_addr, stranger()] {
            n.table_drops(from, &m, Some(want), &format!("hello at the table: {name}"));
        }
    }
    n.still_works();
    // An empty table whose directory knows every name makes no session.
    let mut t = empty_table();
    for (name, m, want) in malformed_hellos(UE_NAME) {
        let r = t.handle_datagram(Instant(5), &stranger(), &mut m.clone(), resolve_any);
        assert_eq!(r.map(|(id, _)| id), Err(want), "{name}");
        assert_table_quiet(&mut t, &name);
    }
}

#[test]
fn forged_hello_is_refused_and_changes_nothing() {
    let mut b = Bench::new(Suite::AES_128_GCM);
    let h = signed_hello(&control_auth(), PAIR_ID, 1, 1000);
    let id_len = PAIR_ID.len();
    for bit in 0..h.len() * 8 {
        let (at, mask) = (bit / 8, 1u8 << (bit % 8));
        let m = flip(&h, bit);
        let want = match at {
            0 => wire_err(wire::Error::UnknownVersion(m[0])),
            1 => wire_err(wire::Error::UnknownType(m[1])),
            3 if mask == 0x01 => Reject::Unauthentic,
            3 => malformed(FieldName::Flags, u64::from(m[3])),
            16 => match usize::from(m[16]) {
                n if !(1..=64).contains(&n) => malformed(FieldName::IdLength, n as u64),
                // Part of the identifier is now padding.
                n if n < id_len => malformed(FieldName::Padding, u64::from(h[17 + n])),
                n if HelloRepr::len_for(n) > h.len() => truncated(HelloRepr::len_for(n), h.len()),
                // Zero padding is now part of the identifier.
                _ => Reject::Unauthentic,
            },
            30..68 => malformed(FieldName::Padding, u64::from(mask)),
            // KSI, REKEY, counter, seq, identifier, tag.
            _ => Reject::Unauthentic,
        };
        b.refused_by_eese(&m, want, &format!("hello, bit {bit} flipped"));
    }
    let other = signed_hello(&auth_of(2, KdfProfile::Ts33220), PAIR_ID, 1, 1000);
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
    // A keepalive hello, answered with the trigger in use.
    b.p.advance(Duration::from_secs(31));
    b.p.settle();
    let hellos: Vec<_> =
        b.p.sent_by_ue
            .iter()
            .filter(|d| peek_type(d) == Ok(MessageType::HELLO))
            .cloned()
            .collect();
    assert_eq!(hellos.len(), 2);
    for (seq, h) in hellos.iter().enumerate() {
        let seq = u32::try_from(seq).unwrap();
        assert_eq!(HelloPacket::new_checked(&h[..]).unwrap().seq(), seq);
        b.refused_by_eese(
            h,
            Reject::StaleHello { seq, last: 1 },
            &format!("hello {seq} replayed"),
        );
    }
    // Freshly signed, but not newer than the last seen: stale too.
    let h = signed_hello(&control_auth(), PAIR_ID, 1, 1);
    b.refused_by_eese(
        &h,
        Reject::StaleHello { seq: 1, last: 1 },
        "hello 1 signed again",
    );
    assert_eq!(b.budget.answers, 0);
    b.still_works();
}

/// Regression: a hello the EESE answered without a new keyset (a keepalive,
/// a check-in) used to write no snapshot, so a restored EESE took a replay
/// of it for fresh (a new keyset, a snapshot, a trigger). Its number is now
/// durable before its answer goes out.
#[test]
fn replayed_hello_after_an_eese_restore_changes_nothing() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut b = Bench::with(cfg, eese_cfg(Suite::AES_128_GCM));
    b.p.advance(Duration::from_secs(31));
    b.p.settle();
    let hello = b.p.sent_by_ue.last().unwrap().clone();
    assert_eq!(HelloPacket::new_checked(&hello[..]).unwrap().seq(), 1);
    // The EESE restarts from its last snapshot.
    b.p.crash_eese(None);
    b.refused_by_eese(
        &hello,
        Reject::StaleHello { seq: 1, last: 1 },
        "the UE's last hello, replayed after the EESE restarted",
    );
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
                let mut h = signed_hello(&control_auth(), PAIR_ID, self.next(), self.next() as u32);
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

type Table = EeseTable<u32, SocketAddr, ciot_e2e_testkit::pair::TestRands>;

fn empty_table() -> Table {
    EeseTable::new(
        eese_cfg(Suite::AES_128_GCM),
        ciot_e2e_testkit::pair::TestRands::default(),
    )
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
    events: usize,
    at_table: Vec<Vec<u8>>,
    at_ue: Vec<Vec<u8>>,
    /// For the UE's address.
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
            ue: Ue::new(cfg, test_root(1), id, 7),
            now: Instant::from_millis(1_000),
            ue_addr: addr("192.0.2.1:33863"),
            sent_by_ue: Vec::new(),
            sent: Vec::new(),
            disk: Vec::new(),
            events: 0,
            at_table: Vec::new(),
            at_ue: Vec::new(),
            budget: Budget::new(eese_cfg(Suite::AES_128_GCM).unsolicited_interval),
        };
        n.settle();
        assert_eq!(n.table.len(), 1, "the UE's hello made its session");
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

    /// What the UE has to send, persisted first, not delivered.
    fn ue_output(&mut self) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut snap = [0u8; UE_SNAPSHOT_LEN];
        let mut out = [0u8; 512];
        for _ in 0..4 {
            if let Some(p) = self.ue.poll_persist(&mut snap) {
                self.ue.persisted(p).unwrap();
            }
            while let Ok(Some(t)) = self.ue.poll_transmit(self.now, &mut out) {
                self.sent_by_ue.push(out[..t.len].to_vec());
                got.push(out[..t.len].to_vec());
            }
        }
        got
    }

    /// Both sides say what they have to say until the network is quiet.
    fn settle(&mut self) {
        for _ in 0..64 {
            let mut progress = false;
            for mut d in self.ue_output() {
                let from = self.ue_addr;
                if let Ok((_, Received::Data(got))) =
                    self.table.handle_datagram(self.now, &from, &mut d, resolve)
                {
                    self.at_table.push(d[got.payload].to_vec());
                }
                progress = true;
            }
            while self.ue.poll_event().is_some() {}
            let mut snap = [0u8; EESE_SNAPSHOT_LEN];
            if let Some((id, p)) = self.table.poll_persist(&mut snap) {
                self.disk.push(snap[..p.len()].to_vec());
                self.table.persisted(&id, p).unwrap();
                progress = true;
            }
            let mut out = [0u8; 512];
            while let Some((_, to, t)) = self.table.poll_transmit(self.now, &mut out) {
                let mut d = out[..t.len].to_vec();
                self.sent.push((to, d.clone()));
                if to == self.ue_addr
                    && let Ok(Received::Data(got)) = self.ue.handle_datagram(self.now, &mut d)
                {
                    self.at_ue.push(d[got.payload].to_vec());
                }
                progress = true;
            }
            while self.table.poll_event().is_some() {
                self.events += 1;
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

    fn exchange(&mut self, up: &[u8], down: &[u8]) {
        assert_eq!(self.ue.send(self.now, up), Ok(Sent::Queued));
        self.settle();
        assert_eq!(self.at_table.last().map(Vec::as_slice), Some(up));
        let mut out = [0u8; 512];
        match self.table.send(self.now, &1, down, &mut out) {
            Ok(SendOutcome::Sent { sealed, to }) => {
                assert_eq!(to, self.ue_addr, "sent where the UE is");
                let mut d = out[..sealed.len].to_vec();
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
    /// only to where the UE is and only as the UE address's budget allows.
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
        let mut answers = Vec::new();
        let mut out = [0u8; 512];
        while let Some((id, to, t)) = self.table.poll_transmit(self.now, &mut out) {
            assert_eq!((id, to), (1, self.ue_addr), "{what}: answered elsewhere");
            answers.push(out[..t.len].to_vec());
        }
        assert_eq!(self.view(), view, "{what} ({r:?}): the table changed");
        assert_eq!(ue_view(&self.ue), ue, "{what}: the UE changed");
        // Input from elsewhere pays for nothing at the UE's address.
        let r_here = if from == self.ue_addr {
            r
        } else {
            Reject::NoSession
        };
        let current = self
            .table
            .status(self.now, &1)
            .and_then(|s| s.keyset)
            .map(|k| (k.ksi, k.counter));
        self.budget
            .check(r_here, bad.len(), &answers, self.now, current, what);
        r
    }
}

#[test]
fn datagram_from_a_peer_without_session_is_refused_without_answer() {
    // An empty table makes nothing for anyone.
    let mut t = empty_table();
    let junk = [
        2, 3, 0, 0, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
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
    let r = n
        .table
        .handle_datagram(n.now, &from, &mut up.clone(), resolve);
    assert!(matches!(r, Ok((1, Received::Data(_)))), "{r:?}");
    n.still_works();
}

#[test]
fn hello_from_an_unknown_ue_creates_nothing() {
    let mut n = Net::new();
    // Even signed with a root the EESE holds: the name is not one it serves.
    let h = signed_hello(&control_auth(), b"ue-2", 0, 0);
    for from in [stranger(), n.ue_addr] {
        n.table_drops(from, &h, Some(Reject::UnknownUe), "hello from ue-2");
    }
    n.still_works();
}

#[test]
fn forged_hello_creates_no_session_and_moves_no_ue() {
    let good = signed_hello(&control_auth(), UE_NAME, 0, 0);
    let forgeries = [
        (
            "another root",
            signed_hello(&auth_of(2, KdfProfile::Ts33220), UE_NAME, 0, 0),
        ),
        ("a tag bit flipped", flip(&good, good.len() * 8 - 1)),
        ("the seq changed", flip(&good, 15 * 8)),
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
    let hello = n.sent_by_ue[0].clone();
    assert_eq!(peek_type(&hello), Ok(MessageType::HELLO));
    for from in [stranger(), n.ue_addr] {
        n.table_drops(
            from,
            &hello,
            Some(Reject::StaleHello { seq: 0, last: 0 }),
            "the UE's hello replayed",
        );
    }
    n.still_works();
}

#[test]
fn unauthenticated_input_at_the_table_is_answered_only_where_the_ue_is_within_its_budget() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(5)),
        ..ue_cfg()
    };
    let mut n = Net::with(cfg);
    let interval = n.table.config().unsolicited_interval;
    let unknown = with(&n.uplink(b"u"), 2, 9);
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
    // From the UE's address (spoofed or not): the first does not pay for an
    // answer, the second does; then one per interval.
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
    // The UE moves (its keepalive hello comes from a new address): the new
    // address starts with nothing to spend.
    let old = n.ue_addr;
    n.ue_addr = addr("203.0.113.9:5000");
    n.advance(Duration::from_secs(5));
    assert_eq!(n.table.peer(&1), Some(&n.ue_addr), "the UE moved");
    n.budget = Budget::new(interval);
    n.advance(interval);
    let from = n.ue_addr;
    n.table_drops(
        from,
        &unknown,
        Some(Reject::UnknownKsi(Ksi(9))),
        "first from the new address",
    );
    assert_eq!(
        n.budget.answers, 0,
        "credit of the old address was spent here"
    );
    n.table_drops(
        from,
        &unknown,
        Some(Reject::UnknownKsi(Ksi(9))),
        "second from the new address",
    );
    assert_eq!(n.budget.answers, 1);
    n.table_drops(
        old,
        &unknown,
        Some(Reject::NoSession),
        "from the address the UE left",
    );
    n.still_works();
}

/// Regression, the table version of
/// `replayed_hello_after_an_eese_restore_changes_nothing`: the replay, sent
/// from another address, used to move the UE there, with its next trigger
/// and any payload queued for it. A UE now moves only once the hello's
/// number is durable.
#[test]
fn replayed_hello_after_a_restore_moves_no_ue() {
    let cfg = UeConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..ue_cfg()
    };
    let mut n = Net::with(cfg);
    n.advance(Duration::from_secs(31));
    let hello = n.sent_by_ue.last().unwrap().clone();
    assert_eq!(HelloPacket::new_checked(&hello[..]).unwrap().seq(), 1);
    let snapshot = n.disk.last().unwrap().clone();
    n.table.restore(1, test_root(1), &snapshot).unwrap();
    n.table_drops(
        stranger(),
        &hello,
        Some(Reject::StaleHello { seq: 1, last: 1 }),
        "the UE's last hello, replayed from elsewhere after a restore",
    );
}
