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
    /// Derives the keyset `KDF(root, RAND)` and its suite keys.
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
            keys: SuiteKeys::derive(profile, &keyset, suite)?,
            send: SendCounter::with_soft_limit(soft_limit),
            recv: ReplayWindow::new(),
        })
    }

    /// The trigger that installs this keyset, signed.
    pub fn trigger(&self, auth: &ControlAuth, lifetime_secs: u32) -> [u8; TriggerRepr::LEN] {
        let mut buf = [0u8; TriggerRepr::LEN];
        let repr = TriggerRepr {
            ksi: self.ksi,
            counter: self.counter,
            rand: self.rand.clone(),
            profile: self.profile,
            suite: self.keys.suite(),
            lifetime: lifetime_secs.max(1),
            tag: [0; 16],
        };
        // The buffer is exactly TriggerRepr::LEN octets, all emit_signed needs.
        let _ = repr.emit_signed(auth, &mut buf);
        buf
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
}
