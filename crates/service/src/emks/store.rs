//! The EMKS's state: each UE's current root with its generation and
//! enterprise, and a log of generation changes for the EESEs' long-poll.
//! One redb file; every provisioning is one transaction (one fsync), so a
//! fetch sees either the old root or the new one, never a mix.
//!
//! **At rest** a root is sealed with AES-256-GCM under the key-encryption
//! key ([`Kek`]), a random 96-bit nonce per record, and associated data
//! binding it to its place: the store's identity, the UE, the generation,
//! the enterprise and the KDF profile. A record copied to another UE,
//! generation, enterprise or database does not open. The database also
//! holds a check value sealed under the KEK, so a wrong KEK is refused when
//! the database opens, not at the first fetch.
//!
//! **Identity.** A database gets 16 random octets of identity when it is
//! created; answers carry it, so an EESE can tell a wiped or restored
//! database from the one it knew.

use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

use super::kek::Kek;
use crate::ServiceError;

/// UE identifier → record (see [`Record`]).
const ROOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("roots");
/// Change sequence number → (generation u64 with the top bit set for a
/// revocation, enterprise len u8, enterprise, UE).
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// The store's identity and the KEK check value.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_ID: &str = "id";
const META_KEK_CHECK: &str = "kek_check";
/// What the KEK check value seals.
const KEK_CHECK_PLAIN: &[u8; 16] = b"ciot-e2e emks v1";
/// Changes kept for the long-poll; an EESE further behind starts over.
pub const CHANGES_KEPT: u64 = 100_000;
/// The top bit of a change's generation marks a revocation.
const REVOKED_BIT: u64 = 1 << 63;
/// First octet of a record sealed under the KEK (a record of the first,
/// clear format starts with its generation's top octet, 0).
const SEALED: u8 = 2;
const NONCE_LEN: usize = 12;
const SEALED_LEN: usize = 32 + 16;

/// A UE's current root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRecord {
    /// The enterprise whose EESE may fetch it.
    pub enterprise: String,
    /// Starts at 1; each provisioning (a new AKA run) adds one.
    pub generation: u64,
    /// The KDF profile the HSS derived it with (`3gpp` or `hkdf`).
    pub kdf: String,
    /// e2e_int_key.
    pub root: Zeroizing<[u8; 32]>,
}

/// A root of the first, clear record format, read to be sealed.
type ClearRoot = Zeroizing<[u8; 32]>;

/// A stored record: a sealed root, or the tombstone of a revoked one.
struct Record {
    enterprise: String,
    generation: u64,
    kdf: String,
    /// Nonce and ciphertext with tag; `None`: revoked.
    sealed: Option<([u8; NONCE_LEN], [u8; SEALED_LEN])>,
}

