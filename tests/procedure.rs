//! The TR 33.863 rekey procedure end to end, on a simulated clock: no
//! sockets, no sleeping. Every datagram is delivered (or dropped, reordered,
//! forged) by the test.

use std::time::Duration;

use ciot_e2e::endpoint::{
    Config, EeseSession, EeseTable, Event, Instant, Reject, Sent, Sink, TableSink, Ue,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, Rand, RootKey, int_key};
use ciot_e2e::wire::{self, Cause, Ksi, MessageType, peek_type};

/// An event with owned data, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data(u8, Vec<u8>),
    Rekeyed(u8, u64),
    Expired(u8, Cause),
    RandNeeded,
    Retransmitted(u8),
    Rejected(Reject),
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
            Event::KeysExpired { ksi, cause } => Ev::Expired(ksi.0, cause),
            Event::RandNeeded => Ev::RandNeeded,
            Event::Retransmitted { ksi, .. } => Ev::Retransmitted(ksi.0),
            Event::Rejected(r) => Ev::Rejected(r),
            _ => return,
        });
    }
}

fn root(seed: u8) -> RootKey {
    int_key(
        KdfProfile::Ts33220,
        &CkIk::new(
            &Ck::from_bytes([seed; 16]),
            &Ik::from_bytes([seed ^ 0x5a; 16]),
        ),
    )
}

/// A deterministic local RAND source.
fn rng() -> impl FnMut() -> Option<Rand> {
    let mut n = 0u8;
    move || {
        n = n.wrapping_add(1);
        Some(Rand([n; 16]))
    }
}

fn types(d: &[Vec<u8>]) -> Vec<MessageType> {
    d.iter().map(|m| peek_type(m).unwrap()).collect()
}

struct Pair {
    cfg: Config,
    ue: Ue,
    eese: EeseSession,
    now: Instant,
    /// What the UE sent and the EESE has not received yet.
    up: Vec<Vec<u8>>,
    /// What the EESE sent and the UE has not received yet.
    down: Vec<Vec<u8>>,
    ue_ev: Vec<Ev>,
    eese_ev: Vec<Ev>,
    scratch: Vec<u8>,
}

impl Pair {
    fn new(cfg: Config) -> Self {
        Pair {
            ue: Ue::with_config(root(1), &cfg),
            eese: EeseSession::new(root(1)),
            cfg,
            now: Instant::from_millis(1_000),
            up: vec![],
            down: vec![],
            ue_ev: vec![],
            eese_ev: vec![],
            scratch: vec![0; 2048],
        }
    }

    fn eese_out(&mut self, out: Out) {
        self.down.extend(out.sent);
        self.eese_ev.extend(out.events);
    }

    fn ue_out(&mut self, out: Out) {
        self.up.extend(out.sent);
        self.ue_ev.extend(out.events);
    }

    fn rekey(&mut self, rng: &mut impl FnMut() -> Option<Rand>) {
        let mut out = Out::default();
        self.eese.rekey(self.now, &self.cfg, rng, &mut out);
        self.eese_out(out);
    }

    fn ue_send(&mut self, payload: &[u8]) -> Sent {
        let mut out = Out::default();
        let r = self.ue.send(payload, &mut self.scratch, &mut out).unwrap();
        self.ue_out(out);
        r
    }

    fn eese_send(&mut self, payload: &[u8], rng: &mut impl FnMut() -> Option<Rand>) {
        let mut out = Out::default();
        let r = self.eese.send(
            self.now,
            &self.cfg,
            payload,
            &mut self.scratch,
            rng,
            &mut out,
        );
        self.eese_out(out);
        r.unwrap();
    }

    /// Delivers one datagram to the UE.
    fn deliver_to_ue(&mut self, mut d: Vec<u8>) {
        let mut out = Out::default();
        self.ue
            .handle_datagram(self.now, &self.cfg, &mut d, &mut self.scratch, &mut out);
        self.ue_out(out);
    }

    /// Delivers one datagram to the EESE.
    fn deliver_to_eese(&mut self, mut d: Vec<u8>, rng: &mut impl FnMut() -> Option<Rand>) {
        let mut out = Out::default();
        self.eese
            .handle_datagram(self.now, &self.cfg, &mut d, rng, &mut out);
        self.eese_out(out);
    }

