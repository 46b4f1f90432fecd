//! `ciot-e2e loadtest`: one EESE and many UEs in one process over loopback
//! UDP, with a fault layer that drops, duplicates, reorders and injects
//! hostile datagrams. Every echoed payload is checked octet for octet; the
//! run passes only if every message came back and nothing was mis-keyed.
//!
//! Threads: the EESE (one socket, one `EeseTable`) and the UE driver (every
//! `Ue`, one socket each, at most `--window` with a message in flight).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::Config;
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootKey, int_key};
use clap::Args;

use crate::Failure;

#[path = "loadtest/eese.rs"]
mod eese;
#[path = "loadtest/faults.rs"]
mod faults;
#[path = "loadtest/report.rs"]
mod report;
#[path = "loadtest/rng.rs"]
mod rng;
#[path = "loadtest/stats.rs"]
mod stats;
#[path = "loadtest/ues.rs"]
mod ues;

use faults::{Params, Registry};
use rng::Rng;

/// Arguments of `ciot-e2e loadtest`.
#[derive(Args, Clone, Debug)]
pub struct LoadtestArgs {
    /// Simulated UEs (one loopback UDP socket each).
    #[arg(long, default_value_t = 1000)]
    ues: u32,
    /// Payloads to send in all, spread evenly over the UEs; each is echoed.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Probability that a hostile datagram (garbage, forged or replayed) is
    /// injected next to each real one, in both directions.
    #[arg(long, default_value_t = 0.0)]
    garbage_ratio: f64,
    /// Probability that a real datagram is dropped.
    #[arg(long, default_value_t = 0.0)]
    loss_ratio: f64,
    /// Probability that a real datagram is duplicated [default: --loss-ratio].
    #[arg(long)]
    dup_ratio: Option<f64>,
    /// Probability that a real datagram is held back 1–40 ms, so later ones
    /// overtake it [default: --loss-ratio].
    #[arg(long)]
    reorder_ratio: Option<f64>,
    /// Key lifetime te2e in seconds (short, so every UE rekeys several times).
    #[arg(long, default_value_t = 1)]
    te2e: u32,
    /// Seed of the UEs' keys, the RANDs, the payloads and every fault decision.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// UEs with a message in flight at once (the EESE's one socket buffers
    /// only so many datagrams).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// First retransmission timeout in milliseconds (doubles, up to 0.8 s).
    #[arg(long, default_value_t = 200)]
    rto_ms: u64,
    /// Fail the run if it has not finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
}

/// What the two threads share.
pub struct Shared {
    /// Per UE: how many of its payloads were handed to the UE so far (the
    /// EESE accepts only a payload number below it).
    pub sent: Vec<AtomicU32>,
    /// The UE driver is done; the EESE stops.
    pub stop: AtomicBool,
    /// Injected datagrams toward the EESE, keyed by sending UE.
    pub to_eese: Registry,
    /// Injected datagrams toward the UEs, keyed by UE.
    pub to_ue: Registry,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::usage(format!("{what}: {e}"))
}

fn ratio(name: &str, v: f64) -> Result<f64, Failure> {
    if (0.0..=0.5).contains(&v) {
        Ok(v)
    } else {
        Err(Failure::usage(format!(
            "--{name} must be between 0 and 0.5, got {v}"
        )))
    }
}

/// Soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The UE's root: e2e_int_key from CK/IK that follow from the seed.
fn root(seed: u64, ue: u32) -> RootKey {
    let mut r = Rng::new(seed ^ (u64::from(ue) << 20) ^ 0x00c1_0a7e_0000_0000);
    let (mut ck, mut ik) = ([0u8; 16], [0u8; 16]);
    r.fill(&mut ck);
    r.fill(&mut ik);
    int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(ck), &Ik::from_bytes(ik)),
    )
}

