//! Two EESE services on one PostgreSQL database, in one process: a UE
//! served by A gets the downlink that the enterprise handed to B's admin
//! interface; B's `show` names A; when the UE moves to B (its hello there),
//! B takes it over, A hears of it and drops the session, and A's admin
//! interface then says B serves it. Skipped (and said) without PostgreSQL.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::{EeseService, ServiceConfig};
use ciot_e2e_testkit::postgres::Cluster;

mod common;
use common::{Device, metric};

fn eese(
    d: &Path,
    emks: &str,
    url: &str,
    name: &str,
    life: Duration,
) -> (SocketAddr, AdminClient, std::thread::JoinHandle<()>) {
    let mut cfg = ServiceConfig::new("127.0.0.1:0".parse().unwrap(), emks, d.join("tls"), url);
    cfg.instance = Some(name.into());
    cfg.admin = Some(
        AdminConfig::from_files(
            "127.0.0.1:0".parse().unwrap(),
            &d.join("tls"),
            &d.join("tls/admin.token"),
            None,
        )
        .unwrap(),
    );
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

fn wait_for(dev: &mut Device, what: &[u8], secs: u64) -> bool {
    let t = StdInstant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if dev.got.iter().any(|g| g == what) {
            return true;
        }
        dev.run(Duration::from_millis(100));
    }
    false
}

#[test]
fn downlink_and_show_through_any_instance_and_a_ue_moved_by_its_hello() {
    let Some(pg) = Cluster::start() else { return };
    let d = std::env::temp_dir().join(format!("ciot-svc-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let (emks, hss) = common::emks(&d);
    hss.provision(b"ue-s", "acme", "3gpp", &[0x41; 32]).unwrap();
    let life = Duration::from_secs(25);
    let (udp_a, admin_a, ha) = eese(&d, &emks, &pg.url(), "a", life);
    let (udp_b, admin_b, hb) = eese(&d, &emks, &pg.url(), "b", life);

    let cfg = UeConfig {
        probe_after: Some(Duration::from_millis(500)),
        hello_backoff: Duration::from_millis(100),
        hello_backoff_max: Duration::from_millis(500),
        ..UeConfig::default()
    };
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x41; 32]));
    let mut dev = Device::new(
        Ue::new(
            cfg,
            root,
            UeId::new(b"ue-s").unwrap(),
            UeNonce::random().unwrap(),
        ),
        udp_a,
    );
    let now = dev.now();
    dev.ue.send(now, b"hello a").unwrap();
    assert!(wait_for(&mut dev, b"echo: hello a", 10), "no echo from A");
    assert_eq!(pg.psql("SELECT owner FROM eese_sessions"), "a");

    // B does not hold the UE: its admin interface names A, and downlink
    // handed to it reaches the UE through A.
    let shown = admin_b.show("ue-s").unwrap();
    assert_eq!(shown["served_by"], "a", "{shown}");
    assert_eq!(admin_b.send("ue-s", b"via b").unwrap()["outcome"], "queued");
    assert!(
        wait_for(&mut dev, b"via b", 5),
        "B's downlink did not reach the UE"
    );
    let t = StdInstant::now();
    while pg.psql("SELECT count(*) FROM eese_downlink") != "0"
        && t.elapsed() < Duration::from_secs(5)
    {
        dev.run(Duration::from_millis(100));
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM eese_downlink"),
        "0",
        "sent, so deleted"
    );

    // The UE moves to B (its next datagrams there: B has no session at
    // that address, the UE's probe hello follows and B takes it over).
    // The payload that went to B first finds no session there and is
    // lost (the UE sends a payload at most once unless the EESE names it
    // refused); the UE's probe hello moves it, and it sends again, as an
    // application would, once it has a keyset from B.
    dev.to = udp_b;
    let rekeys = dev.rekeys;
    let now = dev.now();
    dev.ue.send(now, b"lost at b").unwrap();
    let t = StdInstant::now();
    while dev.rekeys == rekeys && t.elapsed() < Duration::from_secs(10) {
        dev.run(Duration::from_millis(100));
    }
    assert!(dev.rekeys > rekeys, "no keyset from B");
    let now = dev.now();
    dev.ue.send(now, b"hello b").unwrap();
    assert!(wait_for(&mut dev, b"echo: hello b", 10), "no echo from B");
    assert_eq!(
        pg.psql("SELECT owner || ' ' || epoch FROM eese_sessions"),
        "b 2"
    );
    // A heard of it: its session is gone, and it says who serves the UE.
    let t = StdInstant::now();
    while metric(&admin_a.metrics().unwrap(), "ciot_eese_ues_moved_total") == 0
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(&admin_a.metrics().unwrap(), "ciot_eese_ues_moved_total"),
        1
    );
    assert_eq!(admin_a.show("ue-s").unwrap()["served_by"], "b");
    // Downlink handed to A now reaches the UE through B.
    assert_eq!(admin_a.send("ue-s", b"via a").unwrap()["outcome"], "queued");
    assert!(
        wait_for(&mut dev, b"via a", 5),
        "A's downlink did not reach the UE"
    );
    assert_eq!(
        dev.got.iter().filter(|g| g.as_slice() == b"via b").count(),
        1,
        "delivered once"
    );
    drop((admin_a, admin_b));
    ha.join().unwrap();
    hb.join().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

