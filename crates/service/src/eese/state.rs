//! The EESE's durable state: one snapshot per UE (the bytes
//! `EeseTable::poll_persist` hands out, no keys inside), in one redb file.
//!
//! The service writes every snapshot a pass of the table produced in one
//! transaction (group commit: one fsync however many UEs rekeyed or said
//! hello), and reports them `persisted` only after the commit returned, so
//! the persistence contract (docs/SECURITY.md §4) holds across `kill -9`.
//!
//! Snapshots are of format "CEE3" (wire format 3: they hold the UE start's
//! nonce). A state file written by an EESE of wire format 2 holds "CEE2"
//! snapshots: the service removes them when it starts
//! ([`StateStore::remove_format2`]) and says how many, and those UEs start a
//! new session at their next hello. Nothing in them could serve a session
//! of wire format 3 (their keysets were derived without a UE nonce, their
//! hello numbers belong to no start of a UE of wire format 3), and nothing
//! is lost by dropping them: a new session's first trigger counter is above
//! the clock floor, and every key of wire format 3 is bound to a UE start's
//! nonce, so no key of the old format can come back.
//!
//! This is the seam a shared backend plugs into (docs/SCALING.md): the
//! service needs [`StateStore::load_all`], [`StateStore::write`],
//! [`StateStore::get`] and [`StateStore::remove`], nothing else.
//!
//! The same file holds the **uplink outbox**: every uplink payload a UE sent
//! while a webhook is configured, written in the same transaction as the
//! snapshots of the pass that received it ([`StateStore::commit`]), and
//! deleted only once the webhook acknowledged it ([`Outbox::ack`]). Its
//! keys only grow (the next one is kept in the file), and the file has a
//! random 16-octet identity made when it was created, so
//! `msg_<identity hex>_<key>` names one payload for good: the same on
//! every retry, never reused by another payload, another restart or a new
//! state file.
//!
//! **A damaged file is refused, not taken for an empty one.** A file that
//! exists but is empty (0 octets), is not a state file, or whose tables
//! cannot be read is refused with a sentence saying what to do;
//! [`StateStore::open_checked`] with `init` moves it aside to
//! `<file>.damaged-<unix secs>` and creates a new one instead. A missing
//! file is created (the first start). One snapshot that does not parse is
//! set aside ([`StateStore::load_all_checked`]) and the others load.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ciot_e2e::endpoint::{EESE_SNAPSHOT_LEN, UeId};
use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use sha2::{Digest, Sha256};

use crate::ServiceError;

const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");
/// Snapshots that did not parse at load: kept for a post-mortem, never used.
const SET_ASIDE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("set_aside");
/// Uplink payloads waiting for the webhook, by a key that only grows.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Downlink payloads the enterprise handed over (`admin send`) that wait
/// in the table's queue for their UE's keyset, by a key that only grows.
const DOWNLINK: TableDefinition<u64, &[u8]> = TableDefinition::new("downlink");
/// The file's identity and the next outbox and downlink keys.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_IDENTITY: &str = "identity";
const META_NEXT_UPLINK: &str = "next_uplink";
const META_NEXT_DOWNLINK: &str = "next_downlink";

/// The magic of the snapshots an EESE of wire format 2 wrote.
pub const FORMAT2_MAGIC: &[u8; 4] = b"CEE2";
/// The magic of the snapshots of wire format 3.
const FORMAT3_MAGIC: &[u8; 4] = b"CEE3";
/// Octets of a snapshot of wire format 3 with neither nonce nor keyset;
/// the nonce adds 16, the keyset (with its state and deadline) 36.
const SNAPSHOT_MIN_LEN: usize = 4 + 4 + 8 + 4 + 8 + 1 + 1 + 4;

/// One uplink payload a UE sent, as the outbox keeps it for the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// The UE.
    pub ue: UeId,
    /// The payload, as the UE sent it (decrypted).
    pub payload: Vec<u8>,
    /// The KSI of the keyset it came under.
    pub ksi: u8,
    /// Its sequence number.
    pub seq: u64,
    /// When the EESE received it, milliseconds since the UNIX epoch.
    pub received_ms: u64,
}

/// Format of an outbox record: version(1) = 1, ue_len(1) ue, ksi(1),
/// seq(8), received_ms(8), payload (the rest). Big endian.
const UPLINK_VERSION: u8 = 1;

impl Uplink {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ue = self.ue.as_bytes();
        let mut v = Vec::with_capacity(3 + ue.len() + 16 + self.payload.len());
        v.push(UPLINK_VERSION);
        v.push(u8::try_from(ue.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(ue);
        v.push(self.ksi);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.received_ms.to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Uplink> {
        let (&version, rest) = b.split_first()?;
        if version != UPLINK_VERSION {
            return None;
        }
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n);
        let ue = UeId::new(rest.get(..n)?).ok()?;
        let rest = rest.get(n..)?;
        let (&ksi, rest) = rest.split_first()?;
        let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let received_ms = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
        Some(Uplink {
            ue,
            payload: rest.get(16..)?.to_vec(),
            ksi,
            seq,
            received_ms,
        })
    }
}

/// One downlink payload the enterprise handed over that was queued for its
/// UE (not sent at once), as the state file keeps it until it went out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downlink {
    /// The UE.
    pub ue: UeId,
    /// The payload.
    pub payload: Vec<u8>,
    /// When the enterprise handed it over, milliseconds since the UNIX
    /// epoch.
    pub queued_ms: u64,
}

