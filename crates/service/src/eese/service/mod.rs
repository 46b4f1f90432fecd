//! The EESE service: one driver task that owns the session table and waits
//! on the socket, the next timer and one command channel (see the module
//! documentation of [`crate::eese`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ciot_e2e::driver::{EeseDriver, SystemClock};
use ciot_e2e::endpoint::{EeseConfig, EeseTable, RandSource, UeId};
use ciot_e2e::kdf::Rand;
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::Ksi;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::store::State;
use crate::ServiceError;
use crate::admin::{self, Request2};
use crate::emks::client::EmksClient;

mod admin_ops;
mod downlink;
mod io;
mod receive;
mod roots;
mod shared;

use io::Io;
use roots::Roots;

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
    /// The state file. A missing one is created; one that exists but is
    /// empty or damaged is refused unless `init_state`.
    pub state: PathBuf,
    /// `--init`: move a damaged state file aside
    /// (`<file>.damaged-<unix secs>`) and start with a new one.
    pub init_state: bool,
    /// The admin interface (HTTPS): address, certificate, tokens, limits.
    pub admin: Option<admin::AdminConfig>,
    /// RAND source.
    pub rand: RandChoice,
    /// Table settings (te2e default, grace, …).
    pub table: EeseConfig,
    /// Uplink payloads go here (HTTP POST, JSON) instead of being echoed.
    pub webhook: Option<String>,
    /// The webhook's signing secret (`whsec_<base64>`, a file of mode
    /// 0600), for the signed sender ([`crate::eese::webhook`]).
    pub webhook_secret: Option<PathBuf>,
    /// Uplink payloads the webhook has not taken after this long are
    /// dropped (the signed sender; default 24 h).
    pub webhook_max_age: Duration,
    /// Most sessions in the table; the quietest makes room.
    pub max_sessions: usize,
    /// Sessions quiet this long leave the table (their snapshot stays).
    pub idle_timeout: Duration,
    /// Root fetches per second for UEs this EESE holds nothing for (a
    /// token bucket with as many tokens); UEs it holds state for are not
    /// counted against it.
    pub unknown_fetch_rate: u32,
    /// Stop after this long (tests, benchmarks).
    pub exit_after: Option<Duration>,
    /// Print events (rekeys, expiries, root changes) to stdout.
    pub verbose: bool,
    /// Called with the keys of every keyset taken into use (a key log for
    /// test traffic: `ciot-e2e eese --keylog`). It defeats the protection
    /// of that traffic; `None` in production.
    pub keylog: Option<KeyLogHook>,
    /// This instance's name in a shared database (`--state postgres://…`;
    /// a random one when `None`).
    pub instance: Option<String>,
    /// Called with every datagram in and out (source, destination,
    /// octets): `--pcap`.
    pub capture: Option<CaptureHook>,
}

/// The default of [`ServiceConfig::unknown_fetch_rate`].
pub const UNKNOWN_FETCH_RATE: u32 = 50;

impl ServiceConfig {
    /// A service on `listen` for the EMKS at `emks`, with the TLS directory
    /// and the state file, and the defaults of `ciot-e2e eese`: certificate
    /// `eese`, no admin interface, local RANDs, the table's defaults, echo
    /// (no webhook; webhook max age 24 h), 100,000 sessions, an idle timeout
    /// of an hour, [`UNKNOWN_FETCH_RATE`], quiet, no key log. Change the
    /// fields you need:
    ///
    /// ```no_run
    /// use ciot_e2e_service::eese::ServiceConfig;
    /// let mut cfg = ServiceConfig::new(
    ///     "0.0.0.0:33863".parse().unwrap(),
    ///     "https://emks.example:8443",
    ///     "/etc/ciot-e2e/tls",
    ///     "/var/lib/ciot-e2e/eese.state",
    /// );
    /// cfg.webhook = Some("https://enterprise.example/uplink".into());
    /// ```
    #[must_use]
    pub fn new(
        listen: SocketAddr,
        emks: impl Into<String>,
        tls_dir: impl Into<PathBuf>,
        state: impl Into<PathBuf>,
    ) -> Self {
        ServiceConfig {
            listen,
            emks: emks.into(),
            tls_dir: tls_dir.into(),
            tls_name: "eese".into(),
            state: state.into(),
            init_state: false,
            admin: None,
            rand: RandChoice::Local,
            table: EeseConfig::default(),
            webhook: None,
            webhook_secret: None,
            webhook_max_age: Duration::from_secs(86_400),
            max_sessions: 100_000,
            idle_timeout: Duration::from_secs(3600),
            unknown_fetch_rate: UNKNOWN_FETCH_RATE,
            exit_after: None,
            verbose: false,
            keylog: None,
            instance: None,
            capture: None,
        }
    }
}