/// A hello an attacker replays (captured: authentic, stale) or forges, sent
/// again and again to an instance that does not hold the UE, costs that
/// instance at most one database read: the first one restores the session
/// (the UE's row, written by the instance that serves it), which refuses
/// the replays from memory; a forged one is refused before the database is
/// asked. (A first version took the restored session out again when its
/// hello was refused, so every replay read the row again.)
#[test]
fn replayed_or_forged_hellos_cost_at_most_one_database_read() {
    let Some(pg) = Cluster::start() else { return };
    let d = std::env::temp_dir().join(format!("ciot-svc-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let (emks, hss) = common::emks(&d);
    hss.provision(b"ue-r", "acme", "3gpp", &[0x42; 32]).unwrap();
    let life = Duration::from_secs(12);
    let (udp_a, _admin_a, ha) = eese(&d, &emks, &pg.url(), "a", life);
    let (udp_b, admin_b, hb) = eese(&d, &emks, &pg.url(), "b", life);
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x42; 32]));
    let mut ue: Ue<256> = Ue::new(
        UeConfig::default(),
        root,
        UeId::new(b"ue-r").unwrap(),
        UeNonce::random().unwrap(),
    );
    // The UE's first hello, kept by the attacker; the UE goes on with A.
    let mut dev = Device::new(ue_placeholder(), udp_a);
    let mut out = [0u8; 512];
    let t = ue.poll_transmit(dev.now(), &mut out).unwrap().unwrap();
    let hello = out[..t.len].to_vec();
    dev.ue = ue;
    dev.sock.send_to(&hello, udp_a).unwrap();
    let now = dev.now();
    dev.ue.send(now, b"up").unwrap();
    assert!(wait_for(&mut dev, b"echo: up", 10), "no echo from A");
    assert_eq!(pg.psql("SELECT owner FROM eese_sessions"), "a");
    let mut forged = hello.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let reads = || metric(&admin_b.metrics().unwrap(), "ciot_eese_sessions_read_total");
    // The first copy makes B fetch the root; the next one is checked
    // (authentic, so the row is read), and refused as stale.
    for _ in 0..3 {
        sock.send_to(&hello, udp_b).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(reads(), 1, "one read for the first authentic hello");
    for _ in 0..50 {
        sock.send_to(&hello, udp_b).unwrap();
        sock.send_to(&forged, udp_b).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reads(), 1, "replays and forgeries read nothing more");
    // And the replays moved nothing: A still owns the UE.
    assert_eq!(
        pg.psql("SELECT owner || ' ' || epoch FROM eese_sessions"),
        "a 1"
    );
    drop(admin_b);
    ha.join().unwrap();
    hb.join().unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

/// A UE for a `Device` whose real UE is put in afterwards.
fn ue_placeholder() -> Ue<256> {
    Ue::new(
        UeConfig::default(),
        RootKey::new(RootKind::IntKey, RootBytes::from_bytes([1; 32])),
        UeId::new(b"placeholder").unwrap(),
        UeNonce::from_bytes([1; 16]),
    )
}
