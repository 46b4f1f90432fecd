//! The bad-input table of docs/SECURITY.md, row by row, at the endpoints: each
//! hostile or broken datagram is refused with its own error and leaves the
//! endpoint exactly as it was (its full state, compared before and after),
//! and the authentic traffic that follows still goes through.
//!
//! Rows covered elsewhere (forged / replayed trigger, forged key-expired
//! error, replayed error of an older generation) are in tests/procedure.rs.

use std::time::Duration;

use ciot_e2e::endpoint::{
    Config, EESE_SNAPSHOT_LEN, EeseSession, EeseTable, Event, Instant, Reject, Sink, TableSink,
    UE_SNAPSHOT_LEN, Ue,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, PreparedRoot, Rand, RootKey, int_key};
use ciot_e2e::protect;
use ciot_e2e::wire::{
    self, ControlAuth, FieldName, KeyExpiredRepr, Ksi, MAX_MESSAGE_LEN, MessageType, Suite,
    TriggerRepr, peek_type,
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data(u8, Vec<u8>),
    Rekeyed(u8, u64),
    Expired(u8),
    Rejected(Reject),
    Other,
}

#[derive(Default)]
struct Out {
    sent: Vec<Vec<u8>>,
    events: Vec<Ev>,
}

impl Sink for Out {
    fn transmit(&mut self, d: &[u8]) {
        self.sent.push(d.to_vec());
    }
    fn event(&mut self, e: Event<'_>) {
        self.events.push(match e {
            Event::Data { ksi, payload, .. } => Ev::Data(ksi.0, payload.to_vec()),
            Event::Rekeyed { ksi, counter } => Ev::Rekeyed(ksi.0, counter),
            Event::KeysExpired { ksi, .. } => Ev::Expired(ksi.0),
            Event::Rejected(r) => Ev::Rejected(r),
            _ => Ev::Other,
        });
    }
}

fn root() -> RootKey {
    int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes([7; 16]), &Ik::from_bytes([0x5d; 16])),
    )
}

fn cfg(suite: Suite) -> Config {
    Config {
        suite,
        te2e: Duration::from_secs(10),
        grace: Duration::from_secs(2),
        ..Config::default()
    }
}

fn rng() -> impl FnMut() -> Option<Rand> {
    let mut n = 0u8;
    move || {
        n = n.wrapping_add(1);
        Some(Rand([n; 16]))
    }
}

/// Everything an endpoint holds, as text: its whole `Debug` form (keysets,
/// windows, timers, held message, rate limiter) and its snapshot.
fn ue_state(ue: &Ue) -> String {
    let mut b = [0u8; UE_SNAPSHOT_LEN];
    let n = ue.snapshot(&mut b).unwrap();
    format!("{ue:?} {:?}", &b[..n])
}

fn eese_state(s: &EeseSession) -> String {
    let mut b = [0u8; EESE_SNAPSHOT_LEN];
    let n = s.snapshot(&mut b).unwrap();
    format!("{s:?} {:?}", &b[..n])
}

/// The persistent part only (keys, counters, windows; not the rate limiter).
fn eese_snapshot(s: &EeseSession) -> Vec<u8> {
    let mut b = [0u8; EESE_SNAPSHOT_LEN];
    let n = s.snapshot(&mut b).unwrap();
    b[..n].to_vec()
}

struct Pair {
    cfg: Config,
    ue: Ue,
    eese: EeseSession,
    now: Instant,
    rng: Box<dyn FnMut() -> Option<Rand>>,
    scratch: Vec<u8>,
}

impl Pair {
    /// Keyset 0 installed on both sides.
    fn new(suite: Suite) -> Self {
        let cfg = cfg(suite);
        let mut p = Pair {
            ue: Ue::with_config(root(), &cfg),
            eese: EeseSession::new(root()),
            cfg,
            now: Instant::from_millis(1_000),
            rng: Box::new(rng()),
            scratch: vec![0; 2048],
        };
        let mut out = Out::default();
        p.eese.rekey(p.now, &p.cfg, &mut p.rng, &mut out);
        for d in out.sent {
            p.deliver_to_ue(d);
        }
        assert_eq!(p.ue.current(), Some((Ksi(0), 1, true)));
        p
    }

