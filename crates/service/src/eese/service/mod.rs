//! The EESE service loop (see the module documentation of [`crate::eese`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ciot_e2e::endpoint::{
    Datagram, EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, KeysetState, RandSource,
    Received, Reject, SendOutcome, UeId,
};
use ciot_e2e::kdf::{Rand, RootKey};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{HelloPacket, Ksi, MessageType, peek_type};
use serde_json::{Value, json};

use super::metrics::{Metrics, inc};
use super::state::StateStore;
use crate::ServiceError;
use crate::admin::{self, Command, Reply, Request2};
use crate::emks::client::EmksClient;

mod admin_ops;
mod loops;
mod traffic;

use loops::{changes_loop, webhook_loop};

/// Where new keysets' RANDs come from (`--rand-source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandChoice {
    /// The operating system's CSPRNG.
    Local,
    /// The EMKS (TR 33.863 §6.5.2.5, interface 2), fetched in batches.
    Emks,
}

/// How the EESE service runs.
pub struct ServiceConfig {
    /// UDP address for the UEs.
    pub listen: SocketAddr,
    /// The EMKS's URL (`https://…`).
    pub emks: String,
    /// The TLS directory (`ca.crt`, `<tls_name>.crt`, `<tls_name>.key`).
    pub tls_dir: PathBuf,
    /// Which certificate in `tls_dir` (default `eese`).
    pub tls_name: String,
    /// The state file.
    pub state: PathBuf,
    /// The admin interface (HTTPS): address, certificate, tokens, limits.
    pub admin: Option<admin::AdminConfig>,
    /// RAND source.
    pub rand: RandChoice,
    /// Table settings (te2e default, grace, …).
    pub table: EeseConfig,
    /// Uplink payloads go here (HTTP POST, JSON) instead of being echoed.
    pub webhook: Option<String>,
    /// Most sessions in the table; the quietest makes room.
    pub max_sessions: usize,
    /// Sessions quiet this long leave the table (their snapshot stays).
    pub idle_timeout: Duration,
    /// Stop after this long (tests, benchmarks).
    pub exit_after: Option<Duration>,
    /// Print events (rekeys, expiries, root changes) to stdout.
    pub verbose: bool,
    /// Called with the keys of every keyset taken into use (a key log for
    /// test traffic: `ciot-e2e eese --keylog`). It defeats the protection
    /// of that traffic; `None` in production.
    pub keylog: Option<KeyLogHook>,
}

/// What a key log is handed: the UE, the keyset's KSI, trigger counter,
/// RAND and keys.
pub type KeyLogHook = Box<dyn FnMut(&UeId, Ksi, u64, &Rand, &SuiteKeys) + Send>;

/// What the workers and the admin server tell the loop.
enum Msg {
    Root {
        ue: UeId,
        result: Result<(u64, RootKey), ServiceError>,
    },
    Rands(Result<Vec<Rand>, ServiceError>),
    Change {
        ue: UeId,
        generation: u64,
    },
    Reset,
    Admin(Request2),
}

enum Job {
    Root(UeId),
    Rands(usize),
}

/// Per-UE fetch bookkeeping.
#[derive(Default)]
struct Fetch {
    in_flight: bool,
    failures: u32,
    retry_at: Option<StdInstant>,
    /// Last failure was the EMKS being unreachable (not a refusal).
    unreachable: bool,
    /// The EMKS said the UE is not this enterprise's (or unknown).
    unknown: bool,
}

/// RANDs from the EMKS, shared between the table's source and the loop.
type Pool = Rc<RefCell<VecDeque<Rand>>>;

/// The table's RAND source.
pub struct ServiceRand {
    local: bool,
    pool: Pool,
}

impl RandSource for ServiceRand {
    fn rand(&mut self) -> Option<Rand> {
        if self.local {
            let mut r = [0u8; 16];
            getrandom::fill(&mut r).ok()?;
            Some(Rand(r))
        } else {
            self.pool.borrow_mut().pop_front()
        }
    }
}

