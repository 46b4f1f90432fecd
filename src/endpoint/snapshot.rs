//! Snapshot and restore of the state that must survive a restart, so a
//! rebooted endpoint can be neither rolled back nor replayed.
//!
//! The format holds no key: keys are derived again from the root (which the
//! caller keeps, as it kept it before) and the RAND. All integers big endian.
//!
//! ```text
//! UE  (magic "CEU1"):  magic(4) last_counter(8) keyset-flag(1) [keyset] expired(1)
//! EESE (magic "CEE1"): magic(4) counter(8) te2e(4) keyset-flag(1) [keyset]
//!                      state(1: 0 valid, else the expiry cause) deadline_ms(8)
//! keyset (44 octets):  ksi(1) counter(8) rand(16) kdf(1) suite(1)
//!                      next_seq(4, 0xffffffff = none left) highest(4) has_highest(1) bitmap(8)
//! ```
//! keyset-flag is 0 (no keyset, nothing follows for it) or 1.
//!
//! Restoring skips [`SEQ_RESERVE`] sequence numbers ahead of the snapshot:
//! numbers used after the snapshot was taken are never used again, as long
//! as a snapshot is taken at least every `SEQ_RESERVE` sends. An EESE also
//! skips [`COUNTER_RESERVE`] trigger counters, so its next trigger is above
//! any it issued after the snapshot. A UE must snapshot after every rekey
//! (its accepted counter is what stops a replayed trigger). Previous
//! keysets in their grace period and a held UE message are not kept.

use crate::kdf::{KdfProfile, Rand, RootKey};
use crate::protect::replay::{ReplayWindow, SendCounter};
use crate::wire::{Cause, Ksi, Suite};

use super::eese::{Current, KeyState};
use super::keyset::Keyset;
use super::{Config, EeseSession, Instant, Ue};

/// Sequence numbers skipped on restore (see the module docs).
pub const SEQ_RESERVE: u32 = 4096;

/// Trigger counters an EESE skips on restore, so a trigger issued after the
/// snapshot was taken (and accepted by the UE) is never issued again with
/// other contents. Take an EESE snapshot at least every `COUNTER_RESERVE`
/// rekeys.
pub const COUNTER_RESERVE: u64 = 1024;

const UE_MAGIC: &[u8; 4] = b"CEU1";
const EESE_MAGIC: &[u8; 4] = b"CEE1";
const KEYSET_LEN: usize = 44;

/// Largest UE snapshot in octets.
pub const UE_SNAPSHOT_LEN: usize = 4 + 8 + 1 + KEYSET_LEN + 1;
/// Largest EESE session snapshot in octets.
pub const EESE_SNAPSHOT_LEN: usize = 4 + 8 + 4 + 1 + KEYSET_LEN + 1 + 8;

/// Why a snapshot could not be written or restored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The output buffer is too small.
    #[error("snapshot buffer too small: needed {needed} octets, got {got}")]
    BufferTooSmall {
        /// Octets needed.
        needed: usize,
        /// Octets given.
        got: usize,
    },
    /// The snapshot ends early.
    #[error("snapshot truncated")]
    Truncated,
    /// Not a snapshot of this kind and version.
    #[error("not a snapshot of this kind (bad magic)")]
    BadMagic,
    /// A field holds an impossible value.
    #[error("corrupt snapshot: bad {0}")]
    Corrupt(&'static str),
    /// Octets after the end.
    #[error("snapshot has trailing octets")]
    TrailingData,
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let end = self.pos + bytes.len();
        let got = self.buf.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(SnapshotError::BufferTooSmall { needed: end, got })?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn keyset(&mut self, ks: &Keyset) -> Result<(), SnapshotError> {
        self.put(&[ks.ksi.0])?;
        self.put(&ks.counter.to_be_bytes())?;
        self.put(&ks.rand.0)?;
        self.put(&[ks.profile.code(), ks.keys.suite().0])?;
        self.put(&ks.send.peek().unwrap_or(u32::MAX).to_be_bytes())?;
        self.put(&ks.recv.highest().unwrap_or(0).to_be_bytes())?;
        self.put(&[u8::from(ks.recv.highest().is_some())])?;
        self.put(&ks.recv.bitmap().to_be_bytes())
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn flag(&mut self, what: &'static str) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Corrupt(what)),
        }
    }
    fn end(&self) -> Result<(), SnapshotError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::TrailingData)
        }
    }

    fn keyset(&mut self, root: &RootKey, soft_limit: u32) -> Result<Keyset, SnapshotError> {
        let ksi = Ksi(self.u8()?);
        let counter = self.u64()?;
        let rand = Rand(self.take()?);
        let profile =
            KdfProfile::from_code(self.u8()?).ok_or(SnapshotError::Corrupt("kdf profile"))?;
        let suite = Suite(self.u8()?);
        let next = self.u32()?;
        let highest = self.u32()?;
        let has_highest = self.flag("window flag")?;
        let bitmap = self.u64()?;
        let mut ks = Keyset::derive(root, ksi, counter, rand, profile, suite, soft_limit)
            .map_err(|_| SnapshotError::Corrupt("suite"))?;
        let next = if next == u32::MAX {
            None
        } else {
            next.checked_add(SEQ_RESERVE)
        };
        ks.send = SendCounter::restore(next, soft_limit);
        ks.recv = ReplayWindow::restore(has_highest.then_some(highest), bitmap)
            .map_err(|_| SnapshotError::Corrupt("replay window"))?;
        Ok(ks)
    }
}

