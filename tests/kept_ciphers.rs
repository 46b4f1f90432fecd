//! The session table keeps expanded ciphers only for the sessions that used
//! them most recently, and a session whose ciphers it dropped works on.

#![cfg(feature = "kept-ciphers")]

use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Instant, Received, SendOutcome, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind, UeNonce};

type Table = EeseTable<u8, u8, fn() -> Option<Rand>>;

fn root(i: u8) -> RootKey {
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes([i; 32]))
}

fn rands() -> Option<Rand> {
    Some(Rand([9; 16]))
}

/// The nonce of UE `i`'s (one) start.
fn nonce(i: u8) -> UeNonce {
    UeNonce::from_bytes([i ^ 0x6b; 16])
}

/// Runs both sides until neither has anything to do.
fn settle(t: &mut Table, ues: &mut [Ue<64>], now: Instant) -> Vec<(u8, Vec<u8>)> {
    let mut delivered = Vec::new();
    let (mut a, mut snap) = ([0u8; 256], [0u8; EESE_SNAPSHOT_LEN]);
    for _ in 0..8 {
        for (i, ue) in ues.iter_mut().enumerate() {
            while let Some(x) = ue.poll_transmit(now, &mut a).unwrap() {
                let id = i as u8;
                let r = t.handle_datagram(now, &id, &mut a[..x.len], |_| Some((id, root(id))));
                if let Ok((_, Received::Data(d))) = r {
                    delivered.push((id, a[d.payload].to_vec()));
                }
            }
            while ue.poll_event().is_some() {}
        }
        while let Some((id, p)) = t.poll_persist(&mut snap) {
            t.persisted(&id, p).unwrap();
        }
        while let Some((_, to, x)) = t.poll_transmit(now, &mut a) {
            let _ = ues[to as usize].handle_datagram(now, &mut a[..x.len]);
        }
    }
    delivered
}

#[test]
fn only_recently_active_sessions_keep_ciphers_and_the_others_still_work() {
    let cfg = EeseConfig {
        te2e: Duration::from_secs(3600),
        ..EeseConfig::default()
    };
    let mut t: Table = EeseTable::new(cfg, rands);
    t.set_kept_ciphers(2);
    let now = Instant(1_000);
    let mut ues: Vec<Ue<64>> = (0..5u8)
        .map(|i| {
            let id = UeId::new(&[b'u', i]).unwrap();
            Ue::new(UeConfig::default(), root(i), id, nonce(i))
        })
        .collect();
    for (i, ue) in ues.iter_mut().enumerate() {
        ue.send(now, &[b'a', i as u8]).unwrap();
    }
    let got = settle(&mut t, &mut ues, now);
    assert_eq!(got.len(), 5, "every first payload arrives: {got:?}");
    assert!(
        t.kept_ciphers() <= 2,
        "{} sessions keep ciphers",
        t.kept_ciphers()
    );
    // Every session, with ciphers kept or not, goes on both ways.
    for round in 0..3u8 {
        for i in 0..5u8 {
            let mut out = [0u8; 128];
            match t.send(now, &i, &[b'd', i, round], &mut out).unwrap() {
                SendOutcome::Sent { sealed, to } => {
                    assert_eq!(to, i);
                    let r = ues[i as usize].handle_datagram(now, &mut out[..sealed.len]);
                    match r {
                        Ok(Received::Data(d)) => assert_eq!(&out[d.payload], &[b'd', i, round]),
                        other => panic!("UE {i}: {other:?}"),
                    }
                }
                SendOutcome::Queued => panic!("UE {i}: queued"),
            }
            ues[i as usize].send(now, &[b'u', i, round]).unwrap();
        }
        let got = settle(&mut t, &mut ues, now);
        assert_eq!(got.len(), 5, "round {round}: {got:?}");
        assert!(t.kept_ciphers() <= 2);
    }
    assert!(
        t.kept_ciphers() >= 1,
        "the most recent sessions keep theirs"
    );
    t.set_kept_ciphers(0);
    assert_eq!(t.kept_ciphers(), 0);
}