/// Endpoint time: milliseconds since the UNIX epoch, from the system clock.
///
/// It must survive restarts: a session made or restored issues its first
/// trigger counter at or above `(now_ms + 1) * 1024` (the endpoint's counter
/// floor), so an EESE whose state was lost or rolled back never issues a
/// counter again, even with a RAND source that repeats. Time since the
/// process started would begin at 0 after every restart and give no floor.
///
/// It never goes back within the process: when the system clock steps back,
/// endpoint time goes on from the last value at the rate of the monotonic
/// clock (it neither repeats nor stands still, so timers keep running) until
/// the system clock catches up. A system clock set back *across* a restart
/// (while the EESE is down) weakens only that floor; `COUNTER_RESERVE` still
/// keeps the counters of a session restored from its latest snapshot above
/// every one it issued.
pub(super) struct Clock {
    /// When the process started (for log lines).
    started: StdInstant,
    /// The last time handed out that followed the system clock, and when
    /// (monotonic): endpoint time never falls below it plus the monotonic
    /// time since.
    anchor: Cell<(u64, StdInstant)>,
}

impl Clock {
    fn new() -> Self {
        let now = StdInstant::now();
        Clock {
            started: now,
            anchor: Cell::new((0, now)),
        }
    }

    /// Milliseconds since the UNIX epoch from the system clock (0 before it).
    fn wall_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn now(&self) -> Instant {
        Instant::from_millis(self.at(Self::wall_ms(), StdInstant::now()))
    }

    /// Endpoint time when the system clock says `wall` ms and the monotonic
    /// clock `mono` (never earlier than at the previous call).
    fn at(&self, wall: u64, mono: StdInstant) -> u64 {
        let (ms, since) = self.anchor.get();
        let elapsed = mono.saturating_duration_since(since).as_millis();
        let flowed = ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX));
        if wall >= flowed {
            self.anchor.set((wall, mono));
            wall
        } else {
            flowed
        }
    }

    /// Seconds since the process started.
    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// The running service.
pub struct EeseService {
    cfg: ServiceConfig,
    sock: UdpSocket,
    clock: Clock,
    table: EeseTable<UeId, SocketAddr, ServiceRand>,
    state: StateStore,
    metrics: Arc<Metrics>,
    roots: HashMap<UeId, (u64, RootKey)>,
    fetches: HashMap<UeId, Fetch>,
    /// Snapshots not restored yet (restored on the UE's next hello).
    pending: HashMap<UeId, Box<[u8]>>,
    /// Admin commands waiting for a UE's root.
    parked: HashMap<UeId, Vec<Request2>>,
    pool: Pool,
    rands_in_flight: bool,
    rand_retry_at: Option<StdInstant>,
    rand_waiting: Vec<UeId>,
    jobs: Sender<Job>,
    rx: Receiver<Msg>,
    webhook: Option<SyncSender<(UeId, Vec<u8>)>>,
    out: Vec<u8>,
    snap: Vec<u8>,
    batch: Vec<(UeId, Vec<u8>, ciot_e2e::endpoint::Persist)>,
    format2_removed: usize,
}

const FETCH_WORKERS: usize = 4;
const MAX_FETCH_ENTRIES: usize = 65_536;
const RAND_BATCH: usize = 32;

fn reject_reason(r: &Reject) -> &'static str {
    match r {
        Reject::Malformed(_) => "malformed",
        Reject::Unexpected(_) | Reject::WrongDirection | Reject::SuiteMismatch { .. } => {
            "unexpected"
        }
        Reject::Unauthentic => "unauthentic",
        Reject::Replayed { .. } => "replayed",
        Reject::TooOld { .. } => "too_old",
        Reject::UnknownKsi(_) => "unknown_ksi",
        Reject::ExpiredKsi(_) => "expired_ksi",
        Reject::RetiredKsi(_) => "retired_ksi",
        Reject::StaleTrigger { .. } | Reject::StaleError { .. } | Reject::StaleHello { .. } => {
            "stale"
        }
        Reject::NoSession => "no_session",
        Reject::UnknownUe => "unknown_ue",
        _ => "other",
    }
}

fn ue_text(id: &UeId) -> String {
    id.to_string()
}

