//! `ciot-e2e eese` and `ciot-e2e ue`: the two endpoints as two processes
//! over UDP. The UE opens its contact with a hello; the EESE echoes every
//! payload.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use ciot_e2e::driver::{EeseDriver, EeseIo, SystemClock, UeDriver, UeIo};
use ciot_e2e::endpoint::{
    Datagram, EeseConfig, EeseTable, Event, Instant, OsRand, Received, Reject, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, UeNonce, int_key};
use clap::Args;

use ciot_e2e_analyze::keylog::KeyLogFile;

use crate::Failure;
use crate::args::{hex_array, hex_bytes};
use crate::net::{describe_event, write_atomic};

/// The AKA keys both sides are given.
#[derive(Args, Clone)]
pub struct AkaArgs {
    /// CK, 16 octets hex.
    #[arg(long)]
    ck: String,
    /// IK, 16 octets hex.
    #[arg(long)]
    ik: String,
}

impl AkaArgs {
    /// e2e_int_key from CK/IK.
    fn root(&self) -> Result<RootKey, Failure> {
        let ck = Ck::from_bytes(hex_array("ck", &self.ck).map_err(Failure::usage)?);
        let ik = Ik::from_bytes(hex_array("ik", &self.ik).map_err(Failure::usage)?);
        Ok(int_key(KdfProfile::Ts33220, &CkIk::new(&ck, &ik)))
    }
}

/// Arguments of `ciot-e2e eese`.
#[derive(Args)]
pub struct EeseArgs {
    /// Address to listen on, e.g. 127.0.0.1:33863.
    #[arg(long)]
    listen: SocketAddr,
    /// CK, 16 octets hex (single-root demo mode: every UE gets this root).
    #[arg(
        long,
        conflicts_with = "emks",
        required_unless_present = "emks",
        requires = "ik"
    )]
    ck: Option<String>,
    /// IK, 16 octets hex (single-root demo mode).
    #[arg(long, conflicts_with = "emks", requires = "ck")]
    ik: Option<String>,
    #[command(flatten)]
    service: crate::cmd_service::EeseServiceArgs,
    /// Key lifetime te2e in seconds.
    #[arg(long, default_value_t = 3600)]
    te2e: u32,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    exit_after: Option<u64>,
    /// Most UEs served at once. Only an authentic hello makes a session;
    /// when the table is full, the session quiet for longest makes room.
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// Sessions quiet for this many seconds are removed.
    #[arg(long, default_value_t = 3600)]
    idle_timeout: u64,
    /// Append the key of every keyset taken into use to this key log
    /// (docs/keylog.md), so `ciot-e2e dissect --keylog` can decrypt a
    /// capture. It defeats the protection of that traffic: test use only.
    #[arg(long)]
    keylog: Option<PathBuf>,
}

/// Arguments of `ciot-e2e ue`.
#[derive(Args)]
pub struct UeArgs {
    /// The EESE's address. Give it more than once for an EESE that runs on
    /// several instances (`--connect A --connect B`): the UE starts with
    /// the first and moves to the next (round the list) when its hellos go
    /// unanswered (see --failover-after).
    #[arg(long, required = true)]
    connect: Vec<SocketAddr>,
    /// The local address to send from (default: any address of the
    /// --connect family, a port the system picks), e.g. 127.0.0.5:0.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// With several --connect addresses: move to the next one after this
    /// many hellos in a row went unanswered.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    failover_after: u32,
    #[command(flatten)]
    aka: AkaArgs,
    /// The UE's identifier as text: its UTF-8 octets are what the hello
    /// carries (1 to 64 octets; spaces are fine: `--id "bar ue 3"`).
    #[arg(long, default_value = "ue-1")]
    id: String,
    /// The UE's identifier as hex octets, for one that is not text
    /// (instead of --id).
    #[arg(long, value_name = "HEX", conflicts_with = "id")]
    id_hex: Option<String>,
    /// Write a record of the run to this file (its start's nonce, keyset,
    /// echoes). A UE needs no stored state: every start draws a new nonce,
    /// so nothing here is read back, and a lost or older file is harmless.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Append the key of every keyset the UE installs to this key log
    /// (docs/keylog.md), so `ciot-e2e dissect --keylog` can decrypt a capture.
    /// It defeats the protection of that traffic: test use only.
    #[arg(long)]
    keylog: Option<PathBuf>,
    /// Payloads to send; each waits for its echo (unless --no-wait).
    #[arg(long)]
    count: u32,
    /// Pause between payloads, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Send a payload again whose echo has not come back after this long
    /// (with --no-wait: how long to go on receiving after the last payload
    /// went out).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Do not wait for echoes (for an EESE that posts uplink to a webhook):
    /// hand each payload to the UE once the previous one went out, print
    /// whatever downlink arrives, and end with `sent N/M payloads`.
    #[arg(long)]
    no_wait: bool,
}

