//! The TR 33.863 rekey procedure end to end on a simulated clock, and one
//! regression test for each way the endpoints could once be pushed into
//! reusing a nonce, delivering twice, stalling or amplifying (each named for
//! the behaviour it now shows). No sockets, no sleeping: every datagram is
//! in the test's hands.

use std::collections::HashMap;
use std::time::Duration;

use ciot_e2e::endpoint::{
    Eese, EeseConfig, EeseTable, Event, Instant, Received, Reject, SendError, SendOutcome, Ue,
    UeConfig, UeId,
};
use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootKey};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{
    Cause, ControlAuth, DataPacket, Direction, Ksi, Message, MessageType, TriggerPacket,
    TriggerRepr,
};
use ciot_e2e_testkit::pair::{Pair, TestRands, test_nonce, test_root};

fn ue_cfg() -> UeConfig {
    UeConfig {
        grace: Duration::from_secs(2),
        probe_after: Some(Duration::from_secs(5)),
        keepalive: Some(Duration::from_secs(30)),
        hello_backoff: Duration::from_millis(500),
        hello_backoff_max: Duration::from_secs(8),
        ..UeConfig::default()
    }
}

fn eese_cfg() -> EeseConfig {
    EeseConfig {
        te2e: Duration::from_secs(60),
        grace: Duration::from_secs(2),
        trigger_retransmit: Duration::from_millis(500),
        trigger_retransmit_max: Duration::from_secs(8),
        trigger_attempts: 2,
        ..EeseConfig::default()
    }
}

/// The healing bound of these settings (docs/SECURITY.md §5): probe or
/// keepalive silence, hello back-off with jitter, and a second for the hello,
/// the offer and the UE's use of it.
fn t_heal() -> Duration {
    let u = ue_cfg();
    u.probe_after.unwrap().max(u.keepalive.unwrap())
        + u.hello_backoff_max * 5 / 4
        + Duration::from_secs(1)
}

fn started() -> Pair {
    Pair::started(ue_cfg(), eese_cfg())
}

/// A pair whose UE sends no keepalive hellos, so the TR's own messages are
/// all that is on the wire.
fn started_quiet() -> Pair {
    Pair::started(
        UeConfig {
            keepalive: None,
            ..ue_cfg()
        },
        eese_cfg(),
    )
}

fn types(d: &[Vec<u8>]) -> Vec<MessageType> {
    d.iter()
        .map(|m| Message::parse(m).map_or(MessageType(0), |m| m.message_type()))
        .collect()
}

/// Data the UE sent, as (KSI, seq, octets).
fn uplink(p: &Pair) -> Vec<(Ksi, u32, Vec<u8>)> {
    p.sent_by_ue
        .iter()
        .filter_map(|d| {
            let pk = DataPacket::new_checked(&d[..]).ok()?;
            Some((pk.ksi(), pk.seq(), d.clone()))
        })
        .collect()
}

/// Runs the clock in steps of `tick` for `total`, the network delivering.
fn run(p: &mut Pair, total: Duration, tick: Duration) {
    let end = p.now.after(total);
    while p.now < end {
        p.advance(tick);
        p.settle();
    }
}

/// The counter of the keyset the UE holds.
fn ue_counter(p: &Pair) -> u64 {
    p.ue.status().expect("a keyset").counter
}

/// Checks, as an eavesdropper with the root would, that no (key, direction,
/// seq) protected two different datagrams: the keys of every trigger seen
/// are derived for whichever UE start (`nonces`) its tag is bound to, and
/// every data message is filed under the keys that open it.
fn assert_no_nonce_reuse(root: &RootKey, nonces: &[ciot_e2e::kdf::UeNonce], datagrams: &[Vec<u8>]) {
    let prepared = PreparedRoot::new(root, KdfProfile::Ts33220);
    let control = ControlAuth::new(&prepared.control_key());
    let mut keysets: Vec<SuiteKeys> = Vec::new();
    for d in datagrams {
        let Ok(p) = TriggerPacket::new_checked(&d[..]) else {
            continue;
        };
        let t = TriggerRepr::parse(&p).unwrap();
        let nonce = nonces
            .iter()
            .find(|n| p.verify(&control.answer(n)).is_ok())
            .expect("a trigger made for a start of the UE");
        let ks = prepared.keyset(&t.rand);
        let keys = SuiteKeys::derive(t.profile, &ks, t.suite, t.counter, nonce).unwrap();
        if !keysets.contains(&keys) {
            keysets.push(keys);
        }
    }
    let mut ledger: HashMap<(usize, Direction, u32), Vec<u8>> = HashMap::new();
    let mut data = 0;
    for d in datagrams {
        let Ok(p) = DataPacket::new_checked(&d[..]) else {
            continue;
        };
        data += 1;
        let k = keysets
            .iter()
            .position(|k| k.cipher().open_in_place(&mut d.clone()).is_ok())
            .expect("data under a keyset of a trigger");
        if let Some(prev) = ledger.insert((k, p.direction(), p.seq()), d.clone()) {
            assert_eq!(
                &prev,
                d,
                "keyset {k} {} seq {} protected two datagrams",
                p.direction().name(),
                p.seq()
            );
        }
    }
    assert!(data > 0, "the check saw data");
}

fn starts(p: &Pair) -> Vec<ciot_e2e::kdf::UeNonce> {
    (1..=p.ue_starts).map(test_nonce).collect()
}

fn all_datagrams(p: &Pair) -> Vec<Vec<u8>> {
    p.sent_by_ue
        .iter()
        .chain(p.sent_by_eese.iter())
        .cloned()
        .collect()
}

// ---- The procedure. ----

#[test]
fn hello_offer_use_and_data_both_ways() {
    let mut p = started();
    assert_eq!(
        p.ue.status().map(|s| (s.ksi, s.usable)),
        Some((Ksi(0), true))
    );
    // The UE opens with a hello, uses the offered keyset with a hello that
    // names it (it has nothing to send), and the EESE takes it into use.
    assert_eq!(
        types(&p.sent_by_ue),
        [MessageType::HELLO, MessageType::HELLO]
    );
    assert_eq!(types(&p.sent_by_eese), [MessageType::DERIVE_TRIGGER]);
    let offer = TriggerPacket::new_checked(&p.sent_by_eese[0][..]).unwrap();
    assert!(offer.confirm(), "an offer: used first, then sent under");
    let counter = ue_counter(&p);
    assert!(p.eese_events.contains(&Event::Offered {
        ksi: Ksi(0),
        counter
    }));
    assert!(p.eese_events.contains(&Event::Rekeyed {
        ksi: Ksi(0),
        counter
    }));
    p.ue_send(b"up");
    p.eese_send(b"down").unwrap();
    p.settle();
    assert_eq!(
        (p.at_eese.clone(), p.at_ue.clone()),
        (vec![b"up".to_vec()], vec![b"down".to_vec()])
    );
}

