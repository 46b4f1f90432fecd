//! Downlink the enterprise handed over survives the EESE: two payloads
//! `admin send` answered "queued" for (the UE's keys expired, the UE
//! silent) are in the state file, not only in the process; the EESE stops
//! without a word (as a crash leaves it: only what was committed is
//! there), a new process starts on the same file, and the UE, once it
//! speaks again, gets both, in order, once.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{EeseConfig, Instant, Received, Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::{EeseService, RandChoice, ServiceConfig};
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::pki;

struct Device {
    ue: Ue<256>,
    sock: UdpSocket,
    to: SocketAddr,
    t0: StdInstant,
    got: Vec<Vec<u8>>,
}

impl Device {
    fn now(&self) -> Instant {
        Instant::from_millis(self.t0.elapsed().as_millis() as u64)
    }

    fn run(&mut self, d: Duration) {
        let end = StdInstant::now() + d;
        let mut out = [0u8; 2048];
        let mut buf = [0u8; 2048];
        while StdInstant::now() < end {
            let now = self.now();
            self.ue.handle_timeout(now);
            while let Ok(Some(t)) = self.ue.poll_transmit(now, &mut out) {
                self.sock.send_to(&out[..t.len], self.to).unwrap();
            }
            while self.ue.poll_event().is_some() {}
            if let Ok(n) = self.sock.recv(&mut buf)
                && let Ok(Received::Data(d)) = self.ue.handle_datagram(self.now(), &mut buf[..n])
            {
                self.got.push(buf[d.payload].to_vec());
            }
        }
    }
}

/// An EESE service on `d`'s state file, stopped after `life`: its UDP and
/// admin addresses, and the thread to join.
fn eese(
    d: &Path,
    emks: &str,
    life: Duration,
) -> (SocketAddr, AdminClient, std::thread::JoinHandle<()>) {
    let cfg = ServiceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        emks: emks.into(),
        tls_dir: d.join("tls"),
        tls_name: "eese".into(),
        state: d.join("eese.state"),
        init_state: true,
        admin: Some(
            AdminConfig::from_files(
                "127.0.0.1:0".parse().unwrap(),
                &d.join("tls"),
                &d.join("tls/admin.token"),
                None,
            )
            .unwrap(),
        ),
        rand: RandChoice::Local,
        table: EeseConfig::default(),
        webhook: None,
        webhook_secret: None,
        webhook_max_age: Duration::from_secs(86_400),
        max_sessions: 10,
        idle_timeout: Duration::from_secs(60),
        unknown_fetch_rate: ciot_e2e_service::eese::UNKNOWN_FETCH_RATE,
        exit_after: Some(life),
        verbose: false,
        keylog: None,
    };
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

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn queued_downlink_survives_a_stop_of_the_eese_and_goes_out_in_order_once() {
    let d = std::env::temp_dir().join(format!("ciot-svc-downlink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    let (tx, rx) = mpsc::channel();
    let ecfg = EmksConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        d.join("emks.db"),
        d.join("tls"),
    );
    std::thread::spawn(move || {
        let _ = serve(&ecfg, |a| tx.send(a).unwrap());
    });
    let emks = format!("https://{}", rx.recv().unwrap());
    let hss = EmksClient::new(&emks, &d.join("tls"), "hss", Duration::from_secs(5)).unwrap();
    hss.provision(b"ue-d", "acme", "3gpp", &[0x31; 32]).unwrap();

    let (udp, admin, first) = eese(&d, &emks, Duration::from_secs(5));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
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
    let mut dev = Device {
        ue: Ue::new(
            cfg,
            root,
            UeId::new(b"ue-d").unwrap(),
            UeNonce::random().unwrap(),
        ),
        sock,
        to: udp,
        t0: StdInstant::now(),
        got: Vec::new(),
    };
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
