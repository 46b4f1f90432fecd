//! The load test: one EESE and many UEs in one process over loopback UDP,
//! with a fault layer that drops, duplicates, reorders and injects hostile
//! datagrams (garbage, forged and replayed messages, hellos among them).
//! Every payload delivered and every echo is checked octet for octet; the
//! run passes only if every payload came back, none more often than it was
//! sent, nothing was accepted under the wrong keys or forged, both ends hold
//! the same keys at the end (or the UE holds the keyset the EESE offered,
//! its use of it on the way), and the EESE never answered input it could
//! not authenticate with more octets than that source had sent it.
//!
//! The procedure as it runs here: a UE (one start each, its nonce from the
//! operating system; no storage) says hello; the EESE offers a keyset
//! (trigger with CONFIRM) and takes it into use when the UE uses it, with
//! its held payload or, with nothing to send, a hello naming it. An echo
//! that finds no keyset in use waits (queued) until the UE used the next
//! offer and its snapshot is stored.
//!
//! Two threads: the EESE ([`eese`]: one socket, one `EeseTable`) and the UE
//! driver ([`ue`]: every `Ue`, one socket each; [`sweep`]: at most
//! [`Settings::window`] with a payload in flight). The pieces: the
//! [`faults`] layer and the [`hostile`] datagrams it injects, the
//! [`payload`]s and [`identity`] of the UEs, the per-payload [`ledger`], the
//! [`stats`] of what each receiver did, and the [`report`].

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{EeseConfig, UeConfig};
use ciot_e2e::kdf::RootKey;

pub mod eese;
pub mod faults;
pub mod hostile;
pub mod identity;
pub mod ledger;
pub mod payload;
pub mod report;
pub mod stats;
pub mod sweep;
pub mod ue;

pub use faults::Params;
pub use report::Verdict;

/// How a run is set up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Simulated UEs (one loopback UDP socket each).
    pub ues: u32,
    /// Payloads to send in all, spread evenly over the UEs; each is echoed.
    pub messages: u64,
    /// Fault probabilities (each direction).
    pub faults: Params,
    /// Key lifetime te2e in seconds.
    pub te2e_secs: u32,
    /// Seed of the UEs' roots, the RANDs, the payloads and every fault (each
    /// UE's start nonce comes from the operating system, so keys differ
    /// from run to run).
    pub seed: u64,
    /// UEs with a payload in flight at once.
    pub window: usize,
    /// First retransmission timeout in milliseconds (doubles, up to
    /// [`ue::MAX_RTO_MS`]).
    pub rto_ms: u64,
    /// Fail the run if it has not finished after this many seconds.
    pub deadline_secs: u64,
}

impl Settings {
    fn te2e(&self) -> Duration {
        Duration::from_secs(u64::from(self.te2e_secs.max(1)))
    }

    fn grace(&self) -> Duration {
        (self.te2e() / 2).min(Duration::from_secs(2))
    }

    /// The EESE's settings: te2e as given, grace half of it (at most 2 s),
    /// the trigger of an offer the UE has not used repeated after 0.5 s (4
    /// times, doubling),
    /// answers to input it cannot authenticate at most every 200 ms.
    #[must_use]
    pub fn eese_config(&self) -> EeseConfig {
        EeseConfig {
            te2e: self.te2e(),
            grace: self.grace(),
            trigger_retransmit: Duration::from_millis(500),
            trigger_retransmit_max: Duration::from_secs(4),
            trigger_attempts: 4,
            unsolicited_interval: Duration::from_millis(200),
            ..EeseConfig::default()
        }
    }

    /// Every UE's settings: the same grace, a hello after 1 s without an
    /// answer to uplink, unanswered hellos repeated after the retransmission
    /// timeout (doubling, with jitter, up to [`ue::MAX_RTO_MS`]); no
    /// keepalive (a UE is quiet between its payloads).
    #[must_use]
    pub fn ue_config(&self) -> UeConfig {
        UeConfig {
            grace: self.grace(),
            probe_after: Some(Duration::from_secs(1)),
            keepalive: None,
            hello_backoff: Duration::from_millis(self.rto_ms.max(1)),
            hello_backoff_max: Duration::from_millis(ue::MAX_RTO_MS.max(self.rto_ms)),
            ..UeConfig::default()
        }
    }

    /// Payloads per UE: `messages` spread evenly, the first UEs one more.
    #[must_use]
    pub fn totals(&self) -> Vec<u32> {
        let ues = u64::from(self.ues.max(1));
        (0..self.ues)
            .map(|i| {
                let extra = u64::from(u64::from(i) < self.messages % ues);
                u32::try_from(self.messages / ues + extra).unwrap_or(u32::MAX)
            })
            .collect()
    }
}

