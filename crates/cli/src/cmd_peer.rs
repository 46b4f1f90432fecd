//! `ciot-e2e eese` and `ciot-e2e ue`: the two endpoints as two processes
//! over UDP. The UE opens its contact with a hello; the EESE echoes every
//! payload.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, OsRand, Received, Reject, SendOutcome, Ue,
    UeConfig, UeId,
};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, UeNonce, int_key};
use clap::Args;

use ciot_e2e_analyze::keylog::KeyLogFile;

use crate::Failure;
use crate::args::hex_array;
use crate::net::{Clock, describe_event, write_atomic};

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
    /// The EESE's address.
    #[arg(long)]
    connect: SocketAddr,
    #[command(flatten)]
    aka: AkaArgs,
    /// The UE's identifier, as the hello carries it (1 to 64 octets).
    #[arg(long, default_value = "ue-1")]
    id: String,
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
    /// Payloads to send; each waits for its echo.
    #[arg(long)]
    count: u32,
    /// Pause between payloads, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Send a payload again whose echo has not come back after this long.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
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

struct Server {
    sock: UdpSocket,
    clock: Clock,
    root: RootKey,
    table: EeseTable<UeId>,
    max_sessions: usize,
    out: Vec<u8>,
    unauth: Unauth,
    keylog: Option<KeyLogFile>,
}

impl Server {
    fn evict(&mut self, id: &UeId) {
        self.table.remove(id);
    }

