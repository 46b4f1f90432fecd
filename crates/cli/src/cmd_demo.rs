//! `ciot-e2e demo`: one UE and one EESE in one process, over UDP on
//! loopback, through the whole TR 33.863 cycle with a readable transcript.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, KeysetState, OsRand, Received, SendOutcome,
    Sent, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, UeNonce, int_key};
use ciot_e2e::wire::DEFAULT_PORT;
use clap::Args;

use crate::Failure;
use crate::args::hex_array;
use crate::capture::Recorder;
use crate::cmd_wire::SuiteArg;
use crate::net::{Clock, describe, describe_event, describe_reject};

/// Arguments of `ciot-e2e demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Key lifetime te2e in seconds (the demo waits it out twice).
    #[arg(long, default_value_t = 2)]
    te2e: u32,
    /// Suite the keysets protect data with.
    #[arg(long, value_enum, default_value_t)]
    suite: SuiteArg,
    /// CK of the (simulated) AKA run, 16 octets hex.
    #[arg(long, default_value = "0123456789abcdeffedcba9876543210")]
    ck: String,
    /// IK of the (simulated) AKA run, 16 octets hex.
    #[arg(long, default_value = "00112233445566778899aabbccddeeff")]
    ik: String,
    /// Write the exchange as a capture (UDP over IPv4) Wireshark opens.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Write every derived keyset to this key log so a capture can be
    /// decrypted. Anyone with the file can read the traffic.
    #[arg(long)]
    keylog: Option<PathBuf>,
}

/// The UE's identifier in the demo.
const UE_ID: &[u8] = b"demo-ue";

struct Demo {
    clock: Clock,
    eese_sock: UdpSocket,
    ue_sock: UdpSocket,
    eese_addr: SocketAddr,
    ue_addr: SocketAddr,
    root: RootKey,
    table: EeseTable<UeId>,
    ue: Ue<2048>,
    eese_snapshots: HashMap<UeId, Vec<u8>>,
    buf: Vec<u8>,
    at_ue: Vec<String>,
    at_eese: Vec<String>,
    recorder: Recorder,
    /// Keysets the UE installed.
    keysets: u32,
}