/// Format of a downlink record: version(1) = 1, ue_len(1) ue,
/// queued_ms(8), payload (the rest). Big endian.
const DOWNLINK_VERSION: u8 = 1;

impl Downlink {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ue = self.ue.as_bytes();
        let mut v = Vec::with_capacity(10 + ue.len() + self.payload.len());
        v.push(DOWNLINK_VERSION);
        v.push(u8::try_from(ue.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(ue);
        v.extend_from_slice(&self.queued_ms.to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Downlink> {
        let (&version, rest) = b.split_first()?;
        if version != DOWNLINK_VERSION {
            return None;
        }
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n);
        let ue = UeId::new(rest.get(..n)?).ok()?;
        let rest = rest.get(n..)?;
        let queued_ms = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        Some(Downlink {
            ue,
            payload: rest.get(8..)?.to_vec(),
            queued_ms,
        })
    }
}

/// Says on stderr that these records of `what` (e.g. "uplink records of
/// the outbox") did not decode and are removed: damage, which cannot be
/// sent. Both stores, the file and the database, say it the same way.
pub(crate) fn say_damaged(what: &str, bad: &[u64]) {
    eprintln!(
        "eese: {} damaged {what} removed (keys {bad:?}): they cannot be sent",
        bad.len()
    );
}

/// Every UE's snapshot, as loaded.
pub type Snapshots = HashMap<UeId, Box<[u8]>>;

/// A record as stored: key and value octets.
pub type RawRecord = (Vec<u8>, Vec<u8>);

/// The EESE's state file.
pub struct StateStore {
    db: Arc<Database>,
    path: PathBuf,
    identity: [u8; 16],
    commits: u64,
}

/// Why a file could not be opened: damaged (`--init` may move it aside) or
/// something `--init` must not touch (in use, unreadable, newer format).
enum OpenError {
    Damaged(String),
    Other(ServiceError),
}

impl From<ServiceError> for OpenError {
    fn from(e: ServiceError) -> Self {
        OpenError::Other(e)
    }
}

/// Sorts a redb error found while opening or scanning the file.
fn classify(path: &Path, e: redb::Error) -> OpenError {
    match e {
        redb::Error::Corrupted(m) => OpenError::Damaged(format!("is damaged ({m})")),
        redb::Error::RepairAborted => {
            OpenError::Damaged("is damaged and could not be repaired".into())
        }
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            OpenError::Damaged(format!("is not a state file ({io})"))
        }
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            OpenError::Damaged(format!("is cut short ({io})"))
        }
        redb::Error::Io(io) => OpenError::Other(ServiceError::Io(format!(
            "state file {}: {io}: check that it is readable and writable by this user",
            path.display()
        ))),
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            OpenError::Other(ServiceError::Db(format!(
                "state file {} is in use by another process (another EESE with the same --state?)",
                path.display()
            )))
        }
        redb::Error::UpgradeRequired(_) => {
            OpenError::Other(ServiceError::Db(format!("{}: {e}", path.display())))
        }
        // Tables of another kind, broken trees, …: not a file this EESE can use.
        e => OpenError::Damaged(format!("cannot be read ({e})")),
    }
}

fn classify_open(path: &Path, e: DatabaseError) -> OpenError {
    classify(path, e.into())
}

