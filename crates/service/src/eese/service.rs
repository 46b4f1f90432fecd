//! The EESE service loop (see the module documentation of [`crate::eese`]).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{
    Datagram, EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, KeysetState, RandSource,
    Received, Reject, SendOutcome, UeId,
};
use ciot_e2e::kdf::{Rand, RootKey};
use ciot_e2e::wire::{HelloPacket, MessageType, peek_type};
use serde_json::{Value, json};

use super::metrics::{Metrics, inc};
use super::state::StateStore;
use crate::ServiceError;
use crate::admin::{self, Command, Reply, Request2};
use crate::emks::client::EmksClient;

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
    /// The admin interface's address, and its bearer token.
    pub admin: Option<(SocketAddr, String)>,
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
}

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

/// Wall-clock time since start, as endpoint time.
struct Clock(StdInstant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
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
        let state = StateStore::open(&cfg.state)?;
        let pending = state.load_all()?;
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
            Some((addr, token)) => {
                let (atx, arx) = mpsc::channel::<Request2>();
                let bound = admin::spawn(*addr, token.clone(), atx, metrics.clone())?;
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
            clock: Clock(StdInstant::now()),
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
        })
    }

    /// The counters (shared with the admin interface).
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.cfg.verbose {
            println!("[{:8.3}s] {line}", self.clock.0.elapsed().as_secs_f64());
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

    /// One datagram from `from`.
    fn receive(&mut self, from: SocketAddr, d: &mut [u8]) -> Result<(), ServiceError> {
        inc(&self.metrics.datagrams_in);
        let now = self.clock.now();
        if peek_type(d).ok() == Some(MessageType::HELLO) {
            let Some(id) = HelloPacket::new_checked(&d[..])
                .ok()
                .and_then(|p| UeId::new(p.id()).ok())
            else {
                self.metrics.reject("malformed");
                return Ok(());
            };
            if !self.roots.contains_key(&id) {
                // Not known yet: fetch its root; the UE's next hello is taken.
                let f = self.fetches.get(&id);
                let reason = match f {
                    Some(f) if f.unknown => "unknown_ue",
                    Some(f) if f.unreachable => "emks_unreachable",
                    _ => "root_pending",
                };
                self.metrics.reject(reason);
                self.request_root(&id);
                return Ok(());
            }
            self.restore_pending(&id);
        }
        let had = self.table.len();
        let roots = &self.roots;
        let result = self.table.handle_datagram(now, &from, d, |b| {
            let id = UeId::new(b).ok()?;
            roots.get(&id).map(|(_, r)| (id, r.clone()))
        });
        match result {
            Ok((id, Received::Data(got))) => {
                inc(&self.metrics.delivered);
                let payload = d[got.payload].to_vec();
                self.deliver(now, id, payload)?;
            }
            Ok((_, Received::Control(_))) => {}
            Err(r) => self.metrics.reject(reject_reason(&r)),
        }
        if self.table.len() > had && self.table.len() > self.cfg.max_sessions {
            self.evict_quietest()?;
        }
        Ok(())
    }

    fn deliver(&mut self, now: Instant, id: UeId, payload: Vec<u8>) -> Result<(), ServiceError> {
        if let Some(w) = &self.webhook {
            if let Err(TrySendError::Full(_)) = w.try_send((id, payload)) {
                inc(&self.metrics.webhook_failed);
            }
            return Ok(());
        }
        let mut echo = Vec::with_capacity(6 + payload.len());
        echo.extend_from_slice(b"echo: ");
        echo.extend_from_slice(&payload);
        self.send_payload(now, &id, &echo).map(|_| ())
    }

    fn send_payload(
        &mut self,
        now: Instant,
        id: &UeId,
        p: &[u8],
    ) -> Result<&'static str, ServiceError> {
        let mut out = std::mem::take(&mut self.out);
        let r = match self.table.send(now, id, p, &mut out) {
            Ok(SendOutcome::Sent { sealed, to }) => {
                if self.sock.send_to(&out[..sealed.len], to).is_ok() {
                    inc(&self.metrics.datagrams_out);
                    inc(&self.metrics.payloads_sent);
                }
                Ok("sent")
            }
            Ok(SendOutcome::Queued) => Ok("queued"),
            Err(e) => Err(ServiceError::Refused {
                status: 409,
                message: format!("not sent: {e}"),
            }),
        };
        self.out = out;
        r
    }

    /// Restores `id`'s stored snapshot into the table if it waits for it
    /// (its root is cached).
    fn restore_pending(&mut self, id: &UeId) {
        if self.table.contains(id) {
            return;
        }
        let Some(snap) = self.pending.remove(id) else {
            return;
        };
        let Some((_, root)) = self.roots.get(id) else {
            self.pending.insert(*id, snap);
            return;
        };
        if let Err(e) = self.table.restore(*id, root.clone(), &snap) {
            // A snapshot of an older root generation (re-provisioned while
            // this EESE was down) or a damaged one: the UE starts afresh,
            // which its hello makes safe (it carries its highest counter).
            self.log(format_args!(
                "{id}: snapshot not restored ({e}); new session"
            ));
        }
    }

    fn request_root(&mut self, id: &UeId) {
        if self.fetches.len() >= MAX_FETCH_ENTRIES {
            // Bounded: forget the settled ones (a flood of hellos naming
            // unknown UEs cannot grow this without bound).
            self.fetches.retain(|_, f| f.in_flight);
        }
        let f = self.fetches.entry(*id).or_default();
        if f.in_flight || f.retry_at.is_some_and(|t| StdInstant::now() < t) {
            return;
        }
        f.in_flight = true;
        let _ = self.jobs.send(Job::Root(*id));
    }

    fn retry_fetches(&mut self) {
        if (!self.rand_waiting.is_empty() || self.pool.borrow().len() < RAND_BATCH / 4)
            && self.cfg.rand == RandChoice::Emks
            && !self.rands_in_flight
            && self.rand_retry_at.is_none_or(|t| StdInstant::now() >= t)
        {
            self.rands_in_flight = true;
            let _ = self.jobs.send(Job::Rands(RAND_BATCH));
        }
        if self.parked.is_empty() {
            return;
        }
        let ids: Vec<UeId> = self.parked.keys().copied().collect();
        for id in ids {
            self.request_root(&id);
        }
    }

    fn message(&mut self, msg: Msg) -> Result<(), ServiceError> {
        let now = self.clock.now();
        match msg {
            Msg::Root { ue, result } => {
                let f = self.fetches.entry(ue).or_default();
                f.in_flight = false;
                match result {
                    Ok((generation, root)) => {
                        self.fetches.remove(&ue);
                        let old = self.roots.insert(ue, (generation, root.clone()));
                        if let Some((g, _)) = old
                            && g != generation
                            && self.table.contains(&ue)
                        {
                            // A new AKA run: the old root's keysets are void.
                            self.table.replace_root(&ue, root);
                            inc(&self.metrics.root_changes);
                            self.log(format_args!(
                                "{ue}: new root generation {generation}; its keysets are invalid"
                            ));
                        }
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            self.admin(r)?;
                        }
                    }
                    Err(e) => {
                        f.failures = f.failures.saturating_add(1);
                        let refused = matches!(e, ServiceError::Refused { status: 404, .. });
                        f.unknown = refused;
                        f.unreachable = !refused;
                        let backoff = if refused {
                            Duration::from_secs(10)
                        } else {
                            Duration::from_millis(500 << f.failures.min(5))
                                .min(Duration::from_secs(10))
                        };
                        f.retry_at = Some(StdInstant::now() + backoff);
                        self.log(format_args!("{ue}: root fetch failed: {e}"));
                        // Admin requests waiting for this root: refused now.
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            let status = if refused { 404 } else { 503 };
                            let _ = r.reply.send(Err((status, format!("root of {ue}: {e}"))));
                        }
                    }
                }
            }
            Msg::Rands(r) => {
                self.rands_in_flight = false;
                match r {
                    Ok(rands) => {
                        self.metrics
                            .emks_rands
                            .fetch_add(rands.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        self.pool.borrow_mut().extend(rands);
                        self.rand_retry_at = None;
                        let waiting = std::mem::take(&mut self.rand_waiting);
                        for ue in waiting {
                            let rand = self.pool.borrow_mut().pop_front();
                            match rand {
                                Some(rand) => self.table.provide_rand(now, &ue, rand),
                                None => self.rand_waiting.push(ue),
                            }
                        }
                    }
                    Err(e) => {
                        self.rand_retry_at = Some(StdInstant::now() + Duration::from_secs(1));
                        self.log(format_args!("RAND fetch failed: {e}"));
                    }
                }
            }
            Msg::Change { ue, generation } => {
                let stale = self.roots.get(&ue).is_some_and(|(g, _)| *g < generation);
                if stale {
                    // Fetch now, whatever the back-off said.
                    self.fetches.remove(&ue);
                    self.request_root(&ue);
                }
            }
            Msg::Reset => {
                let ids: Vec<UeId> = self.roots.keys().copied().collect();
                for id in ids {
                    self.fetches.remove(&id);
                    self.request_root(&id);
                }
            }
            Msg::Admin(r) => self.admin(r)?,
        }
        Ok(())
    }

    /// Makes sure `ue` is in the table (restored if it waits), or parks the
    /// request until its root arrives. `Err` carries the request back when
    /// it was answered or parked.
    fn ensure_session(&mut self, ue: &UeId, r: Request2) -> Option<Request2> {
        if self.table.contains(ue) {
            return Some(r);
        }
        if !self.pending.contains_key(ue) {
            let _ = r.reply.send(Err((
                404,
                format!("no session for UE {ue} (it has not said hello)"),
            )));
            return None;
        }
        if self.roots.contains_key(ue) {
            self.restore_pending(ue);
            return Some(r);
        }
        if let Some(f) = self.fetches.get(ue)
            && f.unreachable
            && !f.in_flight
            && f.retry_at.is_some_and(|t| StdInstant::now() < t)
        {
            let _ = r.reply.send(Err((
                503,
                format!("the EMKS is unreachable: the root of {ue} cannot be fetched; try again"),
            )));
            return None;
        }
        self.parked.entry(*ue).or_default().push(r);
        self.request_root(ue);
        None
    }

    fn admin(&mut self, r: Request2) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let ue = match &r.command {
            Command::Expire(u) | Command::Te2e(u, _) | Command::Show(u) | Command::Send(u, _) => {
                match UeId::new(u.as_bytes()) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        let _ = r.reply.send(Err((400, format!("UE identifier: {e}"))));
                        return Ok(());
                    }
                }
            }
            Command::ExpireAll => None,
        };
        let r = match ue {
            Some(ue) => match self.ensure_session(&ue, r) {
                Some(r) => r,
                None => return Ok(()),
            },
            None => r,
        };
        let reply: Reply = match (&r.command, ue) {
            (Command::Expire(u), Some(id)) => {
                self.table.expire_now(now, &id);
                self.log(format_args!("{id}: keys expired by the enterprise"));
                Ok(json!({ "ue": u, "expired": true }))
            }
            (Command::ExpireAll, _) => {
                // Sessions still waiting for their hello hold a retired
                // keyset already: expired in effect.
                let n = self.table.expire_all(now);
                self.log(format_args!(
                    "all keys expired by the enterprise ({n} sessions)"
                ));
                Ok(json!({ "expired": n, "waiting_for_hello": self.pending.len() }))
            }
            (Command::Te2e(u, secs), Some(id)) => {
                self.table
                    .set_te2e(&id, Some(Duration::from_secs(u64::from(*secs))));
                Ok(json!({ "ue": u, "te2e_secs": secs }))
            }
            (Command::Show(u), Some(id)) => Ok(self.show(now, u, &id)),
            (Command::Send(u, p), Some(id)) => match self.send_payload(now, &id, p) {
                Ok(outcome) => Ok(json!({ "ue": u, "outcome": outcome, "octets": p.len() })),
                Err(ServiceError::Refused { status, message }) => Err((status, message)),
                Err(e) => Err((500, e.to_string())),
            },
            _ => Err((500, "internal: command without UE".into())),
        };
        let _ = r.reply.send(reply);
        Ok(())
    }

    fn show(&self, now: Instant, u: &str, id: &UeId) -> Value {
        let Some(s) = self.table.status(now, id) else {
            return json!({ "ue": u, "session": null });
        };
        let keyset = s.keyset.map(|k| {
            let (state, left) = match k.state {
                KeysetState::Valid { remaining } => {
                    ("valid".to_string(), Some(remaining.as_secs_f64()))
                }
                KeysetState::Expired(c) => (format!("expired ({c})"), None),
                KeysetState::Retired => (
                    "retired (restored; the next contact starts a new keyset)".to_string(),
                    None,
                ),
            };
            json!({
                "ksi": k.ksi.0,
                "counter": k.counter,
                "state": state,
                "te2e_left_secs": left,
                "confirmed": k.confirmed,
                "next_seq": k.next_seq,
            })
        });
        json!({
            "ue": u,
            "keyset": keyset,
            "counter": s.counter,
            "te2e_secs": s.te2e.as_secs(),
            "rand_pending": s.rand_pending,
            "peer": self.table.peer(id).map(ToString::to_string),
            "root_generation": self.roots.get(id).map(|(g, _)| *g),
            "quiet_secs": self.table.last_active(id).map(|t| t.until(now).as_secs()),
        })
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
                    Event::Rekeyed { ksi, counter } => {
                        inc(&self.metrics.rekeys);
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

fn changes_loop(emks: &EmksClient, tx: &Sender<Msg>) {
    let mut since: Option<u64> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        // The first call only learns where the log stands.
        let wait = if since.is_some() {
            Duration::from_secs(25)
        } else {
            Duration::ZERO
        };
        match emks.changes(since.unwrap_or(u64::MAX / 2), wait) {
            Ok(r) => {
                backoff = Duration::from_millis(500);
                if since.is_none() {
                    since = Some(r.next.min(u64::MAX / 2));
                    // What changed while we did not listen: look again.
                    if tx.send(Msg::Reset).is_err() {
                        return;
                    }
                    continue;
                }
                since = Some(r.next);
                if r.reset && tx.send(Msg::Reset).is_err() {
                    return;
                }
                for c in r.changes {
                    let Ok(ue) = UeId::new(c.ue.as_bytes()) else {
                        continue;
                    };
                    if tx
                        .send(Msg::Change {
                            ue,
                            generation: c.generation,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(_) => {
                // The position is kept: the EMKS's log (100,000 changes)
                // still has what happened during the outage, and says
                // `reset` when it does not. No refetch per failed attempt
                // (that would be one fetch per cached root per retry).
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn webhook_loop(url: &str, rx: &Receiver<(UeId, Vec<u8>)>, metrics: &Metrics) {
    let agent = crate::tls::plain_agent(Duration::from_secs(5));
    while let Ok((ue, payload)) = rx.recv() {
        let body = json!({ "ue": ue.to_string(), "payload": hex::encode(&payload) });
        match agent.post(url).send_json(&body) {
            Ok(r) if r.status().is_success() => inc(&metrics.webhook_ok),
            _ => inc(&metrics.webhook_failed),
        }
    }
}