/// Why a run could not be made or finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The settings or the machine do not allow the run.
    Setup(String),
    /// The EESE thread panicked.
    Panicked,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup(why) => f.write_str(why),
            Error::Panicked => f.write_str("the EESE thread panicked"),
        }
    }
}

impl std::error::Error for Error {}

/// What the two threads share.
#[derive(Default)]
pub struct Shared {
    /// The UE driver is done; the EESE stops.
    pub stop: AtomicBool,
    /// Injected datagrams toward the EESE, keyed by sending UE.
    pub to_eese: hostile::Registry,
    /// Injected datagrams toward the UEs, keyed by UE.
    pub to_ue: hostile::Registry,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// Runs the load test, printing its lines to `out`; the verdict says
/// whether it passed.
///
/// # Errors
/// [`Error::Setup`] when the settings are empty or the sockets cannot be
/// made (too few open files allowed, say); [`Error::Panicked`].
pub fn run(s: &Settings, out: &mut dyn FnMut(&str)) -> Result<Verdict, Error> {
    if s.ues == 0 || s.window == 0 || s.rto_ms == 0 || s.deadline_secs == 0 {
        return Err(Error::Setup(
            "UEs, window, retransmission timeout and deadline must be positive".into(),
        ));
    }
    let need = u64::from(s.ues) + 64;
    if let Some(limit) = stats::open_files_limit()
        && limit < need
    {
        return Err(Error::Setup(format!(
            "{} UEs need {need} open files (one socket each), the limit is {limit}; \
             raise it (ulimit -n {need}) or run fewer UEs",
            s.ues
        )));
    }
    let n = s.ues as usize;
    let layout = ledger::Layout::new(&s.totals());
    let total = layout.rows() as u64;
    let p = s.faults;
    out(&format!(
        "loadtest: {} UEs, {total} messages; loss {}, duplicate {}, reorder {}, hostile {}; \
         te2e {} s, window {}, seed {}",
        s.ues, p.loss, p.dup, p.reorder, p.garbage, s.te2e_secs, s.window, s.seed
    ));
    let setup_start = StdInstant::now();
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let eese_sock = UdpSocket::bind(loopback).map_err(io("bind the EESE socket"))?;
    let eese_addr = eese_sock.local_addr().map_err(io("EESE socket"))?;
    let mut socks = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = UdpSocket::bind(loopback).map_err(io("bind a UE socket"))?;
        sock.connect(eese_addr).map_err(io("connect a UE socket"))?;
        sock.set_nonblocking(true).map_err(io("UE socket"))?;
        addrs.push(sock.local_addr().map_err(io("UE socket"))?);
        socks.push(sock);
    }
    let stranger = UdpSocket::bind(loopback).map_err(io("bind the stranger socket"))?;
    stranger
        .set_nonblocking(true)
        .map_err(io("stranger socket"))?;
    let stranger_addr = stranger.local_addr().map_err(io("stranger socket"))?;
    let roots: Vec<RootKey> = (0..s.ues).map(|i| identity::root(s.seed, i)).collect();
    let shared = Shared::default();
    out(&format!(
        "setup: EESE on {eese_addr}, {n} UE sockets, {:.1} s",
        setup_start.elapsed().as_secs_f64()
    ));

    let drops_before = stats::udp_rcvbuf_errors();
    let start = StdInstant::now();
    let deadline = Duration::from_secs(s.deadline_secs);
    let eese_cfg = s.eese_config();
    let (finished, eese, duration) = std::thread::scope(|scope| {
        let eese_setup = eese::Setup {
            sock: eese_sock,
            cfg: eese_cfg,
            roots: &roots,
            addrs: &addrs,
            stranger: stranger_addr,
            layout: &layout,
            seed: s.seed,
            params: s.faults,
            shared: &shared,
            start,
            deadline: deadline + Duration::from_secs(5),
        };
        let eese_thread = std::thread::Builder::new()
            .name("eese".into())
            .spawn_scoped(scope, move || eese::run(eese_setup))
            .map_err(io("start the EESE thread"))?;
        let finished = sweep::run(
            ue::Setup {
                socks,
                stranger,
                eese: eese_addr,
                roots: &roots,
                layout: &layout,
                cfg: s.ue_config(),
                suite: eese_cfg.suite,
                seed: s.seed,
                params: s.faults,
                window: s.window,
                rto_ms: s.rto_ms,
                deadline,
                shared: &shared,
                start,
            },
            out,
        );
        let duration = start.elapsed();
        let eese = eese_thread.join().map_err(|_| Error::Panicked)?;
        Ok((finished, eese, duration))
    })?;
    let mut finished = finished;
    finished.drain(start);
    let ue = finished.report();
    let kernel_drops = match (drops_before, stats::udp_rcvbuf_errors()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    Ok(report::print(
        &report::Inputs {
            settings: s,
            total,
            duration,
            ue: &ue,
            eese: &eese,
            shared: &shared,
            kernel_drops,
        },
        out,
    ))
}