#[test]
fn a_ue_with_a_payload_uses_the_offer_with_it() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.ue_send(b"first reading");
    p.settle();
    assert_eq!(p.at_eese, [b"first reading".to_vec()]);
    assert_eq!(
        types(&p.sent_by_ue),
        [MessageType::HELLO, MessageType::DATA],
        "the payload confirms the keyset: no second hello"
    );
}

#[test]
fn full_tr_sequence_expiry_error_trigger_retransmission() {
    let mut p = started_quiet();
    let first = ue_counter(&p);
    // te2e runs out at the EESE (TR step 2); the UE's keyset is still in use.
    p.advance(eese_cfg().te2e);
    assert!(p.eese_events.contains(&Event::KeysExpired {
        ksi: Ksi(0),
        cause: Cause::TE2E_EXPIRED
    }));
    let sent_before = p.sent_by_eese.len();
    // The UE's next contact (step 3): refused by name, a new keyset (step 4),
    // and the message goes out again under it (step 5).
    p.ue_send(b"reading");
    p.settle();
    assert_eq!(
        types(&p.sent_by_eese[sent_before..]),
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    match Message::parse(&p.sent_by_eese[sent_before]) {
        Ok(Message::KeyExpired(k)) => assert_eq!((k.ksi, k.refused), (Ksi(0), Some(0))),
        other => panic!("{other:?}"),
    }
    let second = ue_counter(&p);
    assert!(second > first);
    assert!(p.ue_events.contains(&Event::Retransmitted {
        ksi: Ksi(1),
        counter: second,
        seq: 0
    }));
    assert_eq!(p.at_eese, [b"reading".to_vec()]);
}

#[test]
fn eese_initiated_contact_after_expiry_skips_the_error() {
    let mut p = started_quiet();
    p.advance(eese_cfg().te2e);
    let sent_before = p.sent_by_eese.len();
    p.eese_send_settled(b"command").unwrap();
    p.settle();
    assert_eq!(
        types(&p.sent_by_eese[sent_before..]),
        [MessageType::DERIVE_TRIGGER, MessageType::DATA],
        "the offer, and once the UE used it the data: no error"
    );
    assert_eq!(p.at_ue, [b"command".to_vec()]);
}

#[test]
fn expire_now_makes_the_next_contact_rekey_with_enterprise_cause() {
    let mut p = started();
    let first = ue_counter(&p);
    p.eese.expire_now(p.now);
    p.drain();
    p.ue_send(b"x");
    p.settle();
    assert!(p.ue_events.contains(&Event::KeysExpired {
        ksi: Ksi(0),
        cause: Cause::EXPIRED_BY_ENTERPRISE
    }));
    assert_eq!(p.at_eese, [b"x".to_vec()]);
    assert!(ue_counter(&p) > first);
}

#[test]
fn rand_from_the_emks_when_the_eese_has_no_source() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.eese = Eese::new(
        eese_cfg(),
        test_root(1),
        TestRands {
            none: true,
            ..TestRands::default()
        },
    );
    p.settle();
    assert!(p.eese_events.contains(&Event::RandNeeded));
    assert_eq!(p.ue.status(), None, "no keyset until the EMKS answers");
    p.eese.provide_rand(p.now, Rand([0x11; 16]));
    p.settle();
    assert!(p.ue.status().is_some_and(|s| s.usable));
    assert_eq!(
        p.ue.current_keys().map(|k| k.0.clone()),
        Some(Rand([0x11; 16]))
    );
}

#[test]
fn soft_limit_renews_the_keyset_before_the_sequence_space_runs_out() {
    let mut p = Pair::new(
        ue_cfg(),
        EeseConfig {
            soft_limit: 3,
            ..eese_cfg()
        },
        test_root(1),
    );
    p.settle();
    let first = ue_counter(&p);
    for i in 0..5u8 {
        p.ue_send(&[i]);
        p.settle();
    }
    assert_eq!(p.at_eese.len(), 5, "nothing lost across the renewal");
    assert!(ue_counter(&p) > first, "the EESE renewed at uplink seq 3");
}

#[test]
fn trigger_for_another_kdf_profile_is_refused_and_changes_nothing() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.eese = Eese::new(
        EeseConfig {
            profile: KdfProfile::HkdfSha256,
            ..eese_cfg()
        },
        test_root(1),
        TestRands::default(),
    );
    p.settle();
    // The control key differs too, so the tag fails first: not authentic.
    assert!(p.ue_rejects.iter().all(|r| *r == Reject::Unauthentic));
    assert_eq!(p.ue.status(), None);
}

// ---- Storage that is not what the UE last wrote (issue: nonce reuse). ----

/// A UE that lost its storage, or whose storage went back to an older copy,
/// is a new start of it: a trigger made for its earlier start (captured and
/// replayed, or answered by the EESE) does not verify for it, and whatever it
/// seals is under keys no earlier start of it used.
#[test]
fn a_ue_that_lost_or_rolled_back_its_storage_never_reuses_a_nonce() {
    let mut p = started();
    for i in 0..3u8 {
        p.ue_send(&[b'a', i]);
        p.settle();
    }
    let captured = p.sent_by_eese[0].clone();
    // The device restarts three times (storage lost, put back to an older
    // copy, re-initialised: to a UE these are all a new start).
    for round in 0..3u8 {
        p.restart_ue();
        assert_eq!(
            p.ue.handle_datagram(p.now, &mut captured.clone()),
            Err(Reject::Unauthentic),
            "a trigger of an earlier start is not for this one"
        );
        assert_eq!(p.ue.status(), None);
        for i in 0..3u8 {
            p.ue_send(&[b'b', round, i]);
            p.settle();
        }
        p.eese_send_settled(&[b'd', round]).unwrap();
        p.settle();
    }
    assert_eq!(p.at_eese.len(), 12, "every payload of every start arrived");
    assert_eq!(p.at_ue.len(), 3);
    assert_no_nonce_reuse(&test_root(1), &starts(&p), &all_datagrams(&p));
}

