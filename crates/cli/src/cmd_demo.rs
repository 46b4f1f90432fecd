//! `ciot-e2e demo`: one UE and one EESE in one process, over UDP on
//! loopback, through the whole TR 33.863 cycle with a readable transcript.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use ciot_e2e::endpoint::{Config, EeseTable, OsRand, Sent, Ue};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, int_key};
use ciot_e2e::wire::DEFAULT_PORT;
use clap::Args;

use crate::Failure;
use crate::args::hex_array;
use crate::capture::Recorder;
use crate::cmd_wire::SuiteArg;
use crate::net::{Clock, Collect, Ev, Item, describe};

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

struct Demo {
    clock: Clock,
    cfg: Config,
    eese_sock: UdpSocket,
    ue_sock: UdpSocket,
    eese_addr: SocketAddr,
    ue_addr: SocketAddr,
    table: EeseTable<SocketAddr>,
    ue: Ue,
    rng: OsRand,
    scratch: Vec<u8>,
    at_ue: Vec<String>,
    at_eese: Vec<String>,
    recorder: Recorder,
}

fn bind_loopback(port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(("127.0.0.1", port)).or_else(|_| UdpSocket::bind("127.0.0.1:0"))
}

impl Demo {
    fn say(&self, who: &str, line: &str) {
        crate::outln!("[{:6.3}s] {who:<10} {line}", self.clock.secs());
    }

    fn step(&self, title: &str) {
        crate::outln!("\n== {title}");
    }