    fn deliver_to_ue(&mut self, mut d: Vec<u8>) -> Out {
        let mut out = Out::default();
        self.ue
            .handle_datagram(self.now, &self.cfg, &mut d, &mut self.scratch, &mut out);
        out
    }

    fn deliver_to_eese(&mut self, mut d: Vec<u8>) -> Out {
        let mut out = Out::default();
        self.eese
            .handle_datagram(self.now, &self.cfg, &mut d, &mut self.rng, &mut out);
        out
    }

    /// A downlink data message (not delivered).
    fn downlink(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Out::default();
        self.eese
            .send(
                self.now,
                &self.cfg,
                payload,
                &mut self.scratch,
                &mut self.rng,
                &mut out,
            )
            .unwrap();
        assert_eq!(out.sent.len(), 1);
        out.sent.remove(0)
    }

    /// An uplink data message (not delivered).
    fn uplink(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Out::default();
        self.ue.send(payload, &mut self.scratch, &mut out).unwrap();
        assert_eq!(out.sent.len(), 1);
        out.sent.remove(0)
    }

    /// The next trigger the EESE makes (a rekey), not delivered.
    fn trigger(&mut self) -> Vec<u8> {
        let mut out = Out::default();
        self.eese
            .rekey(self.now, &self.cfg, &mut self.rng, &mut out);
        out.sent.remove(0)
    }

    fn control_auth(&self) -> ControlAuth {
        ControlAuth::new(&PreparedRoot::new(&root(), self.cfg.profile).control_key())
    }

    /// Feeds `bad` to the UE: exactly one rejection, `want` when given,
    /// nothing sent, state unchanged.
    fn refused_by_ue(&mut self, bad: Vec<u8>, want: Option<Reject>, what: &str) -> Reject {
        let before = ue_state(&self.ue);
        let out = self.deliver_to_ue(bad);
        assert!(out.sent.is_empty(), "{what}: the UE answered");
        let [Ev::Rejected(r)] = out.events[..] else {
            panic!("{what}: {:?}", out.events);
        };
        if let Some(w) = want {
            assert_eq!(r, w, "{what}");
        }
        assert_eq!(ue_state(&self.ue), before, "{what}: UE state changed");
        r
    }

    /// Feeds `bad` to the EESE: exactly one rejection, `want` when given,
    /// nothing sent, state unchanged.
    fn refused_by_eese(&mut self, bad: Vec<u8>, want: Option<Reject>, what: &str) -> Reject {
        let before = eese_state(&self.eese);
        let out = self.deliver_to_eese(bad);
        assert!(out.sent.is_empty(), "{what}: the EESE answered");
        let [Ev::Rejected(r)] = out.events[..] else {
            panic!("{what}: {:?}", out.events);
        };
        if let Some(w) = want {
            assert_eq!(r, w, "{what}");
        }
        assert_eq!(eese_state(&self.eese), before, "{what}: EESE state changed");
        r
    }

    /// Authentic data still goes through both ways.
    fn still_works(&mut self) {
        let up = self.uplink(b"still up");
        assert!(
            self.deliver_to_eese(up)
                .events
                .iter()
                .any(|e| matches!(e, Ev::Data(_, p) if p == b"still up"))
        );
        let down = self.downlink(b"still down");
        assert!(
            self.deliver_to_ue(down)
                .events
                .iter()
                .any(|e| matches!(e, Ev::Data(_, p) if p == b"still down"))
        );
    }
}

fn wire_err(e: wire::Error) -> Option<Reject> {
    Some(Reject::Wire(e))
}

const SUITES: [Suite; 2] = [Suite::AES_128_GCM, Suite::NEA2_NIA2];

