//! One keyset as an endpoint holds it: compact keys, counters, replay window.

use crate::kdf::{KdfProfile, PreparedRoot, Rand, RootKey, UeNonce};

use super::snapshot::KeysetRecord;
use crate::protect::replay::{ReplayWindow, SendCounter};
use crate::protect::suite::{Opened, SuiteCipher, SuiteKeys};
use crate::protect::{self};
use crate::wire::{AnswerAuth, DataPacket, Direction, Ksi, Suite, TriggerRepr};

/// A keyset in use: what a session stores per keyset. The expanded ciphers
/// are kept beside it where they pay (see [`super::slot`]).
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
    /// trigger counter and to the UE start `nonce` (which the EESE keeps
    /// beside it, and the UE has once for all its keysets).
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        root: &RootKey,
        ksi: Ksi,
        counter: u64,
        rand: &Rand,
        nonce: &UeNonce,
        profile: KdfProfile,
        suite: Suite,
        soft_limit: u32,
    ) -> Result<Self, protect::Error> {
        let keyset = PreparedRoot::new(root, profile).keyset(rand);
        Ok(Keyset {
            ksi,
            counter,
            rand: rand.clone(),
            profile,
            keys: SuiteKeys::derive(profile, &keyset, suite, counter, nonce)?,
            send: SendCounter::with_soft_limit(soft_limit),
            recv: ReplayWindow::new(),
        })
    }

    /// What a snapshot stores of this keyset (no key material: the keys
    /// follow from the root and these).
    pub fn record(&self) -> KeysetRecord {
        KeysetRecord {
            ksi: self.ksi,
            counter: self.counter,
            rand: self.rand.clone(),
            profile: self.profile,
            suite: self.keys.suite(),
        }
    }

    /// The trigger that installs this keyset, signed for the UE start it was
    /// made for (`auth` bound to its nonce), with a te2e of `lifetime_secs`
    /// and CONFIRM when the EESE waits for the UE to use it.
    pub fn trigger(
        &self,
        auth: &AnswerAuth<'_>,
        confirm: bool,
        lifetime_secs: u32,
        out: &mut [u8],
    ) -> Option<usize> {
        TriggerRepr {
            ksi: self.ksi,
            confirm,
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

    /// The suite's ciphers, expanded from the compact keys.
    pub fn cipher(&self) -> SuiteCipher {
        self.keys.cipher()
    }

    /// Protects `payload` into `out` under the next sequence number, with
    /// `cipher` (this keyset's, expanded).
    // Inlined into the EESE table's send on servers (see `seal_in_place`).
    #[cfg_attr(feature = "platform-aes-gcm", inline)]
    pub fn seal(
        &mut self,
        cipher: &SuiteCipher,
        direction: Direction,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(u32, usize), protect::Error> {
        seal_under(cipher, self.ksi, &mut self.send, direction, payload, out)
    }

    /// [`Keyset::seal`] with the `kept` ciphers, or with ciphers expanded for
    /// this message (see [`with_cipher`]).
    pub fn seal_expanding(
        &mut self,
        kept: Option<&SuiteCipher>,
        direction: Direction,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(u32, usize), protect::Error> {
        let Keyset {
            ksi, keys, send, ..
        } = self;
        with_cipher(kept, keys, |cipher| {
            seal_under(cipher, *ksi, send, direction, payload, out)
        })
    }

    /// Verifies and decrypts a checked data message in place, guarded by
    /// the replay window.
    pub fn open(
        &mut self,
        cipher: &SuiteCipher,
        packet: DataPacket<&mut [u8]>,
    ) -> Result<Opened, protect::Error> {
        cipher.open_packet(packet, Some(&mut self.recv))
    }

    /// Verifies and decrypts a checked data message in place with no replay
    /// window: for a keyset whose window is unknown (restored), only to learn
    /// whether the message is authentic. Nothing is recorded.
    pub fn authenticate(&self, packet: DataPacket<&mut [u8]>) -> Result<Opened, protect::Error> {
        self.cipher().open_packet(packet, None)
    }
}

/// Protects `payload` under the next number of `send` (which moves only
/// when the message is sealed).
#[cfg_attr(feature = "platform-aes-gcm", inline)]
fn seal_under(
    cipher: &SuiteCipher,
    ksi: crate::wire::Ksi,
    send: &mut SendCounter,
    direction: Direction,
    payload: &[u8],
    out: &mut [u8],
) -> Result<(u32, usize), protect::Error> {
    let needed = cipher.message_len(payload.len());
    if out.len() < needed {
        return Err(protect::Error::BufferTooSmall {
            needed,
            got: out.len(),
        });
    }
    let mut next = *send;
    let seq = next.next()?;
    let len = cipher.seal(ksi, direction, seq, payload, out)?;
    *send = next;
    Ok((seq, len))
}

/// A keyset's ciphers as an endpoint holds them: expanded once and kept
/// (feature `kept-ciphers`, the default), or expanded for each message (a
/// smaller state, for devices short of RAM).
#[derive(Clone, Debug)]
pub(crate) struct Expanded(#[cfg(feature = "kept-ciphers")] SuiteCipher);

impl Expanded {
    pub fn new(_ks: &Keyset) -> Self {
        Expanded(
            #[cfg(feature = "kept-ciphers")]
            _ks.cipher(),
        )
    }

    /// The kept ciphers; `None` in a build that expands them per message.
    pub fn kept(&self) -> Option<&SuiteCipher> {
        #[cfg(feature = "kept-ciphers")]
        return Some(&self.0);
        #[cfg(not(feature = "kept-ciphers"))]
        return None;
    }
}

/// Runs `f` with the ciphers of `keys`: `kept` when the endpoint keeps
/// them, else expanded for this call into this function's frame. The
/// expanded ciphers (about 400 octets for AES-128-GCM) are built in place
/// and never moved, which on a device is stack.
#[cfg_attr(feature = "platform-aes-gcm", inline)]
pub(crate) fn with_cipher<R>(
    kept: Option<&SuiteCipher>,
    keys: &SuiteKeys,
    f: impl FnOnce(&SuiteCipher) -> R,
) -> R {
    match kept {
        Some(cipher) => f(cipher),
        None => {
            let mut made = SuiteCipher::unfinished(keys);
            made.finish();
            f(&made)
        }
    }
}

/// Ciphers kept by the endpoint, or made for one message (the EESE's
/// sessions, `super::slot::Kept`).
// Lives on the stack for one message; boxing `Made` would allocate per
// message, which is what the kept ciphers avoid.
#[allow(clippy::large_enum_variant)]
pub(crate) enum CipherRef<'a> {
    #[cfg_attr(not(feature = "kept-ciphers"), allow(dead_code))]
    Kept(&'a SuiteCipher),
    #[cfg_attr(feature = "kept-ciphers", allow(dead_code))]
    Made(SuiteCipher),
}

impl core::ops::Deref for CipherRef<'_> {
    type Target = SuiteCipher;
    fn deref(&self) -> &SuiteCipher {
        match self {
            CipherRef::Kept(c) => c,
            CipherRef::Made(c) => c,
        }
    }
}
