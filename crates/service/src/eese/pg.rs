//! The EESE's state in PostgreSQL, shared by several instances
//! (`ciot-e2e eese --state postgres://USER@HOST:PORT/DB`).
//!
//! The same four tables' worth of state as the state file (snapshots, the
//! uplink outbox, the downlink queue, the identity), plus what several
//! instances need to share them without ever serving one UE from two:
//!
//! - **Ownership per UE, with a fencing token.** Each session row carries
//!   its `owner` (an instance's name), an `epoch` and a `version`. An
//!   instance that reads a UE's snapshot (the UE's authentic hello reached
//!   it) takes the UE over with its *first write* for it: one conditional
//!   `UPDATE … SET owner = me, epoch = epoch + 1 … WHERE version = <read>`,
//!   which fails if anyone wrote the row since it was read. Every later
//!   write is conditioned on the epoch it got. A write that matches nothing
//!   means the UE moved: the service drops the session at once and sends
//!   nothing more for it. Per UE rather than per shard: a UE moves by its
//!   own hello (a NAT rebinding, a failed instance), so there is nothing to
//!   rebalance and no shard map to agree on.
//! - **The old owner hears of it**: the take-over notifies
//!   `ciot_e2e_moved` (`<old owner> <ue hex> <new epoch>`) in the same transaction; the
//!   old owner drops the session when the notification arrives, before any
//!   write of its own would have told it.
//! - **Leases**: each instance renews a lease row every second; one that
//!   could not renew for [`LEASE`] minus [`SKEW`] on its own clock (the
//!   database unreachable, or the process stopped) drops every session it
//!   holds before it sends anything again (see the service). The lease is
//!   the instance's own clock's promise, so the clocks need not agree: the
//!   fencing token decides every durable write, and a cut-off instance's
//!   sessions were made under keysets no other instance has.
//! - **Queues across instances**: `admin send` on any instance stores a
//!   downlink row and notifies `ciot_e2e_downlink` (`<ue hex>`), and the
//!   UE's owner takes it; the uplink outbox is sent by one instance at a
//!   time, the holder of a session-level advisory lock (its connection's
//!   death releases it), in key order, so the per-UE order of the webhook
//!   holds (`FOR UPDATE SKIP LOCKED` lets many senders share a queue, but
//!   two senders could then post one UE's payloads out of order).
//!
//! Every call here blocks the caller until the database answered, as the
//! state file's fsync does: the service's driver waits for its writes. The
//! queries run on a small runtime of their own, so a call works from any
//! thread, inside the service's runtime or not.
//!
//! The schema is created and migrated by the service ([`MIGRATIONS`], under
//! an advisory lock so instances starting together do not race); a
//! database migrated by a newer version is refused.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ciot_e2e::endpoint::{QUEUED_PER_UE, UeId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::state::{Downlink, Uplink, say_damaged, snapshot_fault};
use crate::ServiceError;

/// How long an instance may go on sending for the UEs it holds without
/// having renewed its lease.
pub const LEASE: Duration = Duration::from_secs(5);
/// The margin taken off [`LEASE`] for clocks that run at different rates
/// (an instance stops at `LEASE - SKEW` after its last renewal began).
pub const SKEW: Duration = Duration::from_secs(1);

/// The advisory lock the uplink sender holds.
const OUTBOX_LOCK: i64 = 0x6369_6f74_6f75_7462;
/// The advisory lock migrations run under.
const MIGRATE_LOCK: i64 = 0x6369_6f74_6d69_6772;

/// Notification channel: a UE taken over (`<old owner> <ue hex> <new epoch>`).
pub const MOVED: &str = "ciot_e2e_moved";
/// Notification channel: downlink stored for a UE (`<ue hex>`).
pub const DOWNLINK: &str = "ciot_e2e_downlink";

