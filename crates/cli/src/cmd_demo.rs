//! `ciot-e2e demo`: one UE and one EESE in one process, over UDP on
//! loopback, through the whole TR 33.863 cycle with a readable transcript.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ciot_e2e::driver::{EeseDriver, EeseIo, SystemClock, UeDriver, UeIo};
use ciot_e2e::endpoint::{
    Datagram, EeseConfig, EeseTable, Event, Instant, KeysetState, OsRand, Received, SendOutcome,
    Sent, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, UeNonce, int_key};
use ciot_e2e::wire::DEFAULT_PORT;
use clap::Args;

use crate::Failure;
use crate::args::hex_array;
use crate::capture::Recorder;
use crate::cmd_wire::SuiteArg;
use crate::net::{describe, describe_event, describe_reject};

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

/// Both endpoints' side of their drivers: the two sockets, the transcript,
/// the capture and the EESE's snapshots (in memory).
struct Wire {
    clock: Rc<SystemClock>,
    eese_sock: UdpSocket,
    ue_sock: UdpSocket,
    eese_addr: SocketAddr,
    ue_addr: SocketAddr,
    eese_snapshots: HashMap<UeId, Vec<u8>>,
    recorder: Recorder,
    /// Keysets the UE installed.
    keysets: u32,
    /// The first failure of an EESE transmit (the driver's transmit is
    /// best effort; the demo ends on it once the pass is over).
    failed: Option<Failure>,
}

impl Wire {
    fn say(&self, who: &str, line: &str) {
        crate::outln!("[{:6.3}s] {who:<10} {line}", self.clock.secs());
    }

    fn eese_send_datagram(&mut self, to: SocketAddr, d: &[u8]) -> Result<(), Failure> {
        self.say("EESE → UE", &describe(d));
        self.recorder.datagram(&self.clock, self.eese_addr, to, d)?;
        self.eese_sock.send_to(d, to).map_err(io("send"))?;
        Ok(())
    }

    /// Ends the demo if an EESE transmit failed.
    fn check(&mut self) -> Result<(), Failure> {
        self.failed.take().map_or(Ok(()), Err)
    }
}

impl EeseIo<UeId, SocketAddr, OsRand> for Wire {
    type Error = Failure;

    fn persist(&mut self, snapshots: &[(&UeId, &[u8])]) -> Result<(), Failure> {
        for (id, snap) in snapshots {
            self.eese_snapshots.insert(**id, snap.to_vec());
            self.say(
                "EESE",
                &format!("persists its state for {id} ({} octets)", snap.len()),
            );
        }
        Ok(())
    }

    fn transmit(
        &mut self,
        _: &EeseTable<UeId>,
        _: &UeId,
        to: &SocketAddr,
        datagram: &[u8],
        _: Datagram,
    ) {
        if self.failed.is_none()
            && let Err(e) = self.eese_send_datagram(*to, datagram)
        {
            self.failed = Some(e);
        }
    }

    fn event(
        &mut self,
        table: &mut EeseTable<UeId>,
        now: Instant,
        id: UeId,
        ev: Event,
    ) -> Result<(), Failure> {
        self.say("EESE", &describe_event(&ev));
        if matches!(ev, Event::Rekeyed { .. })
            && let (Some(st), Some((rand, keys))) =
                (table.status(now, &id), table.current_keys(&id))
            && let Some(k) = st.keyset
        {
            self.recorder.keys(k.ksi, k.counter, rand, keys)?;
        }
        Ok(())
    }
}

impl UeIo<2048> for Wire {
    type Error = Failure;

    fn transmit(&mut self, d: &[u8], _: Datagram) -> Result<(), Failure> {
        self.say("UE → EESE", &describe(d));
        self.recorder
            .datagram(&self.clock, self.ue_addr, self.eese_addr, d)?;
        self.ue_sock
            .send_to(d, self.eese_addr)
            .map_err(io("send"))?;
        Ok(())
    }

    fn event(&mut self, ue: &Ue<2048>, ev: Event) -> Result<(), Failure> {
        self.say("UE", &describe_event(&ev));
        if matches!(ev, Event::Rekeyed { .. }) {
            self.keysets += 1;
        }
        if let (Event::Rekeyed { ksi, counter }, Some((rand, keys))) = (ev, ue.current_keys()) {
            self.recorder.keys(ksi, counter, rand, keys)?;
        }
        Ok(())
    }
}

struct Demo {
    clock: Rc<SystemClock>,
    wire: Wire,
    root: RootKey,
    eese: EeseDriver<UeId>,
    ue: UeDriver<2048>,
    at_ue: Vec<String>,
    at_eese: Vec<String>,
}

fn bind_loopback(port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(("127.0.0.1", port)).or_else(|_| UdpSocket::bind("127.0.0.1:0"))
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

impl Demo {
    fn say(&self, who: &str, line: &str) {
        self.wire.say(who, line);
    }

    fn step(&self, title: &str) {
        crate::outln!("\n== {title}");
    }

    /// Persists, transmits and reports whatever the EESE has to say.
    fn drain_eese(&mut self) -> Result<(), Failure> {
        let clock = Rc::clone(&self.clock);
        self.eese.drain(|| clock.now(), &mut self.wire)?;
        self.wire.check()
    }

    fn drain_ue(&mut self) -> Result<(), Failure> {
        self.ue.drain(self.clock.now(), &mut self.wire)?;
        Ok(())
    }

    /// A datagram arrived at the EESE's socket.
    fn eese_receive(&mut self, from: SocketAddr, mut d: Vec<u8>) -> Result<(), Failure> {
        let now = self.clock.now();
        let root = self.root.clone();
        let result = self
            .eese
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
        let r = self.eese.send(now, &id, payload, &mut self.wire);
        self.wire.check()?;
        match r {
            Ok(SendOutcome::Sent { .. }) => {}
            Ok(SendOutcome::Queued) => {
                let waiting = self
                    .eese
                    .table()
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
            }
            Err(e) => return Err(Failure::rejected(format!("EESE could not send: {e}"))),
        }
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
            if let Ok((n, from)) = self.wire.eese_sock.recv_from(&mut buf) {
                idle = false;
                self.eese_receive(from, buf[..n].to_vec())?;
            }
            if let Ok((n, _)) = self.wire.ue_sock.recv_from(&mut buf) {
                idle = false;
                self.ue_receive(buf[..n].to_vec())?;
            }
            let now = self.clock.now();
            if self.eese.poll_timeout().is_some_and(|t| t <= now) {
                self.eese.handle_timeout(now);
                self.drain_eese()?;
            }
            if self.ue.ue().poll_timeout().is_some_and(|t| t <= now) {
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
            .ue_mut()
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
    let clock = Rc::new(SystemClock::new());
    let mut d = Demo {
        clock: Rc::clone(&clock),
        wire: Wire {
            clock,
            eese_sock,
            ue_sock,
            eese_addr,
            ue_addr,
            eese_snapshots: HashMap::new(),
            recorder: Recorder::open(a.pcap.as_deref(), a.keylog.as_deref())?,
            keysets: 0,
            failed: None,
        },
        ue: UeDriver::new(Ue::new(ue_cfg, root.clone(), id, nonce)),
        eese: EeseDriver::new(EeseTable::new(eese_cfg, OsRand)),
        root,
        at_ue: vec![],
        at_eese: vec![],
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
    d.wire.recorder.finish()?;

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
        crate::outln!("every payload arrived, across {} keysets", d.wire.keysets);
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "payloads missing or out of order: EESE got {:?}, UE got {:?}",
            d.at_eese, d.at_ue
        )))
    }
}