/// A device image cloned to a second device: both run at once with the same
/// identifier and root. Neither ever seals under a key the other used.
#[test]
fn a_cloned_ue_never_shares_a_key_with_its_original() {
    let mut p = started();
    p.ue_send(b"original");
    p.settle();
    let mut clone = p.another_ue();
    let mut out = [0u8; 512];
    let mut clone_sent = Vec::new();
    for round in 0..4u8 {
        clone.send(p.now, &[b'c', round]).unwrap();
        // The clone's datagrams to the EESE and back, by hand.
        for _ in 0..6 {
            while let Ok(Some(t)) = clone.poll_transmit(p.now, &mut out) {
                let d = out[..t.len].to_vec();
                clone_sent.push(d.clone());
                let _ = p.deliver_to_eese(d);
            }
            for d in std::mem::take(&mut p.to_ue) {
                let _ = clone.handle_datagram(p.now, &mut d.clone());
                let _ = p.deliver_to_ue(d);
            }
        }
        p.ue_send(&[b'o', round]);
        p.settle();
        p.advance(Duration::from_secs(1));
    }
    let mut all = all_datagrams(&p);
    all.extend(clone_sent);
    assert_no_nonce_reuse(&test_root(1), &starts(&p), &all);
    // Both got through at times; what went through went once.
    let mut seen = p.at_eese.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), p.at_eese.len(), "nothing delivered twice");
}

/// The C API's case: a UE initialised again (a failed restore, or every
/// boot) with the same root and identifier, then fed a captured trigger:
/// refused, and its first payload is sealed under a keyset made for it.
#[test]
fn a_ue_initialised_again_refuses_a_captured_trigger() {
    let mut p = started();
    let captured: Vec<Vec<u8>> = p.sent_by_eese.clone();
    p.restart_ue();
    for t in captured {
        assert_eq!(
            p.deliver_to_ue(t),
            Err(Reject::Unauthentic),
            "bound to the earlier start's nonce"
        );
    }
    p.ue_send(b"after re-init");
    p.settle();
    assert_eq!(p.at_eese, [b"after re-init".to_vec()]);
    assert_no_nonce_reuse(&test_root(1), &starts(&p), &all_datagrams(&p));
}

// ---- The scenarios that once broke the endpoints. ----

/// Issue item 4: te2e broke healing. The EESE started a keyset's lifetime
/// when it made it; the UE counted from the trigger's arrival; an attacker
/// delaying only triggers longer than te2e made every keyset arrive expired
/// at the EESE, forever. Now the EESE counts te2e from the UE's first use.
#[test]
fn triggers_delayed_past_te2e_no_longer_make_keysets_arrive_expired() {
    let cfg = EeseConfig {
        te2e: Duration::from_secs(2),
        ..eese_cfg()
    };
    let mut p = Pair::started(
        UeConfig {
            keepalive: None,
            ..ue_cfg()
        },
        cfg,
    );
    for n in 0..10u8 {
        p.ue_send(&[b'm', n]);
        // Everything but triggers goes at once; triggers wait 3 s.
        for _ in 0..8 {
            p.drain();
            for d in std::mem::take(&mut p.to_eese) {
                let _ = p.deliver_to_eese(d);
            }
            let (triggers, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.to_ue)
                .into_iter()
                .partition(|d| d.get(1) == Some(&0x01));
            for d in rest {
                let _ = p.deliver_to_ue(d);
            }
            if !triggers.is_empty() {
                p.advance(Duration::from_secs(3));
                for d in triggers {
                    let _ = p.deliver_to_ue(d);
                }
            }
        }
        p.advance(Duration::from_millis(400));
    }
    assert_eq!(
        p.at_eese.len(),
        10,
        "every payload arrived: {:?}",
        p.at_eese
    );
}

/// Issue item 5: after a UE restart, only its hellos were dropped; downlink
/// stayed dead for 50 minutes while the EESE sent under a keyset the UE no
/// longer held. Now the restarted UE repeats its hello at most
/// `1.25 × hello_backoff_max` apart, and downlink flows within `T_heal` of
/// the hellos getting through.
#[test]
fn hellos_lost_after_a_ue_restart_heal_within_the_bound_once_they_pass() {
    let mut p = started();
    p.restart_ue();
    // Ten minutes of lost hellos while the EESE sends every 10 s.
    for n in 0..60u32 {
        let _ = p.eese_send(format!("lost {n}").as_bytes());
        p.advance(Duration::from_secs(10));
        p.to_eese.retain(|d| d.get(1) != Some(&0x04));
        p.settle();
    }
    let healed_by = p.now.after(t_heal());
    let mut sent_after = Vec::new();
    for n in 0..80u32 {
        let payload = format!("down {n}");
        // An EESE that must offer a keyset first asks to be polled and the
        // payload sent again (`eese_send_settled` does both).
        let _ = p.eese_send_settled(payload.as_bytes());
        if p.now >= healed_by {
            sent_after.push(payload.into_bytes());
        }
        run(&mut p, Duration::from_secs(1), Duration::from_millis(250));
    }
    assert!(!sent_after.is_empty());
    for s in &sent_after {
        assert!(
            p.at_ue.contains(s),
            "{:?} sent after T_heal never arrived",
            String::from_utf8_lossy(s)
        );
    }
}

type Table = EeseTable<UeId, u16, TestRands>;

fn resolve(id: &[u8]) -> Option<(UeId, RootKey)> {
    Some((UeId::new(id).ok()?, test_root(1)))
}

/// Drains a table: persists at once (into `disk`); returns (to, datagram)
/// transmitted.
fn drain_table(t: &mut Table, now: Instant, disk: &mut Vec<u8>) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut snap = vec![0u8; ciot_e2e::endpoint::EESE_SNAPSHOT_LEN];
    for _ in 0..8 {
        while let Some((id, p)) = t.poll_persist(&mut snap) {
            *disk = snap[..p.len()].to_vec();
            t.persisted(&id, p).unwrap();
        }
        while let Some((_, to, tx)) = t.poll_transmit(now, &mut buf) {
            out.push((to, buf[..tx.len].to_vec()));
        }
        while t.poll_event().is_some() {}
    }
    out
}

