//! One UE through the EESE service with its EMKS: RANDs from the EMKS,
//! uplink to a webhook, downlink and te2e through the admin interface,
//! downlink after an expiry waiting for the UE to use the new offer, a new
//! root generation that voids the UE's keyset; a state file of wire format
//! 2 is cleared of its snapshots and the UE served afresh.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ciot_e2e::endpoint::{Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::state::StateStore;
use ciot_e2e_service::eese::{EeseService, RandChoice, ServiceConfig};

mod common;
use common::{Device, metric};

/// A webhook receiver: answers 200 to every POST and hands on its body.
fn webhook() -> (String, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/uplink", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                    tx.send(String::from_utf8(body).unwrap()).unwrap();
                }
            });
        }
    });
    (url, rx)
}

#[test]
fn uplink_to_webhook_downlink_and_te2e_by_admin_new_generation_voids_keys() {
    let d = std::env::temp_dir().join(format!("ciot-svc-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let (emks, hss) = common::emks(&d);
    hss.provision(b"ue-w", "acme", "3gpp", &[0x21; 32]).unwrap();

    // The state file an EESE of wire format 2 left: a "CEE2" snapshot of
    // this UE (the magic is what counts).
    {
        let mut st = StateStore::open(&d.join("eese.state")).unwrap();
        let old = [&b"CEE2"[..], &[0x11; 60][..]].concat();
        st.write([(&UeId::new(b"ue-w").unwrap(), old.as_slice())])
            .unwrap();
    }

    let (hook, hooked) = webhook();
    let token = std::fs::read_to_string(d.join("tls/admin.token")).unwrap();
    let mut cfg = ServiceConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        emks,
        d.join("tls"),
        d.join("eese.state"),
    );
    cfg.admin = Some(
        AdminConfig::from_files(
            "127.0.0.1:0".parse().unwrap(),
            &d.join("tls"),
            &d.join("tls/admin.token"),
            None,
        )
        .unwrap(),
    );
    cfg.rand = RandChoice::Emks;
    cfg.webhook = Some(hook);
    cfg.max_sessions = 10;
    cfg.idle_timeout = Duration::from_secs(60);
    cfg.exit_after = Some(Duration::from_secs(30));
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (rtx, rrx) = mpsc::channel();
        let mut s = EeseService::start(cfg, |u, a, n| rtx.send((u, a, n)).unwrap()).unwrap();
        let (u, a, n) = rrx.recv().unwrap();
        tx.send((u, a, n, s.format2_removed())).unwrap();
        let _ = s.run();
    });
    let (udp, admin, loaded, format2) = rx.recv().unwrap();
    assert_eq!(
        (loaded, format2),
        (0, 1),
        "the CEE2 snapshot was not removed"
    );
    let admin = AdminClient::new(
        &format!("https://{}", admin.unwrap()),
        &d.join("tls"),
        &token,
    )
    .unwrap();

    let cfg = UeConfig {
        hello_backoff: Duration::from_millis(100),
        hello_backoff_max: Duration::from_millis(500),
        ..UeConfig::default()
    };
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x21; 32]));
    let mut dev = Device::new(
        Ue::new(
            cfg,
            root,
            UeId::new(b"ue-w").unwrap(),
            UeNonce::random().unwrap(),
        ),
        udp,
    );
    dev.run(Duration::from_secs(2));
    assert!(dev.ue.status().is_some(), "no keyset from the EESE");
    // The UE used the offer (it had nothing to send: a hello naming it), so
    // the EESE took it into use; its counter is above the floor of the
    // EESE's clock, milliseconds since the UNIX epoch (times 1,024).
    let show = admin.show("ue-w").unwrap();
    assert_eq!(show["keyset"]["state"], "valid", "{show}");
    assert_eq!(show["keyset"]["confirmed"], true, "{show}");
    assert!(show["offered"].is_null(), "{show}");
    assert_eq!(
        show["keyset"]["counter"].as_u64(),
        dev.ue.status().map(|s| s.counter),
        "{show}"
    );
    let counter = show["counter"].as_u64().unwrap();
    assert!(
        counter >= (started_ms + 1) * 1024,
        "counter {counter} below the floor of a clock since the epoch"
    );

    // Uplink goes to the webhook, not back as an echo.
    let now = dev.now();
    dev.ue.send(now, b"to the enterprise").unwrap();
    dev.run(Duration::from_millis(500));
    let body: serde_json::Value =
        serde_json::from_str(&hooked.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    assert_eq!(body["ue"], "ue-w");
    assert_eq!(body["payload"], hex::encode(b"to the enterprise"));
    assert!(
        dev.got.is_empty(),
        "echoed although a webhook is configured"
    );

    // Downlink and te2e through the admin interface.
    let r = admin.send("ue-w", b"from the enterprise").unwrap();
    assert_eq!(r["outcome"], "sent");
    dev.run(Duration::from_millis(300));
    assert_eq!(dev.got, vec![b"from the enterprise".to_vec()]);
    admin.te2e("ue-w", 77).unwrap();
    let show = admin.show("ue-w").unwrap();
    assert_eq!(show["te2e_secs"], 77);
    assert_eq!(show["root_generation"], 1);
    let ksi0 = show["keyset"]["ksi"].as_u64().unwrap();
    assert!(
        !show.to_string().contains("2121"),
        "key material in show: {show}"
    );

    // Expired by the enterprise: downlink now waits for the UE to use the
    // keyset the EESE offers first (no key-expired error: the EESE starts).
    admin.expire("ue-w").unwrap();
    let r = admin.send("ue-w", b"after the expiry").unwrap();
    assert_eq!(r["outcome"], "queued", "{r}");
    dev.run(Duration::from_millis(1500));
    assert_eq!(
        dev.got,
        vec![
            b"from the enterprise".to_vec(),
            b"after the expiry".to_vec()
        ]
    );
    let show = admin.show("ue-w").unwrap();
    assert_ne!(show["keyset"]["ksi"].as_u64(), Some(ksi0), "{show}");
    assert_eq!(show["keyset"]["state"], "valid", "{show}");
    assert!(show["offered"].is_null(), "{show}");
    assert_eq!(show["te2e_secs"], 77);

    let metrics = admin.metrics().unwrap();
    assert!(
        metric(&metrics, "ciot_eese_emks_rands_total") > 0,
        "RANDs did not come from the EMKS"
    );
    let (offers, rekeys) = (
        metric(&metrics, "ciot_eese_offers_total"),
        metric(&metrics, "ciot_eese_rekeys_total"),
    );
    assert!(
        rekeys >= 2 && offers >= rekeys,
        "{offers} offers, {rekeys} rekeys"
    );
    assert!(metric(&metrics, "ciot_eese_snapshots_written_total") >= rekeys);

    // A new AKA run: generation 2; the EESE hears of it by long-poll and
    // voids the keyset made under generation 1.
    hss.provision(b"ue-w", "acme", "3gpp", &[0x22; 32]).unwrap();
    let t = StdInstant::now();
    loop {
        let s = admin.show("ue-w").unwrap();
        if s["root_generation"] == 2 {
            // The keyset of generation 1 is gone (or no longer valid).
            let k = &s["keyset"];
            assert!(k.is_null() || k["state"] != "valid", "{s}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "new generation not seen: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&d);
}
