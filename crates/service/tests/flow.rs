//! One UE through the EESE service with its EMKS: RANDs from the EMKS,
//! uplink to a webhook, downlink and te2e through the admin interface, a
//! new root generation that voids the UE's keyset.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{
    EeseConfig, Event, Instant, Received, UE_SNAPSHOT_LEN, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind};
use ciot_e2e_service::admin::AdminClient;
use ciot_e2e_service::eese::{EeseService, RandChoice, ServiceConfig};
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::pki;

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

struct Device {
    ue: Ue<256>,
    sock: UdpSocket,
    to: SocketAddr,
    t0: StdInstant,
    got: Vec<Vec<u8>>,
    rekeys: u32,
}

impl Device {
    fn now(&self) -> Instant {
        Instant::from_millis(self.t0.elapsed().as_millis() as u64)
    }

    /// Runs the UE for `d`.
    fn run(&mut self, d: Duration) {
        let end = StdInstant::now() + d;
        let mut out = [0u8; 2048];
        let mut buf = [0u8; 2048];
        let mut snap = [0u8; UE_SNAPSHOT_LEN];
        while StdInstant::now() < end {
            let now = self.now();
            self.ue.handle_timeout(now);
            while let Some(p) = self.ue.poll_persist(&mut snap) {
                let _ = self.ue.persisted(p);
            }
            while let Ok(Some(t)) = self.ue.poll_transmit(now, &mut out) {
                self.sock.send_to(&out[..t.len], self.to).unwrap();
            }
            while let Some(e) = self.ue.poll_event() {
                if matches!(e, Event::Rekeyed { .. }) {
                    self.rekeys += 1;
                }
            }
            if let Ok(n) = self.sock.recv(&mut buf)
                && let Ok(Received::Data(d)) = self.ue.handle_datagram(self.now(), &mut buf[..n])
            {
                self.got.push(buf[d.payload].to_vec());
            }
        }
    }
}

#[test]
fn uplink_to_webhook_downlink_and_te2e_by_admin_new_generation_voids_keys() {
    let d = std::env::temp_dir().join(format!("ciot-svc-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    let (tx, rx) = mpsc::channel();
    let ecfg = EmksConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: d.join("emks.db"),
        tls_dir: d.join("tls"),
    };
    std::thread::spawn(move || {
        let _ = serve(&ecfg, |a| tx.send(a).unwrap());
    });
    let emks = format!("https://{}", rx.recv().unwrap());
    let hss = EmksClient::new(&emks, &d.join("tls"), "hss", Duration::from_secs(5)).unwrap();
    hss.provision("ue-w", "acme", "3gpp", &[0x21; 32]).unwrap();

    let (hook, hooked) = webhook();
    let token = std::fs::read_to_string(d.join("tls/admin.token")).unwrap();
    let cfg = ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        emks,
        tls_dir: d.join("tls"),
        tls_name: "eese".into(),
        state: d.join("eese.state"),
        admin: Some(("127.0.0.1:0".parse().unwrap(), token.clone())),
        rand: RandChoice::Emks,
        table: EeseConfig::default(),
        webhook: Some(hook),
        max_sessions: 10,
        idle_timeout: Duration::from_secs(60),
        exit_after: Some(Duration::from_secs(30)),
        verbose: false,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = EeseService::start(cfg, |u, a, _| tx.send((u, a)).unwrap()).unwrap();
        let m = s.metrics();
        let _ = s.run();
        drop(m);
    });
    let (udp, admin) = rx.recv().unwrap();
    let admin = AdminClient::new(&format!("http://{}", admin.unwrap()), &token).unwrap();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let cfg = UeConfig {
        hello_backoff: Duration::from_millis(100),
        hello_backoff_max: Duration::from_millis(500),
        ..UeConfig::default()
    };
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x21; 32]));
    let mut dev = Device {
        ue: Ue::new(cfg, root, UeId::new(b"ue-w").unwrap(), 1),
        sock,
        to: udp,
        t0: StdInstant::now(),
        got: Vec::new(),
        rekeys: 0,
    };
    dev.run(Duration::from_secs(2));
    assert!(dev.ue.status().is_some(), "no keyset from the EESE");

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
    let metrics = admin.metrics().unwrap();
    let rands: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ciot_eese_emks_rands_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rands > 0, "RANDs did not come from the EMKS");

    // A new AKA run: generation 2; the EESE hears of it by long-poll and
    // voids the keyset made under generation 1.
    hss.provision("ue-w", "acme", "3gpp", &[0x22; 32]).unwrap();
    let t = StdInstant::now();
    loop {
        let s = admin.show("ue-w").unwrap();
        if s["root_generation"] == 2 {
            // The keyset of generation 1 is gone (or no longer valid).
            let k = &s["keyset"];
            assert!(
                k.is_null() || k["state"] != "valid" || k["ksi"].as_u64() != Some(ksi0),
                "{s}"
            );
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