/// What a key log is handed: the UE, the keyset's KSI, trigger counter,
/// RAND and keys.
pub type KeyLogHook = Box<dyn FnMut(&UeId, Ksi, u64, &Rand, &SuiteKeys) + Send>;

/// What the service calls with each datagram it receives or sends:
/// (source, destination, octets).
pub type CaptureHook = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) + Send>;

/// What the tasks beside the driver tell it: the one command channel.
enum Msg {
    /// A root fetch ended.
    Root {
        ue: UeId,
        result: Result<crate::emks::api::RootAnswer, ServiceError>,
    },
    /// A RAND fetch ended.
    Rands(Result<Vec<Rand>, ServiceError>),
    /// The EMKS's change log: a UE's root changed or was revoked.
    Change {
        ue: UeId,
        generation: u64,
        revoked: bool,
        /// The identity of the EMKS database that said so.
        store: String,
    },
    /// The change log starts over (or this EESE was behind it): every
    /// cached root is checked again. `store` is the EMKS database's
    /// identity.
    Reset { store: String },
    /// What another instance sharing the database told this one.
    Notice(super::pg::Notice),
    /// A lease renewal: when it began, and whether it succeeded.
    Lease {
        began: std::time::Instant,
        ok: Result<(), String>,
    },
}

/// RANDs from the EMKS, shared between the table's source and the loop.
type Pool = std::rc::Rc<std::cell::RefCell<VecDeque<Rand>>>;

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

type Driver = EeseDriver<UeId, SocketAddr, ServiceRand>;

/// The running service.
pub struct EeseService {
    /// The driver's runtime (`None` inside only while
    /// [`EeseService::run`] runs on it).
    rt: Runtime,
    driver: Driver,
    io: Io,
    roots: Roots,
    /// Snapshots not restored yet (restored on the UE's next hello).
    pending: HashMap<UeId, Box<[u8]>>,
    /// Admin commands waiting for a UE's root.
    parked: HashMap<UeId, Vec<Request2>>,
    /// Downlink queued for UEs, kept in the state file until it went out.
    downlinks: downlink::Downlinks,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// The admin interface's commands.
    admin_rx: Option<mpsc::Receiver<Request2>>,
    max_sessions: usize,
    idle_timeout: Duration,
    exit_after: Option<Duration>,
    webhook: bool,
    format2_removed: usize,
    state_notes: Vec<String>,
    /// In a shared database: until when this instance may send for the UEs
    /// it holds (its last lease renewal's start + LEASE - SKEW).
    lease_until: Option<std::time::Instant>,
    /// The lease ran out and every session was dropped; cleared by the
    /// next renewal.
    lapsed: bool,
}

/// The driver's runtime. The long-poll of the EMKS's change log and
/// fetches in flight are blocking tasks: a service that stops (or fails to
/// start) does not wait for them.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The next admin command, or never when there is no admin interface.
async fn next_admin(rx: &mut Option<mpsc::Receiver<Request2>>) -> Option<Request2> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Datagrams taken in one wake-up before the effects of the burst are
/// drained (one state transaction for all of them).
const BURST: usize = 64;

fn io_err(what: &str) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |e| ServiceError::Io(format!("{what}: {e}"))
}