fn bind_loopback(port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(("127.0.0.1", port)).or_else(|_| UdpSocket::bind("127.0.0.1:0"))
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

impl Demo {
    fn say(&self, who: &str, line: &str) {
        crate::outln!("[{:6.3}s] {who:<10} {line}", self.clock.secs());
    }

    fn step(&self, title: &str) {
        crate::outln!("\n== {title}");
    }

    /// Persists, transmits and reports whatever the EESE has to say.
    fn drain_eese(&mut self) -> Result<(), Failure> {
        let mut snap = [0u8; EESE_SNAPSHOT_LEN];
        loop {
            let mut progress = false;
            while let Some((id, p)) = self.table.poll_persist(&mut snap) {
                self.eese_snapshots.insert(id, snap[..p.len()].to_vec());
                self.say(
                    "EESE",
                    &format!("persists its state for {id} ({} octets)", p.len()),
                );
                let _ = self.table.persisted(&id, p);
                progress = true;
            }
            let now = self.clock.now();
            let mut out = std::mem::take(&mut self.buf);
            while let Some((_, to, t)) = self.table.poll_transmit(now, &mut out) {
                self.eese_send_datagram(to, &out[..t.len])?;
                progress = true;
            }
            self.buf = out;
            while let Some((_, ev)) = self.table.poll_event() {
                self.say("EESE", &describe_event(&ev));
                if matches!(ev, Event::Rekeyed { .. }) {
                    let id = UeId::new(UE_ID).map_err(|e| Failure::usage(e.to_string()))?;
                    if let (Some(st), Some((rand, keys))) =
                        (self.table.status(now, &id), self.table.current_keys(&id))
                        && let Some(k) = st.keyset
                    {
                        self.recorder.keys(k.ksi, k.counter, rand, keys)?;
                    }
                }
                progress = true;
            }
            if !progress {
                return Ok(());
            }
        }
    }

    fn eese_send_datagram(&mut self, to: SocketAddr, d: &[u8]) -> Result<(), Failure> {
        self.say("EESE → UE", &describe(d));
        self.recorder.datagram(&self.clock, self.eese_addr, to, d)?;
        self.eese_sock.send_to(d, to).map_err(io("send"))?;
        Ok(())
    }

    fn drain_ue(&mut self) -> Result<(), Failure> {
        loop {
            let mut progress = false;
            let now = self.clock.now();
            let mut out = std::mem::take(&mut self.buf);
            while let Ok(Some(t)) = self.ue.poll_transmit(now, &mut out) {
                let d = &out[..t.len];
                self.say("UE → EESE", &describe(d));
                self.recorder
                    .datagram(&self.clock, self.ue_addr, self.eese_addr, d)?;
                self.ue_sock
                    .send_to(d, self.eese_addr)
                    .map_err(io("send"))?;
                progress = true;
            }
            self.buf = out;
            while let Some(ev) = self.ue.poll_event() {
                self.say("UE", &describe_event(&ev));
                if matches!(ev, Event::Rekeyed { .. }) {
                    self.keysets += 1;
                }
                if let (Event::Rekeyed { ksi, counter }, Some((rand, keys))) =
                    (ev, self.ue.current_keys())
                {
                    self.recorder.keys(ksi, counter, rand, keys)?;
                }
                progress = true;
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// A datagram arrived at the EESE's socket.
    fn eese_receive(&mut self, from: SocketAddr, mut d: Vec<u8>) -> Result<(), Failure> {
        let now = self.clock.now();
        let root = self.root.clone();
        let result = self
            .table
            .handle_datagram(now, &from, &mut d, |id| Some((UeId::new(id).ok()?, root)));
        match result {
            Ok((id, Received::Data(got))) => {
                let payload = d[got.payload].to_vec();
                self.say(
                    "EESE",
                    &format!(
                        "received {:?} (KSI {}, seq {})",
                        String::from_utf8_lossy(&payload),
                        got.ksi,
                        got.seq
                    ),
                );
                self.at_eese
                    .push(String::from_utf8_lossy(&payload).into_owned());
                let echo = [b"echo: ".as_slice(), &payload].concat();
                self.eese_app_send(id, &echo)?;
            }
            Ok(_) => {}
            Err(r) => self.say("EESE", &describe_reject(&r)),
        }
        self.drain_eese()
    }

    fn eese_app_send(&mut self, id: UeId, payload: &[u8]) -> Result<(), Failure> {
        let now = self.clock.now();
        let mut out = std::mem::take(&mut self.buf);
        let r = self.table.send(now, &id, payload, &mut out);
        let res = match r {
            Ok(SendOutcome::Sent { sealed, to }) => self.eese_send_datagram(to, &out[..sealed.len]),
            Ok(SendOutcome::Queued) => {
                let waiting = self
                    .table
                    .status(now, &id)
                    .and_then(|s| s.keyset)
                    .is_some_and(|k| matches!(k.state, KeysetState::Valid { .. }));
                self.say(
                    "EESE",
                    if waiting {
                        "holds the payload until the keyset the UE just used is written"
                    } else {
                        "offers a new keyset first; the payload follows once the UE used it"
                    },
                );
                Ok(())
            }
            Err(e) => Err(Failure::rejected(format!("EESE could not send: {e}"))),
        };
        self.buf = out;
        res?;
        self.drain_eese()
    }

    fn ue_receive(&mut self, mut d: Vec<u8>) -> Result<(), Failure> {
        let now = self.clock.now();
        match self.ue.handle_datagram(now, &mut d) {
            Ok(Received::Data(got)) => {
                let payload = String::from_utf8_lossy(&d[got.payload]).into_owned();
                self.say(
                    "UE",
                    &format!("received {payload:?} (KSI {}, seq {})", got.ksi, got.seq),
                );
                self.at_ue.push(payload);
            }
            Ok(_) => {}
            Err(r) => self.say("UE", &describe_reject(&r)),
        }
        self.drain_ue()
    }

    /// Runs both endpoints for `ms` milliseconds of wall time.
    fn run_for(&mut self, ms: u64) -> Result<(), Failure> {
        let end = self.clock.now().after(Duration::from_millis(ms));
        let mut buf = vec![0u8; 65_536];
        while self.clock.now() < end {
            let mut idle = true;
            if let Ok((n, from)) = self.eese_sock.recv_from(&mut buf) {
                idle = false;
                self.eese_receive(from, buf[..n].to_vec())?;
            }
            if let Ok((n, _)) = self.ue_sock.recv_from(&mut buf) {
                idle = false;
                self.ue_receive(buf[..n].to_vec())?;
            }
            let now = self.clock.now();
            if self.table.poll_timeout().is_some_and(|t| t <= now) {
                self.table.handle_timeout(now);
                self.drain_eese()?;
            }
            if self.ue.poll_timeout().is_some_and(|t| t <= now) {
                self.ue.handle_timeout(now);
                self.drain_ue()?;
            }
            if idle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    fn ue_send(&mut self, payload: &str) -> Result<(), Failure> {
        let now = self.clock.now();
        let sent = self
            .ue
            .send(now, payload.as_bytes())
            .map_err(|e| Failure::rejected(format!("UE send: {e}")))?;
        let how = match sent {
            Sent::Queued => format!("sends {payload:?}"),
            Sent::Held => format!("holds {payload:?} until a keyset arrives"),
        };
        self.say("UE app", &how);
        self.drain_ue()
    }

    fn eese_send(&mut self, payload: &str) -> Result<(), Failure> {
        self.say("EESE app", &format!("sends {payload:?}"));
        let id = UeId::new(UE_ID).map_err(|e| Failure::usage(e.to_string()))?;
        self.eese_app_send(id, payload.as_bytes())
    }
}

/// Runs `ciot-e2e demo`.
pub fn demo(a: &DemoArgs) -> Result<(), Failure> {
    let ck = Ck::from_bytes(hex_array("ck", &a.ck).map_err(Failure::usage)?);
    let ik = Ik::from_bytes(hex_array("ik", &a.ik).map_err(Failure::usage)?);
    if a.te2e == 0 {
        return Err(Failure::usage("--te2e must be at least 1 second"));
    }
    let eese_cfg = EeseConfig {
        te2e: Duration::from_secs(u64::from(a.te2e)),
        suite: a.suite.into(),
        grace: Duration::from_millis(500),
        ..EeseConfig::default()
    };
    // The UE goes on with a keyset for a while past te2e: the EESE's
    // refusal (the key-expired error) is what stops it, as in the TR.
    let ue_cfg = UeConfig {
        grace: Duration::from_secs(u64::from(a.te2e)),
        ..UeConfig::default()
    };
    // The UE derives e2e_int_key from its AKA keys; the EESE gets the same
    // key from the EMKS, which this demo stands in for.
    let root = int_key(KdfProfile::Ts33220, &CkIk::new(&ck, &ik));
    let eese_sock = bind_loopback(DEFAULT_PORT).map_err(io("bind EESE socket"))?;
    let ue_sock = bind_loopback(0).map_err(io("bind UE socket"))?;
    for s in [&eese_sock, &ue_sock] {
        s.set_nonblocking(true).map_err(io("socket"))?;
    }
    let eese_addr = eese_sock.local_addr().map_err(io("socket"))?;
    let ue_addr = ue_sock.local_addr().map_err(io("socket"))?;
    let id = UeId::new(UE_ID).map_err(|e| Failure::usage(e.to_string()))?;
    // Every start of a UE draws a new nonce from its random source.
    let nonce = UeNonce::random().map_err(|e| Failure::usage(format!("random source: {e}")))?;
    let mut d = Demo {
        clock: Clock::start(),
        ue: Ue::new(ue_cfg, root.clone(), id, nonce),
        table: EeseTable::new(eese_cfg, OsRand),
        root,
        eese_sock,
        ue_sock,
        eese_addr,
        ue_addr,
        eese_snapshots: HashMap::new(),
        buf: vec![0; 65_536],
        at_ue: vec![],
        at_eese: vec![],
        recorder: Recorder::open(a.pcap.as_deref(), a.keylog.as_deref())?,
        keysets: 0,
    };
    crate::outln!(
        "ciot-e2e demo: EESE on {eese_addr}, UE {:?} on {ue_addr}, te2e {} s, suite {}",
        String::from_utf8_lossy(UE_ID),
        a.te2e,
        eese_cfg.suite
    );

    d.step(
        "1. The UE says hello (with the nonce of this start); the EESE offers keyset KSI 0, made from a fresh RAND for that nonce, and takes it into use when the UE names it",
    );
    d.drain_ue()?;
    d.run_for(200)?;

    d.step("2. Data both ways under KSI 0");
    d.ue_send("temperature=21.5")?;
    d.run_for(100)?;
    d.eese_send("config: interval=60s")?;
    d.run_for(100)?;

    d.step(&format!(
        "3. te2e ({} s) runs out at the EESE, which flags the keys invalid",
        a.te2e
    ));
    d.run_for(u64::from(a.te2e) * 1000 + 200)?;

    d.step("4. The UE's next contact gets the key-expired error naming it, then a new trigger; the UE rekeys and retransmits that message");
    d.ue_send("temperature=21.7")?;
    d.run_for(300)?;

    d.step("5. te2e runs out again; this time the EESE starts the contact: no error, its offer goes first, the payload once the UE used it");
    d.run_for(u64::from(a.te2e) * 1000 + 200)?;
    d.eese_send("command: report now")?;
    d.run_for(200)?;
    d.ue_send("report: all well")?;
    d.run_for(200)?;
    d.recorder.finish()?;

    let want_eese = ["temperature=21.5", "temperature=21.7", "report: all well"];
    let want_ue = [
        "echo: temperature=21.5",
        "config: interval=60s",
        "echo: temperature=21.7",
        "command: report now",
        "echo: report: all well",
    ];
    crate::outln!("\n== Result");
    crate::outln!(
        "EESE received {}/{} payloads, UE received {}/{}",
        d.at_eese.len(),
        want_eese.len(),
        d.at_ue.len(),
        want_ue.len()
    );
    if d.at_eese == want_eese && d.at_ue == want_ue {
        crate::outln!("every payload arrived, across {} keysets", d.keysets);
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "payloads missing or out of order: EESE got {:?}, UE got {:?}",
            d.at_eese, d.at_ue
        )))
    }
}
