//! The EMKS's state: each UE's current root with its generation and
//! enterprise, and a log of generation changes for the EESEs' long-poll.
//! One redb file; every provisioning is one transaction (one fsync), so a
//! fetch sees either the old root or the new one, never a mix.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

use crate::ServiceError;

/// UE identifier → record (see [`RootRecord`]).
const ROOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("roots");
/// Change sequence number → (generation u64, enterprise len u8, enterprise, UE).
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Changes kept for the long-poll; an EESE further behind starts over.
pub const CHANGES_KEPT: u64 = 100_000;

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

impl RootRecord {
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(8 + 1 + 32 + 2 + 40));
        v.extend_from_slice(&self.generation.to_be_bytes());
        v.extend_from_slice(&*self.root);
        push_str(&mut v, &self.kdf);
        push_str(&mut v, &self.enterprise);
        v
    }

    fn decode(b: &[u8]) -> Result<Self, ServiceError> {
        let bad = || ServiceError::Db("corrupt root record".into());
        let generation =
            u64::from_be_bytes(b.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let mut root = Zeroizing::new([0u8; 32]);
        root.copy_from_slice(b.get(8..40).ok_or_else(bad)?);
        let (kdf, rest) = take_str(b.get(40..).ok_or_else(bad)?).ok_or_else(bad)?;
        let (enterprise, rest) = take_str(rest).ok_or_else(bad)?;
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(RootRecord {
            enterprise,
            generation,
            kdf,
            root,
        })
    }
}

/// Stores `ue`'s next root generation and its change record `seq`, in the
/// caller's transaction; returns the generation. A UE of another
/// enterprise is refused (409) and nothing is stored for it.
fn put_root(
    roots: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    changes: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: u64,
    enterprise: &str,
    kdf: &str,
    ue: &[u8],
    root: &[u8; 32],
) -> Result<u64, ServiceError> {
    let prev = match roots.get(ue)? {
        Some(g) => Some(RootRecord::decode(g.value())?),
        None => None,
    };
    if let Some(p) = &prev
        && p.enterprise != enterprise
    {
        return Err(ServiceError::Refused {
            status: 409,
            message: format!(
                "UE {} belongs to enterprise {:?}",
                String::from_utf8_lossy(ue),
                p.enterprise
            ),
        });
    }
    let generation = prev.map_or(1, |p| p.generation + 1);
    let rec = RootRecord {
        enterprise: enterprise.to_string(),
        generation,
        kdf: kdf.to_string(),
        root: Zeroizing::new(*root),
    };
    roots.insert(ue, rec.encode().as_slice())?;
    let mut c = Vec::with_capacity(8 + 1 + enterprise.len() + ue.len());
    c.extend_from_slice(&generation.to_be_bytes());
    push_str(&mut c, enterprise);
    c.extend_from_slice(ue);
    changes.insert(seq, c.as_slice())?;
    Ok(generation)
}

fn push_str(v: &mut Vec<u8>, s: &str) {
    v.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
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
    /// Its new generation.
    pub generation: u64,
}

/// The EMKS database.
pub struct RootStore {
    db: Database,
}

impl RootStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// [`ServiceError::Db`] when the file cannot be opened (also when another
    /// process holds it).
    pub fn open(path: &Path) -> Result<Self, ServiceError> {
        let db = Database::create(path)
            .map_err(|e| ServiceError::Db(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write()?;
        tx.open_table(ROOTS)?;
        tx.open_table(CHANGES)?;
        tx.commit()?;
        Ok(RootStore { db })
    }

    /// Stores a new root for `ue` (a new AKA run): its generation is one
    /// above the previous. A UE stays with the enterprise it was first
    /// provisioned for.
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
        let tx = self.db.begin_write()?;
        let (generation, seq) = {
            let mut roots = tx.open_table(ROOTS)?;
            let mut changes = tx.open_table(CHANGES)?;
            let seq = changes.last()?.map_or(1, |(k, _)| k.value() + 1);
            let generation = put_root(&mut roots, &mut changes, seq, enterprise, kdf, ue, root)?;
            if seq > CHANGES_KEPT {
                changes.retain_in(..=seq - CHANGES_KEPT, |_, _| false)?;
            }
            (generation, seq)
        };
        tx.commit()?;
        Ok((generation, seq))
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
                put_root(&mut roots, &mut changes, seq, enterprise, kdf, ue, root)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `ue`'s current root, if it has one.
    ///
    /// # Errors
    /// Database errors.
    pub fn root(&self, ue: &[u8]) -> Result<Option<RootRecord>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ROOTS)?;
        match t.get(ue)? {
            Some(g) => Ok(Some(RootRecord::decode(g.value())?)),
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
                    generation,
                });
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok((out, reset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ciot-emks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    #[test]
    fn each_provisioning_is_a_new_generation_and_a_change() {
        let p = tmp("gen");
        let s = RootStore::open(&p).expect("open");
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
        drop(s);
        let s = RootStore::open(&p).expect("reopen");
        assert_eq!(s.last_change().expect("last"), 3);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_ue_cannot_move_to_another_enterprise() {
        let p = tmp("move");
        let s = RootStore::open(&p).expect("open");
        s.provision(b"ue-1", "acme", "3gpp", &[1; 32]).expect("p1");
        let e = s
            .provision(b"ue-1", "other", "3gpp", &[2; 32])
            .expect_err("moved");
        assert!(matches!(e, ServiceError::Refused { status: 409, .. }));
        assert_eq!(*s.root(b"ue-1").expect("r").expect("s").root, [1; 32]);
        let _ = std::fs::remove_file(&p);
    }
}