fn check_magic(r: &mut Reader<'_>, magic: &[u8; 4]) -> Result<(), SnapshotError> {
    if &r.take::<4>()? == magic {
        Ok(())
    } else {
        Err(SnapshotError::BadMagic)
    }
}

impl<const HOLD: usize> Ue<HOLD> {
    /// Writes the UE's persistent state into `out`; returns its length (at
    /// most [`UE_SNAPSHOT_LEN`]).
    ///
    /// # Errors
    /// [`SnapshotError::BufferTooSmall`].
    pub fn snapshot(&self, out: &mut [u8]) -> Result<usize, SnapshotError> {
        let mut w = Writer { buf: out, pos: 0 };
        w.put(UE_MAGIC)?;
        w.put(&self.last_counter.to_be_bytes())?;
        match &self.current {
            Some(ks) => {
                w.put(&[1])?;
                w.keyset(ks)?;
            }
            None => w.put(&[0])?,
        }
        w.put(&[u8::from(self.expired)])?;
        Ok(w.pos)
    }

    /// Rebuilds a UE from its root and a snapshot.
    ///
    /// # Errors
    /// [`SnapshotError`] for a snapshot that is truncated, of another kind, or
    /// corrupt; nothing is built then.
    pub fn restore(root: RootKey, cfg: &Config, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { rest: snapshot };
        check_magic(&mut r, UE_MAGIC)?;
        let mut ue = Self::with_config(root, cfg);
        ue.last_counter = r.u64()?;
        if r.flag("keyset flag")? {
            ue.current = Some(r.keyset(&ue.root, u32::MAX)?);
        }
        ue.expired = r.flag("expired flag")?;
        r.end()?;
        Ok(ue)
    }
}

impl EeseSession {
    /// Writes the session's persistent state into `out`; returns its length
    /// (at most [`EESE_SNAPSHOT_LEN`]).
    ///
    /// # Errors
    /// [`SnapshotError::BufferTooSmall`].
    pub fn snapshot(&self, out: &mut [u8]) -> Result<usize, SnapshotError> {
        let mut w = Writer { buf: out, pos: 0 };
        w.put(EESE_MAGIC)?;
        w.put(&self.counter.to_be_bytes())?;
        w.put(&self.te2e_secs.to_be_bytes())?;
        match &self.current {
            Some(c) => {
                w.put(&[1])?;
                w.keyset(&c.ks)?;
                let (state, deadline) = match c.state {
                    KeyState::Valid { deadline } => (0, deadline.0),
                    KeyState::Expired(cause) => (cause.0, 0),
                };
                w.put(&[state])?;
                w.put(&deadline.to_be_bytes())?;
            }
            None => w.put(&[0])?,
        }
        Ok(w.pos)
    }

    /// Rebuilds a session from its root and a snapshot.
    ///
    /// # Errors
    /// [`SnapshotError`] for a snapshot that is truncated, of another kind, or
    /// corrupt; nothing is built then.
    pub fn restore(root: RootKey, cfg: &Config, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { rest: snapshot };
        check_magic(&mut r, EESE_MAGIC)?;
        let mut s = EeseSession::new(root);
        let counter = r.u64()?;
        s.counter = counter.saturating_add(COUNTER_RESERVE);
        s.te2e_secs = r.u32()?;
        if r.flag("keyset flag")? {
            let ks = r.keyset(&s.root, cfg.soft_limit)?;
            if ks.counter > counter {
                return Err(SnapshotError::Corrupt(
                    "keyset counter above session counter",
                ));
            }
            let state = match r.u8()? {
                0 => KeyState::Valid {
                    deadline: Instant(r.u64()?),
                },
                cause => {
                    let _ = r.u64()?;
                    let cause = Cause(cause);
                    if !cause.is_known() {
                        return Err(SnapshotError::Corrupt("expiry cause"));
                    }
                    KeyState::Expired(cause)
                }
            };
            s.current = Some(Current { ks, state });
        }
        r.end()?;
        Ok(s)
    }
}
