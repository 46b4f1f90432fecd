//! The TR 33.863 rekey procedure end to end on a simulated clock, and one
//! regression test for each way the endpoints could once be pushed into
//! reusing a nonce, delivering twice, stalling or amplifying (each named for
//! the behaviour it now shows). No sockets, no sleeping: every datagram is
//! in the test's hands.

use std::time::Duration;

use ciot_e2e::endpoint::{
    Eese, EeseConfig, Event, Instant, Received, Reject, Sent, UE_SNAPSHOT_LEN, Ue, UeConfig,
};
use ciot_e2e::kdf::Rand;
use ciot_e2e::wire::{Cause, DataPacket, Direction, Ksi, Message, MessageType, TriggerPacket};
use ciot_e2e_testkit::pair::{Pair, TestRands, test_root};

fn ue_cfg() -> UeConfig {
    UeConfig {
        grace: Duration::from_secs(2),
        probe_after: Some(Duration::from_secs(5)),
        keepalive: Some(Duration::from_secs(30)),
        hello_backoff: Duration::from_millis(500),
        hello_backoff_max: Duration::from_secs(8),
        send_reserve: 8,
        hello_reserve: 4,
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

/// The healing bound of these settings (docs/SECURITY.md): probe or
/// keepalive silence, hello back-off with jitter, the trigger in front of
/// downlink, a second for the exchange.
fn t_heal() -> Duration {
    let (u, e) = (ue_cfg(), eese_cfg());
    u.probe_after.unwrap().max(u.keepalive.unwrap())
        + u.hello_backoff_max * 5 / 4
        + e.trigger_retransmit_max
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

#[test]
fn hello_trigger_and_data_both_ways() {
    let mut p = started();
    assert_eq!(
        p.ue.status().map(|s| (s.ksi, s.counter, s.usable)),
        Some((Ksi(0), 1, true))
    );
    assert_eq!(
        types(&p.sent_by_ue),
        [MessageType::HELLO],
        "the UE opens with a hello"
    );
    assert_eq!(types(&p.sent_by_eese), [MessageType::DERIVE_TRIGGER]);
    p.ue_send(b"up");
    p.eese_send(b"down").unwrap();
    p.settle();
    assert_eq!(
        (p.at_eese.clone(), p.at_ue.clone()),
        (vec![b"up".to_vec()], vec![b"down".to_vec()])
    );
    assert_eq!(
        p.ue_cfg.profile, p.eese_cfg.profile,
        "the pair shares its KDF profile"
    );
}

#[test]
fn full_tr_sequence_expiry_error_trigger_retransmission() {
    let mut p = started_quiet();
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
    assert!(p.ue_events.contains(&Event::Retransmitted {
        ksi: Ksi(1),
        counter: 2,
        seq: 0
    }));
    assert_eq!(p.at_eese, [b"reading".to_vec()]);
}

#[test]
fn eese_initiated_contact_after_expiry_skips_the_error() {
    let mut p = started_quiet();
    p.advance(eese_cfg().te2e);
    let sent_before = p.sent_by_eese.len();
    p.eese_send(b"command").unwrap();
    p.settle();
    assert_eq!(
        types(&p.sent_by_eese[sent_before..]),
        [MessageType::DERIVE_TRIGGER, MessageType::DATA],
        "trigger first, no error"
    );
    assert_eq!(p.at_ue, [b"command".to_vec()]);
}

#[test]
fn expire_now_makes_the_next_contact_rekey_with_enterprise_cause() {
    let mut p = started();
    p.eese.expire_now(p.now);
    p.drain();
    p.ue_send(b"x");
    p.settle();
    assert!(p.ue_events.contains(&Event::KeysExpired {
        ksi: Ksi(0),
        cause: Cause::EXPIRED_BY_ENTERPRISE
    }));
    assert_eq!(p.at_eese, [b"x".to_vec()]);
    assert_eq!(p.ue.status().map(|s| s.counter), Some(2));
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
    assert_eq!(p.ue.status().map(|s| s.counter), Some(1));
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
    for i in 0..5u8 {
        p.ue_send(&[i]);
        p.settle();
    }
    assert_eq!(p.at_eese.len(), 5);
    assert!(
        p.ue.status().unwrap().counter >= 2,
        "the EESE renewed at uplink seq 3"
    );
}

#[test]
fn trigger_for_another_kdf_profile_is_refused_and_changes_nothing() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.eese = Eese::new(
        EeseConfig {
            profile: ciot_e2e::kdf::KdfProfile::HkdfSha256,
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

// ---- The ten scenarios that once broke the endpoints. ----

/// Scenario 1: a UE that accepted trigger N+1 sends nothing under it before
/// its acceptance is durable; restored from the snapshot of trigger N and
/// fed trigger N+1 again, it never seals a second datagram under a
/// (key, seq) it used.
#[test]
fn replayed_trigger_after_a_restore_never_reuses_a_nonce() {
    let mut p = started();
    p.eese.rekey(p.now);
    p.drain();
    let trigger2 = p.to_ue.pop().unwrap();
    assert!(TriggerPacket::new_checked(&trigger2[..]).is_ok());
    // The UE takes trigger 2; its snapshot write does not complete.
    p.auto_persist = false;
    p.deliver_to_ue(trigger2.clone()).unwrap();
    p.ue.send(p.now, b"first").unwrap();
    let mut out = [0u8; 512];
    assert_eq!(
        p.ue.poll_transmit(p.now, &mut out),
        Ok(None),
        "nothing under keyset 2 leaves before its snapshot is durable"
    );
    // Crash: the durable snapshot is the one of trigger 1.
    p.auto_persist = true;
    p.crash_ue(None);
    // The adversary replays trigger 2: taken again (nothing under it left).
    p.deliver_to_ue(trigger2.clone()).unwrap();
    p.ue_send(b"second, different");
    p.settle();
    // Now crash again after data went out under keyset 2, and replay it.
    p.crash_ue(None);
    assert!(matches!(
        p.deliver_to_ue(trigger2),
        Err(Reject::StaleTrigger { .. })
    ));
    p.ue_send(b"third");
    p.settle();
    let mut seen = std::collections::HashMap::new();
    for (ksi, seq, d) in uplink(&p) {
        if let Some(prev) = seen.insert((ksi, seq), d.clone()) {
            assert_eq!(prev, d, "KSI {ksi} seq {seq} protected two datagrams");
        }
    }
    assert_eq!(
        p.at_eese,
        [b"second, different".to_vec(), b"third".to_vec()]
    );
}

/// Scenario 2: whatever a restored endpoint delivered before the crash is
/// never delivered again: its restored keyset receives nothing.
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
    p.crash_ue(None);
    assert_eq!(p.deliver_to_ue(down), Err(Reject::RetiredKsi(Ksi(0))));
    assert_eq!((p.at_eese.len(), p.at_ue.len()), (1, 1));
}

/// Scenario 3a: an EESE that lost its state (or was restored from an old
/// backup, outside the contract) and a UE that holds a newer keyset: the
/// UE's hello carries its counter and the EESE rekeys above it.
#[test]
fn eese_behind_the_ue_heals_without_outside_help() {
    let mut p = started();
    for _ in 0..3 {
        p.eese.rekey(p.now);
        p.settle();
    }
    assert_eq!(p.ue.last_counter(), 4);
    // The EESE comes back with nothing.
    p.eese_disk.clear();
    p.crash_eese(None);
    let start = p.now;
    let mut n = 0;
    while p.at_eese.is_empty() || p.at_ue.is_empty() {
        n += 1;
        let _ = p.ue.send(p.now, format!("up {n}").as_bytes());
        let _ = p.eese_send(format!("down {n}").as_bytes());
        run(&mut p, Duration::from_secs(1), Duration::from_millis(250));
        assert!(start.until(p.now) < t_heal() * 2, "not healed");
    }
    let (u, e) = (p.ue.status().unwrap(), p.eese.status(p.now).keyset.unwrap());
    assert_eq!((u.ksi, u.counter), (e.ksi, e.counter));
    assert!(
        u.counter > 4,
        "the new keyset is above what the UE accepted"
    );
}

/// Scenario 3b: a UE that missed 256 rekeys holds the KSI the EESE uses
/// again, under other keys. The EESE answers what it cannot open with its
/// trigger (within its budget) and the UE's probe does the rest.
#[test]
fn ue_that_missed_256_rekeys_heals_within_the_bound() {
    let mut p = started();
    for _ in 0..256 {
        p.eese.rekey(p.now);
        p.drain();
        p.to_ue.clear();
    }
    let e = p.eese.status(p.now).keyset.unwrap();
    assert_eq!(
        (e.ksi, p.ue.status().unwrap().ksi),
        (Ksi(0), Ksi(0)),
        "same KSI"
    );
    let start = p.now;
    for n in 0.. {
        let _ = p.ue.send(p.now, format!("up {n}").as_bytes());
        run(&mut p, Duration::from_secs(1), Duration::from_millis(250));
        if !p.at_eese.is_empty() {
            break;
        }
        assert!(start.until(p.now) < t_heal(), "not healed within T_heal");
    }
    assert_eq!(p.ue.status().unwrap().counter, 257);
}

/// Scenario 4: the answers to the UE's contact under an expired keyset are
/// lost; neither side waits for the other: the UE's probe gets the trigger
/// and, since it may have missed it, the error naming its message again.
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
    assert_eq!(p.at_eese, [b"important".to_vec()], "delivered, once");
}

/// Scenario 5: after a rekey whose triggers are lost and the grace period
/// is over, a replay of an old, delivered uplink message is not refused by
/// name, so the UE never sends that payload again.
#[test]
fn replayed_old_uplink_never_makes_the_ue_resend_a_delivered_payload() {
    let mut p = started();
    p.ue_send(b"once");
    p.settle();
    let old = uplink(&p).pop().unwrap().2;
    p.eese.expire_now(p.now);
    p.eese_send(b"after").unwrap();
    p.drain();
    p.to_ue.clear();
    p.advance(Duration::from_secs(10));
    p.to_ue.clear();
    let before = p.sent_by_eese.len();
    assert!(matches!(
        p.deliver_to_eese(old),
        Err(Reject::Replayed { .. })
    ));
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

/// Scenario 6: spoofed input does not use up what a real hello gets: the
/// UE's hellos are answered whatever arrives beside them.
#[test]
fn spoofed_input_never_starves_a_hello() {
    let mut p = Pair::new(ue_cfg(), eese_cfg(), test_root(1));
    p.drain();
    let hello = p.to_eese.pop().unwrap();
    // 100 spoofed datagrams a second for ten seconds, then the hello.
    for i in 0..1000u32 {
        let mut junk = vec![0x02, 0x03, (i % 7) as u8, 0, 0x02, 0, 0, 0, 0];
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

/// Scenario 8: input the EESE cannot authenticate is never answered with
/// more octets than it carried, counted over everything from the source.
#[test]
fn unauthenticated_input_is_never_answered_with_more_octets_than_it_carried() {
    let mut p = started();
    let (mut got, mut sent) = (0usize, 0usize);
    for len in [0usize, 13, 13, 13, 13, 25, 40] {
        let mut junk = vec![0x02, 0x03, 0x09, 0, 0x01, 0, 0, 0, 1];
        junk.resize(len.max(9), 0x44);
        junk.truncate(len);
        p.advance(Duration::from_secs(1));
        let before = p.sent_by_eese.len();
        let _ = p.deliver_to_eese(junk);
        got += len;
        sent += p.sent_by_eese[before..].iter().map(Vec::len).sum::<usize>();
        assert!(sent <= got, "{sent} octets answered to {got}");
    }
    assert!(sent > 0, "answered once the budget allowed");
}

/// Scenario 9: a RAND source that repeats never repeats a (key, nonce):
/// the keys are bound to the trigger counter.
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
    let up = uplink(&p);
    assert_eq!(up.len(), 2);
    assert_eq!((up[0].1, up[1].1), (0, 0), "seq 0 under each");
    assert_ne!(
        up[0].2[9..],
        up[1].2[9..],
        "the same payload, other ciphertext"
    );
}

/// Scenario 10: the held payload is never printed; te2e holds on every
/// send and receive even when the timer runs late.
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
    assert_eq!(
        p.ue.send(p.now, b"late"),
        Ok(Sent::Held),
        "no keyset to send under"
    );
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

/// While the UE has not confirmed a keyset, the EESE puts the trigger in
/// front of downlink at least every `trigger_retransmit_max`: a UE that only
/// listens gets the keyset with the next payload, not at its keepalive.
#[test]
fn a_listening_ue_gets_a_lost_trigger_in_front_of_the_next_payload() {
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
    p.advance(eese_cfg().trigger_retransmit_max);
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

/// A snapshot is refused if it was cut short, damaged, of the other kind or
/// of another root; nothing is built then.
#[test]
fn damaged_or_foreign_snapshots_are_refused() {
    let p = started();
    let snap = p.ue_disk.last().unwrap().clone();
    let esnap = p.eese_disk.last().unwrap().clone();
    let id = *p.ue.id();
    let ue = |s: &[u8], r| Ue::<64>::restore(ue_cfg(), r, id, 1, s).err();
    assert!(snap.len() <= UE_SNAPSHOT_LEN);
    assert!(ue(&snap[..snap.len() - 1], test_root(1)).is_some());
    let mut bad = snap.clone();
    bad[10] ^= 1;
    assert!(ue(&bad, test_root(1)).is_some(), "checksum");
    assert!(ue(&snap, test_root(2)).is_some(), "another root");
    assert!(ue(&esnap, test_root(1)).is_some(), "an EESE snapshot");
    assert!(ue(&snap, test_root(1)).is_none());
    assert!(Eese::restore(eese_cfg(), test_root(1), TestRands::default(), &snap).is_err());
    let d = DataPacket::new_checked(&[0u8; 3][..]);
    assert!(d.is_err());
    let _ = (
        Instant(0),
        Received::Control(MessageType::DATA),
        Direction::Uplink,
    );
}