    /// Sends what the EESE produced, reports its events and lets its
    /// application echo every payload.
    fn flush_eese(&mut self, out: Collect<SocketAddr>) -> Result<(), Failure> {
        let mut queue = std::collections::VecDeque::from(out.items);
        while let Some((ue, item)) = queue.pop_front() {
            match item {
                Item::Datagram(d) => {
                    self.say("EESE → UE", &describe(&d));
                    self.recorder
                        .datagram(&self.clock, self.eese_addr, ue, &d)?;
                    self.eese_sock.send_to(&d, ue).map_err(io("send"))?;
                }
                Item::Event(ev) => {
                    self.say("EESE", &ev.describe());
                    match &ev {
                        Ev::Rekeyed { .. } => {
                            if let Some(s) = self.table.get(&ue) {
                                self.recorder.keys(s.current(), s.current_keys())?;
                            }
                        }
                        Ev::Data { payload, .. } => {
                            self.at_eese
                                .push(String::from_utf8_lossy(payload).into_owned());
                            let echo = [b"echo: ".as_slice(), payload].concat();
                            let now = self.clock.now();
                            let mut more = Collect::default();
                            match self.table.send(
                                now,
                                &ue,
                                &echo,
                                &mut self.scratch,
                                &mut self.rng,
                                &mut more,
                            ) {
                                Some(Ok(_)) => queue.extend(more.items),
                                other => {
                                    return Err(Failure::rejected(format!(
                                        "EESE could not echo: {other:?}"
                                    )));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn flush_ue(&mut self, out: Collect) -> Result<(), Failure> {
        for ((), item) in out.items {
            match item {
                Item::Datagram(d) => {
                    self.say("UE → EESE", &describe(&d));
                    self.recorder
                        .datagram(&self.clock, self.ue_addr, self.eese_addr, &d)?;
                    self.ue_sock
                        .send_to(&d, self.eese_addr)
                        .map_err(io("send"))?;
                }
                Item::Event(ev) => {
                    self.say("UE", &ev.describe());
                    match &ev {
                        Ev::Data { payload, .. } => self
                            .at_ue
                            .push(String::from_utf8_lossy(payload).into_owned()),
                        Ev::Rekeyed { .. } => self
                            .recorder
                            .keys(self.ue.current(), self.ue.current_keys())?,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs both endpoints for `ms` milliseconds of wall time.
    fn run_for(&mut self, ms: u64) -> Result<(), Failure> {
        let end = self.clock.now().after(Duration::from_millis(ms));
        let mut buf = vec![0u8; 65_536];
        while self.clock.now() < end {
            let mut idle = true;
            if let Ok((n, from)) = self.eese_sock.recv_from(&mut buf) {
                idle = false;
                let mut out = Collect::default();
                let now = self.clock.now();
                if n == 0 {
                    self.say(
                        "UE → EESE",
                        "(connect: empty datagram, the UE opens its connection)",
                    );
                    self.table.on_connect(now, &from, &mut self.rng, &mut out);
                } else {
                    self.table
                        .handle_datagram(now, &from, &mut buf[..n], &mut self.rng, &mut out);
                }
                self.flush_eese(out)?;
            }
            if let Ok((n, _)) = self.ue_sock.recv_from(&mut buf) {
                idle = false;
                let mut out = Collect::default();
                let now = self.clock.now();
                self.ue
                    .handle_datagram(now, &self.cfg, &mut buf[..n], &mut self.scratch, &mut out);
                self.flush_ue(out)?;
            }
            let now = self.clock.now();
            if self.table.poll_timeout().is_some_and(|t| t <= now) {
                let mut out = Collect::default();
                self.table.handle_timeout(now, &mut out);
                self.flush_eese(out)?;
            }
            self.ue.handle_timeout(now);
            if idle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    fn ue_send(&mut self, payload: &str) -> Result<(), Failure> {
        let mut out = Collect::default();
        let sent = self
            .ue
            .send(payload.as_bytes(), &mut self.scratch, &mut out)
            .map_err(|e| Failure::rejected(format!("UE send: {e}")))?;
        let how = match sent {
            Sent::Now { ksi, seq } => format!("sends {payload:?} under KSI {ksi} (seq {seq})"),
            Sent::Held => format!("holds {payload:?} until a keyset arrives"),
        };
        self.say("UE app", &how);
        self.flush_ue(out)
    }

    fn eese_send(&mut self, payload: &str) -> Result<(), Failure> {
        let mut out = Collect::default();
        let now = self.clock.now();
        self.say("EESE app", &format!("sends {payload:?}"));
        let ue = self.ue_addr;
        match self.table.send(
            now,
            &ue,
            payload.as_bytes(),
            &mut self.scratch,
            &mut self.rng,
            &mut out,
        ) {
            Some(Ok(_)) => self.flush_eese(out),
            other => Err(Failure::rejected(format!("EESE send: {other:?}"))),
        }
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

/// Runs `ciot-e2e demo`.
pub fn demo(a: &DemoArgs) -> Result<(), Failure> {
    let ck = Ck::from_bytes(hex_array("ck", &a.ck).map_err(Failure::usage)?);
    let ik = Ik::from_bytes(hex_array("ik", &a.ik).map_err(Failure::usage)?);
    if a.te2e == 0 {
        return Err(Failure::usage("--te2e must be at least 1 second"));
    }
    let cfg = Config {
        te2e: Duration::from_secs(u64::from(a.te2e)),
        suite: a.suite.into(),
        grace: Duration::from_millis(500),
        ..Config::default()
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
    let mut table = EeseTable::new(cfg);
    table.insert(ue_addr, root.clone(), None);
    let mut d = Demo {
        clock: Clock::start(),
        ue: Ue::with_config(root, &cfg),
        cfg,
        eese_sock,
        ue_sock,
        eese_addr,
        ue_addr,
        table,
        rng: OsRand,
        scratch: vec![0; 65_536],
        at_ue: vec![],
        at_eese: vec![],
        recorder: Recorder::open(a.pcap.as_deref(), a.keylog.as_deref())?,
    };
    crate::outln!(
        "ciot-e2e demo: EESE on {eese_addr}, UE on {ue_addr}, te2e {} s, suite {}",
        a.te2e,
        cfg.suite
    );

    d.step(
        "1. The UE connects; the EESE derives keyset KSI 0 from a fresh RAND and sends the trigger",
    );
    d.ue_sock.send_to(&[], eese_addr).map_err(io("send"))?;
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

    d.step("4. The UE's next contact gets the key-expired error, then a new trigger; the UE rekeys and retransmits its held message");
    d.ue_send("temperature=21.7")?;
    d.run_for(300)?;

    d.step("5. te2e runs out again; this time the EESE starts the contact: no error, the trigger goes first");
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
        crate::outln!(
            "every payload arrived, across {} keysets",
            d.ue.last_counter()
        );
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "payloads missing or out of order: EESE got {:?}, UE got {:?}",
            d.at_eese, d.at_ue
        )))
    }
}
