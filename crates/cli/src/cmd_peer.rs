//! `ciot-e2e eese` and `ciot-e2e ue`: the two endpoints as two processes
//! over UDP. The UE opens its connection with an empty datagram (standing in
//! for the connection the TR assumes); the EESE echoes every payload.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ciot_e2e::endpoint::{Config, EeseTable, OsRand, Ue};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, int_key};
use clap::Args;

use crate::Failure;
use crate::args::hex_array;
use crate::net::{Clock, Collect, Ev, Item};

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
    #[command(flatten)]
    aka: AkaArgs,
    /// Key lifetime te2e in seconds.
    #[arg(long, default_value_t = 3600)]
    te2e: u32,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    exit_after: Option<u64>,
    /// Most UEs served at once; datagrams from further peers are dropped.
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
}

/// Arguments of `ciot-e2e ue`.
#[derive(Args)]
pub struct UeArgs {
    /// The EESE's address.
    #[arg(long)]
    connect: SocketAddr,
    #[command(flatten)]
    aka: AkaArgs,
    /// Payloads to send; each waits for its echo.
    #[arg(long)]
    count: u32,
    /// Pause between payloads, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Retransmit a payload whose echo has not come back after this long.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

fn config(te2e: u32) -> Config {
    Config {
        te2e: Duration::from_secs(u64::from(te2e.max(1))),
        grace: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Runs `ciot-e2e eese`.
pub fn eese(a: &EeseArgs) -> Result<(), Failure> {
    let root = a.aka.root()?;
    let sock = UdpSocket::bind(a.listen).map_err(io("bind"))?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(io("socket"))?;
    let clock = Clock::start();
    let mut table = EeseTable::new(config(a.te2e));
    let mut rng = OsRand;
    let mut scratch = vec![0u8; 65_536];
    let mut buf = vec![0u8; 65_536];
    crate::outln!(
        "eese: listening on {}, te2e {} s",
        sock.local_addr().map_err(io("socket"))?,
        a.te2e
    );
    let stop = a.exit_after.map(|s| Duration::from_secs(s).as_millis());
    loop {
        if stop.is_some_and(|s| u128::from(clock.now().as_millis()) >= s) {
            return Ok(());
        }
        let mut out = Collect::default();
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let now = clock.now();
                if table.get(&from).is_none() {
                    if table.len() >= a.max_sessions {
                        continue;
                    }
                    // The demo stands in for the EMKS: every UE has this root.
                    table.insert(from, root.clone(), None);
                }
                if n == 0 {
                    table.on_connect(now, &from, &mut rng, &mut out);
                } else {
                    table.handle_datagram(now, &from, &mut buf[..n], &mut rng, &mut out);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(io("receive")(e)),
        }
        let now = clock.now();
        if table.poll_timeout().is_some_and(|t| t <= now) {
            table.handle_timeout(now, &mut out);
        }
        let mut queue = VecDeque::from(out.items);
        while let Some((ue, item)) = queue.pop_front() {
            match item {
                Item::Datagram(d) => {
                    sock.send_to(&d, ue).map_err(io("send"))?;
                }
                Item::Event(ev) => {
                    crate::outln!("[{:8.3}s] {ue}: {}", clock.secs(), ev.describe());
                    if let Ev::Data { payload, .. } = ev {
                        let echo = [b"echo: ".as_slice(), &payload].concat();
                        let mut more = Collect::default();
                        if let Some(Err(e)) =
                            table.send(clock.now(), &ue, &echo, &mut scratch, &mut rng, &mut more)
                        {
                            crate::outln!("[{:8.3}s] {ue}: echo not sent: {e}", clock.secs());
                        }
                        queue.extend(more.items);
                    }
                }
            }
        }
    }
}

/// Runs `ciot-e2e ue`.
pub fn ue(a: &UeArgs) -> Result<(), Failure> {
    let root = a.aka.root()?;
    let cfg = config(3600);
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
    let mut ue: Ue<2048> = Ue::with_config(root, &cfg);
    let mut scratch = vec![0u8; 65_536];
    let mut buf = vec![0u8; 65_536];
    let (mut echoed, mut rekeys) = (0u32, 0u32);
    // Open the connection: the EESE answers with a trigger.
    sock.send(&[]).map_err(io("send"))?;
    for i in 1..=a.count {
        let payload = format!("message {i}");
        let want = format!("echo: {payload}");
        let mut attempts = 0;
        let mut got = false;
        'retry: while attempts < 10 && !got {
            attempts += 1;
            let mut out = Collect::default();
            if ue.current().is_none_or(|c| !c.2) && attempts > 1 {
                // No usable keyset and no trigger came: open the connection again.
                sock.send(&[]).map_err(io("send"))?;
            }
            ue.send(payload.as_bytes(), &mut scratch, &mut out)
                .map_err(|e| Failure::rejected(format!("send: {e}")))?;
            let deadline = clock.now().after(Duration::from_millis(a.timeout_ms));
            loop {
                for (_, item) in std::mem::take(&mut out.items) {
                    match item {
                        Item::Datagram(d) => {
                            sock.send(&d).map_err(io("send"))?;
                        }
                        Item::Event(Ev::Data { payload, ksi, .. }) => {
                            if payload == want.as_bytes() {
                                echoed += 1;
                                got = true;
                                crate::outln!(
                                    "echo {i}: {} (KSI {ksi})",
                                    String::from_utf8_lossy(&payload)
                                );
                            }
                        }
                        Item::Event(Ev::Rekeyed { .. }) => rekeys += 1,
                        Item::Event(_) => {}
                    }
                }
                if got {
                    break 'retry;
                }
                if clock.now() >= deadline {
                    continue 'retry;
                }
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        ue.handle_datagram(clock.now(), &cfg, &mut buf[..n], &mut scratch, &mut out)
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(io("receive")(e)),
                }
                ue.handle_timeout(clock.now());
            }
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