/// The schema, one migration per version, applied in order.
pub const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE eese_meta (name text PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE eese_sessions (
         ue bytea PRIMARY KEY,
         owner text NOT NULL,
         epoch bigint NOT NULL,
         version bigint NOT NULL,
         snapshot bytea NOT NULL,
         written timestamptz NOT NULL DEFAULT now());
     CREATE INDEX eese_sessions_owner ON eese_sessions (owner);
     CREATE TABLE eese_set_aside (
         ue bytea NOT NULL, snapshot bytea NOT NULL, why text NOT NULL,
         at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE eese_outbox (key bigserial PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE eese_downlink (key bigserial PRIMARY KEY, ue bytea NOT NULL, record bytea NOT NULL);
     CREATE INDEX eese_downlink_ue ON eese_downlink (ue, key);
     CREATE TABLE eese_instances (
         name text PRIMARY KEY,
         lease_until timestamptz NOT NULL,
         started timestamptz NOT NULL DEFAULT now());",
)];

/// A write of a UE this instance owns, under its fencing token.
const WRITE_OWNED: &str = "UPDATE eese_sessions SET snapshot = $3, version = version + 1,
        written = now()
    WHERE ue = $1 AND epoch = $2 AND owner = $4 RETURNING epoch";
/// The take-over: the first write after a restore, only if nobody wrote
/// the row since it was read; the old owner is notified.
const TAKE_OVER: &str = "WITH old AS (
        SELECT ue, owner FROM eese_sessions WHERE ue = $1 AND version = $2 FOR UPDATE),
    taken AS (
        UPDATE eese_sessions s SET snapshot = $3, owner = $4, epoch = s.epoch + 1,
            version = s.version + 1, written = now()
        FROM old WHERE s.ue = old.ue
        RETURNING s.epoch, old.owner)
    SELECT epoch, CASE WHEN owner <> $4 THEN
        pg_notify($5, owner || ' ' || encode($1, 'hex') || ' ' || epoch) END
    FROM taken";
/// A UE nobody had a row for: of two instances inserting, the second
/// finds the row there and is refused.
const INSERT_NEW: &str = "INSERT INTO eese_sessions (ue, owner, epoch, version, snapshot)
    VALUES ($1, $2, 1, 1, $3) ON CONFLICT (ue) DO NOTHING RETURNING epoch";
const OUTBOX_INSERT: &str = "INSERT INTO eese_outbox (record) VALUES ($1)";

/// Whether `state` names a PostgreSQL database rather than a file.
#[must_use]
pub fn is_url(state: &str) -> bool {
    state.starts_with("postgres://") || state.starts_with("postgresql://")
}

/// `state` as it may be printed: a database URL's password replaced by
/// `***` (a file path as it is).
#[must_use]
pub fn shown(state: &str) -> String {
    if !is_url(state) {
        return state.to_string();
    }
    let (scheme, rest) = state.split_once("://").unwrap_or(("postgres", state));
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth.map(|a| a.split_once(':').map_or((a, false), |(u, _)| (u, true))) {
        Some((user, true)) => format!("{scheme}://{user}:***@{host}"),
        Some((user, false)) => format!("{scheme}://{user}@{host}"),
        None => format!("{scheme}://{host}"),
    }
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> ServiceError + '_ {
    move |e| {
        // The server's own message says most (a constraint, a missing
        // database); the error's Display alone is often just "db error".
        let detail = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        ServiceError::Db(format!("{what}: {detail}"))
    }
}

fn pool_err(what: &str) -> impl Fn(deadpool_postgres::PoolError) -> ServiceError + '_ {
    move |e| ServiceError::Db(format!("{what}: {e}"))
}

/// The runtime the queries run on; shut down in the background when the
/// last handle goes (it may be dropped inside another runtime).
struct Rt(Option<tokio::runtime::Runtime>);

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The database as the service's blocking code sees it.
#[derive(Clone)]
struct Bridge {
    rt: Arc<Rt>,
    pool: Pool,
    config: tokio_postgres::Config,
}