    /// Handles one datagram; returns whether it was authentic.
    fn receive(&mut self, from: SocketAddr, d: &mut [u8]) -> Result<bool, Failure> {
        let now = self.clock.now();
        let root = self.root.clone();
        let had = self.table.len();
        let result = self
            .table
            .handle_datagram(now, &from, d, |id| Some((UeId::new(id).ok()?, root)));
        if let Ok((id, _)) = &result
            && self.table.len() > had
            && self.table.len() > self.max_sessions
        {
            // Full: the session quiet for longest makes room. Only an
            // authentic hello makes a session, so no spoofer can evict.
            let lru = self
                .table
                .ids()
                .filter(|x| *x != id)
                .min_by_key(|x| self.table.last_active(x))
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
                let mut out = std::mem::take(&mut self.out);
                match self.table.send(now, &id, &echo, &mut out) {
                    Ok(SendOutcome::Sent { sealed, to }) => {
                        self.sock
                            .send_to(&out[..sealed.len], to)
                            .map_err(io("send"))?;
                    }
                    Ok(SendOutcome::Queued) => {}
                    Err(e) => {
                        crate::outln!("[{:8.3}s] {id}: echo not sent: {e}", self.clock.secs());
                    }
                }
                self.out = out;
                Ok(true)
            }
            Ok(_) => Ok(true),
            // Authentic data under a keyset that ran out: refused by name
            // and answered, within the credit its address built up.
            Err(Reject::ExpiredKsi(_) | Reject::RetiredKsi(_)) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// Persists (in memory: this mode keeps no files), transmits and
    /// reports; returns the octets transmitted.
    fn drain(&mut self) -> Result<u64, Failure> {
        let mut snap = [0u8; EESE_SNAPSHOT_LEN];
        let mut sent = 0u64;
        loop {
            let mut progress = false;
            while let Some((id, p)) = self.table.poll_persist(&mut snap) {
                let _ = self.table.persisted(&id, p);
                progress = true;
            }
            let now = self.clock.now();
            let mut out = std::mem::take(&mut self.out);
            while let Some((_, to, t)) = self.table.poll_transmit(now, &mut out) {
                self.sock.send_to(&out[..t.len], to).map_err(io("send"))?;
                sent += t.len as u64;
                progress = true;
            }
            self.out = out;
            while let Some((id, ev)) = self.table.poll_event() {
                crate::outln!("[{:8.3}s] {id}: {}", self.clock.secs(), describe_event(&ev));
                if let (Event::Rekeyed { ksi, counter }, Some(log)) = (ev, &mut self.keylog)
                    && let Some((rand, keys)) = self.table.current_keys(&id)
                {
                    log.append(ksi, Some(counter), rand, keys)
                        .map_err(io("--keylog"))?;
                }
                progress = true;
            }
            if !progress {
                return Ok(sent);
            }
        }
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
    let mut s = Server {
        sock,
        clock: Clock::start(),
        root,
        table: EeseTable::new(cfg, OsRand),
        max_sessions: a.max_sessions.max(1),
        out: vec![0u8; 65_536],
        unauth: Unauth::default(),
        keylog: match &a.keylog {
            Some(p) => Some(KeyLogFile::create_insecure(p).map_err(io("--keylog"))?),
            None => None,
        },
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
                s.table.len()
            );
            return Ok(());
        }
        match s.sock.recv_from(&mut buf) {
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
        if s.table.poll_timeout().is_some_and(|t| t <= now) {
            s.table.handle_timeout(now);
            s.drain()?;
        }
        if now >= next_sweep {
            next_sweep = now.after(Duration::from_secs(10));
            let quiet: Vec<UeId> = s
                .table
                .ids()
                .filter(|id| {
                    s.table
                        .last_active(id)
                        .is_some_and(|t| t.after(idle) <= now)
                })
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

/// Runs `ciot-e2e ue`.
pub fn ue(a: &UeArgs) -> Result<(), Failure> {
    let root = a.aka.root()?;
    let id = UeId::new(a.id.as_bytes()).map_err(|e| Failure::usage(format!("--id: {e}")))?;
    let sock = UdpSocket::bind(if a.connect.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .map_err(io("bind"))?;
    sock.connect(a.connect).map_err(io("connect"))?;
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .map_err(io("socket"))?;
    let clock = Clock::start();
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
    let mut keylog = match &a.keylog {
        Some(p) => Some(KeyLogFile::create_insecure(p).map_err(io("--keylog"))?),
        None => None,
    };
    let mut ue: Ue<2048> = Ue::new(cfg, root, id, nonce);
    if let Some(path) = &a.state {
        write_record(path, &nonce, &ue, 0)?;
    }
    let mut out = vec![0u8; 65_536];
    let mut buf = vec![0u8; 65_536];
    let (mut echoed, mut rekeys) = (0u32, 0u32);
    // Drains what the UE has to say; collects the payloads it receives.
    let mut pump = |ue: &mut Ue<2048>,
                    got: &mut Vec<Vec<u8>>,
                    rekeys: &mut u32|
     -> Result<(), Failure> {
        loop {
            let mut progress = false;
            while let Ok(Some(t)) = ue.poll_transmit(clock.now(), &mut out) {
                match sock.send(&out[..t.len]) {
                    // Nobody listening (yet): the datagram is lost, as on any
                    // network; the UE's own repeats carry on.
                    Err(e) if refused(&e) => {}
                    r => {
                        r.map_err(io("send"))?;
                    }
                }
                progress = true;
            }
            while let Some(ev) = ue.poll_event() {
                if let Event::Rekeyed { ksi, counter } = ev {
                    *rekeys += 1;
                    if let (Some(log), Some((rand, keys))) = (&mut keylog, ue.current_keys()) {
                        log.append(ksi, Some(counter), rand, keys)
                            .map_err(io("--keylog"))?;
                    }
                }
                progress = true;
            }
            match sock.recv(&mut buf) {
                Ok(n) => {
                    progress = true;
                    if let Ok(Received::Data(d)) = ue.handle_datagram(clock.now(), &mut buf[..n]) {
                        let payload = buf[d.payload].to_vec();
                        crate::outln!(
                            "ue: received {:?} (KSI {}, seq {})",
                            String::from_utf8_lossy(&payload),
                            d.ksi,
                            d.seq
                        );
                        got.push(payload);
                    }
                }
                // An EESE restarting answers with ICMP port unreachable for a
                // moment: the UE waits it out rather than exit.
                Err(e) if would_block(&e) || refused(&e) => {}
                Err(e) => return Err(io("receive")(e)),
            }
            ue.handle_timeout(clock.now());
            if !progress {
                return Ok(());
            }
        }
    };
    let mut got = Vec::new();
    for i in 1..=a.count {
        let payload = format!("message {i}");
        let want = format!("echo: {payload}");
        let mut attempts = 0;
        'retry: while attempts < 10 {
            attempts += 1;
            // Wait for the previous payload to go out (and, if its keyset
            // stopped since, for the EESE to say whether it was refused)
            // before handing over this one.
            let free = clock.now().after(Duration::from_millis(a.timeout_ms));
            while ue.busy(clock.now()) && clock.now() < free {
                pump(&mut ue, &mut got, &mut rekeys)?;
            }
            if ue.send(clock.now(), payload.as_bytes()).is_err() {
                continue 'retry;
            }
            let deadline = clock.now().after(Duration::from_millis(a.timeout_ms));
            while clock.now() < deadline {
                pump(&mut ue, &mut got, &mut rekeys)?;
                if let Some(at) = got.iter().position(|g| g == want.as_bytes()) {
                    got.remove(at);
                    echoed += 1;
                    crate::outln!(
                        "echo {i}: {want} (KSI {})",
                        ue.status().map_or(0, |s| s.ksi.0)
                    );
                    break 'retry;
                }
            }
        }
        if let Some(path) = &a.state {
            write_record(path, &nonce, &ue, echoed)?;
        }
        std::thread::sleep(Duration::from_millis(a.interval_ms));
    }
    crate::outln!(
        "echoed {echoed}/{} across {} rekeys",
        a.count,
        rekeys.saturating_sub(1)
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