impl EeseService {
    /// Binds the socket, opens the state file, loads the snapshots, starts
    /// the workers and the admin interface. `ready` gets the UDP and admin
    /// addresses and how many sessions the state held.
    ///
    /// # Errors
    /// Bind, TLS, state file and configuration errors.
    pub fn start(
        cfg: ServiceConfig,
        ready: impl FnOnce(SocketAddr, Option<SocketAddr>, usize),
    ) -> Result<Self, ServiceError> {
        let emks = EmksClient::new(
            &cfg.emks,
            &cfg.tls_dir,
            &cfg.tls_name,
            Duration::from_secs(5),
        )?;
        let poll = EmksClient::new(
            &cfg.emks,
            &cfg.tls_dir,
            &cfg.tls_name,
            Duration::from_secs(40),
        )?;
        let mut state = StateStore::open(&cfg.state)?;
        let mut pending = state.load_all()?;
        // Snapshots of wire format 2 serve no session of this one: removed,
        // their UEs start afresh at their next hello (see `state`).
        let format2_removed = state.remove_format2(&mut pending)?;
        let sock = UdpSocket::bind(cfg.listen)
            .map_err(|e| ServiceError::Io(format!("--listen {}: {e}", cfg.listen)))?;
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let udp = sock
            .local_addr()
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::channel::<Msg>();

        // Fetch workers.
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..FETCH_WORKERS {
            let job_rx = job_rx.clone();
            let tx = tx.clone();
            let emks = emks.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("emks-fetch-{i}"))
                .spawn(move || {
                    loop {
                        let job = match job_rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let msg = match job {
                            Job::Root(ue) => {
                                let t = StdInstant::now();
                                let result = emks.root(&ue_text(&ue));
                                metrics.fetch_latency(t.elapsed());
                                match &result {
                                    Ok(_) => inc(&metrics.emks_fetches_ok),
                                    Err(_) => inc(&metrics.emks_fetches_failed),
                                }
                                Msg::Root { ue, result }
                            }
                            Job::Rands(n) => Msg::Rands(emks.rands(n)),
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| ServiceError::Io(format!("worker thread: {e}")))?;
        }

        // The long-poll for new root generations.
        {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("emks-changes".into())
                .spawn(move || changes_loop(&poll, &tx))
                .map_err(|e| ServiceError::Io(format!("changes thread: {e}")))?;
        }

        let webhook = match &cfg.webhook {
            None => None,
            Some(url) => {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(ServiceError::Usage(format!(
                        "--webhook must be an http(s):// URL, got {url:?}"
                    )));
                }
                let (wtx, wrx) = mpsc::sync_channel::<(UeId, Vec<u8>)>(65_536);
                let url = url.clone();
                let metrics = metrics.clone();
                std::thread::Builder::new()
                    .name("webhook".into())
                    .spawn(move || webhook_loop(&url, &wrx, &metrics))
                    .map_err(|e| ServiceError::Io(format!("webhook thread: {e}")))?;
                Some(wtx)
            }
        };

        let admin_addr = match &cfg.admin {
            None => None,
            Some(acfg) => {
                let (atx, arx) = mpsc::channel::<Request2>();
                let bound = admin::spawn(acfg.clone(), atx, metrics.clone())?;
                let tx = tx.clone();
                std::thread::Builder::new()
                    .name("admin-relay".into())
                    .spawn(move || {
                        while let Ok(r) = arx.recv() {
                            if tx.send(Msg::Admin(r)).is_err() {
                                return;
                            }
                        }
                    })
                    .map_err(|e| ServiceError::Io(format!("admin relay: {e}")))?;
                Some(bound)
            }
        };

        let pool: Pool = Rc::new(RefCell::new(VecDeque::new()));
        let rng = ServiceRand {
            local: cfg.rand == RandChoice::Local,
            pool: pool.clone(),
        };
        let table = EeseTable::with_capacity(cfg.table, rng, cfg.max_sessions.min(1 << 20));
        metrics
            .sessions
            .store(pending.len() as u64, std::sync::atomic::Ordering::Relaxed);
        ready(udp, admin_addr, pending.len());
        Ok(EeseService {
            cfg,
            sock,
            clock: Clock::new(),
            table,
            state,
            metrics,
            roots: HashMap::new(),
            fetches: HashMap::new(),
            pending,
            parked: HashMap::new(),
            pool,
            rands_in_flight: false,
            rand_retry_at: None,
            rand_waiting: Vec::new(),
            jobs,
            rx,
            webhook,
            out: vec![0u8; 65_536],
            snap: vec![0u8; EESE_SNAPSHOT_LEN],
            batch: Vec::new(),
            format2_removed,
        })
    }

    /// How many snapshots of wire format 2 ("CEE2") the state file held when
    /// the service started; they were removed (those UEs start a new session
    /// at their next hello).
    #[must_use]
    pub const fn format2_removed(&self) -> usize {
        self.format2_removed
    }

    /// The counters (shared with the admin interface).
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.cfg.verbose {
            println!("[{:8.3}s] {line}", self.clock.secs());
        }
    }