    /// Delivers everything in flight, both ways, until quiet.
    fn flush(&mut self, rng: &mut impl FnMut() -> Option<Rand>) {
        while !self.up.is_empty() || !self.down.is_empty() {
            for d in std::mem::take(&mut self.down) {
                self.deliver_to_ue(d);
            }
            for d in std::mem::take(&mut self.up) {
                self.deliver_to_eese(d, rng);
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        let mut out = Out::default();
        self.eese.handle_timeout(self.now, &self.cfg, &mut out);
        self.eese_out(out);
        self.ue.handle_timeout(self.now);
    }

    fn take_ue(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.ue_ev)
    }
    fn take_eese(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.eese_ev)
    }
}

fn cfg() -> Config {
    Config {
        te2e: Duration::from_secs(10),
        grace: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A pair with keyset 0 installed on both sides.
fn started() -> (Pair, impl FnMut() -> Option<Rand>) {
    let mut p = Pair::new(cfg());
    let mut r = rng();
    p.rekey(&mut r);
    assert_eq!(types(&p.down), [MessageType::DERIVE_TRIGGER]);
    p.flush(&mut r);
    assert_eq!(p.take_ue(), [Ev::Rekeyed(0, 1)]);
    assert_eq!(p.take_eese(), [Ev::Rekeyed(0, 1)]);
    (p, r)
}

#[test]
fn full_tr_sequence_expiry_error_trigger_retransmission() {
    let (mut p, mut r) = started();
    // Data both ways under KSI 0.
    assert_eq!(
        p.ue_send(b"up-1"),
        Sent::Now {
            ksi: Ksi(0),
            seq: 0
        }
    );
    p.eese_send(b"down-1", &mut r);
    p.flush(&mut r);
    assert_eq!(p.take_eese(), [Ev::Data(0, b"up-1".to_vec())]);
    assert_eq!(p.take_ue(), [Ev::Data(0, b"down-1".to_vec())]);

    // Step 1-2: te2e runs out; the EESE flags the keys.
    p.advance(Duration::from_secs(10));
    assert_eq!(p.take_eese(), [Ev::Expired(0, Cause::TE2E_EXPIRED)]);
    assert!(p.down.is_empty(), "expiry alone sends nothing");

    // Step 3: the UE's next contact gets the error; step 4: the trigger.
    p.ue_send(b"up-2");
    let d = p.up.pop().unwrap();
    p.deliver_to_eese(d, &mut r);
    assert_eq!(
        types(&p.down),
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    assert_eq!(
        p.take_eese(),
        [Ev::Rekeyed(1, 2), Ev::Rejected(Reject::ExpiredKsi(Ksi(0)))]
    );

    // Step 5: the UE retransmits the held message under the new keyset.
    p.flush(&mut r);
    assert_eq!(
        p.take_ue(),
        [
            Ev::Expired(0, Cause::TE2E_EXPIRED),
            Ev::Rekeyed(1, 2),
            Ev::Retransmitted(1)
        ]
    );
    assert_eq!(p.take_eese(), [Ev::Data(1, b"up-2".to_vec())]);
    assert_eq!(p.ue.current(), Some((Ksi(1), 2, true)));
    assert_eq!(
        p.ue.current_keys().map(|k| k.1.clone()),
        p.eese.current_keys().map(|k| k.1.clone())
    );
}

#[test]
fn eese_initiated_contact_after_expiry_skips_the_error() {
    let (mut p, mut r) = started();
    p.advance(Duration::from_secs(11));
    p.take_eese();
    p.eese_send(b"hello", &mut r);
    assert_eq!(
        types(&p.down),
        [MessageType::DERIVE_TRIGGER, MessageType::DATA]
    );
    p.flush(&mut r);
    assert_eq!(
        p.take_ue(),
        [Ev::Rekeyed(1, 2), Ev::Data(1, b"hello".to_vec())]
    );
}

#[test]
fn lost_trigger_is_recovered_by_the_next_contact() {
    let (mut p, mut r) = started();
    p.advance(Duration::from_secs(10));
    p.ue_send(b"one");
    let d = p.up.pop().unwrap();
    p.deliver_to_eese(d, &mut r);
    // Both the error and the trigger are lost.
    p.down.clear();
    // The UE tries again under KSI 0: error and the same trigger again.
    p.ue_send(b"two");
    p.flush(&mut r);
    assert_eq!(p.ue.current(), Some((Ksi(1), 2, true)));
    let ev = p.take_eese();
    assert!(ev.contains(&Ev::Data(1, b"two".to_vec())), "{ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Ev::Data(0, _))),
        "nothing accepted under the expired keyset"
    );
}

#[test]
fn lost_trigger_after_error_is_repeated_by_the_eese_timer() {
    let (mut p, mut r) = started();
    p.advance(Duration::from_secs(10));
    p.ue_send(b"one");
    let d = p.up.pop().unwrap();
    p.deliver_to_eese(d, &mut r);
    // The error arrives, the trigger is lost: the UE holds its message.
    let trigger = p.down.pop().unwrap();
    assert_eq!(peek_type(&trigger), Ok(MessageType::DERIVE_TRIGGER));
    p.flush(&mut r);
    assert_eq!(p.ue.current(), Some((Ksi(0), 1, false)));
    // The EESE repeats the unconfirmed trigger.
    p.advance(Duration::from_millis(1_001));
    assert_eq!(p.down, [trigger]);
    p.flush(&mut r);
    assert!(p.take_eese().contains(&Ev::Data(1, b"one".to_vec())));
    // Confirmed: no more repetitions.
    p.advance(Duration::from_secs(5));
    assert!(p.down.is_empty());
}

#[test]
fn duplicate_trigger_is_idempotent() {
    let (mut p, mut r) = started();
    p.rekey(&mut r);
    let t = p.down[0].clone();
    p.flush(&mut r);
    p.take_ue();
    let before = p.ue.current();
    p.deliver_to_ue(t);
    assert_eq!(p.ue.current(), before);
    assert!(p.take_ue().is_empty(), "a repeated trigger is not an error");
}

#[test]
fn data_reordered_across_a_rekey_is_accepted_in_the_grace_period() {
    let (mut p, mut r) = started();
    p.ue_send(b"old");
    let old = p.up.pop().unwrap();
    p.rekey(&mut r); // proactive rekey while KSI 0 is valid
    p.flush(&mut r);
    p.ue_send(b"new");
    let new = p.up.pop().unwrap();
    p.deliver_to_eese(new, &mut r);
    p.deliver_to_eese(old.clone(), &mut r);
    assert_eq!(
        p.take_eese()[1..],
        [Ev::Data(1, b"new".to_vec()), Ev::Data(0, b"old".to_vec())]
    );
    // A replay of the late message is refused; after the grace period the
    // old keyset is gone.
    p.deliver_to_eese(old.clone(), &mut r);
    assert!(matches!(
        p.take_eese()[..],
        [Ev::Rejected(Reject::Protect(_))]
    ));
    p.advance(Duration::from_secs(3));
    p.deliver_to_eese(old, &mut r);
    assert_eq!(p.take_eese(), [Ev::Rejected(Reject::UnknownKsi(Ksi(0)))]);
    // And the UE never sends under the replaced keyset.
    assert_eq!(
        p.ue_send(b"x"),
        Sent::Now {
            ksi: Ksi(1),
            seq: 1
        }
    );
}

fn flip(mut d: Vec<u8>, at: usize) -> Vec<u8> {
    d[at] ^= 0x01;
    d
}

#[test]
fn forged_trigger_changes_nothing() {
    let (mut p, mut r) = started();
    p.rekey(&mut r);
    let t = p.down.pop().unwrap();
    let before = (p.ue.current(), p.ue.last_counter());
    for at in [2, 11, 12, 28, 29, 33, 40] {
        p.deliver_to_ue(flip(t.clone(), at));
        assert_eq!(
            (p.ue.current(), p.ue.last_counter()),
            before,
            "flip at {at}"
        );
    }
    let ev = p.take_ue();
    assert_eq!(ev.len(), 7);
    assert!(
        ev.iter()
            .all(|e| matches!(e, Ev::Rejected(Reject::Wire(_)))),
        "{ev:?}"
    );
    // A trigger made under another root.
    let mut other = EeseSession::new(root(9));
    let mut out = Out::default();
    other.rekey(p.now, &p.cfg, &mut rng(), &mut out);
    p.deliver_to_ue(out.sent[0].clone());
    assert_eq!(
        p.take_ue(),
        [Ev::Rejected(Reject::Wire(wire::Error::BadTag))]
    );
    assert_eq!((p.ue.current(), p.ue.last_counter()), before);
}

#[test]
fn replayed_old_trigger_changes_nothing() {
    let (mut p, mut r) = started();
    p.rekey(&mut r);
    let first = p.down[0].clone();
    p.flush(&mut r);
    p.rekey(&mut r);
    p.flush(&mut r);
    p.take_ue();
    assert_eq!(p.ue.current(), Some((Ksi(2), 3, true)));
    p.deliver_to_ue(first);
    assert_eq!(
        p.take_ue(),
        [Ev::Rejected(Reject::Wire(wire::Error::StaleCounter {
            counter: 2,
            last: 3
        }))]
    );
    assert_eq!(p.ue.current(), Some((Ksi(2), 3, true)));
}

#[test]
fn forged_key_expired_error_changes_nothing() {
    let (mut p, mut r) = started();
    p.advance(Duration::from_secs(10));
    p.ue_send(b"x");
    let d = p.up.pop().unwrap();
    p.deliver_to_eese(d, &mut r);
    let err = p.down.remove(0);
    p.down.clear();
    // Back to a fresh pair whose keyset 0 is valid: a forged error for it.
    let (mut q, _) = started();
    for at in [2, 8, 12, 28] {
        q.deliver_to_ue(flip(err.clone(), at));
        assert_eq!(q.ue.current(), Some((Ksi(0), 1, true)), "flip at {at}");
    }
    assert_eq!(
        q.take_ue(),
        vec![Ev::Rejected(Reject::Wire(wire::Error::BadTag)); 4]
    );
}

#[test]
fn replayed_error_of_an_older_generation_changes_nothing() {
    let (mut p, mut r) = started();
    // Expire KSI 0 and capture the authentic error for it (counter 1).
    p.advance(Duration::from_secs(10));
    p.ue_send(b"x");
    let d = p.up.pop().unwrap();
    p.deliver_to_eese(d, &mut r);
    let old_err = p.down[0].clone();
    assert_eq!(peek_type(&old_err), Ok(MessageType::KEY_EXPIRED));
    p.flush(&mut r);
    p.take_ue();
    // Now at KSI 1; 255 rekeys later the KSI is 0 again, under a newer counter.
    for _ in 0..255 {
        p.rekey(&mut r);
        p.flush(&mut r);
    }
    p.take_ue();
    let before = p.ue.current();
    assert_eq!(before.map(|c| c.0), Some(Ksi(0)));
    p.deliver_to_ue(old_err);
    assert_eq!(
        p.take_ue(),
        [Ev::Rejected(Reject::StaleError {
            ksi: Ksi(0),
            counter: 1
        })]
    );
    assert_eq!(p.ue.current(), before);
}

#[test]
fn expire_now_makes_the_next_contact_rekey_with_enterprise_cause() {
    let (mut p, mut r) = started();
    let mut out = Out::default();
    p.eese.expire_now(&mut out);
    p.eese_out(out);
    assert_eq!(
        p.take_eese(),
        [Ev::Expired(0, Cause::EXPIRED_BY_ENTERPRISE)]
    );
    p.ue_send(b"after");
    p.flush(&mut r);
    assert_eq!(
        p.take_ue(),
        [
            Ev::Expired(0, Cause::EXPIRED_BY_ENTERPRISE),
            Ev::Rekeyed(1, 2),
            Ev::Retransmitted(1)
        ]
    );
    assert!(p.take_eese().contains(&Ev::Data(1, b"after".to_vec())));
}

#[test]
fn replaced_root_invalidates_every_keyset_of_the_old_root() {
    let (mut p, mut r) = started();
    p.ue_send(b"in flight");
    let in_flight = p.up.pop().unwrap();
    let mut out = Out::default();
    p.eese.replace_root(root(2), &mut out);
    p.eese_out(out);
    assert_eq!(p.take_eese(), [Ev::Expired(0, Cause::ROOT_REPLACED)]);
    let mut out = Out::default();
    p.ue.replace_root(root(2), &mut out);
    assert_eq!(out.events, [Ev::Expired(0, Cause::ROOT_REPLACED)]);
    assert_eq!(p.ue.current(), None);
    // Data under the old root's keyset is not accepted.
    p.deliver_to_eese(in_flight, &mut r);
    assert!(matches!(
        p.take_eese()[..],
        [Ev::Rejected(Reject::UnknownKsi(Ksi(0)))]
    ));
    p.down.clear();
    // The EESE starts the new root's first keyset; the UE accepts it.
    p.eese_send(b"new root", &mut r);
    p.flush(&mut r);
    // KSIs start again under the new root; the counter keeps rising.
    assert_eq!(
        p.take_ue(),
        [Ev::Rekeyed(0, 2), Ev::Data(0, b"new root".to_vec())]
    );
}

#[test]
fn rand_from_the_emks_source() {
    let mut p = Pair::new(cfg());
    let mut none = || None;
    p.rekey(&mut none);
    assert_eq!(p.take_eese(), [Ev::RandNeeded]);
    assert!(p.down.is_empty());
    assert!(p.eese.rand_pending());
    // Sending while the RAND is awaited is refused, not lost silently.
    let mut out = Out::default();
    let err = p
        .eese
        .send(p.now, &p.cfg, b"x", &mut p.scratch, &mut none, &mut out);
    assert_eq!(err, Err(ciot_e2e::endpoint::SendError::RandPending));
    assert!(out.events.is_empty(), "RandNeeded is asked once");
    // The EMKS answers.
    let mut out = Out::default();
    p.eese
        .provide_rand(p.now, &p.cfg, Rand([0xee; 16]), &mut out);
    p.eese_out(out);
    assert_eq!(p.take_eese(), [Ev::Rekeyed(0, 1)]);
    p.flush(&mut none);
    assert_eq!(p.take_ue(), [Ev::Rekeyed(0, 1)]);
    assert_eq!(
        p.ue.current_keys().map(|k| k.0.clone()),
        Some(Rand([0xee; 16]))
    );
}

#[test]
fn snapshot_and_restore_across_a_rekey() {
    let (mut p, mut r) = started();
    p.ue_send(b"a");
    p.flush(&mut r);
    p.rekey(&mut r);
    let old_trigger = p.down[0].clone();
    p.flush(&mut r);
    p.ue_send(b"b");
    p.flush(&mut r);
    p.take_ue();
    p.take_eese();

    let mut snap = [0u8; ciot_e2e::endpoint::UE_SNAPSHOT_LEN];
    let n = p.ue.snapshot(&mut snap).unwrap();
    let mut esnap = [0u8; ciot_e2e::endpoint::EESE_SNAPSHOT_LEN];
    let en = p.eese.snapshot(&mut esnap).unwrap();
    // Reboot both.
    p.ue = Ue::restore(root(1), &p.cfg, &snap[..n]).unwrap();
    p.eese = EeseSession::restore(root(1), &p.cfg, &esnap[..en]).unwrap();
    assert_eq!(p.ue.current(), Some((Ksi(1), 2, true)));
    assert_eq!(p.ue.last_counter(), 2);
    // The restored UE cannot be rolled back by a replayed trigger...
    p.deliver_to_ue(old_trigger);
    assert!(
        p.take_ue().is_empty(),
        "the trigger of the keyset in use is a duplicate"
    );
    let mut q = started().0;
    let first = {
        let mut out = Out::default();
        q.eese = EeseSession::new(root(1));
        q.eese.rekey(q.now, &q.cfg, &mut rng(), &mut out);
        out.sent[0].clone()
    };
    p.deliver_to_ue(first);
    assert!(matches!(
        p.take_ue()[..],
        [Ev::Rejected(Reject::Wire(wire::Error::StaleCounter { .. }))]
    ));
    // ...and data keeps flowing: sequence numbers skip ahead, the EESE's
    // restored window accepts them and refuses replays of old ones.
    assert_eq!(
        p.ue_send(b"c"),
        Sent::Now {
            ksi: Ksi(1),
            seq: 1 + ciot_e2e::endpoint::SEQ_RESERVE
        }
    );
    p.flush(&mut r);
    assert_eq!(p.take_eese(), [Ev::Data(1, b"c".to_vec())]);
    // Corrupt snapshots are refused.
    assert!(Ue::<512>::restore(root(1), &p.cfg, &snap[..n - 1]).is_err());
    assert!(Ue::<512>::restore(root(1), &p.cfg, &esnap[..en]).is_err());
    assert!(EeseSession::restore(root(1), &p.cfg, &snap[..n]).is_err());
}

#[test]
fn eese_restored_from_a_snapshot_older_than_its_last_rekey_stays_in_step() {
    let (mut p, mut r) = started();
    let mut esnap = [0u8; ciot_e2e::endpoint::EESE_SNAPSHOT_LEN];
    let en = p.eese.snapshot(&mut esnap).unwrap();
    // A rekey after the snapshot: the UE accepts counter 2.
    p.rekey(&mut r);
    p.flush(&mut r);
    assert_eq!(p.ue.current(), Some((Ksi(1), 2, true)));
    p.take_ue();
    // The EESE crashes and comes back from the older snapshot.
    p.eese = EeseSession::restore(root(1), &p.cfg, &esnap[..en]).unwrap();
    // Its next trigger must be above what the UE accepted, or the two would
    // hold different keysets under the same counter.
    p.eese_send(b"after restore", &mut r);
    p.advance(Duration::from_secs(11));
    p.eese_send(b"after restore", &mut r);
    p.flush(&mut r);
    let ev = p.take_ue();
    assert!(
        ev.contains(&Ev::Data(1, b"after restore".to_vec())),
        "{ev:?}"
    );
    let (ksi, counter, _) = p.ue.current().unwrap();
    assert!(counter > 2 + 1000, "counter {counter}");
    assert_eq!(
        p.ue.current_keys().map(|k| k.1.clone()),
        p.eese.current_keys().map(|k| k.1.clone()),
        "KSI {ksi}: same generation, same keys"
    );
}

#[test]
fn soft_limit_triggers_a_rekey_before_the_sequence_space_runs_out() {
    let mut p = Pair::new(Config {
        soft_limit: 3,
        ..cfg()
    });
    let mut r = rng();
    p.rekey(&mut r);
    p.flush(&mut r);
    for i in 0..4u8 {
        p.ue_send(&[i]);
        p.flush(&mut r);
    }
    assert_eq!(
        p.ue.current(),
        Some((Ksi(1), 2, true)),
        "the EESE rekeyed at uplink seq 3"
    );
    // The EESE's own downlink counter also rekeys at the soft limit.
    for _ in 0..4 {
        p.eese_send(b"d", &mut r);
        p.flush(&mut r);
    }
    assert_eq!(p.ue.current().map(|c| c.0), Some(Ksi(2)));
}

#[derive(Default)]
struct TableOut {
    expired: Vec<(u32, Instant)>,
    sent: usize,
    now: Instant,
}

impl TableSink<u32> for TableOut {
    fn transmit(&mut self, _: &u32, _: &[u8]) {
        self.sent += 1;
    }
    fn event(&mut self, ue: &u32, e: Event<'_>) {
        if let Event::KeysExpired { .. } = e {
            self.expired.push((*ue, self.now));
        }
    }
}

#[test]
fn ten_thousand_ues_in_one_table_with_staggered_te2e() {
    let cfg = Config {
        te2e: Duration::from_secs(60),
        trigger_attempts: 0,
        ..Config::default()
    };
    let mut table = EeseTable::new(cfg);
    let mut out = TableOut::default();
    let mut r = rng();
    let root = root(3);
    for ue in 0..10_000u32 {
        // te2e from 10 s to 109 s.
        table.insert(ue, root.clone(), Some(10 + ue % 100));
        table.rekey(Instant(0), &ue, &mut r, &mut out);
    }
    assert_eq!(out.sent, 10_000);
    let mut now = Instant(0);
    let mut last = Instant(0);
    while let Some(at) = table.poll_timeout() {
        assert!(at >= last, "timers come out in order");
        last = at;
        now = at;
        out.now = now;
        table.handle_timeout(now, &mut out);
    }
    assert_eq!(out.expired.len(), 10_000);
    for (ue, at) in &out.expired {
        assert_eq!(at.as_millis(), u64::from(10 + ue % 100) * 1000, "UE {ue}");
    }
    assert_eq!(now, Instant(109_000));
    assert!(table.queued_timers() <= 2 * table.len() + 1024);
}