#[test]
fn truncated_messages_are_refused_and_change_nothing() {
    for suite in SUITES {
        let mut p = Pair::new(suite);
        let trigger = p.trigger();
        let auth = p.control_auth();
        let mut error = [0u8; KeyExpiredRepr::LEN];
        KeyExpiredRepr {
            ksi: Ksi(0),
            cause: wire::Cause::TE2E_EXPIRED,
            counter: 1,
            tag: [0; 16],
        }
        .emit_signed(&auth, &mut error)
        .unwrap();
        let down = p.downlink(b"downlink payload");
        let up = p.uplink(b"uplink payload");
        for (name, full) in [
            ("trigger", &trigger),
            ("key-expired", &error.to_vec()),
            ("downlink data", &down),
        ] {
            for n in 0..full.len().min(9 + suite.tag_len()) {
                let needed = if n < 2 {
                    4
                } else if name == "downlink data" {
                    if n < 9 { 9 } else { 9 + suite.tag_len() }
                } else {
                    full.len()
                };
                let want = Reject::Wire(wire::Error::Truncated { needed, got: n });
                p.refused_by_ue(
                    full[..n].to_vec(),
                    Some(want),
                    &format!("{name} cut at {n}"),
                );
            }
        }
        for n in 0..9 + suite.tag_len() {
            let needed = match n {
                0 | 1 => 4,
                2..=8 => 9,
                _ => 9 + suite.tag_len(),
            };
            p.refused_by_eese(
                up[..n].to_vec(),
                wire_err(wire::Error::Truncated { needed, got: n }),
                &format!("uplink cut at {n}"),
            );
        }
        // The untouched messages are still good afterwards.
        assert!(matches!(
            p.deliver_to_ue(trigger.clone()).events[..],
            [Ev::Rekeyed(1, 2)]
        ));
        assert!(matches!(p.deliver_to_ue(down).events[..], [Ev::Data(1, _)]));
        assert!(matches!(p.deliver_to_eese(up).events[..], [Ev::Data(0, _)]));
    }
}

#[test]
fn oversized_and_overlong_messages_are_refused_and_change_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let mut big = p.downlink(b"x");
    big.resize(MAX_MESSAGE_LEN + 1, 0);
    let bad_length = wire_err(wire::Error::BadLength {
        max: MAX_MESSAGE_LEN,
        got: MAX_MESSAGE_LEN + 1,
    });
    p.refused_by_ue(big, bad_length, "oversized downlink data");
    let mut big = p.uplink(b"x");
    big.resize(MAX_MESSAGE_LEN + 1, 0);
    p.refused_by_eese(big, bad_length, "oversized uplink data");
    let t = p.trigger();
    let mut long = t.clone();
    long.push(0);
    p.refused_by_ue(
        long,
        wire_err(wire::Error::TrailingData {
            expected: 50,
            got: 51,
        }),
        "trigger with a trailing octet",
    );
    let mut e = vec![0u8; KeyExpiredRepr::LEN];
    KeyExpiredRepr {
        ksi: Ksi(1),
        cause: wire::Cause::TE2E_EXPIRED,
        counter: 2,
        tag: [0; 16],
    }
    .emit_signed(&p.control_auth(), &mut e)
    .unwrap();
    e.push(0);
    p.refused_by_ue(
        e,
        wire_err(wire::Error::TrailingData {
            expected: 29,
            got: 30,
        }),
        "key-expired error with a trailing octet",
    );
    assert!(matches!(p.deliver_to_ue(t).events[..], [Ev::Rekeyed(1, 2)]));
    p.still_works();
}