impl UeArgs {
    /// The identifier the hello carries: `--id-hex` octets or `--id` text.
    fn ue_id(&self) -> Result<UeId, Failure> {
        let (what, octets) = match &self.id_hex {
            Some(h) => (
                "--id-hex",
                hex_bytes(h).map_err(|e| Failure::usage(format!("--id-hex: {e}")))?,
            ),
            None => ("--id", self.id.as_bytes().to_vec()),
        };
        UeId::new(&octets).map_err(|e| Failure::usage(format!("{what}: {e}")))
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The port is closed (a connected UDP socket reports the ICMP error).
fn refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::ConnectionRefused
}

/// What the server counts about input it could not authenticate.
#[derive(Default)]
struct Unauth {
    datagrams: u64,
    octets_in: u64,
    octets_out: u64,
}

/// The single-root EESE's side of the driver: the socket, the transcript
/// and the key log. Snapshots stay in memory: this mode keeps no files.
struct Net {
    sock: UdpSocket,
    clock: Rc<SystemClock>,
    keylog: Option<KeyLogFile>,
    /// The first socket error on send (the driver's transmit is best
    /// effort; the command ends on it once the pass is over).
    failed: Option<std::io::Error>,
}

impl Net {
    /// Ends the command if a send failed.
    fn check(&mut self) -> Result<(), Failure> {
        self.failed.take().map_or(Ok(()), |e| Err(io("send")(e)))
    }
}

impl EeseIo<UeId, SocketAddr, OsRand> for Net {
    type Error = Failure;

    fn persist(&mut self, _: &[(&UeId, &[u8])]) -> Result<(), Failure> {
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
            && let Err(e) = self.sock.send_to(datagram, to)
        {
            self.failed = Some(e);
        }
    }

    fn event(
        &mut self,
        table: &mut EeseTable<UeId>,
        _: Instant,
        id: UeId,
        ev: Event,
    ) -> Result<(), Failure> {
        crate::outln!("[{:8.3}s] {id}: {}", self.clock.secs(), describe_event(&ev));
        if let (Event::Rekeyed { ksi, counter }, Some(log)) = (ev, &mut self.keylog)
            && let Some((rand, keys)) = table.current_keys(&id)
        {
            log.append(ksi, Some(counter), rand, keys)
                .map_err(io("--keylog"))?;
        }
        Ok(())
    }
}

struct Server {
    driver: EeseDriver<UeId>,
    net: Net,
    clock: Rc<SystemClock>,
    root: RootKey,
    max_sessions: usize,
    unauth: Unauth,
}

impl Server {
    fn evict(&mut self, id: &UeId) {
        self.driver.table_mut().remove(id);
    }

