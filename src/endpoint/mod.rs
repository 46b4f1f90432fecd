//! Sans-IO UE and EESE endpoints running the rekey procedure of TR 33.863
//! §6.5.2.3–6.5.2.5 (and the same on the HSE/EMSE of solutions #1/#2).
//!
//! No sockets, threads or clocks inside: the caller passes `now`, feeds
//! received datagrams, sends payloads, asks [`poll_timeout`](ue::Ue::poll_timeout)
//! when the next timer is due and calls `handle_timeout` then. Datagrams to send
//! and events go to a [`Sink`] the caller implements; RANDs come from a
//! [`RandSource`] (a local CSPRNG, or `None` to ask the EMKS: the endpoint then
//! emits [`Event::RandNeeded`] and waits for `provide_rand`).
//!
//! The procedure, as the EESE runs it:
//! 1. deriving a keyset starts te2e ([`Config::te2e`] or a per-UE value);
//! 2. when te2e runs out the keyset is flagged expired ([`Event::KeysExpired`]);
//! 3. the UE's next (authentic) contact under it is answered with a
//!    key-expired error — skipped when the EESE itself starts the contact;
//! 4. a fresh RAND gives the next keyset and a derive trigger goes out;
//! 5. the UE retransmits the message it held, under the new keyset.
//!
//! Forged, replayed, truncated or stale input changes no state; it yields
//! [`Event::Rejected`] with the reason.

use core::time::Duration;

use crate::kdf::Rand;
use crate::protect;
use crate::wire::{self, Cause, Ksi, MessageType, Suite};

mod eese;
mod keyset;
mod snapshot;
#[cfg(feature = "std")]
mod table;
mod ue;

pub use eese::EeseSession;
pub use snapshot::{
    COUNTER_RESERVE, EESE_SNAPSHOT_LEN, SEQ_RESERVE, SnapshotError, UE_SNAPSHOT_LEN,
};
#[cfg(feature = "std")]
pub use table::{EeseTable, TableSink};
pub use ue::{Sent, Ue};

use crate::kdf::KdfProfile;

/// A point in time: milliseconds since an epoch the caller chooses. For
/// snapshots that outlive a reboot, use a clock that does too.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The instant that never comes (a timer that is not set).
    pub const NEVER: Instant = Instant(u64::MAX);

    /// `ms` milliseconds after the epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `d` (saturating).
    #[must_use]
    pub fn after(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

/// Settings shared by the endpoints. Both sides must agree on `profile`
/// (it derives the control key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// KDF profile of the control key and of the keysets the EESE makes.
    pub profile: KdfProfile,
    /// Suite of the keysets the EESE makes.
    pub suite: Suite,
    /// Default key lifetime te2e (EESE; per-UE values override it).
    pub te2e: Duration,
    /// How long the previous keyset still accepts in-flight data after a
    /// rekey that replaced it while valid. It never sends.
    pub grace: Duration,
    /// Sequence number at which the EESE starts a new keyset (key-use soft
    /// limit, well before the 2^32 hard limit).
    pub soft_limit: u32,
    /// First interval before the EESE repeats an unconfirmed trigger; it
    /// doubles each time.
    pub trigger_retransmit: Duration,
    /// How often an unconfirmed trigger is repeated.
    pub trigger_attempts: u8,
    /// Minimum interval between answers to input the EESE cannot
    /// authenticate (unknown KSI), so it cannot be used as an amplifier.
    pub unsolicited_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            te2e: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            soft_limit: protect::replay::DEFAULT_SOFT_LIMIT,
            trigger_retransmit: Duration::from_secs(1),
            trigger_attempts: 4,
            unsolicited_interval: Duration::from_secs(1),
        }
    }
}

/// Why an endpoint dropped a datagram. The endpoint's state did not change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// Not a message of this format.
    #[error("malformed: {0}")]
    Wire(#[from] wire::Error),
    /// A data message that failed protection checks (bad tag, replay, too old).
    #[error("data rejected: {0}")]
    Protect(#[from] protect::Error),
    /// A data message under a KSI this endpoint has no keyset for.
    #[error("no keyset with KSI {0}")]
    UnknownKsi(Ksi),
    /// A data message under a keyset that has expired.
    #[error("keyset {0} has expired")]
    ExpiredKsi(Ksi),
    /// A message this side never receives (e.g. a trigger at the EESE).
    #[error("unexpected {0} message")]
    Unexpected(MessageType),
    /// A data message in the direction this side sends.
    #[error("data message in the wrong direction")]
    WrongDirection,
    /// An authentic key-expired error that names another keyset or an older
    /// generation than the current one.
    #[error("stale key-expired error for KSI {ksi} (counter {counter})")]
    StaleError {
        /// KSI it names.
        ksi: Ksi,
        /// Counter it carries.
        counter: u64,
    },
    /// No session for this peer (session table).
    #[error("no session for this peer")]
    NoSession,
}

/// What an endpoint tells its caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An authentic, fresh payload arrived (decrypted in the caller's buffer).
    Data {
        /// KSI it was protected under.
        ksi: Ksi,
        /// Its sequence number.
        seq: u32,
        /// The payload.
        payload: &'a [u8],
    },
    /// A new keyset is in use.
    Rekeyed {
        /// Its KSI.
        ksi: Ksi,
        /// The trigger counter that installed it.
        counter: u64,
    },
    /// The keyset may no longer send or receive.
    KeysExpired {
        /// Its KSI.
        ksi: Ksi,
        /// Why.
        cause: Cause,
    },
    /// The EESE needs a RAND from the EMKS: call `provide_rand`.
    RandNeeded,
    /// The UE retransmitted its held message under a new keyset (TR step 5).
    Retransmitted {
        /// KSI of the new keyset.
        ksi: Ksi,
        /// Sequence number used.
        seq: u32,
    },
    /// A datagram was dropped; nothing changed.
    Rejected(Reject),
}

/// Where an endpoint puts what it has to say.
pub trait Sink {
    /// Send one datagram to the peer.
    fn transmit(&mut self, datagram: &[u8]);
    /// Report an event.
    fn event(&mut self, event: Event<'_>);
}

/// A source of RANDs for new keysets.
pub trait RandSource {
    /// A fresh 128-bit RAND, or `None` when it must come from elsewhere (the
    /// EMKS): the EESE then emits [`Event::RandNeeded`] and waits.
    fn rand(&mut self) -> Option<Rand>;
}

impl<F: FnMut() -> Option<Rand>> RandSource for F {
    fn rand(&mut self) -> Option<Rand> {
        self()
    }
}

/// RANDs from the operating system's CSPRNG.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRand;

#[cfg(feature = "std")]
impl RandSource for OsRand {
    fn rand(&mut self) -> Option<Rand> {
        let mut r = [0u8; 16];
        getrandom::fill(&mut r).ok()?;
        Some(Rand(r))
    }
}

/// Why a send did not go out.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The EESE waits for a RAND from the EMKS before it can rekey; send
    /// again after [`Event::Rekeyed`].
    #[error("waiting for a RAND from the EMKS before the keyset can be renewed")]
    RandPending,
    /// Protection failed (buffer too small, payload too long, sequence space used up).
    #[error("{0}")]
    Protect(#[from] protect::Error),
}