/// A UE and a table exchanging datagrams; `ue_addr` is where the UE is.
struct Link {
    ue: Ue<64>,
    table: Table,
    now: Instant,
    ue_addr: u16,
    hellos: Vec<Vec<u8>>,
    at_ue: Vec<Vec<u8>>,
    /// The table's last snapshot.
    disk: Vec<u8>,
    /// Octets the table sent to each address, and received from each.
    to: HashMap<u16, usize>,
    from: HashMap<u16, usize>,
}

impl Link {
    fn new() -> Self {
        let id = UeId::new(b"ue-under-test").unwrap();
        Link {
            ue: Ue::new(ue_cfg(), test_root(1), id, test_nonce(1)),
            table: EeseTable::new(eese_cfg(), TestRands::default()),
            now: Instant(1_000),
            ue_addr: 7,
            hellos: Vec::new(),
            at_ue: Vec::new(),
            disk: Vec::new(),
            to: HashMap::new(),
            from: HashMap::new(),
        }
    }

    /// The table takes `d` from `from`; what it sends back goes where it
    /// says, and what reaches the UE's address goes to the UE.
    fn deliver_to_table(&mut self, from: u16, mut d: Vec<u8>) -> Result<Received, Reject> {
        *self.from.entry(from).or_default() += d.len();
        let r = self
            .table
            .handle_datagram(self.now, &from, &mut d, resolve)
            .map(|(_, r)| r);
        self.pump_table();
        r
    }

    fn pump_table(&mut self) {
        for (to, d) in drain_table(&mut self.table, self.now, &mut self.disk) {
            *self.to.entry(to).or_default() += d.len();
            if to == self.ue_addr {
                let mut d = d;
                if let Ok(Received::Data(x)) = self.ue.handle_datagram(self.now, &mut d) {
                    self.at_ue.push(d[x.payload].to_vec());
                }
            }
        }
    }

    /// The UE says what it has to say, and the table hears it (hellos are
    /// also kept, as an eavesdropper would).
    fn pump(&mut self) {
        let mut out = [0u8; 512];
        for _ in 0..8 {
            let mut sent = Vec::new();
            while let Ok(Some(t)) = self.ue.poll_transmit(self.now, &mut out) {
                sent.push(out[..t.len].to_vec());
            }
            while self.ue.poll_event().is_some() {}
            if sent.is_empty() {
                return;
            }
            for d in sent {
                if d.get(1) == Some(&0x04) {
                    self.hellos.push(d.clone());
                }
                let _ = self.deliver_to_table(self.ue_addr, d);
            }
        }
    }

    fn send_down(&mut self, payload: &[u8]) {
        let id = UeId::new(b"ue-under-test").unwrap();
        let mut out = vec![0u8; 512];
        if let Ok(SendOutcome::Sent { sealed, to }) =
            self.table.send(self.now, &id, payload, &mut out)
        {
            *self.to.entry(to).or_default() += sealed.len;
            if to == self.ue_addr {
                let mut d = out[..sealed.len].to_vec();
                if let Ok(Received::Data(x)) = self.ue.handle_datagram(self.now, &mut d) {
                    self.at_ue.push(d[x.payload].to_vec());
                }
            }
        }
        self.pump_table();
    }
}

/// Issue item 6: evicting a session forgot its hello numbers: a captured
/// hello replayed from an attacker's address made the session again, was
/// answered there and moved the UE there. Now the table remembers the
/// evicted session's hello marks: the replay is stale and leaves nothing.
#[test]
fn an_evicted_session_keeps_its_hello_numbers_so_a_replayed_hello_moves_no_ue() {
    let mut l = Link::new();
    l.pump();
    l.send_down(b"before");
    l.pump();
    assert_eq!(l.at_ue, [b"before".to_vec()]);
    let id = UeId::new(b"ue-under-test").unwrap();
    assert_eq!(l.table.peer(&id), Some(&7));
    let captured = l.hellos.clone();
    assert!(l.table.remove(&id));
    for h in &captured {
        let r = l.deliver_to_table(666, h.clone());
        assert!(matches!(r, Err(Reject::StaleHello { .. })), "{r:?}");
    }
    assert!(!l.table.contains(&id), "a stale hello made no session");
    assert_eq!(l.to.get(&666), None, "nothing answered at the attacker's");
    // The real UE's next hello is fresh: served again where it is.
    l.ue.handle_timeout(l.now.after(Duration::from_secs(31)));
    l.now = l.now.after(Duration::from_secs(31));
    l.pump();
    l.send_down(b"after");
    l.pump();
    assert_eq!(l.table.peer(&id), Some(&7));
    assert!(l.at_ue.contains(&b"after".to_vec()));
}

/// Issue item 7: after an EESE restart the application's sends queued up,
/// and a fresh hello relayed from a victim's address sent the trigger and
/// every queued payload there (84 octets in, 16,450 out). Now nothing beyond
/// the hello's own size goes to an address the UE has not proven.
#[test]
fn queued_downlink_never_goes_to_an_address_the_ue_has_not_proven() {
    let mut l = Link::new();
    l.pump();
    // The EESE restarts from its snapshot: no address known.
    let id = UeId::new(b"ue-under-test").unwrap();
    let mut table: Table = EeseTable::new(eese_cfg(), TestRands::default());
    table.restore(id, test_root(1), &l.disk).unwrap();
    l.table = table;
    for n in 0..16u32 {
        l.send_down(format!("queued payload number {n}").as_bytes());
    }
    // The UE's next hello, held by the attacker and relayed from a victim.
    l.now = l.now.after(Duration::from_secs(31));
    l.ue.handle_timeout(l.now);
    let mut out = [0u8; 512];
    let t = l.ue.poll_transmit(l.now, &mut out).unwrap().unwrap();
    let hello = out[..t.len].to_vec();
    let _ = l.deliver_to_table(999, hello.clone());
    assert!(
        l.to.get(&999).copied().unwrap_or(0) <= hello.len(),
        "the victim got {:?} octets for {} ",
        l.to.get(&999),
        hello.len()
    );
    assert_eq!(l.table.peer(&id), None, "not proven by a relayed hello");
    // The UE itself comes through: it uses the offer from its own address,
    // which proves it; the queued payloads follow there.
    l.ue.handle_timeout(l.now.after(Duration::from_secs(2)));
    l.now = l.now.after(Duration::from_secs(2));
    l.pump();
    l.pump_table();
    l.pump();
    assert_eq!(l.table.peer(&id), Some(&7));
    assert_eq!(l.at_ue.len(), 16, "every queued payload, at the UE");
    assert!(l.to.get(&999).copied().unwrap_or(0) <= hello.len());
}