/// `<file>.damaged-<unix secs>` (with `-1`, `-2`, … when that exists).
fn aside_name(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0u32;
    loop {
        let mut name = OsString::from(path.as_os_str());
        name.push(format!(".damaged-{secs}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let p = PathBuf::from(name);
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// Why a snapshot cannot be restored, judged without the UE's root: its
/// magic, length and checksum (the framing `EeseTable::restore` checks
/// first). Snapshots of wire format 2 pass ([`StateStore::remove_format2`]
/// handles them).
pub(crate) fn snapshot_fault(b: &[u8]) -> Option<String> {
    if b.starts_with(FORMAT2_MAGIC) {
        return None;
    }
    if !b.starts_with(FORMAT3_MAGIC) {
        return Some("not a snapshot: bad magic".into());
    }
    let n = b.len();
    if ![
        SNAPSHOT_MIN_LEN,
        SNAPSHOT_MIN_LEN + 16,
        EESE_SNAPSHOT_LEN - 16,
        EESE_SNAPSHOT_LEN,
    ]
    .contains(&n)
    {
        return Some(format!("wrong length, {n} octets"));
    }
    let (covered, sum) = b.split_at(n - 4);
    if Sha256::digest(covered)[..4] != *sum {
        return Some("checksum does not match: a damaged or torn write".into());
    }
    None
}

impl StateStore {
    /// Opens (or creates) the state file; a damaged one is refused (see
    /// [`StateStore::open_checked`]).
    ///
    /// # Errors
    /// [`ServiceError::Db`] when the file is empty, damaged, not a state
    /// file, or another process holds it; [`ServiceError::Io`] when it
    /// cannot be read.
    pub fn open(path: &Path) -> Result<Self, ServiceError> {
        Self::open_checked(path, false).map(|(s, _)| s)
    }

    /// Opens the state file, or creates it when it does not exist.
    ///
    /// A file that exists but is empty (0 octets), is not a state file, or
    /// whose tables cannot be read is refused with a sentence saying what
    /// to do; with `init` it is moved aside to `<file>.damaged-<unix secs>`
    /// and a new file is created (returned: where the old one went). A file
    /// that opens is used as it is, `init` or not.
    ///
    /// # Errors
    /// [`ServiceError::Db`] when the file is damaged (without `init`) or
    /// another process holds it; [`ServiceError::Io`] when it cannot be
    /// read, or moved aside.
    pub fn open_checked(path: &Path, init: bool) -> Result<(Self, Option<PathBuf>), ServiceError> {
        match Self::try_open(path) {
            Ok(s) => Ok((s, None)),
            Err(OpenError::Other(e)) => Err(e),
            Err(OpenError::Damaged(why)) if init => {
                let aside = aside_name(path);
                std::fs::rename(path, &aside).map_err(|e| {
                    ServiceError::Io(format!(
                        "state file {} {why}; moving it aside to {} failed: {e}",
                        path.display(),
                        aside.display()
                    ))
                })?;
                match Self::try_open(path) {
                    Ok(s) => Ok((s, Some(aside))),
                    Err(OpenError::Other(e)) => Err(e),
                    Err(OpenError::Damaged(why)) => Err(ServiceError::Db(format!(
                        "new state file {} {why}",
                        path.display()
                    ))),
                }
            }
            Err(OpenError::Damaged(why)) => Err(ServiceError::Db(format!(
                "state file {p} {why}. Refusing to start with it: restore it from a backup, \
                 or start once with --init to move it aside (to {p}.damaged-<unix secs>) and \
                 begin with an empty one (every UE then starts a new session at its next \
                 hello; uplink payloads it held for the webhook are not sent)",
                p = path.display()
            ))),
        }
    }

    fn try_open(path: &Path) -> Result<Self, OpenError> {
        // redb checks a damaged file with assertions in places (they panic
        // in debug builds): a damaged file is refused either way.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::try_open_inner(path)))
            .unwrap_or_else(|_| {
                Err(OpenError::Damaged(
                    "is damaged (its structure fails the database's checks)".into(),
                ))
            })
    }

    fn try_open_inner(path: &Path) -> Result<Self, OpenError> {
        if let Ok(m) = std::fs::metadata(path) {
            if !m.is_file() {
                return Err(OpenError::Other(ServiceError::Usage(format!(
                    "state file {} is not a file",
                    path.display()
                ))));
            }
            if m.len() == 0 {
                return Err(OpenError::Damaged(
                    "is empty (0 octets): not a state file this EESE wrote (a failed copy, \
                     a full disk?)"
                        .into(),
                ));
            }
        }
        let db = Database::builder()
            // The whole table is read once at start; a larger cache than
            // redb's default keeps restarts of big tables fast.
            .set_cache_size(256 << 20)
            .create(path)
            .map_err(|e| classify_open(path, e))?;
        let c = |e: redb::Error| classify(path, e);
        let identity = Self::prepare(&db).map_err(c)?;
        Self::scan(&db).map_err(c)?;
        Ok(StateStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
            identity,
            commits: 0,
        })
    }

    /// Creates the tables, and the identity of a new file; returns it.
    fn prepare(db: &Database) -> Result<[u8; 16], redb::Error> {
        let tx = db.begin_write()?;
        let identity = {
            tx.open_table(SNAPSHOTS)?;
            tx.open_table(SET_ASIDE)?;
            tx.open_table(OUTBOX)?;
            tx.open_table(DOWNLINK)?;
            let mut meta = tx.open_table(META)?;
            let known = meta
                .get(META_IDENTITY)?
                .and_then(|g| <[u8; 16]>::try_from(g.value()).ok());
            match known {
                Some(id) => id,
                None => {
                    let mut id = [0u8; 16];
                    getrandom::fill(&mut id).map_err(|e| {
                        redb::Error::Io(std::io::Error::other(format!("randomness: {e}")))
                    })?;
                    meta.insert(META_IDENTITY, id.as_slice())?;
                    id
                }
            }
        };
        tx.commit()?;
        Ok(identity)
    }

    /// Reads every record once, so damage in the file's trees shows at
    /// start (refused, or moved aside with `--init`) rather than mid-run.
    fn scan(db: &Database) -> Result<(), redb::Error> {
        let tx = db.begin_read()?;
        for item in tx.open_table(SNAPSHOTS)?.iter()? {
            item?;
        }
        for item in tx.open_table(OUTBOX)?.iter()? {
            item?;
        }
        for item in tx.open_table(DOWNLINK)?.iter()? {
            item?;
        }
        for item in tx.open_table(META)?.iter()? {
            item?;
        }
        Ok(())
    }

    /// The state file's random identity (made when the file was created).
    #[must_use]
    pub const fn identity(&self) -> [u8; 16] {
        self.identity
    }

    /// Every UE's snapshot. Entries whose identifier is not 1 to 64 octets
    /// are skipped (they cannot come from a hello).
    ///
    /// # Errors
    /// Database errors.
    pub fn load_all(&self) -> Result<HashMap<UeId, Box<[u8]>>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        // The stored count only sizes the map (a damaged one must not
        // make it allocate the impossible).
        let n = usize::try_from(t.len()?).unwrap_or(0).min(1 << 20);
        let mut out = HashMap::with_capacity(n);
        for item in t.iter()? {
            let (k, v) = item?;
            if let Ok(id) = UeId::new(k.value()) {
                out.insert(id, Box::from(v.value()));
            }
        }
        Ok(out)
    }

    /// Every UE's snapshot, as [`StateStore::load_all`], but a snapshot
    /// that cannot be restored (bad magic, length or checksum) is moved to
    /// the `set_aside` table (one durable transaction for all of them) and
    /// named in the second list with a sentence for the log: its UE starts
    /// a new session at its next hello. That is safe: every key is bound to
    /// the UE start's nonce, and a new session's trigger counters start
    /// above the clock floor, so nothing of the lost session can come back.
    ///
    /// # Errors
    /// Database errors: then nothing is moved.
    pub fn load_all_checked(&mut self) -> Result<(Snapshots, Vec<(UeId, String)>), ServiceError> {
        let mut all = self.load_all()?;
        let bad: Vec<(UeId, String)> = all
            .iter()
            .filter_map(|(id, snap)| snapshot_fault(snap).map(|why| (*id, why)))
            .collect();
        if bad.is_empty() {
            return Ok((all, bad));
        }
        let tx = self.db.begin_write()?;
        {
            let mut snaps = tx.open_table(SNAPSHOTS)?;
            let mut aside = tx.open_table(SET_ASIDE)?;
            for (id, _) in &bad {
                if let Some(snap) = all.get(id) {
                    aside.insert(id.as_bytes(), &**snap)?;
                }
                snaps.remove(id.as_bytes())?;
            }
        }
        tx.commit()?;
        self.commits += 1;
        let notes = bad
            .into_iter()
            .map(|(id, why)| {
                all.remove(&id);
                let note = format!(
                    "the snapshot of UE {id} in {} cannot be restored ({why}): moved to the \
                     state file's set_aside table; UE {id} starts a new session at its next \
                     hello (safe: its keys are bound to the UE start's nonce, and new trigger \
                     counters start above the clock floor)",
                    self.path.display()
                );
                (id, note)
            })
            .collect();
        Ok((all, notes))
    }

    /// Snapshots set aside by [`StateStore::load_all_checked`].
    ///
    /// # Errors
    /// Database errors.
    pub fn set_aside(&self) -> Result<Vec<RawRecord>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SET_ASIDE)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// One UE's snapshot.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&self, ue: &UeId) -> Result<Option<Box<[u8]>>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        Ok(t.get(ue.as_bytes())?.map(|g| Box::from(g.value())))
    }

    /// Stores these snapshots, each replacing its UE's, in one durable
    /// transaction.
    ///
    /// # Errors
    /// Database errors: then nothing of the batch is stored.
    pub fn write<'a>(
        &mut self,
        batch: impl IntoIterator<Item = (&'a UeId, &'a [u8])>,
    ) -> Result<(), ServiceError> {
        self.commit(batch, &[])
    }

    /// Stores these snapshots (each replacing its UE's) and appends these
    /// uplink records to the outbox, all in ONE durable transaction (one
    /// fsync): the service loop calls this once per pass, and counts the
    /// payloads delivered only after it returned.
    ///
    /// # Errors
    /// Database errors: then nothing of either is stored.
    pub fn commit<'a>(
        &mut self,
        snapshots: impl IntoIterator<Item = (&'a UeId, &'a [u8])>,
        uplinks: &[Uplink],
    ) -> Result<(), ServiceError> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            for (id, snap) in snapshots {
                t.insert(id.as_bytes(), snap)?;
            }
        }
        if !uplinks.is_empty() {
            let mut meta = tx.open_table(META)?;
            let mut next = meta
                .get(META_NEXT_UPLINK)?
                .and_then(|g| <[u8; 8]>::try_from(g.value()).ok())
                .map_or(0, u64::from_be_bytes);
            {
                let mut out = tx.open_table(OUTBOX)?;
                for u in uplinks {
                    out.insert(next, u.encode().as_slice())?;
                    next += 1;
                }
            }
            meta.insert(META_NEXT_UPLINK, next.to_be_bytes().as_slice())?;
        }
        tx.commit()?;
        self.commits += 1;
        Ok(())
    }

    /// A handle on the outbox for the webhook sender (another task).
    #[must_use]
    pub fn outbox(&self) -> Outbox {
        Outbox {
            db: self.db.clone(),
            identity: self.identity,
        }
    }

    /// Removes every snapshot of wire format 2 (magic "CEE2") from `loaded`
    /// (what [`StateStore::load_all`] returned) and from the file, in one
    /// durable transaction; returns how many (no write when there are none).
    ///
    /// # Errors
    /// Database errors: then nothing is removed from the file (and
    /// `loaded` is unchanged).
    pub fn remove_format2(
        &mut self,
        loaded: &mut HashMap<UeId, Box<[u8]>>,
    ) -> Result<usize, ServiceError> {
        let old: Vec<UeId> = loaded
            .iter()
            .filter(|(_, snap)| snap.starts_with(FORMAT2_MAGIC))
            .map(|(id, _)| *id)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            for id in &old {
                t.remove(id.as_bytes())?;
            }
        }
        tx.commit()?;
        self.commits += 1;
        for id in &old {
            loaded.remove(id);
        }
        Ok(old.len())
    }

    /// Forgets a UE's snapshot.
    ///
    /// # Errors
    /// Database errors.
    pub fn remove(&mut self, ue: &UeId) -> Result<(), ServiceError> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            t.remove(ue.as_bytes())?;
        }
        tx.commit()?;
        self.commits += 1;
        Ok(())
    }

    /// Stores a downlink payload queued for its UE, in one durable
    /// transaction, and returns its key. The service calls this before it
    /// tells the enterprise "queued", and [`StateStore::downlink_sent`] once
    /// the table's queue for the UE has drained.
    ///
    /// # Errors
    /// Database errors: then nothing is stored.
    pub fn queue_downlink(&mut self, d: &Downlink) -> Result<u64, ServiceError> {
        let tx = self.db.begin_write()?;
        let key = {
            let mut meta = tx.open_table(META)?;
            let key = meta
                .get(META_NEXT_DOWNLINK)?
                .and_then(|g| <[u8; 8]>::try_from(g.value()).ok())
                .map_or(0, u64::from_be_bytes);
            tx.open_table(DOWNLINK)?
                .insert(key, d.encode().as_slice())?;
            meta.insert(META_NEXT_DOWNLINK, (key + 1).to_be_bytes().as_slice())?;
            key
        };
        tx.commit()?;
        self.commits += 1;
        Ok(key)
    }

    /// Every downlink record waiting, in the order the enterprise handed
    /// them over. A record that does not decode (damage) is removed with a
    /// line on stderr: it cannot be sent.
    ///
    /// # Errors
    /// Database errors.
    pub fn downlinks(&mut self) -> Result<Vec<(u64, Downlink)>, ServiceError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(DOWNLINK)?;
            for item in t.iter()? {
                let (k, v) = item?;
                match Downlink::decode(v.value()) {
                    Some(d) => out.push((k.value(), d)),
                    None => bad.push(k.value()),
                }
            }
        }
        if !bad.is_empty() {
            say_damaged("downlink records", &bad);
            self.downlink_sent(&bad)?;
        }
        Ok(out)
    }

    /// Deletes these downlink records (their payloads went out, or their
    /// UE's keys were dropped). Not flushed on its own: after a crash
    /// before the next durable commit, a payload may go out once more
    /// (at least once, never lost).
    ///
    /// # Errors
    /// Database errors: then nothing is deleted.
    pub fn downlink_sent(&mut self, keys: &[u64]) -> Result<(), ServiceError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::None)
            .map_err(|e| ServiceError::Db(e.to_string()))?;
        {
            let mut t = tx.open_table(DOWNLINK)?;
            for k in keys {
                t.remove(*k)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Durable transactions committed since opened.
    #[must_use]
    pub const fn commits(&self) -> u64 {
        self.commits
    }
}

/// The uplink outbox of a state file: a cheap handle (clone it freely,
/// send it to another task) on the same database as its [`StateStore`].
///
/// Every call is a short blocking database transaction.
#[derive(Clone)]
pub struct Outbox {
    db: Arc<Database>,
    identity: [u8; 16],
}

impl Outbox {
    /// The state file's identity (see the module documentation).
    #[must_use]
    pub const fn identity(&self) -> [u8; 16] {
        self.identity
    }

    /// The message id of the record under `key`:
    /// `msg_<identity hex>_<key>`, the same on every attempt.
    #[must_use]
    pub fn message_id(&self, key: u64) -> String {
        format!("msg_{}_{key}", hex::encode(self.identity))
    }

    /// Up to `max` records in key order, from the first key above `after`
    /// (from the first record with `None`). A record that does not decode
    /// (damage) is removed with a line on stderr: it cannot be sent.
    ///
    /// # Errors
    /// Database errors.
    pub fn next(&self, after: Option<u64>, max: usize) -> Result<Vec<(u64, Uplink)>, ServiceError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(OUTBOX)?;
            let from = match after {
                None => 0,
                Some(u64::MAX) => return Ok(out),
                Some(k) => k + 1,
            };
            for item in t.range(from..)? {
                if out.len() >= max {
                    break;
                }
                let (k, v) = item?;
                match Uplink::decode(v.value()) {
                    Some(u) => out.push((k.value(), u)),
                    None => bad.push(k.value()),
                }
            }
        }
        if !bad.is_empty() {
            say_damaged("uplink records of the outbox", &bad);
            self.ack(&bad)?;
        }
        Ok(out)
    }

    /// Deletes these records (the webhook took them, or they expired), in
    /// one transaction. Returns how many were there.
    ///
    /// The commit is not flushed on its own (no fsync): the service's next
    /// snapshot commit makes it durable. After a crash before that, the
    /// record is sent again under the same `webhook-id` (a receiver drops
    /// duplicates by id); nothing is lost either way.
    ///
    /// # Errors
    /// Database errors: then nothing is deleted.
    pub fn ack(&self, keys: &[u64]) -> Result<usize, ServiceError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::None)
            .map_err(|e| ServiceError::Db(e.to_string()))?;
        let mut n = 0;
        {
            let mut t = tx.open_table(OUTBOX)?;
            for k in keys {
                if t.remove(*k)?.is_some() {
                    n += 1;
                }
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Records waiting.
    ///
    /// # Errors
    /// Database errors.
    pub fn depth(&self) -> Result<u64, ServiceError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(OUTBOX)?.len()?)
    }

    /// When the oldest waiting record was received (ms since the UNIX
    /// epoch), if any.
    ///
    /// # Errors
    /// Database errors.
    pub fn oldest_received_ms(&self) -> Result<Option<u64>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OUTBOX)?;
        // Keys follow arrival, so the first record is the oldest (a record
        // that does not decode is skipped here; `next` removes it).
        for item in t.iter()? {
            let (_, v) = item?;
            if let Some(u) = Uplink::decode(v.value()) {
                return Ok(Some(u.received_ms));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_survive_reopening_and_replace_each_other() {
        let p = std::env::temp_dir().join(format!("ciot-eese-state-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let a = UeId::new(b"ue-a").expect("id");
        let b = UeId::new(b"ue-b").expect("id");
        {
            let mut s = StateStore::open(&p).expect("open");
            s.write([(&a, &[1u8, 2][..]), (&b, &[3u8][..])])
                .expect("w1");
            s.write([(&a, &[9u8][..])]).expect("w2");
            assert_eq!(s.commits(), 2);
        }
        let mut s = StateStore::open(&p).expect("reopen");
        let all = s.load_all().expect("load");
        assert_eq!(all.len(), 2);
        assert_eq!(&*all[&a], &[9u8]);
        s.remove(&b).expect("rm");
        assert_eq!(s.get(&b).expect("get"), None);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn snapshots_of_wire_format_2_are_removed_once_and_the_others_kept() {
        let p = std::env::temp_dir().join(format!("ciot-eese-state-cee2-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let old = UeId::new(b"ue-old").expect("id");
        let new = UeId::new(b"ue-new").expect("id");
        // What a wire-format-2 EESE wrote, and a current one (the contents
        // past the magic do not matter here).
        let cee2 = [&b"CEE2"[..], &[0u8; 60][..]].concat();
        let cee3 = [&b"CEE3"[..], &[0u8; 60][..]].concat();
        {
            let mut s = StateStore::open(&p).expect("open");
            s.write([(&old, cee2.as_slice()), (&new, cee3.as_slice())])
                .expect("write");
        }
        let mut s = StateStore::open(&p).expect("reopen");
        let mut loaded = s.load_all().expect("load");
        assert_eq!(s.remove_format2(&mut loaded).expect("remove"), 1);
        assert_eq!(loaded.keys().collect::<Vec<_>>(), vec![&new]);
        assert_eq!(s.get(&old).expect("get"), None, "still in the file");
        assert_eq!(s.get(&new).expect("get").as_deref(), Some(cee3.as_slice()));
        // Nothing left to remove: no write.
        let commits = s.commits();
        let mut loaded = s.load_all().expect("load again");
        assert_eq!(s.remove_format2(&mut loaded).expect("remove again"), 0);
        assert_eq!((loaded.len(), s.commits()), (1, commits));
        let _ = std::fs::remove_file(&p);
    }

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ciot-eese-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A snapshot of wire format 3 with neither nonce nor keyset, framed
    /// as the endpoint frames it (magic, fields, SHA-256 checksum).
    fn framed(counter: u64) -> Vec<u8> {
        let mut b = b"CEE3".to_vec();
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&counter.to_be_bytes());
        b.extend_from_slice(&[0u8; 4 + 8 + 1 + 1]);
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..4]);
        b
    }

    fn cleanup(p: &Path) {
        let _ = std::fs::remove_file(p);
        if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
            let prefix = format!("{}.damaged-", name.to_string_lossy());
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    #[test]
    fn an_empty_state_file_is_refused_and_init_moves_it_aside() {
        let p = temp("empty");
        std::fs::write(&p, b"").expect("touch");
        let Err(e) = StateStore::open(&p) else {
            panic!("an empty state file was taken")
        };
        let msg = e.to_string();
        assert!(msg.contains("is empty (0 octets)"), "{msg}");
        assert!(msg.contains("--init"), "{msg}");
        assert_eq!(
            std::fs::metadata(&p).expect("still there").len(),
            0,
            "changed"
        );
        let (s, aside) = StateStore::open_checked(&p, true).expect("--init");
        let aside = aside.expect("moved aside");
        assert!(
            aside.to_string_lossy().contains(".damaged-"),
            "{}",
            aside.display()
        );
        assert_eq!(std::fs::metadata(&aside).expect("aside").len(), 0);
        assert!(s.load_all().expect("load").is_empty());
        drop(s);
        // The new file opens without --init, and --init leaves a good file be.
        let (_, aside2) = StateStore::open_checked(&p, true).expect("good file");
        assert_eq!(aside2, None);
        cleanup(&p);
    }

    #[test]
    fn a_file_that_is_not_a_state_file_is_refused_with_a_sentence() {
        let p = temp("garbage");
        std::fs::write(&p, vec![0x5au8; 8192]).expect("write");
        let Err(e) = StateStore::open(&p) else {
            panic!("garbage was taken for a state file")
        };
        let msg = e.to_string();
        assert!(msg.contains("is not a state file"), "{msg}");
        assert!(msg.contains("--init"), "{msg}");
        assert_eq!(std::fs::read(&p).expect("kept"), vec![0x5au8; 8192]);
        let (_, aside) = StateStore::open_checked(&p, true).expect("--init");
        assert_eq!(
            std::fs::read(aside.expect("moved")).expect("aside"),
            vec![0x5au8; 8192]
        );
        cleanup(&p);
    }

    #[test]
    fn a_missing_state_file_is_created() {
        let p = temp("missing");
        let (s, aside) = StateStore::open_checked(&p, false).expect("created");
        assert_eq!((s.load_all().expect("load").len(), aside), (0, None));
        cleanup(&p);
    }

    #[test]
    fn a_snapshot_with_a_flipped_bit_is_set_aside_and_the_others_load() {
        let p = temp("flip");
        let a = UeId::new(b"ue-a").expect("id");
        let b = UeId::new(b"ue-b").expect("id");
        let c = UeId::new(b"ue-c").expect("id");
        let good = framed(0x1111_2222_3333_4444);
        let mut bad = framed(0x0123_4567_89ab_cdef);
        {
            let mut s = StateStore::open(&p).expect("open");
            s.write([
                (&a, good.as_slice()),
                (&b, bad.as_slice()),
                (&c, framed(7).as_slice()),
            ])
            .expect("write");
        }
        // Flip one bit of b's snapshot in the file itself (its counter is
        // a pattern found nowhere else).
        let mut file = std::fs::read(&p).expect("read");
        let at = file
            .windows(8)
            .position(|w| w == 0x0123_4567_89ab_cdef_u64.to_be_bytes())
            .expect("the snapshot is in the file");
        file[at + 3] ^= 0x10;
        std::fs::write(&p, &file).expect("write back");
        bad[8 + 3] ^= 0x10;

        let mut s = StateStore::open(&p).expect("the file opens");
        let (loaded, notes) = s.load_all_checked().expect("load");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.get(&a).map(|v| v.to_vec()), Some(good));
        assert!(loaded.contains_key(&c));
        assert_eq!(notes.len(), 1);
        let (id, note) = &notes[0];
        assert_eq!(id, &b);
        assert!(note.contains("UE ue-b"), "{note}");
        assert!(note.contains("checksum does not match"), "{note}");
        assert!(note.contains("new session at its next hello"), "{note}");
        // Set aside, not lost, and not offered again.
        assert_eq!(s.get(&b).expect("get"), None);
        assert_eq!(s.set_aside().expect("aside"), vec![(b"ue-b".to_vec(), bad)]);
        drop(s);
        let mut s = StateStore::open(&p).expect("reopen");
        let (loaded, notes) = s.load_all_checked().expect("load again");
        assert_eq!((loaded.len(), notes.len()), (2, 0));
        cleanup(&p);
    }

    #[test]
    fn snapshots_of_the_wrong_length_or_magic_are_set_aside() {
        let p = temp("shape");
        let a = UeId::new(b"ue-a").expect("id");
        let b = UeId::new(b"ue-b").expect("id");
        let mut s = StateStore::open(&p).expect("open");
        let mut long = framed(1);
        long.push(0);
        s.write([(&a, long.as_slice()), (&b, &b"XXXX-not-a-snapshot"[..])])
            .expect("write");
        let (loaded, mut notes) = s.load_all_checked().expect("load");
        assert!(loaded.is_empty());
        notes.sort_by_key(|(id, _)| *id.as_bytes().last().unwrap_or(&0));
        assert!(
            notes[0].1.contains("wrong length, 35 octets"),
            "{}",
            notes[0].1
        );
        assert!(notes[1].1.contains("bad magic"), "{}", notes[1].1);
        cleanup(&p);
    }

    fn uplink(ue: &UeId, seq: u64) -> Uplink {
        Uplink {
            ue: *ue,
            payload: vec![u8::try_from(seq % 256).unwrap_or(0); 3],
            ksi: 2,
            seq,
            received_ms: 1_750_000_000_000 + seq,
        }
    }

    #[test]
    fn downlink_records_outlive_the_store_in_order_until_sent_and_damage_is_removed() {
        let p = temp("downlink");
        let a = UeId::new(b"ue a").expect("id");
        let b = UeId::new(&[0xc3, 0xbc]).expect("id");
        let rec = |ue: &UeId, payload: &[u8], ms: u64| Downlink {
            ue: *ue,
            payload: payload.to_vec(),
            queued_ms: ms,
        };
        {
            let mut s = StateStore::open(&p).expect("open");
            assert_eq!(s.queue_downlink(&rec(&a, b"one", 1)).expect("q"), 0);
            assert_eq!(s.queue_downlink(&rec(&b, b"", 2)).expect("q"), 1);
            assert_eq!(s.queue_downlink(&rec(&a, b"two", 3)).expect("q"), 2);
            assert_eq!(s.commits(), 3, "each is durable before it is answered");
        }
        let mut s = StateStore::open(&p).expect("reopen");
        assert_eq!(
            s.downlinks().expect("load"),
            vec![
                (0, rec(&a, b"one", 1)),
                (1, rec(&b, b"", 2)),
                (2, rec(&a, b"two", 3))
            ]
        );
        s.downlink_sent(&[0, 2]).expect("sent");
        // A damaged record is removed, never handed on.
        {
            let tx = s.db.begin_write().expect("tx");
            tx.open_table(DOWNLINK)
                .expect("t")
                .insert(7, &[9u8, 1][..])
                .expect("insert");
            tx.commit().expect("commit");
        }
        assert_eq!(s.downlinks().expect("load"), vec![(1, rec(&b, b"", 2))]);
        s.downlink_sent(&[1]).expect("sent");
        assert_eq!(s.downlinks().expect("load"), vec![]);
        // Keys never repeat.
        assert_eq!(s.queue_downlink(&rec(&a, b"three", 4)).expect("q"), 3);
        drop(s);
        cleanup(&p);
    }

    #[test]
    fn the_outbox_keeps_records_in_key_order_across_restarts_and_keys_never_repeat() {
        let p = temp("outbox");
        let a = UeId::new(b"ue-a").expect("id");
        let b = UeId::new(&[0xff, 0x00]).expect("id");
        let identity;
        {
            let mut s = StateStore::open(&p).expect("open");
            identity = s.identity();
            s.commit([(&a, &b"snap"[..])], &[uplink(&a, 1), uplink(&b, 2)])
                .expect("commit");
            assert_eq!(s.commits(), 1, "one transaction for both");
            let o = s.outbox();
            assert_eq!(o.depth().expect("depth"), 2);
            assert_eq!(
                o.oldest_received_ms().expect("oldest"),
                Some(1_750_000_000_001)
            );
            let recs = o.next(None, 10).expect("next");
            assert_eq!(recs, vec![(0, uplink(&a, 1)), (1, uplink(&b, 2))]);
            assert_eq!(
                o.next(Some(0), 10).expect("after 0"),
                vec![(1, uplink(&b, 2))]
            );
            assert_eq!(o.ack(&[0, 1]).expect("ack"), 2);
            assert_eq!(o.depth().expect("depth"), 0);
            s.commit([], &[uplink(&a, 3)]).expect("commit");
        }
        let mut s = StateStore::open(&p).expect("reopen");
        assert_eq!(s.identity(), identity, "the identity is kept");
        assert_eq!(s.get(&a).expect("get").as_deref(), Some(&b"snap"[..]));
        let o = s.outbox();
        assert_eq!(o.next(None, 10).expect("next"), vec![(2, uplink(&a, 3))]);
        o.ack(&[2]).expect("ack");
        s.commit([], &[uplink(&a, 4)]).expect("commit");
        // Emptied and restarted: the key still grows.
        assert_eq!(o.next(None, 10).expect("next")[0].0, 3);
        assert_eq!(o.message_id(3), format!("msg_{}_3", hex::encode(identity)));
        drop(s);
        cleanup(&p);
        // A new file has another identity.
        let s = StateStore::open(&p).expect("new");
        assert_ne!(s.identity(), identity);
        cleanup(&p);
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_file_is_refused_with_a_sentence_or_harmless() {
        let p = temp("flip-any");
        let a = UeId::new(b"ue-a").expect("id");
        let snap = framed(5);
        {
            let mut s = StateStore::open(&p).expect("open");
            s.write([(&a, snap.as_slice())]).expect("write");
        }
        let orig = std::fs::read(&p).expect("read");
        let mut refused = 0;
        for pos in (0..orig.len()).step_by(61) {
            let mut f = orig.clone();
            f[pos] ^= 0x04;
            std::fs::write(&p, &f).expect("write");
            match StateStore::open(&p) {
                Ok(mut s) => {
                    // Opened: the snapshot is there intact, or set aside.
                    let (loaded, notes) = s.load_all_checked().expect("load");
                    assert!(
                        loaded.get(&a).is_some_and(|v| **v == *snap) || notes.len() == 1,
                        "bit at {pos}: {loaded:?}"
                    );
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains("--init"), "bit at {pos}: {msg}");
                    refused += 1;
                }
            }
        }
        // The header was among the flipped places: some were refused.
        assert!(refused > 0);
        cleanup(&p);
    }
}