impl Bridge {
    fn new(url: &str) -> Result<Self, ServiceError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| ServiceError::Usage(format!("--state {}: {e}", shown(url))))?;
        if config.get_application_name().is_none() {
            config.application_name("ciot-e2e eese");
        }
        config.connect_timeout(Duration::from_secs(5));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("eese-postgres")
            .enable_all()
            .build()
            .map_err(|e| ServiceError::Io(format!("runtime: {e}")))?;
        let mgr = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(4)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| ServiceError::Db(format!("pool: {e}")))?;
        Ok(Bridge {
            rt: Arc::new(Rt(Some(rt))),
            pool,
            config,
        })
    }

    /// Runs `f` on the database runtime and waits for its answer.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>> + Send + 'static,
    {
        let Some(rt) = self.rt.0.as_ref() else {
            return Err(ServiceError::Db("the database runtime stopped".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.pool.clone());
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| ServiceError::Db("the database task ended".into()))?
    }
}

/// What this instance knows of a UE's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Read (its snapshot restored here) at this version; not ours yet.
    Read { version: i64 },
    /// No row when looked for: the first write inserts one.
    Absent,
    /// Ours, under this fencing token.
    Owned { epoch: i64 },
}

/// The EESE's state in PostgreSQL, for one instance.
pub struct PgState {
    bridge: Bridge,
    me: String,
    identity: [u8; 16],
    held: HashMap<UeId, Held>,
}

async fn renew(pool: &Pool, me: &str) -> Result<(), ServiceError> {
    let c = pool.get().await.map_err(pool_err("lease"))?;
    c.execute(
        "INSERT INTO eese_instances (name, lease_until)
         VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (name) DO UPDATE SET lease_until = excluded.lease_until",
        &[&me, &LEASE.as_secs_f64()],
    )
    .await
    .map_err(db("lease"))?;
    Ok(())
}