/// Issue item 8: authentic uplink held back and relayed after te2e ran out
/// drew a key-expired error and a trigger per message (6.4× for NIA2). Now
/// answers to refused data count against what its address sent, and data
/// from an address the UE has not proven gets no answer at all.
#[test]
fn held_back_uplink_relayed_after_expiry_draws_no_more_than_it_brought() {
    for suite in [
        ciot_e2e::wire::Suite::NEA2_NIA2,
        ciot_e2e::wire::Suite::AES_128_GCM,
    ] {
        let mut l = Link::new();
        l.table = EeseTable::new(
            EeseConfig {
                suite,
                ..eese_cfg()
            },
            TestRands::default(),
        );
        l.pump();
        // Ten empty payloads, held back by the attacker.
        let mut held = Vec::new();
        let mut out = [0u8; 512];
        for _ in 0..10 {
            l.ue.send(l.now, b"").unwrap();
            while let Ok(Some(t)) = l.ue.poll_transmit(l.now, &mut out) {
                if out[1] == 0x03 {
                    held.push(out[..t.len].to_vec());
                }
            }
            l.now = l.now.after(Duration::from_millis(10));
        }
        l.now = l.now.after(eese_cfg().te2e);
        l.table.handle_timeout(l.now);
        let (in_before, out_before) = (
            l.from.get(&7).copied().unwrap_or(0),
            l.to.get(&7).copied().unwrap_or(0),
        );
        let brought: usize = held.iter().map(Vec::len).sum();
        for d in &held {
            let _ = l.deliver_to_table(7, d.clone());
        }
        let answered = l.to.get(&7).copied().unwrap_or(0) - out_before;
        assert!(
            answered <= brought + in_before,
            "{suite}: {answered} octets answered for {brought} (+{in_before} before)"
        );
        // Aimed at a victim: nothing.
        for d in &held {
            let _ = l.deliver_to_table(555, d.clone());
        }
        assert_eq!(l.to.get(&555), None, "{suite}");
    }
}

/// Issue item 9, at the endpoint: a zero back-off (or back-off = max = 1 ms)
/// made the documented drain loop hand out hellos forever at one instant.
/// Now two hellos never go out at the same instant.
#[test]
fn a_zero_hello_back_off_never_sends_two_hellos_at_one_instant() {
    for (backoff, max) in [(0, 0), (1, 1), (0, 5)] {
        let cfg = UeConfig {
            hello_backoff: Duration::from_millis(backoff),
            hello_backoff_max: Duration::from_millis(max),
            ..ue_cfg()
        };
        let id = UeId::new(b"ue").unwrap();
        let mut ue: Ue<16> = Ue::new(cfg, test_root(1), id, test_nonce(9));
        let mut out = [0u8; 256];
        let mut n = 0;
        while let Ok(Some(_)) = ue.poll_transmit(Instant(5), &mut out) {
            n += 1;
            assert!(
                n < 3,
                "back-off {backoff}/{max}: a drain loop that never ends"
            );
        }
        assert_eq!(n, 1, "back-off {backoff}/{max}");
        assert!(ue.poll_timeout() > Some(Instant(5)));
    }
}

/// Whatever a restored EESE delivered before the crash is never delivered
/// again (its restored keyset receives nothing), and a restarted UE holds
/// no keyset at all: the EESE's old downlink is unknown to it.
#[test]
fn no_replay_is_delivered_after_a_restore() {
    let mut p = started();
    p.ue_send(b"up");
    p.eese_send(b"down").unwrap();
    p.settle();
    let up = uplink(&p).pop().unwrap().2;
    let down = p
        .sent_by_eese
        .iter()
        .rfind(|d| DataPacket::new_checked(&d[..]).is_ok())
        .unwrap()
        .clone();
    p.crash_eese(None);
    assert_eq!(p.deliver_to_eese(up), Err(Reject::RetiredKsi(Ksi(0))));
    p.restart_ue();
    assert_eq!(p.deliver_to_ue(down), Err(Reject::UnknownKsi(Ksi(0))));
    assert_eq!((p.at_eese.len(), p.at_ue.len()), (1, 1));
}

/// An EESE that lost its state (or was restored from an old backup,
/// outside the contract) and a UE that holds a newer keyset: the UE's hello
/// carries its counter and the EESE offers above it.
#[test]
fn eese_behind_the_ue_heals_without_outside_help() {
    let mut p = started();
    for _ in 0..3 {
        p.ue_send(b"x");
        p.eese.rekey(p.now);
        p.settle();
    }
    let held = ue_counter(&p);
    // The EESE comes back with nothing.
    p.eese_disk.clear();
    p.crash_eese(None);
    let start = p.now;
    let mut n = 0;
    while p.at_eese.len() < 4 || p.at_ue.is_empty() {
        n += 1;
        let _ = p.ue.send(p.now, format!("up {n}").as_bytes());
        let _ = p.eese_send(format!("down {n}").as_bytes());
        run(&mut p, Duration::from_secs(1), Duration::from_millis(250));
        assert!(start.until(p.now) < t_heal() * 2, "not healed");
    }
    let (u, e) = (p.ue.status().unwrap(), p.eese.status(p.now).keyset.unwrap());
    assert_eq!((u.ksi, u.counter), (e.ksi, e.counter));
    assert!(
        u.counter > held,
        "the new keyset is above what the UE accepted"
    );
}

/// The answers to the UE's contact under an expired keyset are lost;
/// neither side waits for the other: the UE's probe gets the offer and,
/// since it may have missed it, the error naming its message again.
#[test]
fn lost_error_and_trigger_are_recovered_and_the_message_still_arrives() {
    let mut p = started_quiet();
    p.advance(eese_cfg().te2e);
    p.ue_send(b"important");
    // Deliver the UE's data; lose both answers.
    for d in std::mem::take(&mut p.to_eese) {
        let _ = p.deliver_to_eese(d);
    }
    assert_eq!(
        types(&p.to_ue),
        [MessageType::KEY_EXPIRED, MessageType::DERIVE_TRIGGER]
    );
    p.to_ue.clear();
    run(&mut p, t_heal(), Duration::from_millis(250));
    assert_eq!(
        p.at_eese
            .iter()
            .filter(|m| m.as_slice() == b"important")
            .count(),
        1,
        "delivered, once"
    );
}