impl EeseService {
    /// Binds the socket, opens the state file, loads the snapshots, starts
    /// the tasks beside the driver and the admin interface. `ready` gets
    /// the UDP and admin addresses and how many sessions the state held.
    ///
    /// # Errors
    /// Bind, TLS, state file and configuration errors.
    pub fn start(
        mut cfg: ServiceConfig,
        ready: impl FnOnce(SocketAddr, Option<SocketAddr>, usize),
    ) -> Result<Self, ServiceError> {
        let runtime = Runtime(Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io_err("runtime"))?,
        ));
        let Some(rt) = runtime.0.as_ref() else {
            return Err(ServiceError::Io("runtime: not built".into()));
        };
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
        if cfg.webhook.is_none() && cfg.webhook_secret.is_some() {
            return Err(ServiceError::Usage(
                "--webhook-secret-file needs --webhook".into(),
            ));
        }
        let super::store::Opened {
            state,
            pending,
            notes: state_notes,
            format2_removed,
            downlinks,
        } = State::open(&cfg.state, cfg.instance.as_deref(), cfg.init_state)?;
        let downlinks = downlink::Downlinks::loaded(downlinks);
        let std_sock = std::net::UdpSocket::bind(cfg.listen)
            .map_err(|e| ServiceError::Io(format!("--listen {}: {e}", cfg.listen)))?;
        std_sock.set_nonblocking(true).map_err(io_err("socket"))?;
        let _rt = rt.enter();
        let sock = UdpSocket::from_std(std_sock).map_err(io_err("socket"))?;
        let udp = sock.local_addr().map_err(io_err("socket"))?;
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();

        roots::spawn_changes(poll, tx.clone());

        // Uplink to the enterprise: a sender task posts what the driver
        // committed to the outbox, signed, retried, in order per UE.
        let webhook = cfg.webhook.is_some();
        let webhook_wake = Arc::new(tokio::sync::Notify::new());
        if let Some(url) = &cfg.webhook {
            let secret = match &cfg.webhook_secret {
                Some(p) => Some(super::webhook::WebhookSecret::from_file(p)?),
                None => None,
            };
            let mut wcfg = super::webhook::WebhookConfig::new(url, secret)?;
            wcfg.max_age = cfg.webhook_max_age;
            tokio::spawn(super::webhook::run(
                state.outbox(),
                wcfg,
                metrics.clone(),
                webhook_wake.clone(),
            ));
        }

        // The admin interface runs on this runtime; its handlers send
        // commands on a bounded channel the driver waits on.
        let (admin_addr, admin_rx) = match cfg.admin.take() {
            None => (None, None),
            Some(acfg) => {
                let (atx, arx) = mpsc::channel::<Request2>(admin::QUEUE);
                let bound = rt.block_on(admin::serve(acfg, atx, metrics.clone()))?;
                (Some(bound), Some(arx))
            }
        };

        let pool: Pool = Pool::default();
        let rng = ServiceRand {
            local: cfg.rand == RandChoice::Local,
            pool: pool.clone(),
        };
        let table = EeseTable::with_capacity(cfg.table, rng, cfg.max_sessions.min(1 << 20));
        metrics
            .sessions
            .store(pending.len() as u64, Ordering::Relaxed);
        ready(udp, admin_addr, pending.len());
        // Several instances on one database: the others' notifications and
        // this instance's lease, reported on the command channel.
        let mut state = state;
        let lease_until = if let Some(pg) = state.pg() {
            let t = tx.clone();
            pg.listen(move |n| {
                let _ = t.send(Msg::Notice(n));
            });
            let t = tx.clone();
            pg.spawn_lease(move |began, ok| {
                let _ = t.send(Msg::Lease {
                    began,
                    ok: ok.map_err(|e| e.to_string()),
                });
            });
            // `open` renewed it just now.
            Some(std::time::Instant::now() + super::pg::LEASE - super::pg::SKEW)
        } else {
            None
        };
        let io = Io {
            sock,
            clock: std::rc::Rc::new(SystemClock::new()),
            state,
            moved: Vec::new(),
            moved_log: Vec::new(),
            capture: cfg.capture.take(),
            local: udp,
            metrics,
            keylog: cfg.keylog.take(),
            verbose: cfg.verbose,
            pool,
            rand_waiting: Vec::new(),
            uplinks: Vec::new(),
            webhook_wake,
        };
        let roots = Roots::new(
            emks,
            tx.clone(),
            io.metrics.clone(),
            cfg.rand,
            cfg.unknown_fetch_rate,
        );
        drop(_rt);
        let service = EeseService {
            rt: runtime,
            driver: EeseDriver::new(table),
            io,
            roots,
            pending,
            parked: HashMap::new(),
            downlinks,
            rx,
            admin_rx,
            max_sessions: cfg.max_sessions,
            idle_timeout: cfg.idle_timeout,
            exit_after: cfg.exit_after,
            webhook,
            format2_removed,
            state_notes,
            lease_until,
            lapsed: false,
        };
        service.update_downlink_gauge();
        Ok(service)
    }

    /// How many snapshots of wire format 2 ("CEE2") the state file held when
    /// the service started; they were removed (those UEs start a new session
    /// at their next hello).
    #[must_use]
    pub const fn format2_removed(&self) -> usize {
        self.format2_removed
    }

    /// What opening the state file did that an operator should know: a
    /// damaged file moved aside (`--init`), snapshots set aside.
    #[must_use]
    pub fn state_notes(&self) -> &[String] {
        &self.state_notes
    }

    /// The counters (shared with the admin interface).
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        self.io.metrics.clone()
    }

    fn update_sessions_gauge(&self) {
        let n = self.driver.table().len() + self.pending.len();
        self.io.metrics.sessions.store(n as u64, Ordering::Relaxed);
    }

    /// Runs until `exit_after` (or forever).
    ///
    /// # Errors
    /// A failed state write (the process must stop: nothing that depends on
    /// the lost snapshot went out) or a socket error.
    pub fn run(&mut self) -> Result<(), ServiceError> {
        let Some(rt) = self.rt.0.take() else {
            return Err(ServiceError::Usage("the service is already running".into()));
        };
        let r = rt.block_on(self.drive());
        self.rt.0 = Some(rt);
        r
    }

    /// The driver task: waits on the socket, the next timer and the command
    /// channel; after each wake-up drains the table's effects (one state
    /// transaction for everything the wake-up produced).
    async fn drive(&mut self) -> Result<(), ServiceError> {
        let stop = self.exit_after.map(|d| tokio::time::Instant::now() + d);
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let mut sweep = tokio::time::interval(Duration::from_secs(10));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Admin requests waiting for a root, RANDs running low.
        let mut retry = tokio::time::interval(Duration::from_millis(250));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 65_536];
        loop {
            let timer = self
                .driver
                .poll_timeout()
                .map_or(far, |t| self.io.clock.deadline(t).into());
            tokio::select! {
                () = tokio::time::sleep_until(stop.unwrap_or(far)), if stop.is_some() => {
                    return Ok(());
                }
                r = self.io.sock.readable() => {
                    r.map_err(io_err("receive"))?;
                    for _ in 0..BURST {
                        match self.io.sock.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.receive(from, &mut buf[..n])?,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            // An ICMP error for an earlier datagram.
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                            Err(e) => return Err(ServiceError::Io(format!("receive: {e}"))),
                        }
                    }
                }
                msg = self.rx.recv() => {
                    if let Some(msg) = msg {
                        self.message(msg)?;
                        // Whatever else is waiting, in the same pass.
                        while let Ok(msg) = self.rx.try_recv() {
                            self.message(msg)?;
                        }
                    }
                }
                () = tokio::time::sleep_until(timer) => {
                    let now = self.io.clock.now();
                    self.driver.handle_timeout(now);
                }
                Some(r) = next_admin(&mut self.admin_rx) => self.admin(r)?,
                _ = retry.tick() => self.retry_fetches(),
                _ = sweep.tick() => self.sweep()?,
            }
            self.drain()?;
        }
    }

    /// Persists, transmits and reports until a pass yields nothing.
    fn drain(&mut self) -> Result<(), ServiceError> {
        match self.drain_inner() {
            // A shared database that failed: this instance can no longer
            // prove it owns anyone, so it starts over from what the
            // database holds (the UEs' next hellos), rather than stop.
            Err(ServiceError::Db(e)) if self.io.state.shared() => {
                self.lapse(&format!("database: {e}"));
                Ok(())
            }
            r => r,
        }
    }

    fn drain_inner(&mut self) -> Result<(), ServiceError> {
        if !self.lease_ok() {
            return Ok(());
        }
        let clock = self.io.clock.clone();
        self.driver.drain(|| clock.now(), &mut self.io)?;
        self.settle_moved();
        // Stored downlink handed to a session that came back goes out in
        // the same wake-up.
        while self.settle_downlinks()? {
            self.driver.drain(|| clock.now(), &mut self.io)?;
            self.settle_moved();
        }
        self.update_sessions_gauge();
        Ok(())
    }

    /// The sessions the driver removed because another instance took their
    /// UEs over.
    fn settle_moved(&mut self) {
        for id in std::mem::take(&mut self.io.moved_log) {
            self.downlinks.forget(&id);
            self.update_downlink_gauge();
            super::metrics::inc(&self.io.metrics.ues_moved);
            self.io.log(format_args!(
                "{id}: taken over by another instance; session dropped here"
            ));
        }
    }

    /// Whether this instance may send for the UEs it holds (always, with a
    /// state file). With a shared database, once the lease ran out every
    /// session is dropped first (see [`EeseService::lapse`]).
    fn lease_ok(&mut self) -> bool {
        match self.lease_until {
            None => true,
            Some(_) if self.lapsed => false,
            Some(t) if std::time::Instant::now() < t => true,
            Some(_) => {
                self.lapse("lease not renewed in time");
                false
            }
        }
    }

    /// This instance can no longer prove it owns the UEs it holds (its
    /// lease ran out: the database unreachable, or the process was
    /// stopped): every session is dropped before anything else is sent.
    /// The UEs' next hellos restore them from the database, here or at
    /// another instance.
    fn lapse(&mut self, why: &str) {
        let ids: Vec<UeId> = self.driver.table().ids().copied().collect();
        for id in &ids {
            self.driver.table_mut().remove(id);
            self.downlinks.forget(id);
        }
        self.update_downlink_gauge();
        if let Some(pg) = self.io.state.pg() {
            pg.forget_all();
        }
        // Not committed: not delivered (the UE did not get its answer).
        self.io.uplinks.clear();
        self.io.moved.clear();
        self.io.moved_log.clear();
        self.lapsed = true;
        super::metrics::inc(&self.io.metrics.lease_lapses);
        eprintln!(
            "eese: {why}: this instance cannot prove it owns its UEs; {} sessions dropped",
            ids.len()
        );
    }

    fn evict_quietest(&mut self) -> Result<(), ServiceError> {
        if let Some(id) = self.driver.table().least_recently_active().copied() {
            self.evict(&id)?;
        }
        Ok(())
    }

    /// Takes a session out of the table; its last snapshot stays (in the
    /// state file and in memory), so its next hello restores it.
    fn evict(&mut self, id: &UeId) -> Result<(), ServiceError> {
        self.driver.table_mut().remove(id);
        if self.io.state.shared() {
            // Read again from the database when the UE is back.
            self.downlinks.forget(id);
        } else {
            self.downlinks.left_table(id);
        }
        if let Some(s) = self.io.state.evicted(id)? {
            self.pending.insert(*id, s);
        }
        Ok(())
    }

    /// Drops everything held for `id` at once (its root was revoked, the
    /// EMKS no longer knows it, or the EMKS's database is another one): the
    /// session, its snapshot (the root it was made under is gone) and its
    /// cached root. Its next hello starts from a fresh fetch.
    fn drop_ue(&mut self, id: &UeId, why: &str) -> Result<(), ServiceError> {
        let had = self.driver.table().contains(id) || self.pending.contains_key(id);
        self.driver.table_mut().remove(id);
        self.pending.remove(id);
        self.roots.forget(id);
        self.drop_downlink(id)?;
        if had || self.io.state.shared() {
            match self.io.state.remove(id) {
                Ok(()) => {}
                // A database that cannot be reached now: the row stays, and
                // its root is gone, so no hello can restore it.
                Err(e) if self.io.state.shared() => {
                    self.io
                        .log(format_args!("{id}: stored session not removed: {e}"));
                }
                Err(e) => return Err(e),
            }
            if had {
                self.io.log(format_args!("{id}: keys dropped ({why})"));
            }
        }
        Ok(())
    }

    fn sweep(&mut self) -> Result<(), ServiceError> {
        let now = self.io.clock.now();
        let idle = self.idle_timeout;
        let table = self.driver.table();
        let quiet: Vec<UeId> = table
            .ids()
            .filter(|id| table.last_active(id).is_some_and(|t| t.after(idle) <= now))
            .copied()
            .collect();
        for id in quiet {
            self.evict(&id)?;
        }
        // Whatever no datagram announced (a queue drained by a timer).
        self.downlinks.touch_all();
        self.roots.tidy();
        Ok(())
    }
}
