//! A UE's snapshot: written when the caller polls it, read back at restore.

use core::num::NonZeroU64;

use crate::kdf::RootKey;
use crate::protect::replay::SendCounter;

use super::super::config::UeConfig;
use super::super::effects::UeId;
use super::super::keyset::{Expanded, Keyset};
use super::super::snapshot::{self, SnapshotError, UE_MAGIC, Writer};
use super::super::time::Instant;
use super::{Current, Durable, Status, Ue};

impl<const HOLD: usize> Ue<HOLD> {
    /// Writes the snapshot of state `d` into `out` (at least
    /// `UE_SNAPSHOT_LEN` octets); returns its length.
    pub(crate) fn write_snapshot(&self, d: &Durable, out: &mut [u8]) -> usize {
        let mut w = Writer::new(out);
        w.put(UE_MAGIC)
            .put(&snapshot::root_check(&self.auth()))
            .put(&d.last_counter.to_be_bytes())
            .put(&d.hello_limit.to_be_bytes());
        match self.current.as_ref().filter(|_| d.keyset.is_some()) {
            Some(c) => {
                w.put(&[1])
                    .keyset(&c.ks.record())
                    .put(&d.send_limit.to_be_bytes())
                    .put(&c.deadline.0.to_be_bytes());
            }
            None => {
                w.put(&[0]);
            }
        }
        w.finish()
    }

    /// Rebuilds a UE from its root and the last snapshot it asked to store
    /// (after a crash, a reboot, a power cycle).
    ///
    /// What the restored UE does, so that nothing is sent under a used
    /// sequence number and nothing received before is delivered again:
    /// its keyset, if any, is *retired*: it sends from the first sequence
    /// number past the stored reservation, and receives nothing; a hello
    /// asking for a new keyset is due at once. Hellos continue past their
    /// stored reservation too.
    ///
    /// # Errors
    /// [`SnapshotError`] for a snapshot that is truncated, damaged, of
    /// another kind, or written for another root; nothing is built then.
    pub fn restore(
        cfg: UeConfig,
        root: RootKey,
        id: UeId,
        seed: u64,
        snapshot: &[u8],
    ) -> Result<Self, SnapshotError> {
        let mut ue = Self::new(cfg, root, id, seed);
        ue.restore_in_place(snapshot)?;
        Ok(ue)
    }

    /// What [`Ue::restore`] does, into this UE instead of a new one: its
    /// configuration, root and identifier stay; everything else becomes what
    /// the snapshot says, exactly as after `Ue::restore` (events not yet
    /// polled are gone). For a UE in storage the caller owns, which it
    /// cannot afford to build elsewhere and copy (the C API).
    ///
    /// # Errors
    /// As [`Ue::restore`]; nothing changes then.
    pub fn restore_in_place(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        let record = snapshot::parse_ue(snapshot, &self.auth())?;
        let keyset = match record.keyset {
            Some((k, send_limit, deadline)) => {
                if k.counter > record.last_counter || k.counter == 0 {
                    return Err(SnapshotError::Corrupt("keyset counter"));
                }
                if k.profile != self.cfg.profile {
                    return Err(SnapshotError::Corrupt("kdf profile"));
                }
                let mut ks = Keyset::derive(
                    &self.root,
                    k.ksi,
                    k.counter,
                    k.rand,
                    k.profile,
                    k.suite,
                    u32::MAX,
                )
                .map_err(|_| SnapshotError::Corrupt("suite"))?;
                // Numbers up to the stored limit may have been used before
                // the crash: start past them (none left past 2^32 - 1).
                ks.send = SendCounter::restore(u32::try_from(send_limit).ok(), u32::MAX);
                Some((ks, send_limit, deadline))
            }
            None => None,
        };
        self.reset();
        self.last_counter = record.last_counter;
        self.next_hello = record.hello_limit;
        self.hello_limit = record.hello_limit;
        self.durable = Durable {
            last_counter: record.last_counter,
            keyset: None,
            send_limit: 0,
            hello_limit: record.hello_limit,
        };
        if let Some((ks, send_limit, deadline)) = keyset {
            self.durable.keyset = NonZeroU64::new(ks.counter);
            self.durable.send_limit = send_limit;
            self.send_limit = send_limit;
            self.current = Some(Current {
                cipher: Expanded::new(&ks),
                ks,
                status: Status::Retired,
                deadline: Instant(deadline),
            });
        }
        Ok(())
    }
}