/// After a rekey, a replay of an old, delivered uplink message is not
/// refused by name, so the UE never sends that payload again.
#[test]
fn replayed_old_uplink_never_makes_the_ue_resend_a_delivered_payload() {
    let mut p = started();
    p.ue_send(b"once");
    p.settle();
    let old = uplink(&p).pop().unwrap().2;
    p.eese.expire_now(p.now);
    let _ = p.eese_send_settled(b"after");
    p.settle();
    p.advance(Duration::from_secs(10));
    let before = p.sent_by_eese.len();
    let r = p.deliver_to_eese(old);
    assert!(
        matches!(r, Err(Reject::Replayed { .. } | Reject::UnknownKsi(_))),
        "{r:?}"
    );
    assert!(
        !types(&p.sent_by_eese[before..]).contains(&MessageType::KEY_EXPIRED),
        "no error names a delivered message"
    );
    run(&mut p, t_heal(), Duration::from_millis(250));
    assert_eq!(
        p.at_eese.iter().filter(|m| m.as_slice() == b"once").count(),
        1
    );
}

/// Spoofed input does not use up what a real hello gets: the UE's hellos
/// are answered whatever arrives beside them.
#[test]
fn spoofed_input_never_starves_a_hello() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.drain();
    let hello = p.to_eese.pop().unwrap();
    // 100 spoofed datagrams a second for ten seconds, then the hello.
    for i in 0..1000u32 {
        let mut junk = vec![0x03, 0x03, (i % 7) as u8, 0, 0x02, 0, 0, 0, 0];
        junk.extend_from_slice(&[0xee; 40]);
        let _ = p.deliver_to_eese(junk);
        if i % 10 == 0 {
            p.advance(Duration::from_millis(100));
        }
    }
    p.to_ue.clear();
    p.deliver_to_eese(hello).unwrap();
    assert_eq!(types(&p.to_ue), [MessageType::DERIVE_TRIGGER]);
    p.settle();
    assert!(p.ue.status().is_some_and(|s| s.usable));
}

/// Input the EESE cannot authenticate is never answered with more octets
/// than its address sent, counted over everything from it.
#[test]
fn unauthenticated_input_is_never_answered_with_more_octets_than_it_carried() {
    let mut p = started();
    let (mut got, mut sent) = (0usize, 0usize);
    for len in [0usize, 13, 13, 13, 13, 25, 40] {
        let mut junk = vec![0x03, 0x03, 0x09, 0, 0x01, 0, 0, 0, 1];
        junk.resize(len.max(9), 0x44);
        junk.truncate(len);
        p.advance(Duration::from_secs(1));
        let before = p.sent_by_eese.len();
        let _ = p.deliver_to_eese(junk);
        got += len;
        sent += p.sent_by_eese[before..]
            .iter()
            .filter(|d| Message::parse(d).is_ok_and(|m| m.message_type() != MessageType::DATA))
            .map(Vec::len)
            .sum::<usize>();
        assert!(sent <= got + 168, "{sent} octets answered to {got}");
    }
    assert!(sent > 0, "answered once the budget allowed");
}

/// A RAND source that repeats never repeats a (key, nonce): the keys are
/// bound to the trigger counter (and the UE start).
#[test]
fn a_repeating_rand_source_never_repeats_a_key_and_nonce() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.eese = Eese::new(
        eese_cfg(),
        test_root(1),
        TestRands {
            repeat: true,
            ..TestRands::default()
        },
    );
    p.settle();
    p.ue_send(b"same");
    p.settle();
    let k1 =
        p.ue.current_keys()
            .map(|k| (k.0.clone(), k.1.clone()))
            .unwrap();
    p.eese.rekey(p.now);
    p.settle();
    p.ue_send(b"same");
    p.settle();
    let k2 =
        p.ue.current_keys()
            .map(|k| (k.0.clone(), k.1.clone()))
            .unwrap();
    assert_eq!(k1.0, k2.0, "the same RAND twice");
    assert_ne!(k1.1, k2.1, "but other keys");
    assert_no_nonce_reuse(&test_root(1), &starts(&p), &all_datagrams(&p));
}

/// The EESE's boundary case: a repeating RAND source and an EESE restored
/// from a backup older than `COUNTER_RESERVE` offers. Its counters restart
/// above the clock's floor, so even then no keyset it makes equals one it
/// made before.
#[test]
fn an_eese_backup_older_than_the_counter_reserve_never_repeats_a_keyset() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.eese = Eese::new(
        eese_cfg(),
        test_root(1),
        TestRands {
            repeat: true,
            ..TestRands::default()
        },
    );
    p.settle();
    p.eese_send_settled(b"d0").unwrap();
    p.settle();
    let backup = p.eese_disk.last().unwrap().clone();
    for i in 0..1100u32 {
        p.eese.rekey(p.now);
        p.settle();
        if i % 100 == 0 {
            p.eese_send_settled(format!("d{i}").as_bytes()).unwrap();
            p.settle();
        }
        p.advance(Duration::from_millis(1));
    }
    // Back to the backup, with a RAND source that repeats.
    p.eese_disk.push(backup);
    p.advance(Duration::from_millis(5));
    p.crash_eese(None);
    p.eese = Eese::restore(
        eese_cfg(),
        test_root(1),
        TestRands {
            repeat: true,
            ..TestRands::default()
        },
        p.eese_disk.last().unwrap(),
    )
    .unwrap();
    for i in 0..5u32 {
        let _ = p.eese_send_settled(format!("after {i}").as_bytes());
        p.ue_send(format!("up {i}").as_bytes());
        run(&mut p, Duration::from_secs(2), Duration::from_millis(500));
    }
    assert!(p.at_ue.contains(&b"after 4".to_vec()));
    assert_no_nonce_reuse(&test_root(1), &starts(&p), &all_datagrams(&p));
}