    /// Handles one datagram; returns whether it was authentic.
    fn receive(&mut self, from: SocketAddr, d: &mut [u8]) -> Result<bool, Failure> {
        let now = self.clock.now();
        let root = self.root.clone();
        let had = self.driver.table().len();
        let result = self
            .driver
            .handle_datagram(now, &from, d, |id| Some((UeId::new(id).ok()?, root)));
        let table = self.driver.table();
        if let Ok((id, _)) = &result
            && table.len() > had
            && table.len() > self.max_sessions
        {
            // Full: the session quiet for longest makes room. Only an
            // authentic hello makes a session, so no spoofer can evict.
            let lru = table
                .ids()
                .filter(|x| *x != id)
                .min_by_key(|x| table.last_active(x))
                .copied();
            if let Some(lru) = lru {
                self.evict(&lru);
            }
        }
        match result {
            Ok((id, Received::Data(got))) => {
                let payload = d[got.payload].to_vec();
                crate::outln!(
                    "[{:8.3}s] {id}: received {:?} (KSI {}, seq {})",
                    self.clock.secs(),
                    String::from_utf8_lossy(&payload),
                    got.ksi,
                    got.seq
                );
                let echo = [b"echo: ".as_slice(), &payload].concat();
                // Sent at once when it can go now, else queued for a drain.
                if let Err(e) = self.driver.send(now, &id, &echo, &mut self.net) {
                    crate::outln!("[{:8.3}s] {id}: echo not sent: {e}", self.clock.secs());
                }
                self.net.check()?;
                Ok(true)
            }
            Ok(_) => Ok(true),
            // Authentic data under a keyset that ran out: refused by name
            // and answered, within the credit its address built up.
            Err(Reject::ExpiredKsi(_) | Reject::RetiredKsi(_)) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// Persists, transmits and reports (the driver's pass); returns the
    /// octets transmitted.
    fn drain(&mut self) -> Result<u64, Failure> {
        let clock = Rc::clone(&self.clock);
        let pass = self.driver.drain(|| clock.now(), &mut self.net)?;
        self.net.check()?;
        Ok(pass.octets)
    }
}

/// Runs `ciot-e2e eese`.
pub fn eese(a: &EeseArgs) -> Result<(), Failure> {
    if let Some(emks) = &a.service.emks {
        return crate::cmd_service::eese_service(
            &a.service,
            emks,
            a.listen,
            a.te2e,
            a.max_sessions,
            a.idle_timeout,
            a.exit_after,
            a.keylog.as_deref(),
        );
    }
    let root = AkaArgs {
        ck: a.ck.clone().unwrap_or_default(),
        ik: a.ik.clone().unwrap_or_default(),
    }
    .root()?;
    let sock = UdpSocket::bind(a.listen).map_err(io("bind"))?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(io("socket"))?;
    let cfg = EeseConfig {
        te2e: Duration::from_secs(u64::from(a.te2e.max(1))),
        grace: Duration::from_secs(2),
        ..EeseConfig::default()
    };
    crate::outln!(
        "eese: listening on {}, te2e {} s, at most {} sessions",
        sock.local_addr().map_err(io("socket"))?,
        a.te2e,
        a.max_sessions
    );
    let clock = Rc::new(SystemClock::new());
    let mut s = Server {
        driver: EeseDriver::new(EeseTable::new(cfg, OsRand)),
        net: Net {
            sock,
            clock: Rc::clone(&clock),
            keylog: match &a.keylog {
                Some(p) => Some(KeyLogFile::create_insecure(p).map_err(io("--keylog"))?),
                None => None,
            },
            failed: None,
        },
        clock,
        root,
        max_sessions: a.max_sessions.max(1),
        unauth: Unauth::default(),
    };
    let stop = a.exit_after.map(|s| s as f64);
    let idle = Duration::from_secs(a.idle_timeout.max(1));
    let mut buf = vec![0u8; 65_536];
    let mut next_sweep = s.clock.now().after(Duration::from_secs(10));
    loop {
        if stop.is_some_and(|t| s.clock.secs() >= t) {
            crate::outln!(
                "eese: unauthenticated input: {} datagrams, {} octets in, {} octets sent to its sources; {} sessions",
                s.unauth.datagrams,
                s.unauth.octets_in,
                s.unauth.octets_out,
                s.driver.table().len()
            );
            return Ok(());
        }
        match s.net.sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let authentic = s.receive(from, &mut buf[..n])?;
                let answered = s.drain()?;
                if !authentic {
                    // Whatever went out right after it answers it: nothing
                    // for a source without a session, and for a spoofed UE
                    // address what that session's budget allows
                    // (docs/SECURITY.md).
                    s.unauth.datagrams += 1;
                    s.unauth.octets_in += n as u64;
                    s.unauth.octets_out += answered;
                }
            }
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(io("receive")(e)),
        }
        let now = s.clock.now();
        if s.driver.poll_timeout().is_some_and(|t| t <= now) {
            s.driver.handle_timeout(now);
            s.drain()?;
        }
        if now >= next_sweep {
            next_sweep = now.after(Duration::from_secs(10));
            let table = s.driver.table();
            let quiet: Vec<UeId> = table
                .ids()
                .filter(|id| table.last_active(id).is_some_and(|t| t.after(idle) <= now))
                .copied()
                .collect();
            for id in quiet {
                s.evict(&id);
            }
        }
    }
}

/// What `ue --state FILE` holds: a record of the UE's last run, for the
/// operator. Nothing in it is read back for keys or counters: a UE keeps no
/// state that must survive a restart (every start draws a new nonce), so a
/// lost, old or copied file cannot make it reuse a key.
fn write_record(path: &Path, nonce: &UeNonce, ue: &Ue<2048>, echoed: u32) -> Result<(), Failure> {
    let status = ue.status();
    let text = format!(
        "# ciot-e2e ue: a record of the last run (never read back for keys: docs/SECURITY.md §4)\n\
         start {}\nkeyset_ksi {}\nkeyset_counter {}\nechoed {echoed}\n",
        hex::encode(nonce.as_bytes()),
        status.map_or_else(|| "-".to_string(), |s| s.ksi.to_string()),
        status.map_or_else(|| "-".to_string(), |s| s.counter.to_string()),
    );
    write_atomic(path, text.as_bytes()).map_err(io("--state"))
}

/// The UE's side of the driver: the connected socket and the key log.
struct UeNet<'a> {
    sock: &'a UdpSocket,
    keylog: Option<KeyLogFile>,
    rekeys: u32,
}