/// Applies the migrations this version knows and the database lacks.
async fn migrate(pool: Pool) -> Result<i32, ServiceError> {
    let mut c = pool.get().await.map_err(pool_err("connect"))?;
    let tx = c.transaction().await.map_err(db("migrate"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(db("migrate"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ciot_e2e_schema (
             version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db("migrate"))?;
    let at: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM ciot_e2e_schema", &[])
        .await
        .map_err(db("migrate"))?
        .get(0);
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if at > newest {
        return Err(ServiceError::Db(format!(
            "the database's schema is version {at}, newer than this EESE knows ({newest}): \
             run the newer EESE, or another database"
        )));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|m| m.0 > at) {
        tx.batch_execute(sql)
            .await
            .map_err(db("migration"))
            .map_err(|e| ServiceError::Db(format!("schema version {v}: {e}")))?;
        tx.execute("INSERT INTO ciot_e2e_schema (version) VALUES ($1)", &[v])
            .await
            .map_err(db("migrate"))?;
    }
    tx.commit().await.map_err(db("migrate"))?;
    Ok(newest)
}

impl PgState {
    /// Connects, creates or migrates the schema, reads (or makes) the
    /// database's identity and registers this instance under `name` (a
    /// random one when `None`).
    ///
    /// # Errors
    /// [`ServiceError::Usage`] for a URL that does not parse,
    /// [`ServiceError::Db`] when the database cannot be reached or its
    /// schema is newer than this version knows.
    pub fn open(url: &str, name: Option<&str>) -> Result<Self, ServiceError> {
        let bridge = Bridge::new(url)?;
        bridge.call(migrate)?;
        let mut fresh = [0u8; 16];
        getrandom::fill(&mut fresh).map_err(|e| ServiceError::Io(format!("randomness: {e}")))?;
        let identity = bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("connect"))?;
            c.execute(
                "INSERT INTO eese_meta (name, value) VALUES ('identity', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&fresh.as_slice()],
            )
            .await
            .map_err(db("identity"))?;
            let v: Vec<u8> = c
                .query_one("SELECT value FROM eese_meta WHERE name = 'identity'", &[])
                .await
                .map_err(db("identity"))?
                .get(0);
            <[u8; 16]>::try_from(v.as_slice())
                .map_err(|_| ServiceError::Db("the database's identity is not 16 octets".into()))
        })?;
        let me = match name {
            Some(n) if !n.is_empty() && n.len() <= 64 && !n.contains(' ') => n.to_string(),
            Some(n) => {
                return Err(ServiceError::Usage(format!(
                    "--instance {n:?}: 1 to 64 characters, no spaces"
                )));
            }
            None => {
                let mut r = [0u8; 6];
                getrandom::fill(&mut r)
                    .map_err(|e| ServiceError::Io(format!("randomness: {e}")))?;
                format!("eese-{}-{}", std::process::id(), hex::encode(r))
            }
        };
        let s = PgState {
            bridge,
            me,
            identity,
            held: HashMap::new(),
        };
        s.renew_lease()?;
        Ok(s)
    }

    /// This instance's name (the `owner` of the rows it writes).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.me
    }

    /// The database's random identity (made when the schema was created).
    #[must_use]
    pub const fn identity(&self) -> [u8; 16] {
        self.identity
    }

    /// Whether this instance owns `ue` (it wrote its row under a fencing
    /// token it still holds, as far as it knows).
    #[must_use]
    pub fn owns(&self, ue: &UeId) -> bool {
        matches!(self.held.get(ue), Some(Held::Owned { .. }))
    }

    /// Renews this instance's lease row (one round trip).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn renew_lease(&self) -> Result<(), ServiceError> {
        let me = self.me.clone();
        self.bridge
            .call(move |pool| async move { renew(&pool, &me).await })
    }

    /// Renews the lease every second on the database's runtime, from now
    /// on; `f` gets, for each renewal, when it began (before the request
    /// went out) and whether it succeeded. The lease holds until
    /// `began + LEASE - SKEW` of the last success.
    pub fn spawn_lease(
        &self,
        f: impl Fn(std::time::Instant, Result<(), ServiceError>) + Send + 'static,
    ) {
        let (pool, me) = (self.bridge.pool.clone(), self.me.clone());
        let Some(rt) = self.bridge.rt.0.as_ref() else {
            return;
        };
        rt.spawn(async move {
            loop {
                let began = std::time::Instant::now();
                let r = tokio::time::timeout(LEASE - SKEW, renew(&pool, &me))
                    .await
                    .unwrap_or_else(|_| Err(ServiceError::Db("lease: no answer".into())));
                f(began, r);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// A notification that `ue` was taken over from this instance, under
    /// `epoch`: true (and the UE is forgotten) unless this instance holds
    /// the UE under that epoch or a newer one (it took the UE back since).
    pub fn on_moved(&mut self, ue: &UeId, epoch: i64) -> bool {
        match self.held.get(ue) {
            Some(Held::Owned { epoch: mine }) if *mine >= epoch => false,
            Some(Held::Owned { .. }) => {
                self.held.remove(ue);
                true
            }
            _ => false,
        }
    }

    /// `ue`'s snapshot, if the database has one (its UE said hello here
    /// and is not in memory). Remembers the row's version: the first write
    /// for `ue` takes it over only if nobody wrote the row since. A
    /// snapshot that does not parse is set aside (`None`).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn load(&mut self, ue: &UeId) -> Result<Option<Box<[u8]>>, ServiceError> {
        self.load_with_downlink(ue).map(|(snap, _)| snap)
    }

    /// [`PgState::load`] and [`PgState::downlinks_of`] in one round trip
    /// (the two queries pipelined): what a hello of a UE not in memory
    /// needs.
    ///
    /// # Errors
    /// The database cannot be reached.
    #[allow(clippy::type_complexity)]
    pub fn load_with_downlink(
        &mut self,
        ue: &UeId,
    ) -> Result<(Option<Box<[u8]>>, Vec<(u64, Downlink)>), ServiceError> {
        let key = ue.as_bytes().to_vec();
        let (row, rows) = self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("load"))?;
            let (s1, s2) = tokio::try_join!(
                c.prepare_cached("SELECT version, snapshot FROM eese_sessions WHERE ue = $1"),
                c.prepare_cached(
                    "SELECT key, record FROM eese_downlink WHERE ue = $1 ORDER BY key"
                ),
            )
            .map_err(db("load"))?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
            let (row, rows) = tokio::try_join!(c.query_opt(&s1, &params), c.query(&s2, &params))
                .map_err(db("load"))?;
            let row = row.map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)));
            let rows: Vec<(i64, Vec<u8>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok((row, rows))
        })?;
        let downlinks = self.decode_downlinks(ue, rows)?;
        let snap = match row {
            None => {
                self.held.insert(*ue, Held::Absent);
                None
            }
            Some((version, snap)) => {
                self.held.insert(*ue, Held::Read { version });
                match snapshot_fault(&snap) {
                    Some(why) => {
                        eprintln!("eese: the stored snapshot of {ue} is not used ({why})");
                        None
                    }
                    None => Some(snap.into_boxed_slice()),
                }
            }
        };
        Ok((snap, downlinks))
    }

    /// The session of `ue` left this instance's memory (evicted, dropped,
    /// moved): nothing more is known of its row.
    pub fn forget(&mut self, ue: &UeId) {
        self.held.remove(ue);
    }

    /// Everything held is forgotten (the lease lapsed).
    pub fn forget_all(&mut self) {
        self.held.clear();
    }

    /// Stores these snapshots and appends these uplink records to the
    /// outbox in one transaction. A snapshot of a UE another instance took
    /// over since (its row no longer matches the token this instance holds)
    /// is not written: the UE is returned, and the caller drops its
    /// session. The others and the uplink are committed.
    ///
    /// Round trips: BEGIN, one per snapshot (a take-over's notification
    /// rides in the same statement), one per uplink record, COMMIT.
    ///
    /// # Errors
    /// The database failed: then nothing is stored.
    pub fn commit<'a>(
        &mut self,
        snapshots: impl IntoIterator<Item = (&'a UeId, &'a [u8])>,
        uplinks: &[Uplink],
    ) -> Result<Vec<UeId>, ServiceError> {
        let batch: Vec<(UeId, Held, Vec<u8>)> = snapshots
            .into_iter()
            .map(|(id, s)| {
                (
                    *id,
                    self.held.get(id).copied().unwrap_or(Held::Absent),
                    s.to_vec(),
                )
            })
            .collect();
        let records: Vec<Vec<u8>> = uplinks.iter().map(Uplink::encode).collect();
        if batch.is_empty() && records.is_empty() {
            return Ok(Vec::new());
        }
        let me = self.me.clone();
        let outcome = self.bridge.call(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err("commit"))?;
            let tx = c.transaction().await.map_err(db("commit"))?;
            let (owned, take, insert, outbox) = tokio::try_join!(
                tx.prepare_cached(WRITE_OWNED),
                tx.prepare_cached(TAKE_OVER),
                tx.prepare_cached(INSERT_NEW),
                tx.prepare_cached(OUTBOX_INSERT),
            )
            .map_err(db("prepare"))?;
            // Every statement of the pass goes out at once (the driver
            // pipelines queries issued together): one round trip for the
            // batch, whatever its size, then COMMIT.
            let writes = batch.iter().map(|(id, held, snap)| {
                let key = id.as_bytes();
                let (st, me, moved) = (&owned, &me, &MOVED);
                let take = &take;
                let insert = &insert;
                let tx = &tx;
                async move {
                    let row = match held {
                        Held::Owned { epoch } => tx.query_opt(st, &[&key, epoch, snap, me]).await,
                        Held::Read { version } => {
                            tx.query_opt(take, &[&key, version, snap, me, moved]).await
                        }
                        Held::Absent => tx.query_opt(insert, &[&key, me, snap]).await,
                    };
                    row.map(|r| (*id, r.map(|r| r.get::<_, i64>(0))))
                }
            });
            let appends = records.iter().map(|r| {
                let (tx, outbox) = (&tx, &outbox);
                async move { tx.execute(outbox, &[r]).await }
            });
            let (out, _) = tokio::try_join!(
                futures_util::future::try_join_all(writes),
                futures_util::future::try_join_all(appends),
            )
            .map_err(db("write"))?;
            tx.commit().await.map_err(db("commit"))?;
            Ok(out)
        })?;
        let mut moved = Vec::new();
        for (id, epoch) in outcome {
            match epoch {
                Some(epoch) => {
                    self.held.insert(id, Held::Owned { epoch });
                }
                None => {
                    self.held.remove(&id);
                    moved.push(id);
                }
            }
        }
        Ok(moved)
    }

    /// Of the UEs this instance owns, those whose row another instance has
    /// taken over since (after the notifications may have been missed: a
    /// lost connection). They are forgotten here; the caller drops them.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn revalidate(&mut self) -> Result<Vec<UeId>, ServiceError> {
        let owned: Vec<(UeId, i64)> = self
            .held
            .iter()
            .filter_map(|(id, h)| match h {
                Held::Owned { epoch } => Some((*id, *epoch)),
                _ => None,
            })
            .collect();
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        let me = self.me.clone();
        let keys: Vec<Vec<u8>> = owned.iter().map(|(id, _)| id.as_bytes().to_vec()).collect();
        let still: Vec<(Vec<u8>, i64)> = self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("revalidate"))?;
            let rows = c
                .query(
                    "SELECT ue, epoch FROM eese_sessions WHERE ue = ANY($1) AND owner = $2",
                    &[&keys, &me],
                )
                .await
                .map_err(db("revalidate"))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let still: HashMap<Vec<u8>, i64> = still.into_iter().collect();
        let mut lost = Vec::new();
        for (id, epoch) in owned {
            if still.get(id.as_bytes()) != Some(&epoch) {
                self.held.remove(&id);
                lost.push(id);
            }
        }
        Ok(lost)
    }

    /// Deletes `ue`'s row (its keys were dropped: revoked, unknown to the
    /// EMKS) whoever owns it.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn remove(&mut self, ue: &UeId) -> Result<(), ServiceError> {
        self.held.remove(ue);
        let key = ue.as_bytes().to_vec();
        self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("remove"))?;
            c.execute("DELETE FROM eese_sessions WHERE ue = $1", &[&key])
                .await
                .map_err(db("remove"))?;
            Ok(())
        })?;
        Ok(())
    }

    /// The owner and fencing token of `ue`'s row, if it has one (for the
    /// admin interface of an instance that does not hold the UE).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn row(&self, ue: &UeId) -> Result<Option<(String, i64)>, ServiceError> {
        let key = ue.as_bytes().to_vec();
        self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("row"))?;
            let row = c
                .query_opt(
                    "SELECT owner, epoch FROM eese_sessions WHERE ue = $1",
                    &[&key],
                )
                .await
                .map_err(db("row"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Stores a downlink payload for its UE and notifies the instances (the
    /// UE's owner takes it), in one transaction; returns its key.
    ///
    /// # Errors
    /// [`ServiceError::Refused`] (409) when `QUEUED_PER_UE` payloads wait
    /// for the UE already; the database failed. Then nothing is stored.
    pub fn queue_downlink(&mut self, d: &Downlink) -> Result<u64, ServiceError> {
        let (key, record) = (d.ue.as_bytes().to_vec(), d.encode());
        let most = i64::try_from(QUEUED_PER_UE).unwrap_or(i64::MAX);
        let k = self.bridge.call(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err("downlink"))?;
            let tx = c.transaction().await.map_err(db("downlink"))?;
            // As many waiting per UE as the table queues for one UE: one
            // more is refused, and nothing is stored for it.
            let k: Option<i64> = tx
                .query_opt(
                    "INSERT INTO eese_downlink (ue, record)
                     SELECT $1, $2
                     WHERE (SELECT count(*) FROM eese_downlink WHERE ue = $1) < $3
                     RETURNING key",
                    &[&key, &record, &most],
                )
                .await
                .map_err(db("downlink"))?
                .map(|r| r.get(0));
            let Some(k) = k else {
                return Err(ServiceError::Refused {
                    status: 409,
                    message: format!(
                        "not stored: {QUEUED_PER_UE} payloads already wait for this UE"
                    ),
                });
            };
            tx.execute(
                "SELECT pg_notify($1, encode($2, 'hex'))",
                &[&DOWNLINK, &key],
            )
            .await
            .map_err(db("downlink"))?;
            tx.commit().await.map_err(db("downlink"))?;
            Ok(k)
        })?;
        Ok(u64::try_from(k).unwrap_or(0))
    }

    /// The downlink records waiting for `ue`, oldest first. One that does
    /// not decode is deleted with a line on stderr.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn downlinks_of(&mut self, ue: &UeId) -> Result<Vec<(u64, Downlink)>, ServiceError> {
        let key = ue.as_bytes().to_vec();
        let rows: Vec<(i64, Vec<u8>)> = self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("downlink"))?;
            let rows = c
                .query(
                    "SELECT key, record FROM eese_downlink WHERE ue = $1 ORDER BY key",
                    &[&key],
                )
                .await
                .map_err(db("downlink"))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        self.decode_downlinks(ue, rows)
    }

    /// Decodes `ue`'s downlink rows; one that does not decode is deleted
    /// with a line on stderr.
    fn decode_downlinks(
        &mut self,
        ue: &UeId,
        rows: Vec<(i64, Vec<u8>)>,
    ) -> Result<Vec<(u64, Downlink)>, ServiceError> {
        let (out, bad) = split_decoded(rows, |r| Downlink::decode(r).filter(|d| d.ue == *ue));
        if !bad.is_empty() {
            say_damaged(&format!("downlink records of {ue}"), &bad);
            self.downlink_sent(&bad)?;
        }
        Ok(out)
    }

    /// Deletes these downlink records (sent, or their UE's keys dropped).
    ///
    /// # Errors
    /// The database failed: then nothing is deleted.
    pub fn downlink_sent(&mut self, keys: &[u64]) -> Result<(), ServiceError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<i64> = keys.iter().filter_map(|k| i64::try_from(*k).ok()).collect();
        self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("downlink"))?;
            c.execute("DELETE FROM eese_downlink WHERE key = ANY($1)", &[&keys])
                .await
                .map_err(db("downlink"))?;
            Ok(())
        })
    }

    /// A handle on the uplink outbox for the webhook sender.
    #[must_use]
    pub fn outbox(&self) -> PgOutbox {
        PgOutbox {
            bridge: self.bridge.clone(),
            identity: self.identity,
            sender: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Starts listening for the notifications of the other instances
    /// ([`MOVED`] for this instance, [`DOWNLINK`]); `f` gets each, and
    /// [`Notice::Reconnected`] after a lost connection came back (whatever
    /// was notified meanwhile was missed). Runs until the process ends.
    pub fn listen(&self, f: impl Fn(Notice) + Send + Sync + 'static) {
        let (config, me) = (self.bridge.config.clone(), self.me.clone());
        let Some(rt) = self.bridge.rt.0.as_ref() else {
            return;
        };
        rt.spawn(listen_loop(config, me, Arc::new(f)));
    }
}

/// What another instance told this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// This UE was taken over from this instance; the new owner's epoch.
    Moved(UeId, i64),
    /// Downlink was stored for this UE.
    Downlink(UeId),
    /// The listening connection was lost and is back: notifications may
    /// have been missed.
    Reconnected,
}