#[test]
fn unknown_version_type_suite_and_reserved_bits_are_refused_and_change_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let down = p.downlink(b"d");
    let up = p.uplink(b"u");
    let trigger = p.trigger();
    let with = |m: &Vec<u8>, at: usize, v: u8| {
        let mut m = m.clone();
        m[at] = v;
        m
    };
    let malformed = |field, value| wire_err(wire::Error::Malformed { field, value });
    for (m, name) in [(&trigger, "trigger"), (&down, "data")] {
        p.refused_by_ue(
            with(m, 0, 2),
            wire_err(wire::Error::UnknownVersion(2)),
            &format!("{name}, version 2"),
        );
        p.refused_by_ue(
            with(m, 1, 4),
            wire_err(wire::Error::UnknownType(4)),
            &format!("{name}, type 4"),
        );
        p.refused_by_ue(
            with(m, 3, m[3] | 0x80),
            malformed(FieldName::Flags, u64::from(m[3] | 0x80)),
            &format!("{name}, reserved flag"),
        );
    }
    p.refused_by_ue(
        with(&trigger, 29, 9),
        malformed(FieldName::Suite, 9),
        "trigger, suite 9",
    );
    p.refused_by_ue(
        with(&trigger, 28, 9),
        malformed(FieldName::KdfProfile, 9),
        "trigger, KDF 9",
    );
    p.refused_by_ue(
        with(&down, 4, 9),
        malformed(FieldName::Suite, 9),
        "data, suite 9",
    );
    // A known suite that is not the keyset's.
    p.refused_by_ue(
        with(&down, 4, Suite::NEA2_NIA2.0),
        Some(Reject::Protect(protect::Error::SuiteMismatch {
            expected: Suite::AES_128_GCM,
            got: Suite::NEA2_NIA2,
        })),
        "data, the other suite",
    );
    let mut error = vec![0u8; KeyExpiredRepr::LEN];
    KeyExpiredRepr {
        ksi: Ksi(0),
        cause: wire::Cause::TE2E_EXPIRED,
        counter: 1,
        tag: [0; 16],
    }
    .emit_signed(&p.control_auth(), &mut error)
    .unwrap();
    p.refused_by_ue(
        with(&error, 4, 9),
        malformed(FieldName::Cause, 9),
        "key-expired error, cause 9",
    );
    p.refused_by_eese(
        with(&up, 0, 0xff),
        wire_err(wire::Error::UnknownVersion(0xff)),
        "uplink, version 255",
    );
    p.refused_by_eese(
        with(&up, 1, 0x7f),
        wire_err(wire::Error::UnknownType(0x7f)),
        "uplink, type 0x7f",
    );
    p.refused_by_eese(
        with(&up, 4, 0),
        malformed(FieldName::Suite, 0),
        "uplink, suite 0",
    );
    p.refused_by_eese(
        with(&up, 3, 0x02),
        malformed(FieldName::Flags, 2),
        "uplink, reserved flag",
    );
    // The trigger itself (not delivered above) still installs its keyset.
    assert!(matches!(
        p.deliver_to_ue(trigger).events[..],
        [Ev::Rekeyed(1, 2)]
    ));
    p.still_works();
}

#[test]
fn authentic_trigger_with_an_old_counter_is_refused_and_changes_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    for _ in 0..2 {
        let t = p.trigger();
        p.deliver_to_ue(t);
    }
    assert_eq!(p.ue.current(), Some((Ksi(2), 3, true)));
    let auth = p.control_auth();
    // Freshly signed with the real control key (not a replay of old octets):
    // only the counter is wrong.
    for counter in [0, 1, 2] {
        let mut t = vec![0u8; TriggerRepr::LEN];
        TriggerRepr {
            ksi: Ksi(3),
            counter,
            rand: Rand([0xaa; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 60,
            tag: [0; 16],
        }
        .emit_signed(&auth, &mut t)
        .unwrap();
        p.refused_by_ue(
            t,
            wire_err(wire::Error::StaleCounter { counter, last: 3 }),
            &format!("counter {counter}"),
        );
    }
    // The counter in use with other contents: taken for a repeat of the
    // keyset in use, ignored, nothing changes (no rollback, no switch).
    let before = ue_state(&p.ue);
    let mut t = vec![0u8; TriggerRepr::LEN];
    TriggerRepr {
        ksi: Ksi(7),
        counter: 3,
        rand: Rand([0xbb; 16]),
        profile: KdfProfile::Ts33220,
        suite: Suite::AES_128_GCM,
        lifetime: 60,
        tag: [0; 16],
    }
    .emit_signed(&auth, &mut t)
    .unwrap();
    let out = p.deliver_to_ue(t);
    assert!(
        out.events.is_empty() && out.sent.is_empty(),
        "{:?}",
        out.events
    );
    assert_eq!(ue_state(&p.ue), before);
    p.still_works();
}

#[test]
fn tampered_ciphertext_or_tag_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut p = Pair::new(suite);
        let down = p.downlink(b"the real downlink payload");
        let up = p.uplink(b"the real uplink payload");
        let bad_tag = Some(Reject::Protect(protect::Error::BadTag));
        for bit in 9 * 8..down.len() * 8 {
            let mut m = down.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            p.refused_by_ue(m, bad_tag, &format!("{suite}: downlink bit {bit}"));
        }
        for bit in 9 * 8..up.len() * 8 {
            let mut m = up.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            p.refused_by_eese(m, bad_tag, &format!("{suite}: uplink bit {bit}"));
        }
        // The window did not move: the untampered messages are accepted.
        assert!(matches!(p.deliver_to_ue(down).events[..], [Ev::Data(0, _)]));
        assert!(matches!(p.deliver_to_eese(up).events[..], [Ev::Data(0, _)]));
    }
}

