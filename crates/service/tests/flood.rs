//! Hellos naming UEs nobody provisioned cost the EMKS a bounded number of
//! fetches (a token bucket for UEs the EESE holds nothing for, and 404s
//! believed for a while), and a provisioned UE is served all along.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Instant, Received, Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::eese::{EeseService, ServiceConfig};

mod common;

/// The hello a fresh UE with this id sends first.
fn hello(id: &[u8]) -> Vec<u8> {
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x77; 32]));
    let mut ue: Ue<64> = Ue::new(
        UeConfig::default(),
        root,
        UeId::new(id).unwrap(),
        UeNonce::random().unwrap(),
    );
    let mut out = vec![0u8; Ue::<64>::MAX_DATAGRAM];
    let t = ue
        .poll_transmit(Instant::from_millis(0), &mut out)
        .unwrap()
        .unwrap();
    out.truncate(t.len);
    out
}

#[test]
fn three_thousand_hellos_of_unknown_ues_cost_at_most_three_hundred_fetches() {
    let d = std::env::temp_dir().join(format!("ciot-svc-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let (emks, hss) = common::emks(&d);
    hss.provision(b"known ue", "acme", "3gpp", &[0x21; 32])
        .unwrap();

    let mut cfg = ServiceConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        emks,
        d.join("tls"),
        d.join("eese.state"),
    );
    cfg.max_sessions = 100;
    cfg.idle_timeout = Duration::from_secs(60);
    cfg.exit_after = Some(Duration::from_secs(20));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (utx, urx) = mpsc::channel();
        let mut s = EeseService::start(cfg, |u, _, _| utx.send(u).unwrap()).unwrap();
        tx.send((urx.recv().unwrap(), s.metrics())).unwrap();
        let _ = s.run();
    });
    let (udp, metrics) = rx.recv().unwrap();

    // The flood: 3,000 distinct unknown ids in 3 s, from one socket.
    let hellos: Vec<Vec<u8>> = (0..3000)
        .map(|i| hello(format!("nobody-{i}").as_bytes()))
        .collect();
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The provisioned UE, served while the flood goes on.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x21; 32]));
    let t0 = StdInstant::now();
    let now = || Instant::from_millis(t0.elapsed().as_millis() as u64);
    let mut ue: Ue<256> = Ue::new(
        UeConfig {
            hello_backoff: Duration::from_millis(100),
            hello_backoff_max: Duration::from_millis(300),
            ..UeConfig::default()
        },
        root,
        UeId::new(b"known ue").unwrap(),
        UeNonce::random().unwrap(),
    );
    let mut out = vec![0u8; 2048];
    let mut buf = vec![0u8; 2048];
    let mut echoes = 0;
    let mut sent_payloads = 0u32;
    let mut next_payload = StdInstant::now();
    for (i, h) in hellos.iter().enumerate() {
        flood.send_to(h, udp).unwrap();
        // 1,000 a second.
        let due = t0 + Duration::from_millis(i as u64);
        while StdInstant::now() < due {
            ue.handle_timeout(now());
            while let Ok(Some(t)) = ue.poll_transmit(now(), &mut out) {
                sock.send_to(&out[..t.len], udp).unwrap();
            }
            if let Ok(n) = sock.recv(&mut buf)
                && let Ok(Received::Data(_)) = ue.handle_datagram(now(), &mut buf[..n])
            {
                echoes += 1;
            }
            if StdInstant::now() >= next_payload && ue.status().is_some() && !ue.busy(now()) {
                next_payload = StdInstant::now() + Duration::from_millis(200);
                if ue.send(now(), b"still here").is_ok() {
                    sent_payloads += 1;
                }
            }
        }
    }
    let flood_secs = t0.elapsed().as_secs_f64();
    // Let the last fetches end.
    std::thread::sleep(Duration::from_millis(500));
    // Every fetch the EESE made, whatever its answer (the known UE's one
    // among them).
    let fetches_at_emks = metrics.emks_fetches_ok.load(Ordering::Relaxed)
        + metrics.emks_fetches_failed.load(Ordering::Relaxed);
    println!(
        "flood: 3000 hellos in {flood_secs:.2} s; EMKS fetches for unknown ids {fetches_at_emks}; \
         the known UE: {sent_payloads} payloads, {echoes} echoes"
    );
    assert!(flood_secs < 3.5, "the flood took {flood_secs:.2} s");
    assert!(
        fetches_at_emks <= 300,
        "{fetches_at_emks} EMKS fetches for 3,000 hellos of unknown UEs"
    );
    assert!(
        echoes >= 5 && echoes + 2 >= sent_payloads,
        "the known UE was not served during the flood: {echoes} echoes of {sent_payloads}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
