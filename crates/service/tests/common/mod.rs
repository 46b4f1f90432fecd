//! What the service tests share: a PKI and an EMKS on loopback with one UE
//! provisioned, a UE on a UDP socket, the admin interface's counters.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Event, Instant, Received, Ue};
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::pki;

/// A PKI in `d/tls` for the enterprise "acme", an EMKS on loopback with
/// its database in `d`, and the HSS's client of it: the EMKS's URL and the
/// client.
pub fn emks(d: &Path) -> (String, EmksClient) {
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
    let url = format!("https://{}", rx.recv().unwrap());
    let hss = EmksClient::new(&url, &d.join("tls"), "hss", Duration::from_secs(5)).unwrap();
    (url, hss)
}

/// A UE on its own UDP socket (a read timeout of 5 ms), talking to `to`.
pub struct Device {
    pub ue: Ue<256>,
    pub sock: UdpSocket,
    pub to: SocketAddr,
    pub t0: StdInstant,
    /// The payloads that came down, in order.
    pub got: Vec<Vec<u8>>,
    /// Keysets the UE installed.
    pub rekeys: u32,
}

impl Device {
    pub fn new(ue: Ue<256>, to: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Device {
            ue,
            sock,
            to,
            t0: StdInstant::now(),
            got: Vec::new(),
            rekeys: 0,
        }
    }

    pub fn now(&self) -> Instant {
        Instant::from_millis(self.t0.elapsed().as_millis() as u64)
    }

    /// Runs the UE for `d`.
    pub fn run(&mut self, d: Duration) {
        let end = StdInstant::now() + d;
        let mut out = [0u8; 2048];
        let mut buf = [0u8; 2048];
        while StdInstant::now() < end {
            let now = self.now();
            self.ue.handle_timeout(now);
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

/// The value of the counter or gauge `name` (without labels) in the
/// admin interface's metrics text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}