impl UeIo<2048> for UeNet<'_> {
    type Error = Failure;

    fn transmit(&mut self, datagram: &[u8], _: Datagram) -> Result<(), Failure> {
        match self.sock.send(datagram) {
            // Nobody listening (yet): the datagram is lost, as on any
            // network; the UE's own repeats carry on.
            Err(e) if refused(&e) => Ok(()),
            r => r.map(drop).map_err(io("send")),
        }
    }

    fn event(&mut self, ue: &Ue<2048>, ev: Event) -> Result<(), Failure> {
        if let Event::Rekeyed { ksi, counter } = ev {
            self.rekeys += 1;
            if let (Some(log), Some((rand, keys))) = (&mut self.keylog, ue.current_keys()) {
                log.append(ksi, Some(counter), rand, keys)
                    .map_err(io("--keylog"))?;
            }
        }
        Ok(())
    }
}

/// The UE, its socket and the downlink payloads it received.
struct UePeer<'a> {
    driver: UeDriver<2048>,
    net: UeNet<'a>,
    clock: &'a SystemClock,
    buf: Vec<u8>,
    got: Vec<Vec<u8>>,
    /// The EESE's addresses and the one in use.
    servers: &'a [SocketAddr],
    at: usize,
    failover_after: u32,
}

impl UePeer<'_> {
    fn ue(&self) -> &Ue<2048> {
        self.driver.ue()
    }

    /// Runs the UE's timers and says what it has to say, then reads what
    /// arrived (waiting up to the socket's read timeout), until nothing is
    /// left; prints and keeps every payload received.
    fn pump(&mut self) -> Result<(), Failure> {
        loop {
            self.driver.drain(self.clock.now(), &mut self.net)?;
            self.failover()?;
            match self.net.sock.recv(&mut self.buf) {
                Ok(n) => {
                    let d = &mut self.buf[..n];
                    if let Ok(Received::Data(got)) =
                        self.driver.handle_datagram(self.clock.now(), d)
                    {
                        let payload = d[got.payload].to_vec();
                        crate::outln!(
                            "ue: received {:?} (KSI {}, seq {})",
                            String::from_utf8_lossy(&payload),
                            got.ksi,
                            got.seq
                        );
                        self.got.push(payload);
                    }
                }
                // An EESE restarting answers with ICMP port unreachable for a
                // moment: the UE waits it out rather than exit.
                Err(e) if would_block(&e) || refused(&e) => return Ok(()),
                Err(e) => return Err(io("receive")(e)),
            }
        }
    }

    /// Moves to the EESE's next address when the hellos sent to this one
    /// went unanswered; the next hello (on the UE's back-off) goes there.
    fn failover(&mut self) -> Result<(), Failure> {
        if self.servers.len() < 2 || self.driver.unanswered_hellos() < self.failover_after {
            return Ok(());
        }
        let from = self.servers.get(self.at).copied();
        self.at = (self.at + 1) % self.servers.len();
        let Some(&to) = self.servers.get(self.at) else {
            return Ok(());
        };
        self.net.sock.connect(to).map_err(io("connect"))?;
        self.driver.forget_unanswered();
        if let Some(from) = from {
            crate::outln!(
                "ue: {} hellos to {from} unanswered; moving to {to}",
                self.failover_after
            );
        }
        Ok(())
    }

    /// Pumps for `ms` milliseconds.
    fn run_for(&mut self, ms: u64) -> Result<(), Failure> {
        let end = self.clock.now().after(Duration::from_millis(ms));
        while self.clock.now() < end {
            self.pump()?;
        }
        Ok(())
    }

    /// Pumps until the UE takes a new payload (the previous one went out,
    /// and, if its keyset stopped since, the EESE said whether it was
    /// refused) or `ms` milliseconds have passed; true if it would.
    fn wait_free(&mut self, ms: u64) -> Result<bool, Failure> {
        let free = self.clock.now().after(Duration::from_millis(ms));
        while self.ue().busy(self.clock.now()) && self.clock.now() < free {
            self.pump()?;
        }
        Ok(!self.ue().busy(self.clock.now()))
    }

    /// Hands `payload` to the UE: up to 10 attempts, each after waiting up
    /// to `ms` for it to be free. True once taken.
    fn hand(&mut self, payload: &[u8], ms: u64) -> Result<bool, Failure> {
        for _ in 0..10 {
            self.wait_free(ms)?;
            let now = self.clock.now();
            if self.driver.ue_mut().send(now, payload).is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs `ciot-e2e ue`.
pub fn ue(a: &UeArgs) -> Result<(), Failure> {
    let root = a.aka.root()?;
    let id = a.ue_id()?;
    let first = *a
        .connect
        .first()
        .ok_or_else(|| Failure::usage("--connect: an address is needed"))?;
    if a.connect.iter().any(|c| c.is_ipv4() != first.is_ipv4()) {
        return Err(Failure::usage(
            "--connect: give addresses of one family (all IPv4 or all IPv6)",
        ));
    }
    let any: SocketAddr = if first.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(a.bind.unwrap_or(any)).map_err(io("--bind"))?;
    sock.connect(first).map_err(io("connect"))?;
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .map_err(io("socket"))?;
    let clock = SystemClock::new();
    let cfg = UeConfig {
        probe_after: Some(Duration::from_millis(a.timeout_ms.max(1))),
        hello_backoff: Duration::from_millis(200),
        hello_backoff_max: Duration::from_secs(2),
        ..UeConfig::default()
    };
    // Every start of a UE draws a new nonce from the operating system's
    // random source: nothing of an earlier run (or of an older copy of its
    // files) can bring back keys it used.
    let nonce = UeNonce::random().map_err(|e| Failure::usage(format!("random source: {e}")))?;
    if let Some(path) = &a.state
        && let Ok(previous) = std::fs::read_to_string(path)
        && let Some(start) = previous.lines().find_map(|l| l.strip_prefix("start "))
    {
        crate::outln!(
            "ue: {} records an earlier start ({start}); this start is {} (nothing is read back)",
            path.display(),
            hex::encode(nonce.as_bytes())
        );
    }
    let keylog = match &a.keylog {
        Some(p) => Some(KeyLogFile::create_insecure(p).map_err(io("--keylog"))?),
        None => None,
    };
    let mut p = UePeer {
        driver: UeDriver::new(Ue::new(cfg, root, id, nonce)),
        net: UeNet {
            sock: &sock,
            keylog,
            rekeys: 0,
        },
        clock: &clock,
        buf: vec![0u8; 65_536],
        got: Vec::new(),
        servers: &a.connect,
        at: 0,
        failover_after: a.failover_after,
    };
    if let Some(path) = &a.state {
        write_record(path, &nonce, p.ue(), 0)?;
    }
    if a.no_wait {
        return ue_no_wait(a, &mut p, &nonce);
    }
    let mut echoed = 0u32;
    for i in 1..=a.count {
        let payload = format!("message {i}");
        let want = format!("echo: {payload}");
        let mut attempts = 0;
        'retry: while attempts < 10 {
            attempts += 1;
            // Wait for the previous payload to go out (and, if its keyset
            // stopped since, for the EESE to say whether it was refused)
            // before handing over this one.
            p.wait_free(a.timeout_ms)?;
            let now = clock.now();
            if p.driver.ue_mut().send(now, payload.as_bytes()).is_err() {
                continue 'retry;
            }
            let deadline = clock.now().after(Duration::from_millis(a.timeout_ms));
            while clock.now() < deadline {
                p.pump()?;
                if let Some(at) = p.got.iter().position(|g| g == want.as_bytes()) {
                    p.got.remove(at);
                    echoed += 1;
                    crate::outln!(
                        "echo {i}: {want} (KSI {})",
                        p.ue().status().map_or(0, |s| s.ksi.0)
                    );
                    break 'retry;
                }
            }
        }
        if let Some(path) = &a.state {
            write_record(path, &nonce, p.ue(), echoed)?;
        }
        std::thread::sleep(Duration::from_millis(a.interval_ms));
    }
    crate::outln!(
        "echoed {echoed}/{} across {} rekeys",
        a.count,
        p.net.rekeys.saturating_sub(1)
    );
    if echoed == a.count {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "only {echoed} of {} echoed",
            a.count
        )))
    }
}

