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

use std::collections::HashMap;
use std::path::Path;

use ciot_e2e::endpoint::UeId;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::ServiceError;

const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");

/// The magic of the snapshots an EESE of wire format 2 wrote.
pub const FORMAT2_MAGIC: &[u8; 4] = b"CEE2";

/// The EESE's state file.
pub struct StateStore {
    db: Database,
    commits: u64,
}

impl StateStore {
    /// Opens (or creates) the state file.
    ///
    /// # Errors
    /// [`ServiceError::Db`] when the file cannot be opened, is not a state
    /// file, or another process holds it.
    pub fn open(path: &Path) -> Result<Self, ServiceError> {
        let db = Database::builder()
            // The whole table is read once at start; a larger cache than
            // redb's default keeps restarts of big tables fast.
            .set_cache_size(256 << 20)
            .create(path)
            .map_err(|e| ServiceError::Db(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write()?;
        tx.open_table(SNAPSHOTS)?;
        tx.commit()?;
        Ok(StateStore { db, commits: 0 })
    }

    /// Every UE's snapshot. Entries whose identifier is not 1 to 64 octets
    /// are skipped (they cannot come from a hello).
    ///
    /// # Errors
    /// Database errors.
    pub fn load_all(&self) -> Result<HashMap<UeId, Box<[u8]>>, ServiceError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        let mut out = HashMap::with_capacity(usize::try_from(t.len()?).unwrap_or(0));
        for item in t.iter()? {
            let (k, v) = item?;
            if let Ok(id) = UeId::new(k.value()) {
                out.insert(id, Box::from(v.value()));
            }
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
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SNAPSHOTS)?;
            for (id, snap) in batch {
                t.insert(id.as_bytes(), snap)?;
            }
        }
        tx.commit()?;
        self.commits += 1;
        Ok(())
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

    /// Durable transactions committed since opened.
    #[must_use]
    pub const fn commits(&self) -> u64 {
        self.commits
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
}