/// Runs `ciot-e2e loadtest`.
pub fn loadtest(a: &LoadtestArgs) -> Result<(), Failure> {
    let params = Params {
        loss: ratio("loss-ratio", a.loss_ratio)?,
        dup: ratio("dup-ratio", a.dup_ratio.unwrap_or(a.loss_ratio))?,
        reorder: ratio("reorder-ratio", a.reorder_ratio.unwrap_or(a.loss_ratio))?,
        garbage: ratio("garbage-ratio", a.garbage_ratio)?,
    };
    if a.ues == 0 || a.ues > 50_000 {
        return Err(Failure::usage("--ues must be between 1 and 50000"));
    }
    if a.te2e == 0 || a.window == 0 || a.rto_ms == 0 || a.deadline == 0 {
        return Err(Failure::usage(
            "--te2e, --window, --rto-ms and --deadline must be positive",
        ));
    }
    let need = u64::from(a.ues) + 64;
    if let Some(limit) = open_files_limit()
        && limit < need
    {
        return Err(Failure::usage(format!(
            "{} UEs need {need} open files (one socket each), the limit is {limit}; \
             raise it (ulimit -n {need}) or run fewer UEs",
            a.ues
        )));
    }
    let n = a.ues as usize;
    let cfg = Config {
        te2e: Duration::from_secs(u64::from(a.te2e)),
        grace: Duration::from_millis(u64::from(a.te2e) * 500).min(Duration::from_secs(2)),
        trigger_retransmit: Duration::from_millis(500),
        trigger_attempts: 4,
        unsolicited_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let totals: Vec<u32> = (0..a.ues)
        .map(|i| {
            let base = a.messages / u64::from(a.ues);
            let extra = u64::from(u64::from(i) < a.messages % u64::from(a.ues));
            u32::try_from(base + extra).unwrap_or(u32::MAX)
        })
        .collect();
    let total: u64 = totals.iter().map(|&t| u64::from(t)).sum();

    println!(
        "loadtest: {} UEs, {total} messages; loss {}, duplicate {}, reorder {}, hostile {}; \
         te2e {} s, window {}, seed {}",
        a.ues, params.loss, params.dup, params.reorder, params.garbage, a.te2e, a.window, a.seed
    );
    let setup_start = StdInstant::now();
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let eese_sock = UdpSocket::bind(loopback).map_err(io("bind the EESE socket"))?;
    let eese_addr = eese_sock.local_addr().map_err(io("EESE socket"))?;
    let mut socks = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let s = UdpSocket::bind(loopback).map_err(io("bind a UE socket"))?;
        s.connect(eese_addr).map_err(io("connect a UE socket"))?;
        s.set_nonblocking(true).map_err(io("UE socket"))?;
        addrs.push(s.local_addr().map_err(io("UE socket"))?);
        socks.push(s);
    }
    let stranger = UdpSocket::bind(loopback).map_err(io("bind the stranger socket"))?;
    stranger
        .set_nonblocking(true)
        .map_err(io("stranger socket"))?;
    let roots: Vec<RootKey> = (0..a.ues).map(|i| root(a.seed, i)).collect();
    let shared = Arc::new(Shared {
        sent: (0..n).map(|_| AtomicU32::new(0)).collect(),
        stop: AtomicBool::new(false),
        to_eese: Registry::default(),
        to_ue: Registry::default(),
    });
    println!(
        "setup: EESE on {eese_addr}, {n} UE sockets, {:.1} s",
        setup_start.elapsed().as_secs_f64()
    );

    let drops_before = stats::udp_rcvbuf_errors();
    let start = StdInstant::now();
    let deadline = Duration::from_secs(a.deadline);
    let eese_setup = eese::Setup {
        sock: eese_sock,
        cfg,
        ues: addrs.iter().copied().zip(roots.iter().cloned()).collect(),
        seed: a.seed,
        params,
        shared: Arc::clone(&shared),
        start,
        deadline: deadline + Duration::from_secs(5),
    };
    let eese_thread = std::thread::Builder::new()
        .name("eese".into())
        .spawn(move || eese::run(eese_setup))
        .map_err(io("start the EESE thread"))?;
    let mut finished = ues::run(ues::Setup {
        socks,
        stranger,
        eese: eese_addr,
        roots,
        totals,
        cfg,
        seed: a.seed,
        params,
        window: a.window,
        rto_ms: a.rto_ms,
        deadline,
        shared: Arc::clone(&shared),
        start,
    });
    let duration = start.elapsed();
    let eese = eese_thread
        .join()
        .map_err(|_| Failure::rejected("the EESE thread panicked"))?;
    finished.drain(start);
    let ue = finished.report();
    let drops = match (drops_before, stats::udp_rcvbuf_errors()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let verdict = report::print(&report::Inputs {
        args: a,
        total,
        addrs: &addrs,
        duration,
        ue: &ue,
        eese: &eese,
        shared: &shared,
        kernel_drops: drops,
    });
    match verdict {
        Ok(()) => Ok(()),
        Err(why) => Err(Failure::rejected(format!("loadtest failed: {why}"))),
    }
}