/// `ue --no-wait`: every payload handed over as soon as the UE takes it,
/// paced by `--interval-ms`; downlink is printed as it comes.
fn ue_no_wait(a: &UeArgs, p: &mut UePeer<'_>, nonce: &UeNonce) -> Result<(), Failure> {
    let echoes: HashSet<Vec<u8>> = (1..=a.count)
        .map(|i| format!("echo: message {i}").into_bytes())
        .collect();
    let echoed = |p: &UePeer<'_>| {
        let n = p.got.iter().filter(|g| echoes.contains(*g)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let mut handed = 0u32;
    for i in 1..=a.count {
        // The UE takes a payload once the previous one went out and is not
        // in doubt, so one refused under an expired keyset goes out again
        // under the new one before this one replaces it.
        if p.hand(format!("message {i}").as_bytes(), a.timeout_ms)? {
            handed += 1;
        }
        if let Some(path) = &a.state {
            write_record(path, nonce, p.ue(), echoed(p))?;
        }
        p.run_for(a.interval_ms)?;
    }
    // The last one goes out (and is settled), then downlink has its time.
    p.wait_free(a.timeout_ms.saturating_mul(10))?;
    p.run_for(a.timeout_ms)?;
    // Every payload the UE took and no longer holds was sealed and sent:
    // the UE takes one only when it holds none.
    let sent = handed - u32::from(p.ue().holding() && handed > 0);
    if let Some(path) = &a.state {
        write_record(path, nonce, p.ue(), echoed(p))?;
    }
    crate::outln!("sent {sent}/{} payloads", a.count);
    if sent == a.count {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "only {sent} of {} payloads sent",
            a.count
        )))
    }
}