fn corrupt() -> ServiceError {
    ServiceError::Db("corrupt root record".into())
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 8 + 2 + 40 + 1 + NONCE_LEN + SEALED_LEN);
        v.push(SEALED);
        v.extend_from_slice(&self.generation.to_be_bytes());
        push_str(&mut v, &self.kdf);
        push_str(&mut v, &self.enterprise);
        match &self.sealed {
            None => v.push(0),
            Some((n, c)) => {
                v.push(1);
                v.extend_from_slice(n);
                v.extend_from_slice(c);
            }
        }
        v
    }

    /// Decodes a record; a record of the first, clear format comes back
    /// with its root in clear (to be sealed by [`RootStore::open`]).
    fn decode(b: &[u8]) -> Result<(Self, Option<ClearRoot>), ServiceError> {
        match b.first() {
            Some(&SEALED) => {
                let generation = u64::from_be_bytes(
                    b.get(1..9)
                        .ok_or_else(corrupt)?
                        .try_into()
                        .map_err(|_| corrupt())?,
                );
                let (kdf, rest) = take_str(b.get(9..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
                let (enterprise, rest) = take_str(rest).ok_or_else(corrupt)?;
                let sealed = match rest.split_first() {
                    Some((0, [])) => None,
                    Some((1, r)) if r.len() == NONCE_LEN + SEALED_LEN => {
                        let mut n = [0u8; NONCE_LEN];
                        let mut c = [0u8; SEALED_LEN];
                        n.copy_from_slice(&r[..NONCE_LEN]);
                        c.copy_from_slice(&r[NONCE_LEN..]);
                        Some((n, c))
                    }
                    _ => return Err(corrupt()),
                };
                Ok((
                    Record {
                        enterprise,
                        generation,
                        kdf,
                        sealed,
                    },
                    None,
                ))
            }
            Some(0) => {
                // The first format: generation, root, kdf, enterprise.
                let generation = u64::from_be_bytes(
                    b.get(..8)
                        .ok_or_else(corrupt)?
                        .try_into()
                        .map_err(|_| corrupt())?,
                );
                let mut root = Zeroizing::new([0u8; 32]);
                root.copy_from_slice(b.get(8..40).ok_or_else(corrupt)?);
                let (kdf, rest) = take_str(b.get(40..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
                let (enterprise, rest) = take_str(rest).ok_or_else(corrupt)?;
                if !rest.is_empty() {
                    return Err(corrupt());
                }
                Ok((
                    Record {
                        enterprise,
                        generation,
                        kdf,
                        sealed: None,
                    },
                    Some(root),
                ))
            }
            _ => Err(corrupt()),
        }
    }
}

/// The sealing of roots under one KEK, for one store.
struct Sealer {
    id: [u8; 16],
    aead: Aes256Gcm,
}

impl Sealer {
    fn new(id: [u8; 16], kek: &Kek) -> Result<Self, ServiceError> {
        let aead = Aes256Gcm::new_from_slice(kek.key())
            .map_err(|_| ServiceError::Usage("KEK must be 32 octets".into()))?;
        Ok(Sealer { id, aead })
    }

    /// Associated data: identity ‖ len ‖ UE ‖ generation ‖ len ‖ enterprise
    /// ‖ len ‖ KDF.
    fn ad(&self, ue: &[u8], generation: u64, enterprise: &str, kdf: &str) -> Vec<u8> {
        let mut ad = Vec::with_capacity(16 + 1 + ue.len() + 8 + 2 + enterprise.len() + kdf.len());
        ad.extend_from_slice(&self.id);
        push_bytes(&mut ad, ue);
        ad.extend_from_slice(&generation.to_be_bytes());
        push_str(&mut ad, enterprise);
        push_str(&mut ad, kdf);
        ad
    }

    fn seal(&self, ad: &[u8], plain: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), ServiceError> {
        let mut n = [0u8; NONCE_LEN];
        getrandom::fill(&mut n).map_err(|e| ServiceError::Io(format!("no randomness: {e}")))?;
        let mut buf = plain.to_vec();
        self.aead
            .encrypt_in_place(&Nonce::from(n), ad, &mut buf)
            .map_err(|_| ServiceError::Db("sealing failed".into()))?;
        Ok((n, buf))
    }

    fn open(&self, ad: &[u8], n: &[u8; NONCE_LEN], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(sealed.to_vec());
        self.aead
            .decrypt_in_place(&Nonce::from(*n), ad, &mut *buf)
            .ok()?;
        Some(buf)
    }

    fn seal_root(
        &self,
        ue: &[u8],
        generation: u64,
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
    ) -> Result<Record, ServiceError> {
        let (n, c) = self.seal(&self.ad(ue, generation, enterprise, kdf), root)?;
        let c: [u8; SEALED_LEN] = c
            .as_slice()
            .try_into()
            .map_err(|_| ServiceError::Db("sealing failed".into()))?;
        Ok(Record {
            enterprise: enterprise.to_string(),
            generation,
            kdf: kdf.to_string(),
            sealed: Some((n, c)),
        })
    }

    /// The root of a live record; `None` for a tombstone.
    fn open_root(&self, ue: &[u8], r: &Record) -> Result<Option<RootRecord>, ServiceError> {
        let Some((n, c)) = &r.sealed else {
            return Ok(None);
        };
        let plain = self
            .open(&self.ad(ue, r.generation, &r.enterprise, &r.kdf), n, c)
            .ok_or_else(|| {
                ServiceError::Db(format!(
                    "the root record of UE {} does not open under the KEK (moved or altered)",
                    hex::encode(ue)
                ))
            })?;
        let mut root = Zeroizing::new([0u8; 32]);
        root.copy_from_slice(plain.get(..32).ok_or_else(corrupt)?);
        Ok(Some(RootRecord {
            enterprise: r.enterprise.clone(),
            generation: r.generation,
            kdf: r.kdf.clone(),
            root,
        }))
    }

    fn kek_check(&self) -> Result<Vec<u8>, ServiceError> {
        let (n, c) = self.seal(&self.check_ad(), KEK_CHECK_PLAIN)?;
        let mut v = n.to_vec();
        v.extend_from_slice(&c);
        Ok(v)
    }

    fn check_ad(&self) -> Vec<u8> {
        let mut ad = self.id.to_vec();
        ad.extend_from_slice(b"kek check");
        ad
    }

    fn verify_check(&self, v: &[u8]) -> bool {
        let (Some(n), Some(c)) = (v.get(..NONCE_LEN), v.get(NONCE_LEN..)) else {
            return false;
        };
        let Ok(n) = <[u8; NONCE_LEN]>::try_from(n) else {
            return false;
        };
        self.open(&self.check_ad(), &n, c)
            .is_some_and(|p| p.as_slice() == KEK_CHECK_PLAIN)
    }
}

/// What a provisioning may require of the UE's current generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: always a new generation.
    Any,
    /// The UE's current root has this generation (0: it has no root, never
    /// provisioned or revoked).
    Generation(u64),
}

fn refused(status: u16, message: String) -> ServiceError {
    ServiceError::Refused { status, message }
}

/// Stores `ue`'s next root generation and its change record `seq`, in the
/// caller's transaction; returns the generation. A UE of another
/// enterprise is refused (409) and nothing is stored for it.
#[allow(clippy::too_many_arguments)]
fn put_root(
    sealer: &Sealer,
    roots: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    changes: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: u64,
    enterprise: &str,
    kdf: &str,
    ue: &[u8],
    root: &[u8; 32],
    expect: Expect,
) -> Result<u64, ServiceError> {
    let prev = match roots.get(ue)? {
        Some(g) => Some(Record::decode(g.value())?.0),
        None => None,
    };
    if let Some(p) = &prev
        && p.enterprise != enterprise
    {
        return Err(refused(
            409,
            format!(
                "UE {} belongs to enterprise {:?}",
                super::api::ue_display(ue),
                p.enterprise
            ),
        ));
    }
    let current = prev
        .as_ref()
        .filter(|p| p.sealed.is_some())
        .map_or(0, |p| p.generation);
    if let Expect::Generation(want) = expect
        && want != current
    {
        let revoked = prev.as_ref().filter(|p| p.sealed.is_none());
        return Err(refused(
            409,
            match revoked {
                Some(p) => format!(
                    "UE {} has no root (generation {} revoked; current generation 0), \
                     expected generation {want}",
                    super::api::ue_display(ue),
                    p.generation
                ),
                None => format!(
                    "UE {} is at generation {current}, expected generation {want}",
                    super::api::ue_display(ue)
                ),
            },
        ));
    }
    let generation = prev.map_or(1, |p| p.generation + 1);
    if generation >= REVOKED_BIT {
        return Err(refused(409, "generation space exhausted".into()));
    }
    let rec = sealer.seal_root(ue, generation, enterprise, kdf, root)?;
    roots.insert(ue, rec.encode().as_slice())?;
    log_change(changes, seq, generation, enterprise, ue)?;
    Ok(generation)
}

fn log_change(
    changes: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: u64,
    generation: u64,
    enterprise: &str,
    ue: &[u8],
) -> Result<(), ServiceError> {
    let mut c = Vec::with_capacity(8 + 1 + enterprise.len() + ue.len());
    c.extend_from_slice(&generation.to_be_bytes());
    push_str(&mut c, enterprise);
    c.extend_from_slice(ue);
    changes.insert(seq, c.as_slice())?;
    if seq > CHANGES_KEPT {
        changes.retain_in(..=seq - CHANGES_KEPT, |_, _| false)?;
    }
    Ok(())
}

fn push_str(v: &mut Vec<u8>, s: &str) {
    push_bytes(v, s.as_bytes());
}

fn push_bytes(v: &mut Vec<u8>, s: &[u8]) {
    v.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(&s[..s.len().min(255)]);
}

fn take_str(b: &[u8]) -> Option<(String, &[u8])> {
    let (&n, rest) = b.split_first()?;
    let s = rest.get(..usize::from(n))?;
    Some((String::from_utf8(s.to_vec()).ok()?, &rest[usize::from(n)..]))
}

/// A change of a UE's root generation, as the long-poll reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Position in the change log.
    pub seq: u64,
    /// The UE.
    pub ue: Vec<u8>,
    /// Its new generation (for a revocation: the generation revoked).
    pub generation: u64,
    /// The root was revoked: the UE has none now.
    pub revoked: bool,
}

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The generation revoked.
    pub generation: u64,
    /// The UE's enterprise.
    pub enterprise: String,
    /// The change log entry.
    pub seq: u64,
}