/// Rows (key, record) split into the records that decode and the keys of
/// those that do not.
fn split_decoded<T>(
    rows: Vec<(i64, Vec<u8>)>,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> (Vec<(u64, T)>, Vec<u64>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (k, rec) in rows {
        let k = u64::try_from(k).unwrap_or(0);
        match decode(&rec) {
            Some(v) => out.push((k, v)),
            None => bad.push(k),
        }
    }
    (out, bad)
}

fn ue_of_hex(h: &str) -> Option<UeId> {
    UeId::new(&hex::decode(h).ok()?).ok()
}

async fn listen_loop(
    config: tokio_postgres::Config,
    me: String,
    f: Arc<dyn Fn(Notice) + Send + Sync>,
) {
    use futures_util::StreamExt;
    let mut first = true;
    loop {
        if let Ok((client, mut conn)) = config.connect(NoTls).await {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(Ok(m)) = messages.next().await {
                    if let tokio_postgres::AsyncMessage::Notification(n) = m {
                        let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
                    }
                }
            });
            let ok = client
                .batch_execute(&format!("LISTEN {MOVED}; LISTEN {DOWNLINK};"))
                .await
                .is_ok();
            if ok {
                if !first {
                    f(Notice::Reconnected);
                }
                first = false;
                while let Some((channel, payload)) = rx.recv().await {
                    if channel == MOVED {
                        let mut words = payload.split(' ');
                        if let (Some(owner), Some(ue), Some(epoch)) =
                            (words.next(), words.next(), words.next())
                            && owner == me
                            && let Some(id) = ue_of_hex(ue)
                            && let Ok(epoch) = epoch.parse()
                        {
                            f(Notice::Moved(id, epoch));
                        }
                    } else if channel == DOWNLINK
                        && let Some(id) = ue_of_hex(&payload)
                    {
                        f(Notice::Downlink(id));
                    }
                }
            }
            driver.abort();
            drop(client);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The uplink outbox in the database: a cheap handle for the webhook
/// sender. Only the instance holding the outbox lock sends (see the module
/// documentation); on the others [`PgOutbox::next`] returns nothing.
#[derive(Clone)]
pub struct PgOutbox {
    bridge: Bridge,
    identity: [u8; 16],
    /// The connection that holds the outbox lock, once taken.
    sender: Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>,
}

impl PgOutbox {
    /// The message id of the record under `key`: `msg_<database identity
    /// hex>_<key>`, the same from every instance and on every attempt.
    #[must_use]
    pub fn message_id(&self, key: u64) -> String {
        format!("msg_{}_{key}", hex::encode(self.identity))
    }

    /// Up to `max` records in key order above `after`, if this instance
    /// holds (or now takes) the outbox lock; none otherwise.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn next(&self, after: Option<u64>, max: usize) -> Result<Vec<(u64, Uplink)>, ServiceError> {
        let (sender, config) = (self.sender.clone(), self.bridge.config.clone());
        let from = after.map_or(0, |k| i64::try_from(k).unwrap_or(i64::MAX));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Vec<u8>)> = self.bridge.call(move |_| async move {
            let mut held = sender.lock().await;
            if held.as_ref().is_some_and(tokio_postgres::Client::is_closed) {
                *held = None;
            }
            if held.is_none() {
                let (client, conn) = config.connect(NoTls).await.map_err(db("outbox"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let got: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&OUTBOX_LOCK])
                    .await
                    .map_err(db("outbox"))?
                    .get(0);
                if !got {
                    return Ok(Vec::new());
                }
                *held = Some(client);
            }
            let Some(c) = held.as_ref() else {
                return Ok(Vec::new());
            };
            let op = if after.is_some() { ">" } else { ">=" };
            let rows = c
                .query(
                    &format!(
                        "SELECT key, record FROM eese_outbox WHERE key {op} $1 ORDER BY key LIMIT $2"
                    ),
                    &[&from, &max],
                )
                .await
                .map_err(db("outbox"))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let (out, bad) = split_decoded(rows, Uplink::decode);
        if !bad.is_empty() {
            say_damaged("uplink records of the outbox", &bad);
            self.ack(&bad)?;
        }
        Ok(out)
    }

    /// Deletes these records; returns how many were there.
    ///
    /// # Errors
    /// The database failed: then nothing is deleted.
    pub fn ack(&self, keys: &[u64]) -> Result<usize, ServiceError> {
        let keys: Vec<i64> = keys.iter().filter_map(|k| i64::try_from(*k).ok()).collect();
        self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("outbox"))?;
            let n = c
                .execute("DELETE FROM eese_outbox WHERE key = ANY($1)", &[&keys])
                .await
                .map_err(db("outbox"))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Records waiting (all instances').
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn depth(&self) -> Result<u64, ServiceError> {
        self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("outbox"))?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM eese_outbox", &[])
                .await
                .map_err(db("outbox"))?
                .get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// When the oldest waiting record was received (ms since the UNIX
    /// epoch), if any.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub fn oldest_received_ms(&self) -> Result<Option<u64>, ServiceError> {
        let rec: Option<Vec<u8>> = self.bridge.call(move |pool| async move {
            let c = pool.get().await.map_err(pool_err("outbox"))?;
            let row = c
                .query_opt("SELECT record FROM eese_outbox ORDER BY key LIMIT 1", &[])
                .await
                .map_err(db("outbox"))?;
            Ok(row.map(|r| r.get(0)))
        })?;
        Ok(rec.and_then(|r| Uplink::decode(&r)).map(|u| u.received_ms))
    }
}