    fn update_sessions_gauge(&self) {
        let n = self.table.len() + self.pending.len();
        self.metrics
            .sessions
            .store(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs until `exit_after` (or forever).
    ///
    /// # Errors
    /// A failed state write (the process must stop: nothing that depends on
    /// the lost snapshot went out) or a socket error.
    pub fn run(&mut self) -> Result<(), ServiceError> {
        let mut buf = vec![0u8; 65_536];
        let started = StdInstant::now();
        let mut next_sweep = StdInstant::now() + Duration::from_secs(10);
        loop {
            if self.cfg.exit_after.is_some_and(|d| started.elapsed() >= d) {
                return Ok(());
            }
            // A burst of datagrams, then one pass over the effects (one
            // state transaction for all the snapshots the burst made).
            let mut got = 0;
            while got < 64 {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        got += 1;
                        self.receive(from, &mut buf[..n])?;
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(ServiceError::Io(format!("receive: {e}"))),
                }
                if got == 1 {
                    // Take the rest of the burst without waiting.
                    let _ = self.sock.set_nonblocking(true);
                }
            }
            if got > 0 {
                let _ = self.sock.set_nonblocking(false);
            }
            self.drain()?;
            let now = self.clock.now();
            if self.table.poll_timeout().is_some_and(|t| t <= now) {
                self.table.handle_timeout(now);
                self.drain()?;
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.message(msg)?;
                self.drain()?;
            }
            self.retry_fetches();
            if StdInstant::now() >= next_sweep {
                next_sweep = StdInstant::now() + Duration::from_secs(10);
                self.sweep()?;
            }
        }
    }

    /// Persists, transmits and reports until a pass yields nothing.
    fn drain(&mut self) -> Result<(), ServiceError> {
        loop {
            let mut progress = false;
            let mut snap = std::mem::take(&mut self.snap);
            while let Some((id, p)) = self.table.poll_persist(&mut snap) {
                self.batch.push((id, snap[..p.len()].to_vec(), p));
            }
            self.snap = snap;
            if !self.batch.is_empty() {
                self.state
                    .write(self.batch.iter().map(|(id, b, _)| (id, b.as_slice())))?;
                inc(&self.metrics.state_commits);
                self.metrics.snapshots_written.fetch_add(
                    self.batch.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                for (id, _, p) in self.batch.drain(..) {
                    let _ = self.table.persisted(&id, p);
                }
                progress = true;
            }
            let now = self.clock.now();
            let mut out = std::mem::take(&mut self.out);
            while let Some((_, to, t)) = self.table.poll_transmit(now, &mut out) {
                if self.sock.send_to(&out[..t.len], to).is_ok() {
                    inc(&self.metrics.datagrams_out);
                }
                match t.what {
                    Datagram::Trigger { .. } => inc(&self.metrics.triggers_sent),
                    Datagram::KeyExpired { .. } => inc(&self.metrics.errors_sent),
                    Datagram::Data { .. } => inc(&self.metrics.payloads_sent),
                    Datagram::Hello { .. } => {}
                }
                progress = true;
            }
            self.out = out;
            while let Some((id, ev)) = self.table.poll_event() {
                progress = true;
                match ev {
                    Event::Offered { ksi, counter } => {
                        // Its trigger goes out with CONFIRM; nothing is
                        // written or sealed under it until the UE uses it.
                        inc(&self.metrics.offers);
                        self.log(format_args!(
                            "{id}: offered keyset KSI {ksi} (trigger counter {counter})"
                        ));
                    }
                    Event::Rekeyed { ksi, counter } => {
                        // The UE used the offer: it is the keyset in use (its
                        // snapshot is being written; downlink waits for it).
                        inc(&self.metrics.rekeys);
                        if let Some(hook) = &mut self.cfg.keylog
                            && let Some((rand, keys)) = self.table.current_keys(&id)
                        {
                            hook(&id, ksi, counter, rand, keys);
                        }
                        self.log(format_args!(
                            "{id}: now using keyset KSI {ksi} (trigger counter {counter})"
                        ));
                    }
                    Event::RandNeeded => {
                        if let Some(rand) = self.pool.borrow_mut().pop_front() {
                            self.table.provide_rand(now, &id, rand);
                        } else {
                            self.rand_waiting.push(id);
                        }
                    }
                    Event::KeysExpired { ksi, cause } => {
                        self.log(format_args!("{id}: keyset KSI {ksi} expired ({cause})"));
                    }
                    _ => {}
                }
            }
            if !progress {
                self.update_sessions_gauge();
                return Ok(());
            }
        }
    }

    fn evict_quietest(&mut self) -> Result<(), ServiceError> {
        if let Some(id) = self.table.least_recently_active().copied() {
            self.evict(&id)?;
        }
        Ok(())
    }

    /// Takes a session out of the table; its last snapshot stays (in the
    /// state file and in memory), so its next hello restores it.
    fn evict(&mut self, id: &UeId) -> Result<(), ServiceError> {
        self.table.remove(id);
        if let Some(s) = self.state.get(id)? {
            self.pending.insert(*id, s);
        }
        Ok(())
    }

    fn sweep(&mut self) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let idle = self.cfg.idle_timeout;
        let quiet: Vec<UeId> = self
            .table
            .ids()
            .filter(|id| {
                self.table
                    .last_active(id)
                    .is_some_and(|t| t.after(idle) <= now)
            })
            .copied()
            .collect();
        for id in quiet {
            self.evict(&id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_system_clock_and_never_goes_back_when_it_steps_back() {
        let c = Clock::new();
        let t0 = StdInstant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Milliseconds since the UNIX epoch, as the system clock says.
        let epoch = 1_750_000_000_000;
        assert_eq!(c.at(epoch, at(0)), epoch);
        assert_eq!(c.at(epoch + 10, at(10)), epoch + 10);
        // The system clock steps back an hour: time goes on from where it
        // was, at the monotonic clock's rate (timers keep running).
        assert_eq!(c.at(epoch + 10 - 3_600_000, at(20)), epoch + 20);
        assert_eq!(c.at(epoch + 30 - 3_600_000, at(40)), epoch + 40);
        // Many calls within a millisecond do not hold it back.
        for _ in 0..5 {
            assert_eq!(c.at(epoch, at(40)), epoch + 40);
        }
        assert_eq!(c.at(epoch, at(100)), epoch + 100);
        // A step forward is followed (timers only run early), and the
        // system clock is followed again once it is ahead.
        assert_eq!(c.at(epoch + 5_000, at(110)), epoch + 5_000);
        assert_eq!(c.at(epoch + 5_001, at(111)), epoch + 5_001);
    }

    #[test]
    fn the_clock_is_time_since_the_unix_epoch_so_it_survives_a_restart() {
        // A restarted process's first reading is not below the last one of
        // the process before it (the counter floor depends on it).
        let before = Clock::new().now();
        let after = Clock::new().now();
        assert!(after >= before);
        // 2020-01-01 in ms: far above anything "time since start" gives.
        assert!(before.as_millis() > 1_577_836_800_000, "{before:?}");
    }
}