/// The held payload is never printed; te2e holds on every send and receive
/// even when the timer runs late.
#[test]
fn held_payload_is_not_printed_and_te2e_holds_without_timers() {
    let mut p = started();
    p.ue.send(p.now, b"secret-reading-42").unwrap();
    assert!(!format!("{:?}", p.ue).contains("secret"));
    assert!(!format!("{:?}", p.ue).contains(&hex(b"secret")));
    p.settle();
    // Past te2e and the UE's grace, no timer run.
    p.now = p
        .now
        .after(eese_cfg().te2e + ue_cfg().grace + Duration::from_secs(1));
    // The last payload went out under a keyset that has stopped: until the
    // EESE answers the UE's hello, it may yet be named refused, so no new
    // payload takes its place.
    assert!(p.ue.busy(p.now));
    assert_eq!(p.ue.send(p.now, b"late"), Err(SendError::Busy));
    let mut out = [0u8; 512];
    while let Ok(Some(t)) = p.ue.poll_transmit(p.now, &mut out) {
        let d = DataPacket::new_checked(&out[..t.len]);
        assert!(d.is_err(), "no data under the expired keyset");
    }
    // The EESE refuses data under its expired keyset, timer or not.
    let mut q = started();
    q.ue.send(q.now, b"x").unwrap();
    q.drain();
    let d = q.to_eese.pop().unwrap();
    q.now = q.now.after(eese_cfg().te2e);
    assert_eq!(q.deliver_to_eese(d), Err(Reject::ExpiredKsi(Ksi(0))));
    assert!(q.at_eese.is_empty());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A UE that only listens keeps receiving while an offer to it is lost:
/// the keyset in use goes on until the UE uses the next one.
#[test]
fn a_listening_ue_keeps_receiving_while_an_offer_to_it_is_lost() {
    let cfg = UeConfig {
        keepalive: None,
        probe_after: None,
        ..ue_cfg()
    };
    let mut p = Pair::started(cfg, eese_cfg());
    p.eese.rekey(p.now);
    p.drain();
    p.to_ue.clear();
    // The timer's repeats are lost too.
    for _ in 0..10 {
        p.advance(Duration::from_secs(2));
        p.to_ue.clear();
    }
    p.eese_send(b"to a listening UE").unwrap();
    p.settle();
    assert_eq!(p.at_ue, [b"to a listening UE".to_vec()]);
}

/// Once found by fuzzing the old endpoint: a payload too long for the hold
/// buffer went out, and an error naming its KSI made the UE "retransmit" the
/// emptied buffer. Now the UE refuses such a payload and holds nothing.
#[test]
fn a_payload_longer_than_the_hold_buffer_is_refused_and_nothing_is_resent() {
    let mut p = started_quiet();
    p.ue_send(b"kept");
    p.settle();
    assert_eq!(
        p.ue.send(p.now, &[0x55; 65]),
        Err(ciot_e2e::endpoint::SendError::PayloadTooLong { len: 65, max: 64 })
    );
    p.advance(eese_cfg().te2e);
    p.ue_send(b"next");
    p.settle();
    assert_eq!(p.at_eese, [b"kept".to_vec(), b"next".to_vec()]);
}

/// An EESE snapshot is refused if it was cut short, damaged, of another
/// root or of format 2; nothing is built then.
#[test]
fn damaged_or_foreign_snapshots_are_refused() {
    let p = started();
    let snap = p.eese_disk.last().unwrap().clone();
    let restore =
        |s: &[u8], seed| Eese::restore(eese_cfg(), test_root(seed), TestRands::default(), s).err();
    assert!(restore(&snap, 1).is_none());
    assert!(restore(&snap[..snap.len() - 1], 1).is_some());
    let mut bad = snap.clone();
    bad[10] ^= 1;
    assert!(restore(&bad, 1).is_some(), "checksum");
    assert!(restore(&snap, 2).is_some(), "another root");
    let mut v2 = snap.clone();
    v2[3] = b'2';
    assert!(restore(&v2, 1).is_some(), "a format 2 snapshot");
}

/// Lets a UE at `addr` and the table talk until neither has more to say;
/// what the table sends to `addr` reaches the UE, the rest is dropped.
fn converse(table: &mut Table, ue: &mut Ue<64>, addr: u16, now: Instant, disk: &mut Vec<u8>) {
    let mut out = [0u8; 512];
    for _ in 0..8 {
        let mut said = false;
        while let Ok(Some(t)) = ue.poll_transmit(now, &mut out) {
            said = true;
            let mut d = out[..t.len].to_vec();
            let _ = table.handle_datagram(now, &addr, &mut d, resolve);
        }
        while ue.poll_event().is_some() {}
        for (to, mut d) in drain_table(table, now, disk) {
            if to == addr {
                let _ = ue.handle_datagram(now, &mut d);
            }
        }
        if !said {
            return;
        }
    }
}

/// Found by the simulator with storage faults (seed 545): a UE whose proven
/// address another UE had proven since (a NAT gave it to the other), with a
/// hello from a new address on record and downlink queued, made the table's
/// `poll_transmit` spin for ever: the session counted as ready to send its
/// queue, which goes only to a proven address, so every poll put it back on
/// the list with nothing sent. Now a queue without a proven address does not
/// make a session ready, and no session is polled twice in one call.
#[test]
fn queued_downlink_for_a_ue_whose_address_another_ue_took_never_makes_the_table_spin() {
    let (a_id, b_id) = (UeId::new(b"ue-a").unwrap(), UeId::new(b"ue-b").unwrap());
    let mut table: Table = EeseTable::new(eese_cfg(), TestRands::default());
    let mut disk = Vec::new();
    let now = Instant(1_000);
    let mut a: Ue<64> = Ue::new(ue_cfg(), test_root(1), a_id, test_nonce(1));
    let mut b: Ue<64> = Ue::new(ue_cfg(), test_root(1), b_id, test_nonce(2));
    converse(&mut table, &mut a, 1, now, &mut disk);
    converse(&mut table, &mut b, 2, now, &mut disk);
    assert_eq!((table.peer(&a_id), table.peer(&b_id)), (Some(&1), Some(&2)));
    // B starts again behind the NAT that gave A's address to it, and proves
    // it: A no longer has a proven address.
    let mut b: Ue<64> = Ue::new(ue_cfg(), test_root(1), b_id, test_nonce(3));
    converse(&mut table, &mut b, 1, now, &mut disk);
    assert_eq!((table.peer(&a_id), table.peer(&b_id)), (None, Some(&1)));
    // A starts again elsewhere; its hello is heard, the offer lost.
    let mut a: Ue<64> = Ue::new(ue_cfg(), test_root(1), a_id, test_nonce(4));
    let mut out = [0u8; 512];
    let t = a.poll_transmit(now, &mut out).unwrap().unwrap();
    let mut hello = out[..t.len].to_vec();
    let _ = table.handle_datagram(now, &3, &mut hello, resolve);
    let answers = drain_table(&mut table, now, &mut disk);
    assert!(
        answers
            .iter()
            .all(|(to, d)| *to == 3 && d.len() <= hello.len())
    );
    // Downlink for A waits: there is no address to send it to.
    for n in 0..4u8 {
        let sent = table.send(now, &a_id, &[n; 20], &mut out);
        assert!(matches!(sent, Ok(SendOutcome::Queued)), "{sent:?}");
    }
    // Draining ends (the old table never returned from this), and sends A's
    // queue nowhere.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sent = drain_table(&mut table, now, &mut disk);
        let _ = done.send(sent);
    });
    let sent = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("draining the table ends");
    assert!(
        sent.iter()
            .all(|(_, d)| DataPacket::new_checked(&d[..]).is_err()),
        "no data goes to an address A has not proven: {sent:?}"
    );
}