/// The EMKS database.
pub struct RootStore {
    db: Database,
    sealer: Sealer,
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Db(format!("{}: {e}", path.display()))
}

/// Whether the database at `path` has no identity yet: missing, empty, or
/// of the first format (roots in clear). A KEK may be created for it.
///
/// # Errors
/// Database errors (also when another process holds it).
pub fn needs_identity(path: &Path) -> Result<bool, ServiceError> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(true);
    }
    super::kek::ensure_private(path)?;
    let db = Database::create(path).map_err(|e| db_err(path, e))?;
    let tx = db.begin_read()?;
    match tx.open_table(META) {
        Ok(t) => Ok(t.get(META_ID)?.is_none()),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

impl RootStore {
    /// Opens (or creates) the database at `path` with mode 0600 (an existing
    /// file is set to 0600), its roots sealed under `kek`. A new database
    /// gets its identity and the KEK's check value; a database of the first,
    /// clear format gets them too, and every root in it is sealed (one
    /// transaction).
    ///
    /// # Errors
    /// [`ServiceError::Usage`] when `kek` does not open the database's
    /// records ("wrong KEK"); [`ServiceError::Db`] when the file cannot be
    /// opened (also when another process holds it).
    pub fn open(path: &Path, kek: &Kek) -> Result<Self, ServiceError> {
        super::kek::ensure_private(path)?;
        let db = Database::create(path).map_err(|e| db_err(path, e))?;
        let tx = db.begin_write()?;
        let sealer = {
            let mut meta = tx.open_table(META)?;
            let mut roots = tx.open_table(ROOTS)?;
            tx.open_table(CHANGES)?;
            let existing = meta
                .get(META_ID)?
                .map(|v| <[u8; 16]>::try_from(v.value()))
                .transpose()
                .map_err(|_| ServiceError::Db("corrupt store identity".into()))?;
            match existing {
                Some(id) => {
                    let sealer = Sealer::new(id, kek)?;
                    let ok = meta
                        .get(META_KEK_CHECK)?
                        .is_some_and(|v| sealer.verify_check(v.value()));
                    if !ok {
                        return Err(ServiceError::Usage(format!(
                            "wrong KEK: {} does not open the records of {} (store {})",
                            kek.source(),
                            path.display(),
                            hex::encode(id)
                        )));
                    }
                    sealer
                }
                None => {
                    let mut id = [0u8; 16];
                    getrandom::fill(&mut id)
                        .map_err(|e| ServiceError::Io(format!("no randomness: {e}")))?;
                    let sealer = Sealer::new(id, kek)?;
                    meta.insert(META_ID, id.as_slice())?;
                    meta.insert(META_KEK_CHECK, sealer.kek_check()?.as_slice())?;
                    // Seal the roots of a database of the first format.
                    let mut clear = Vec::new();
                    for item in roots.iter()? {
                        let (k, v) = item?;
                        if let (r, Some(root)) = Record::decode(v.value())? {
                            clear.push((k.value().to_vec(), r, root));
                        }
                    }
                    for (ue, r, root) in clear {
                        let rec =
                            sealer.seal_root(&ue, r.generation, &r.enterprise, &r.kdf, &root)?;
                        roots.insert(ue.as_slice(), rec.encode().as_slice())?;
                    }
                    sealer
                }
            }
        };
        tx.commit()?;
        Ok(RootStore { db, sealer })
    }

    /// The store's identity, 32 hex digits.
    #[must_use]
    pub fn id_hex(&self) -> String {
        hex::encode(self.sealer.id)
    }

    /// Stores a new root for `ue` (a new AKA run): its generation is one
    /// above the previous. A UE stays with the enterprise it was first
    /// provisioned for. Returns the generation and the change's sequence
    /// number.
    ///
    /// # Errors
    /// [`ServiceError::Refused`] (409) when `ue` belongs to another
    /// enterprise; database errors.
    pub fn provision(
        &self,
        ue: &[u8],
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
    ) -> Result<(u64, u64), ServiceError> {
        self.provision_checked(ue, enterprise, kdf, root, Expect::Any, |_| Ok(()))
    }

    /// As [`RootStore::provision`], when the UE's current generation is as
    /// `expect` says (409 naming the current generation otherwise).
    /// `before_commit` gets the new generation and runs before the
    /// transaction commits: its error (an audit line that could not be
    /// written) stores nothing.
    ///
    /// # Errors
    /// As [`RootStore::provision`]; 409 for a generation mismatch;
    /// `before_commit`'s error.
    pub fn provision_checked(
        &self,
        ue: &[u8],
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
        expect: Expect,
        before_commit: impl FnOnce(u64) -> Result<(), ServiceError>,
    ) -> Result<(u64, u64), ServiceError> {
        let tx = self.db.begin_write()?;
        let (generation, seq) = {
            let mut roots = tx.open_table(ROOTS)?;
            let mut changes = tx.open_table(CHANGES)?;
            let seq = changes.last()?.map_or(1, |(k, _)| k.value() + 1);
            let generation = put_root(
                &self.sealer,
                &mut roots,
                &mut changes,
                seq,
                enterprise,
                kdf,
                ue,
                root,
                expect,
            )?;
            (generation, seq)
        };
        before_commit(generation)?;
        tx.commit()?;
        Ok((generation, seq))
    }

    /// Revokes `ue`'s root: the sealed root is destroyed, a tombstone keeps
    /// the generation (a later provisioning continues above it) and the
    /// enterprise, and the change log says so. `before_commit` as in
    /// [`RootStore::provision_checked`].
    ///
    /// # Errors
    /// [`ServiceError::Refused`] (404) when `ue` has no root (never
    /// provisioned, or revoked already); `before_commit`'s error; database
    /// errors.
    pub fn revoke(
        &self,
        ue: &[u8],
        before_commit: impl FnOnce(&Revoked) -> Result<(), ServiceError>,
    ) -> Result<Revoked, ServiceError> {
        let tx = self.db.begin_write()?;
        let done = {
            let mut roots = tx.open_table(ROOTS)?;
            let mut changes = tx.open_table(CHANGES)?;
            let prev = match roots.get(ue)? {
                Some(g) => Some(Record::decode(g.value())?.0),
                None => None,
            };
            let Some(mut rec) = prev.filter(|p| p.sealed.is_some()) else {
                return Err(refused(
                    404,
                    format!("UE {} has no root to revoke", super::api::ue_display(ue)),
                ));
            };
            rec.sealed = None;
            roots.insert(ue, rec.encode().as_slice())?;
            let seq = changes.last()?.map_or(1, |(k, _)| k.value() + 1);
            log_change(
                &mut changes,
                seq,
                rec.generation | REVOKED_BIT,
                &rec.enterprise,
                ue,
            )?;
            Revoked {
                generation: rec.generation,
                enterprise: rec.enterprise,
                seq,
            }
        };
        before_commit(&done)?;
        tx.commit()?;
        Ok(done)
    }

    /// Provisions many UEs of one enterprise in one transaction (a bulk
    /// import, e.g. when an operator moves its subscribers to this EMKS);
    /// each gets the next generation, as [`RootStore::provision`] gives.
    ///
    /// # Errors
    /// As [`RootStore::provision`]; nothing of the batch is stored then.
    pub fn provision_batch(
        &self,
        enterprise: &str,
        kdf: &str,
        batch: &[(Vec<u8>, [u8; 32])],
    ) -> Result<(), ServiceError> {
        let tx = self.db.begin_write()?;
        {
            let mut roots = tx.open_table(ROOTS)?;
            let mut changes = tx.open_table(CHANGES)?;
            let first = changes.last()?.map_or(1, |(k, _)| k.value() + 1);
            for (seq, (ue, root)) in (first..).zip(batch) {
                put_root(
                    &self.sealer,
                    &mut roots,
                    &mut changes,
                    seq,
                    enterprise,
                    kdf,
                    ue,
                    root,
                    Expect::Any,
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `ue`'s current root, if it has one (a revoked UE has none).
    ///
    /// # Errors
    /// Database errors; a record that does not open under the KEK.
    pub fn root(&self, ue: &[u8]) -> Result<Option<RootRecord>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ROOTS)?;
        match t.get(ue)? {
            Some(g) => {
                let (r, _) = Record::decode(g.value())?;
                self.sealer.open_root(ue, &r)
            }
            None => Ok(None),
        }
    }

    /// The newest change's sequence number (0: none yet).
    ///
    /// # Errors
    /// Database errors.
    pub fn last_change(&self) -> Result<u64, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CHANGES)?;
        Ok(t.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// Changes after `since` for `enterprise`, at most `max`; and whether
    /// `since` is older than the log keeps (the caller must start over).
    ///
    /// # Errors
    /// Database errors.
    pub fn changes(
        &self,
        enterprise: &str,
        since: u64,
        max: usize,
    ) -> Result<(Vec<Change>, bool), ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CHANGES)?;
        let first = t.first()?.map(|(k, _)| k.value());
        let reset = first.is_some_and(|f| since + 1 < f);
        let mut out = Vec::new();
        for item in t.range(since.saturating_add(1)..)? {
            let (k, v) = item?;
            let v = v.value();
            let bad = || ServiceError::Db("corrupt change record".into());
            let generation =
                u64::from_be_bytes(v.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
            let (ent, ue) = take_str(v.get(8..).ok_or_else(bad)?).ok_or_else(bad)?;
            if ent == enterprise {
                out.push(Change {
                    seq: k.value(),
                    ue: ue.to_vec(),
                    generation: generation & !REVOKED_BIT,
                    revoked: generation & REVOKED_BIT != 0,
                });
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok((out, reset))
    }
}

/// Re-seals every root of the database at `path` from `old` to `new`, in
/// one transaction (the EMKS must be stopped: the database is opened
/// exclusively). Returns how many roots were re-sealed.
///
/// # Errors
/// "wrong KEK" when `old` does not open the database; database errors
/// (nothing changed then).
pub fn rotate_kek(path: &Path, old: &Kek, new: &Kek) -> Result<usize, ServiceError> {
    if !path.exists() {
        return Err(ServiceError::Usage(format!(
            "{}: no such database",
            path.display()
        )));
    }
    let store = RootStore::open(path, old)?;
    let next = Sealer::new(store.sealer.id, new)?;
    let tx = store.db.begin_write()?;
    let mut n = 0;
    {
        let mut roots = tx.open_table(ROOTS)?;
        let mut meta = tx.open_table(META)?;
        let mut all = Vec::new();
        for item in roots.iter()? {
            let (k, v) = item?;
            let ue = k.value().to_vec();
            let (r, _) = Record::decode(v.value())?;
            if let Some(root) = store.sealer.open_root(&ue, &r)? {
                all.push((ue, root));
            }
        }
        for (ue, r) in all {
            let rec = next.seal_root(&ue, r.generation, &r.enterprise, &r.kdf, &r.root)?;
            roots.insert(ue.as_slice(), rec.encode().as_slice())?;
            n += 1;
        }
        meta.insert(META_KEK_CHECK, next.kek_check()?.as_slice())?;
    }
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ciot-emks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    fn kek(b: u8) -> Kek {
        Kek::from_bytes([b; 32], "test KEK")
    }

    #[test]
    fn each_provisioning_is_a_new_generation_and_a_change() {
        let p = tmp("gen");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        assert_eq!(
            s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1"),
            (1, 1)
        );
        assert_eq!(
            s.provision(b"ue-2", "other", "3gpp", &[2; 32]).expect("p2"),
            (1, 2)
        );
        assert_eq!(
            s.provision(b"ue-1", "acme", "3gpp", &[3; 32]).expect("p3"),
            (2, 3)
        );
        let r = s.root(b"ue-1").expect("root").expect("some");
        assert_eq!((r.generation, *r.root), (2, [3; 32]));
        let (c, reset) = s.changes("acme", 0, 10).expect("changes");
        assert!(!reset);
        assert_eq!(
            c.iter().map(|c| (c.seq, c.generation)).collect::<Vec<_>>(),
            vec![(1, 1), (3, 2)]
        );
        assert_eq!(s.changes("acme", 3, 10).expect("none").0, vec![]);
        let id = s.id_hex();
        drop(s);
        let s = RootStore::open(&p, &kek(1)).expect("reopen");
        assert_eq!(s.last_change().expect("last"), 3);
        assert_eq!(s.id_hex(), id, "the identity stays with the database");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_ue_cannot_move_to_another_enterprise() {
        let p = tmp("move");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1");
        let e = s
            .provision(b"ue-1", "other", "3gpp", &[2; 32])
            .expect_err("moved");
        assert!(matches!(e, ServiceError::Refused { status: 409, .. }));
        assert_eq!(*s.root(b"ue-1").expect("r").expect("s").root, [1; 32]);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn roots_are_sealed_and_a_wrong_kek_is_refused_at_open() {
        let p = tmp("sealed");
        let root = [0x5a; 32];
        let s = RootStore::open(&p, &kek(1)).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &root).expect("p1");
        drop(s);
        let file = std::fs::read(&p).expect("read");
        assert!(!file.windows(32).any(|w| w == root), "root in clear");
        let e = RootStore::open(&p, &kek(2)).err().expect("wrong KEK");
        assert!(e.to_string().contains("wrong KEK: test KEK"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(m & 0o777, 0o600);
        }
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_record_moved_to_another_ue_or_database_does_not_open() {
        let p = tmp("moved");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1");
        s.provision(b"ue-2", "acme", "3gpp", &[2; 32]).expect("p2");
        // Copy ue-1's sealed record over ue-2's.
        let tx = s.db.begin_write().expect("tx");
        {
            let mut t = tx.open_table(ROOTS).expect("t");
            let v = t.get(&b"ue-1"[..]).expect("g").expect("s").value().to_vec();
            t.insert(&b"ue-2"[..], v.as_slice()).expect("i");
        }
        tx.commit().expect("c");
        let e = s.root(b"ue-2").expect_err("moved record");
        assert!(e.to_string().contains("does not open"), "{e}");
        // The same record in another database (another identity).
        let p2 = tmp("moved2");
        let s2 = RootStore::open(&p2, &kek(1)).expect("open2");
        s2.provision(b"ue-1", "acme", "3gpp", &[9; 32]).expect("p");
        let v = {
            let tx = s.db.begin_read().expect("r");
            let t = tx.open_table(ROOTS).expect("t");
            t.get(&b"ue-1"[..]).expect("g").expect("s").value().to_vec()
        };
        let tx = s2.db.begin_write().expect("tx");
        tx.open_table(ROOTS)
            .expect("t")
            .insert(&b"ue-1"[..], v.as_slice())
            .expect("i");
        tx.commit().expect("c");
        assert!(s2.root(b"ue-1").is_err());
        assert_ne!(s.id_hex(), s2.id_hex());
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&p2);
    }

    #[test]
    fn revocation_leaves_a_tombstone_and_provisioning_continues_above_it() {
        let p = tmp("revoke");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1");
        s.provision(b"ue-1", "acme", "3gpp", &[2; 32]).expect("p2");
        let r = s.revoke(b"ue-1", |_| Ok(())).expect("revoke");
        assert_eq!((r.generation, r.enterprise.as_str(), r.seq), (2, "acme", 3));
        assert_eq!(s.root(b"ue-1").expect("r"), None);
        let e = s.revoke(b"ue-1", |_| Ok(())).expect_err("twice");
        assert!(matches!(e, ServiceError::Refused { status: 404, .. }));
        let e = s.revoke(b"nobody", |_| Ok(())).expect_err("unknown");
        assert!(matches!(e, ServiceError::Refused { status: 404, .. }));
        let (c, _) = s.changes("acme", 2, 10).expect("changes");
        assert_eq!(
            c,
            vec![Change {
                seq: 3,
                ue: b"ue-1".to_vec(),
                generation: 2,
                revoked: true
            }]
        );
        // Still bound to its enterprise; the next generation is 3.
        assert!(s.provision(b"ue-1", "other", "3gpp", &[3; 32]).is_err());
        assert_eq!(
            s.provision(b"ue-1", "acme", "3gpp", &[3; 32])
                .expect("p3")
                .0,
            3
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn check_and_set_provisioning_changes_nothing_on_a_mismatch() {
        let p = tmp("cas");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        let cas = |g, root: u8| {
            s.provision_checked(
                b"ue-1",
                "acme",
                "3gpp",
                &[root; 32],
                Expect::Generation(g),
                |_| Ok(()),
            )
        };
        let e = cas(1, 1).expect_err("no root yet");
        assert!(e.to_string().contains("at generation 0"), "{e}");
        assert_eq!(cas(0, 1).expect("first").0, 1);
        let e = cas(0, 2).expect_err("has one");
        assert!(e.to_string().contains("at generation 1"), "{e}");
        assert_eq!(cas(1, 2).expect("second").0, 2);
        assert_eq!(s.last_change().expect("l"), 2);
        s.revoke(b"ue-1", |_| Ok(())).expect("revoke");
        let e = cas(2, 3).expect_err("revoked");
        assert!(e.to_string().contains("revoked"), "{e}");
        assert_eq!(cas(0, 3).expect("after revoke").0, 3);
        // An audit failure before commit stores nothing.
        let e = s
            .provision_checked(b"ue-1", "acme", "3gpp", &[4; 32], Expect::Any, |_| {
                Err(ServiceError::Io("audit".into()))
            })
            .expect_err("audit");
        assert!(matches!(e, ServiceError::Io(_)));
        assert_eq!(s.root(b"ue-1").expect("r").expect("s").generation, 3);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn rotation_reseals_every_root_and_the_old_kek_no_longer_opens() {
        let p = tmp("rotate");
        let s = RootStore::open(&p, &kek(1)).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1");
        s.provision(b"ue-2", "acme", "hkdf", &[2; 32]).expect("p2");
        s.provision(b"ue-3", "acme", "3gpp", &[3; 32]).expect("p3");
        s.revoke(b"ue-3", |_| Ok(())).expect("revoke");
        let id = s.id_hex();
        drop(s);
        assert!(rotate_kek(&p, &kek(7), &kek(2)).is_err(), "wrong old KEK");
        assert_eq!(rotate_kek(&p, &kek(1), &kek(2)).expect("rotate"), 2);
        assert!(RootStore::open(&p, &kek(1)).is_err());
        let s = RootStore::open(&p, &kek(2)).expect("new KEK");
        assert_eq!(s.id_hex(), id);
        assert_eq!(*s.root(b"ue-2").expect("r").expect("s").root, [2; 32]);
        assert_eq!(s.root(b"ue-3").expect("r"), None);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_database_of_the_clear_format_is_sealed_when_opened() {
        let p = tmp("legacy");
        {
            let db = Database::create(&p).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let mut t = tx.open_table(ROOTS).expect("t");
                let mut v = 4u64.to_be_bytes().to_vec();
                v.extend_from_slice(&[0x6b; 32]);
                push_str(&mut v, "3gpp");
                push_str(&mut v, "acme");
                t.insert(&b"ue-old"[..], v.as_slice()).expect("i");
            }
            tx.commit().expect("c");
        }
        assert!(needs_identity(&p).expect("needs"));
        let s = RootStore::open(&p, &kek(1)).expect("open");
        let r = s.root(b"ue-old").expect("r").expect("s");
        assert_eq!((r.generation, *r.root), (4, [0x6b; 32]));
        drop(s);
        assert!(!needs_identity(&p).expect("needs"));
        let _ = std::fs::remove_file(&p);
    }
}
