//! Downlink the enterprise handed over survives the EESE: two payloads
//! `admin send` answered "queued" for (the UE's keys expired, the UE
//! silent) are in the state file, not only in the process; the EESE stops
//! without a word (as a crash leaves it: only what was committed is
//! there), a new process starts on the same file, and the UE, once it
//! speaks again, gets both, in order, once.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::{EeseService, ServiceConfig};

mod common;
use common::{Device, metric};

/// An EESE service on `d`'s state file, stopped after `life`: its UDP and
/// admin addresses, and the thread to join.
fn eese(
    d: &Path,
    emks: &str,
    life: Duration,
) -> (SocketAddr, AdminClient, std::thread::JoinHandle<()>) {
    let mut cfg = ServiceConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        emks,
        d.join("tls"),
        d.join("eese.state"),
    );
    cfg.init_state = true;
    cfg.admin = Some(
        AdminConfig::from_files(
            "127.0.0.1:0".parse().unwrap(),
            &d.join("tls"),
            &d.join("tls/admin.token"),
            None,
        )
        .unwrap(),
    );
    cfg.max_sessions = 10;
    cfg.idle_timeout = Duration::from_secs(60);
    cfg.exit_after = Some(life);
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut s = EeseService::start(cfg, |u, a, _| tx.send((u, a)).unwrap()).unwrap();
        s.run().unwrap();
    });
    let (udp, admin) = rx.recv().unwrap();
    let token = std::fs::read_to_string(d.join("tls/admin.token")).unwrap();
    let admin = AdminClient::new(
        &format!("https://{}", admin.unwrap()),
        &d.join("tls"),
        &token,
    )
    .unwrap();
    (udp, admin, h)
}

#[test]
fn queued_downlink_survives_a_stop_of_the_eese_and_goes_out_in_order_once() {
    let d = std::env::temp_dir().join(format!("ciot-svc-downlink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let (emks, hss) = common::emks(&d);
    hss.provision(b"ue-d", "acme", "3gpp", &[0x31; 32]).unwrap();

    let (udp, admin, first) = eese(&d, &emks, Duration::from_secs(5));
    // A UE whose uplink goes unanswered says hello after half a second, and
    // one that hears nothing authentic for a second too (the restarted EESE
    // knows no session at its address until a hello).
    let cfg = UeConfig {
        probe_after: Some(Duration::from_millis(500)),
        keepalive: Some(Duration::from_secs(1)),
        hello_backoff: Duration::from_millis(100),
        hello_backoff_max: Duration::from_millis(500),
        ..UeConfig::default()
    };
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x31; 32]));
    let mut dev = Device::new(
        Ue::new(
            cfg,
            root,
            UeId::new(b"ue-d").unwrap(),
            UeNonce::random().unwrap(),
        ),
        udp,
    );
    dev.run(Duration::from_secs(2));
    assert!(dev.ue.status().is_some(), "no keyset from the EESE");
    assert_eq!(admin.send("ue-d", b"now").unwrap()["outcome"], "sent");
    dev.run(Duration::from_millis(300));
    assert_eq!(dev.got, vec![b"now".to_vec()]);

    // The UE falls silent; its keys expire; two payloads wait for it.
    admin.expire("ue-d").unwrap();
    for p in [&b"first"[..], b"second"] {
        let r = admin.send("ue-d", p).unwrap();
        assert_eq!(r["outcome"], "queued", "{r}");
    }
    assert_eq!(
        metric(&admin.metrics().unwrap(), "ciot_eese_downlink_waiting"),
        2
    );
    first.join().unwrap();

    // A new process on the same state file.
    let (udp, admin, second) = eese(&d, &emks, Duration::from_secs(12));
    assert_eq!(
        metric(&admin.metrics().unwrap(), "ciot_eese_downlink_waiting"),
        2,
        "the queued downlink did not outlive the process"
    );
    // The UE speaks again (an uplink: the restarted EESE refuses its
    // keyset, the UE says hello, its session is restored and rekeyed).
    dev.to = udp;
    let now = dev.now();
    dev.ue.send(now, b"ping").unwrap();
    let downlink = |dev: &Device| -> Vec<Vec<u8>> {
        dev.got
            .iter()
            .filter(|g| !g.starts_with(b"echo: "))
            .cloned()
            .collect()
    };
    let t = StdInstant::now();
    while downlink(&dev).len() < 3 && t.elapsed() < Duration::from_secs(8) {
        dev.run(Duration::from_millis(200));
    }
    dev.run(Duration::from_millis(300));
    assert_eq!(
        downlink(&dev),
        vec![b"now".to_vec(), b"first".to_vec(), b"second".to_vec()],
        "the stored downlink did not reach the UE in order, once"
    );
    assert_eq!(
        metric(&admin.metrics().unwrap(), "ciot_eese_downlink_waiting"),
        0
    );
    second.join().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}