/// Found by the `endpoint` fuzz target (with a te2e of 2 s, shorter than the
/// UE's send interval): a payload that went out as its keyset ran out at the
/// EESE was refused by name, but the refusal went unsent (not paid for, or
/// lost), and the application's next payload took its place at the UE
/// before the EESE's answer to the UE's hello named the first one: it was
/// lost, one payload in five. Now the UE takes no new payload while the last
/// one went out under a keyset that has stopped, until a newer keyset is in.
#[test]
fn a_payload_that_may_yet_be_named_refused_is_never_replaced_by_the_next() {
    let mut p = started_quiet();
    p.ue_send(b"first");
    p.settle();
    assert_eq!(p.at_eese, [b"first".to_vec()]);
    // te2e runs out at the EESE; the UE's keyset still sends for its grace.
    p.advance(eese_cfg().te2e);
    p.ue_send(b"second");
    // Refused by name, with the next offer: both lost on the way.
    p.settle_lossy();
    assert_eq!(p.at_eese, [b"first".to_vec()]);
    // The keyset runs out at the UE too: it asks for the next (the hello is
    // held up), and the application has its next payload.
    p.now = p.now.after(ue_cfg().grace + Duration::from_secs(1));
    p.ue.handle_timeout(p.now);
    assert!(p.ue.busy(p.now), "\"second\" may yet be named refused");
    assert_eq!(p.ue.send(p.now, b"third"), Err(SendError::Busy));
    // The hello gets the refusal again and the offer: "second" goes again.
    p.settle();
    assert_eq!(p.at_eese, [b"first".to_vec(), b"second".to_vec()]);
    assert!(!p.ue.busy(p.now));
    p.ue_send(b"third");
    p.settle();
    assert_eq!(
        p.at_eese,
        [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
}

/// The table's `send` skips the session's rescheduling when only the
/// sequence number moves (its steady state). It must still stop at each
/// boundary the sequence number or the clock crosses: at the soft limit the
/// next send offers a new keyset (and still seals), at the end of te2e the
/// next send seals nothing under the expired keyset but queues the payload
/// behind a new offer, and every payload arrives once, in order, under no
/// (keyset, seq) twice.
#[test]
fn steady_state_sends_still_stop_at_the_soft_limit_and_at_te2e() {
    let id = UeId::new(b"ue-under-test").unwrap();
    let mut l = Link::new();
    l.table = EeseTable::new(
        EeseConfig {
            soft_limit: 4,
            ..eese_cfg()
        },
        TestRands::default(),
    );
    l.pump();
    assert_eq!(l.table.peer(&id), Some(&7));
    let mut out = vec![0u8; 512];
    let mut used = std::collections::HashSet::new();
    let mut sent = Vec::new();
    let mut send = |l: &mut Link, n: usize| -> Option<(u64, u32)> {
        let payload = format!("downlink {n}");
        sent.push(payload.clone());
        match l
            .table
            .send(l.now, &id, payload.as_bytes(), &mut out)
            .unwrap()
        {
            SendOutcome::Sent { sealed, to } => {
                assert_eq!(to, 7);
                assert!(
                    used.insert((sealed.counter, sealed.seq)),
                    "{sealed:?} twice"
                );
                let mut d = out[..sealed.len].to_vec();
                if let Ok(Received::Data(x)) = l.ue.handle_datagram(l.now, &mut d) {
                    l.at_ue.push(d[x.payload].to_vec());
                }
                Some((sealed.counter, sealed.seq))
            }
            SendOutcome::Queued => None,
        }
    };
    // Up to the soft limit: sealed under the keyset in use, nothing else
    // goes out.
    for n in 0..4 {
        assert!(send(&mut l, n).is_some(), "send {n} sealed");
        assert!(drain_table(&mut l.table, l.now, &mut l.disk).is_empty());
    }
    // Past it: still sealed (the keyset is valid), and an offer goes out.
    let (counter, seq) = send(&mut l, 4).expect("sealed past the soft limit");
    assert_eq!(seq, 4);
    let offered = drain_table(&mut l.table, l.now, &mut l.disk);
    assert!(
        offered
            .iter()
            .any(|(to, d)| *to == 7 && d[1] == MessageType::DERIVE_TRIGGER.0),
        "a trigger for the next keyset"
    );
    for (_, mut d) in offered {
        let _ = l.ue.handle_datagram(l.now, &mut d);
    }
    l.pump();
    l.pump_table();
    let (renewed, _) = send(&mut l, 5).expect("sealed under the renewed keyset");
    assert!(renewed > counter, "the next keyset is in use");
    // The previous keyset's grace ends and its timer runs: steady state again.
    l.now = l.now.after(Duration::from_secs(3));
    l.table.handle_timeout(l.now);
    l.pump_table();
    assert!(send(&mut l, 6).is_some(), "send 6 sealed");
    // The clock passes te2e with no timer run: the send seals nothing under
    // the expired keyset.
    l.now = l.now.after(Duration::from_secs(58));
    assert_eq!(send(&mut l, 7), None, "queued behind a new offer");
    l.pump_table();
    l.ue.handle_timeout(l.now);
    l.pump();
    l.pump_table();
    l.pump();
    let sent: Vec<Vec<u8>> = sent.into_iter().map(String::into_bytes).collect();
    assert_eq!(l.at_ue, sent, "each payload once, in order");
}