#[test]
fn tampered_header_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut p = Pair::new(suite);
        let down = p.downlink(b"downlink");
        let up = p.uplink(b"uplink");
        for bit in 0..9 * 8 {
            let (at, mask) = (bit / 8, 1u8 << (bit % 8));
            let mut m = down.clone();
            m[at] ^= mask;
            let want = match at {
                2 => Some(Reject::UnknownKsi(Ksi(m[2]))),
                3 if mask == 1 => Some(Reject::WrongDirection),
                5..=8 => Some(Reject::Protect(protect::Error::BadTag)),
                _ => None,
            };
            p.refused_by_ue(m, want, &format!("{suite}: downlink header bit {bit}"));
            let mut m = up.clone();
            m[at] ^= mask;
            let want = match at {
                3 if mask == 1 => Some(Reject::WrongDirection),
                5..=8 => Some(Reject::Protect(protect::Error::BadTag)),
                _ => None,
            };
            if at == 2 {
                // Unknown KSI at the EESE: refused, keys unchanged; the
                // unauthenticated answer is rate limited (row "unknown KSI").
                let before = eese_snapshot(&p.eese);
                let out = p.deliver_to_eese(m);
                assert_eq!(
                    out.events,
                    [Ev::Rejected(Reject::UnknownKsi(Ksi(up[2] ^ mask)))]
                );
                assert_eq!(eese_snapshot(&p.eese), before);
            } else {
                p.refused_by_eese(m, want, &format!("{suite}: uplink header bit {bit}"));
            }
        }
        assert!(matches!(p.deliver_to_ue(down).events[..], [Ev::Data(0, _)]));
        assert!(matches!(p.deliver_to_eese(up).events[..], [Ev::Data(0, _)]));
    }
}

#[test]
fn replayed_data_is_refused_and_changes_nothing() {
    for suite in SUITES {
        let mut p = Pair::new(suite);
        let down = p.downlink(b"once");
        let up = p.uplink(b"once");
        assert!(matches!(
            p.deliver_to_ue(down.clone()).events[..],
            [Ev::Data(0, _)]
        ));
        assert!(matches!(
            p.deliver_to_eese(up.clone()).events[..],
            [Ev::Data(0, _)]
        ));
        let replayed = Some(Reject::Protect(protect::Error::Replayed { seq: 0 }));
        p.refused_by_ue(down, replayed, "replayed downlink");
        p.refused_by_eese(up, replayed, "replayed uplink");
        p.still_works();
    }
}

#[test]
fn data_left_of_the_replay_window_is_refused_and_changes_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let down: Vec<_> = (0..65u8).map(|i| p.downlink(&[i])).collect();
    let up: Vec<_> = (0..65u8).map(|i| p.uplink(&[i])).collect();
    // Sequence numbers 1..=64 arrive; 0 is then 64 behind the highest.
    for m in &down[1..] {
        assert!(matches!(
            p.deliver_to_ue(m.clone()).events[..],
            [Ev::Data(0, _)]
        ));
    }
    for m in &up[1..] {
        assert!(matches!(
            p.deliver_to_eese(m.clone()).events[..],
            [Ev::Data(0, _)]
        ));
    }
    let too_old = Some(Reject::Protect(protect::Error::TooOld {
        seq: 0,
        lowest: 1,
    }));
    p.refused_by_ue(down[0].clone(), too_old, "downlink seq 0");
    p.refused_by_eese(up[0].clone(), too_old, "uplink seq 0");
    p.still_works();
}

