//! An EESE session's snapshot: written when its owner polls it, read back at
//! restore.

use crate::kdf::RootKey;
use crate::wire::Cause;

use super::super::config::EeseConfig;
use super::super::keyset::Keyset;
use super::super::slot::Storage;
use super::super::snapshot::{self, COUNTER_RESERVE, EESE_MAGIC, SnapshotError, Writer};
use super::super::time::Instant;
use super::{Current, KeyState, Session};

impl<S: Storage> Session<S> {
    /// Writes the session's snapshot into `out` (at least
    /// `EESE_SNAPSHOT_LEN` octets); returns its length.
    pub(crate) fn write_snapshot(&self, cfg: &EeseConfig, out: &mut [u8]) -> usize {
        let mut w = Writer::new(out);
        w.put(EESE_MAGIC)
            .put(&snapshot::root_check(&self.auth(cfg)))
            .put(&self.counter.to_be_bytes())
            .put(&self.te2e_secs.to_be_bytes())
            .put(
                &self
                    .hello_seen
                    .map_or(0, |s| u64::from(s) + 1)
                    .to_be_bytes(),
            );
        match &self.ue {
            Some(n) => {
                w.put(&[1]).put(n.as_bytes());
            }
            None => {
                w.put(&[0]);
            }
        }
        // The keyset in use belongs to the start `ue`; offers are never
        // written (nothing is sealed under them).
        match self.current.as_ref().filter(|_| self.ue.is_some()) {
            Some(c) => {
                let (state, deadline) = match c.state {
                    KeyState::Valid { deadline } => (0, deadline.0),
                    KeyState::Expired(cause) => (cause.0, 0),
                    // A restored keyset stays retired across another restore.
                    KeyState::Retired => (Cause::TE2E_EXPIRED.0, 0),
                };
                w.put(&[1])
                    .keyset(&c.ks.record())
                    .put(&[state])
                    .put(&deadline.to_be_bytes());
            }
            None => {
                w.put(&[0]);
            }
        }
        w.finish()
    }

    /// Rebuilds a session from its root and its last snapshot. Its keyset,
    /// if any, is retired: nothing under it is delivered (its replay window
    /// is gone) or sent; the UE's next authentic contact, or the next send,
    /// starts a new offer. The trigger counter continues past a reserve, and
    /// the next offer's counter is at least the time in milliseconds.
    pub(crate) fn restore(
        cfg: &EeseConfig,
        root: RootKey,
        bytes: &[u8],
    ) -> Result<Self, SnapshotError> {
        let mut s = Session::new(root, None);
        let record = snapshot::parse_eese(bytes, &s.auth(cfg))?;
        s.te2e_secs = record.te2e_secs;
        s.ue = record.ue;
        s.hello_seen = record.hello_seen;
        s.counter = record.counter.saturating_add(COUNTER_RESERVE);
        s.durable_counter = record.counter;
        if let Some((k, state, _deadline)) = record.keyset {
            let Some(nonce) = record.ue else {
                return Err(SnapshotError::Corrupt("keyset without a UE start"));
            };
            if k.counter > record.counter || k.counter == 0 {
                return Err(SnapshotError::Corrupt("keyset counter"));
            }
            if state != 0 && !Cause(state).is_known() {
                return Err(SnapshotError::Corrupt("expiry cause"));
            }
            let ks = Keyset::derive(
                &s.root,
                k.ksi,
                k.counter,
                &k.rand,
                &nonce,
                k.profile,
                k.suite,
                cfg.soft_limit,
            )
            .map_err(|_| SnapshotError::Corrupt("suite"))?;
            s.last_ksi = Some(ks.ksi);
            s.current = Some(Current {
                ks,
                state: KeyState::Retired,
            });
        }
        // Nothing to write until the next keyset is taken into use: the
        // reserve only has to hold until then, and a restart of many sessions
        // costs no writes.
        s.dirty = false;
        s.retx_at = Instant::NEVER;
        Ok(s)
    }
}
