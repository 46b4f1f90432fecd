//! One keyset as an endpoint holds it: compact keys, counters, replay window.

use crate::kdf::{KdfProfile, PreparedRoot, Rand, RootKey};
use crate::protect::replay::{ReplayWindow, SendCounter};
use crate::protect::suite::{Opened, SuiteKeys};
use crate::protect::{self};
use crate::wire::{ControlAuth, Direction, Ksi, Suite, TriggerRepr};

/// A keyset in use: what a session stores per keyset (no expanded ciphers).
#[derive(Clone, Debug)]
pub(crate) struct Keyset {
    pub ksi: Ksi,
    pub counter: u64,
    pub rand: Rand,
    pub profile: KdfProfile,
    pub keys: SuiteKeys,
    pub send: SendCounter,
    pub recv: ReplayWindow,
}

impl Keyset {
    /// Derives `e2eKEYSET = KDF(root, RAND)` and its suite keys, bound to the
    /// trigger counter.
    pub fn derive(
        root: &RootKey,
        ksi: Ksi,
        counter: u64,
        rand: Rand,
        profile: KdfProfile,
        suite: Suite,
        soft_limit: u32,
    ) -> Result<Self, protect::Error> {
        let keyset = PreparedRoot::new(root, profile).keyset(&rand);
        Ok(Keyset {
            ksi,
            counter,
            rand,
            profile,
            keys: SuiteKeys::derive(profile, &keyset, suite, counter)?,
            send: SendCounter::with_soft_limit(soft_limit),
            recv: ReplayWindow::new(),
        })
    }

    /// The trigger that installs this keyset, signed, with `lifetime_secs`
    /// of te2e left.
    pub fn trigger(&self, auth: &ControlAuth, lifetime_secs: u32, out: &mut [u8]) -> Option<usize> {
        TriggerRepr {
            ksi: self.ksi,
            counter: self.counter,
            rand: self.rand.clone(),
            profile: self.profile,
            suite: self.keys.suite(),
            lifetime: lifetime_secs.max(1),
            tag: [0; 16],
        }
        .emit_signed(auth, out)
        .ok()
    }

    /// The sequence number the next seal uses (`None`: all used).
    pub fn next_seq(&self) -> Option<u32> {
        self.send.peek()
    }

    /// Protects `payload` into `out` under the next sequence number.
    pub fn seal(
        &mut self,
        direction: Direction,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(u32, usize), protect::Error> {
        let cipher = self.keys.cipher();
        let needed = cipher.message_len(payload.len());
        if out.len() < needed {
            return Err(protect::Error::BufferTooSmall {
                needed,
                got: out.len(),
            });
        }
        let mut next = self.send;
        let seq = next.next()?;
        let len = cipher.seal(self.ksi, direction, seq, payload, out)?;
        self.send = next;
        Ok((seq, len))
    }

    /// Verifies and decrypts `buf` in place, guarded by the replay window.
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Opened, protect::Error> {
        self.keys.cipher().open_with_window(buf, &mut self.recv)
    }

    /// Verifies and decrypts `buf` in place with no replay window: for a
    /// keyset whose window is unknown (restored), only to learn whether the
    /// message is authentic. Nothing is recorded.
    pub fn authenticate(&self, buf: &mut [u8]) -> Result<Opened, protect::Error> {
        self.keys.cipher().open_in_place(buf)
    }
}