#[test]
fn data_under_an_unknown_ksi_is_refused_and_answered_at_most_once_per_interval() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let mut down = p.downlink(b"d");
    down[2] = 9;
    p.refused_by_ue(down, Some(Reject::UnknownKsi(Ksi(9))), "downlink KSI 9");
    let mut up = p.uplink(b"u");
    up[2] = 9;
    let keys = eese_snapshot(&p.eese);
    // First: refused, answered (key-expired error "unknown KSI" and the
    // trigger in use) — the UE cannot be told how to recover otherwise.
    let first = p.deliver_to_eese(up.clone());
    assert_eq!(first.events, [Ev::Rejected(Reject::UnknownKsi(Ksi(9)))]);
    assert_eq!(
        first
            .sent
            .iter()
            .map(|d| peek_type(d).unwrap())
            .collect::<Vec<_>>(),
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    // Within the interval: refused, not answered.
    for _ in 0..100 {
        let out = p.deliver_to_eese(up.clone());
        assert_eq!(out.events, [Ev::Rejected(Reject::UnknownKsi(Ksi(9)))]);
        assert!(out.sent.is_empty(), "answered within the interval");
    }
    assert_eq!(
        eese_snapshot(&p.eese),
        keys,
        "keys, counters or windows changed"
    );
    // The UE refuses the (authentic) error: it names a KSI it does not use.
    p.refused_by_ue(
        first.sent[0].clone(),
        Some(Reject::StaleError {
            ksi: Ksi(9),
            counter: 1,
        }),
        "unknown-KSI error for a KSI the UE does not use",
    );
    p.still_works();
}

#[test]
fn data_under_an_expired_keyset_is_not_delivered() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    // te2e runs out at the EESE.
    p.now = p.now.after(Duration::from_secs(10));
    let mut out = Out::default();
    p.eese.handle_timeout(p.now, &p.cfg, &mut out);
    assert_eq!(out.events, [Ev::Expired(0)]);
    // Forged data under the expired keyset: refused, no answer, no rekey.
    let real = p.uplink(b"real");
    let mut forged = real.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    p.refused_by_eese(
        forged,
        Some(Reject::Protect(protect::Error::BadTag)),
        "forged data under the expired keyset",
    );
    // Authentic data under it: not delivered; answered with the error and a
    // new keyset (TR 33.863 steps 3-4) — the one state change, by design.
    let out = p.deliver_to_eese(real.clone());
    assert_eq!(
        out.events,
        [Ev::Rekeyed(1, 2), Ev::Rejected(Reject::ExpiredKsi(Ksi(0)))]
    );
    let (error, trigger) = (out.sent[0].clone(), out.sent[1].clone());
    // Its replay: refused by the window, no second rekey.
    p.refused_by_eese(
        real,
        Some(Reject::Protect(protect::Error::Replayed { seq: 0 })),
        "replay of data under the expired keyset",
    );
    // At the UE, after the authentic error: downlink data under the refused
    // keyset is not delivered and changes nothing.
    let late = {
        let mut q = Pair::new(Suite::AES_128_GCM);
        q.downlink(b"late")
    };
    assert_eq!(p.deliver_to_ue(error).events, [Ev::Expired(0)]);
    p.refused_by_ue(
        late,
        Some(Reject::ExpiredKsi(Ksi(0))),
        "downlink under the refused keyset",
    );
    assert!(matches!(
        p.deliver_to_ue(trigger).events[..],
        [Ev::Rekeyed(1, 2), ..]
    ));
}

#[test]
fn reflected_data_in_the_wrong_direction_is_refused_and_changes_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let up = p.uplink(b"up");
    let down = p.downlink(b"down");
    p.refused_by_ue(
        up,
        Some(Reject::WrongDirection),
        "uplink reflected to the UE",
    );
    p.refused_by_eese(
        down,
        Some(Reject::WrongDirection),
        "downlink reflected to the EESE",
    );
    p.still_works();
}

#[test]
fn control_messages_sent_to_the_eese_are_refused_and_change_nothing() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let t = p.trigger();
    p.deliver_to_ue(t.clone());
    p.refused_by_eese(
        t,
        Some(Reject::Unexpected(MessageType::DERIVE_TRIGGER)),
        "trigger at the EESE",
    );
    let mut e = vec![0u8; KeyExpiredRepr::LEN];
    KeyExpiredRepr {
        ksi: Ksi(1),
        cause: wire::Cause::TE2E_EXPIRED,
        counter: 2,
        tag: [0; 16],
    }
    .emit_signed(&p.control_auth(), &mut e)
    .unwrap();
    p.refused_by_eese(
        e,
        Some(Reject::Unexpected(MessageType::KEY_EXPIRED)),
        "key-expired error at the EESE",
    );
    p.still_works();
}

/// SplitMix64, for reproducible garbage.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn garbage_flood_changes_nothing_and_is_answered_at_most_once_per_interval() {
    let mut p = Pair::new(Suite::AES_128_GCM);
    let ue_before = ue_state(&p.ue);
    let eese_keys = eese_snapshot(&p.eese);
    let mut g = Gen(42);
    let (mut answers, mut rejected) = (0usize, 0usize);
    let start = p.now;
    // 20,000 datagrams over 10 s: random octets, half of them with a valid
    // version and type so that they reach the deeper checks, some as data
    // under the KSI in use or another one.
    for i in 0..20_000u64 {
        p.now = start.after(Duration::from_micros(500 * i));
        let len = (g.next() % 90) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|_| g.next() as u8).collect();
        if i % 2 == 0 && len >= 4 {
            d[0] = 1;
            d[1] = 1 + (g.next() % 3) as u8;
            if d[1] == 3 {
                d[2] = if i % 4 == 0 { 0 } else { d[2] };
                d[3] = if i % 8 == 0 { 0 } else { 1 };
                if len > 4 {
                    d[4] = Suite::AES_128_GCM.0;
                }
            }
        }
        for ev in p.deliver_to_ue(d.clone()).events {
            assert!(matches!(ev, Ev::Rejected(_)), "UE accepted garbage: {ev:?}");
            rejected += 1;
        }
        let out = p.deliver_to_eese(d);
        answers += out.sent.len();
        for ev in out.events {
            assert!(
                matches!(ev, Ev::Rejected(_)),
                "EESE accepted garbage: {ev:?}"
            );
            rejected += 1;
        }
    }
    assert_eq!(rejected, 40_000, "every datagram refused at both ends");
    assert_eq!(ue_state(&p.ue), ue_before, "UE state changed");
    assert_eq!(eese_snapshot(&p.eese), eese_keys, "EESE keys changed");
    // At most one answer (error + trigger) per unsolicited interval (1 s).
    assert!(answers <= 2 * 11, "{answers} answers in 10 s");
    p.still_works();
}

#[derive(Default)]
struct TableOut {
    sent: usize,
    events: Vec<(u32, Ev)>,
}

impl TableSink<u32> for TableOut {
    fn transmit(&mut self, _: &u32, _: &[u8]) {
        self.sent += 1;
    }
    fn event(&mut self, ue: &u32, e: Event<'_>) {
        if let Event::Rejected(r) = e {
            self.events.push((*ue, Ev::Rejected(r)));
        }
    }
}

#[test]
fn datagram_from_a_peer_without_session_is_refused_without_answer() {
    let mut table = EeseTable::new(cfg(Suite::AES_128_GCM));
    table.insert(1u32, root(), None);
    let mut out = TableOut::default();
    let mut r = rng();
    table.rekey(Instant(0), &1, &mut r, &mut out);
    let sent = out.sent;
    let mut d = vec![
        1, 3, 0, 0, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
    ];
    table.handle_datagram(Instant(1), &2, &mut d, &mut r, &mut out);
    assert_eq!(out.events, [(2, Ev::Rejected(Reject::NoSession))]);
    assert_eq!(out.sent, sent, "answered a stranger");
    assert_eq!(table.len(), 1, "a session was made for a stranger");
}
