//! What the endpoints hand their caller: results of a call, and the effects
//! polled afterwards (persist, transmit, event), all owned and plain.

use core::ops::Range;

use crate::kdf::{KdfProfile, Rand, UeNonce};
use crate::protect;
use crate::wire::{self, Cause, Ksi, MessageType, Suite};

/// What [`handle_datagram`](crate::endpoint::Ue::handle_datagram) made of an
/// accepted datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// An authentic, fresh payload, decrypted in place in the caller's buffer.
    Data(Delivered),
    /// An authentic control message was handled; its effects are to be polled.
    Control(MessageType),
}

/// An authentic, fresh payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// KSI of the keyset that protected it.
    pub ksi: Ksi,
    /// Trigger counter of that keyset.
    pub counter: u64,
    /// Its sequence number.
    pub seq: u32,
    /// Where the payload lies in the caller's buffer.
    pub payload: Range<usize>,
}

/// Why an endpoint dropped a datagram. Nothing the caller could observe
/// changed, except as the variant says (an authentic message under an
/// expired keyset is answered, for example).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// Not a message of this format.
    #[error("malformed: {0}")]
    Malformed(wire::Error),
    /// A message this side never receives (a trigger at the EESE, a hello at
    /// the UE).
    #[error("unexpected {0} message")]
    Unexpected(MessageType),
    /// A data message in the direction this side sends.
    #[error("data message in the wrong direction")]
    WrongDirection,
    /// The tag or MAC does not verify: not made with this side's keys.
    #[error("not authentic: the tag or MAC does not verify")]
    Unauthentic,
    /// A data message names another suite than its keyset's.
    #[error("suite mismatch: the keyset uses {expected}, the message says {got}")]
    SuiteMismatch {
        /// The keyset's suite.
        expected: Suite,
        /// The message's suite.
        got: Suite,
    },
    /// The sequence number was already accepted: a replay or a duplicate.
    #[error("sequence number {seq} was already accepted (replay or duplicate)")]
    Replayed {
        /// The rejected sequence number.
        seq: u32,
    },
    /// The sequence number lies left of the replay window.
    #[error("sequence number {seq} is older than the replay window (lowest acceptable {lowest})")]
    TooOld {
        /// The rejected sequence number.
        seq: u32,
        /// The lowest sequence number the window still accepts.
        lowest: u32,
    },
    /// A data message under a KSI this side holds no receiving keyset for.
    #[error("no keyset with KSI {0}")]
    UnknownKsi(Ksi),
    /// An authentic message under a keyset that has expired; the EESE
    /// answered it (TR 33.863 §6.5.2.3 step 3).
    #[error("keyset {0} has expired")]
    ExpiredKsi(Ksi),
    /// A message under a keyset restored from a snapshot: its freshness
    /// cannot be known, so it is never delivered (`docs/SECURITY.md`).
    #[error("keyset {0} was restored from a snapshot and receives nothing")]
    RetiredKsi(Ksi),
    /// An authentic trigger whose counter is not above the last accepted.
    #[error("stale trigger: counter {counter} is not above the last accepted {last}")]
    StaleTrigger {
        /// The trigger's counter.
        counter: u64,
        /// The highest counter accepted before.
        last: u64,
    },
    /// An authentic key-expired error that names another keyset.
    #[error("stale key-expired error for KSI {ksi} (counter {counter})")]
    StaleError {
        /// KSI it names.
        ksi: Ksi,
        /// Counter it carries.
        counter: u64,
    },
    /// An authentic hello whose sequence number is not above the last seen.
    #[error("stale hello: seq {seq} is not above the last seen {last}")]
    StaleHello {
        /// The hello's sequence number.
        seq: u32,
        /// The highest seen before.
        last: u32,
    },
    /// An authentic trigger whose KDF octet is not the UE's profile.
    #[error("trigger for KDF profile {got:#04x}; this UE uses {configured:?}")]
    ProfileMismatch {
        /// The UE's profile.
        configured: KdfProfile,
        /// The trigger's KDF octet.
        got: u8,
    },
    /// No session for this peer (session table).
    #[error("no session for this peer")]
    NoSession,
    /// A hello from a UE the EESE has no root for.
    #[error("unknown UE")]
    UnknownUe,
    /// An authentic trigger for a suite this build does not have (its
    /// feature, `suite-aes-gcm` or `suite-nea2-nia2`, is off).
    #[error("suite {0} is not built in")]
    UnsupportedSuite(Suite),
}

impl Reject {
    /// A short, stable label for metrics and logs (`malformed`,
    /// `unauthentic`, `replayed`, …): the one mapping every front end uses.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::Unexpected(_) | Reject::WrongDirection | Reject::SuiteMismatch { .. } => {
                "unexpected"
            }
            Reject::Unauthentic => "unauthentic",
            Reject::Replayed { .. } => "replayed",
            Reject::TooOld { .. } => "too_old",
            Reject::UnknownKsi(_) => "unknown_ksi",
            Reject::ExpiredKsi(_) => "expired_ksi",
            Reject::RetiredKsi(_) => "retired_ksi",
            Reject::StaleTrigger { .. } | Reject::StaleError { .. } | Reject::StaleHello { .. } => {
                "stale"
            }
            Reject::ProfileMismatch { .. } => "profile_mismatch",
            Reject::NoSession => "no_session",
            Reject::UnknownUe => "unknown_ue",
            Reject::UnsupportedSuite(_) => "unsupported_suite",
        }
    }
}

impl From<wire::Error> for Reject {
    fn from(e: wire::Error) -> Self {
        match e {
            wire::Error::BadTag => Reject::Unauthentic,
            e => Reject::Malformed(e),
        }
    }
}

impl From<protect::Error> for Reject {
    fn from(e: protect::Error) -> Self {
        match e {
            protect::Error::BadTag => Reject::Unauthentic,
            protect::Error::Replayed { seq } => Reject::Replayed { seq },
            protect::Error::TooOld { seq, lowest } => Reject::TooOld { seq, lowest },
            protect::Error::SuiteMismatch { expected, got } => {
                Reject::SuiteMismatch { expected, got }
            }
            protect::Error::Wire(w) => Reject::from(w),
            protect::Error::UnknownSuite(s) => Reject::UnsupportedSuite(s),
            // Opening a checked message fails in no other way; report it as
            // not authentic rather than panic.
            _ => Reject::Unauthentic,
        }
    }
}

/// Why a payload was not taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The payload does not fit (the UE's hold buffer, or one message).
    #[error("payload of {len} octets exceeds the maximum of {max}")]
    PayloadTooLong {
        /// Octets given.
        len: usize,
        /// The most that is taken.
        max: usize,
    },
    /// The output buffer cannot hold the datagram.
    #[error("buffer too small: needed {needed} octets, got {got}")]
    BufferTooSmall {
        /// Octets needed.
        needed: usize,
        /// Octets given.
        got: usize,
    },
    /// The UE still holds a payload that has not gone out; poll it out first.
    #[error("a payload is still waiting to go out")]
    Busy,
    /// A rekey waits for a RAND from the EMKS; send again after it arrives.
    #[error("waiting for a RAND from the EMKS before the keyset can be renewed")]
    RandPending,
    /// A snapshot must be persisted, or a control datagram transmitted,
    /// first: poll the effects and send again.
    #[error("effects pending: persist and transmit what is polled, then send again")]
    EffectsPending,
    /// No session for this UE.
    #[error("no session for this UE")]
    NoSession,
}

/// What a UE did with a payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sent {
    /// A usable keyset exists: the payload goes out at the next poll.
    Queued,
    /// No usable keyset: the payload waits for the next trigger.
    Held,
}

/// A datagram an EESE sealed straight into the caller's buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sealed {
    /// Octets written.
    pub len: usize,
    /// KSI used.
    pub ksi: Ksi,
    /// Trigger counter of the keyset used.
    pub counter: u64,
    /// Sequence number used.
    pub seq: u32,
}

/// A datagram written into the caller's buffer by `poll_transmit`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Octets written.
    pub len: usize,
    /// What it is.
    pub what: Datagram,
}

/// What a transmitted datagram is, for logs and transcripts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Datagram {
    /// A hello.
    Hello {
        /// Its sequence number.
        seq: u32,
        /// Whether it asks for a new keyset.
        rekey: bool,
    },
    /// A derive trigger.
    Trigger {
        /// KSI of the keyset it installs.
        ksi: Ksi,
        /// Its counter.
        counter: u64,
    },
    /// A key-expired error.
    KeyExpired {
        /// The refused KSI.
        ksi: Ksi,
        /// Why.
        cause: Cause,
        /// The refused message it names, if any.
        refused: Option<u32>,
    },
    /// A data message.
    Data {
        /// KSI used.
        ksi: Ksi,
        /// Trigger counter of the keyset used.
        counter: u64,
        /// Sequence number used.
        seq: u32,
        /// The UE's held payload sent again under a new keyset (TR step 5).
        retransmission: bool,
    },
}

/// A snapshot to store durably, written into the caller's buffer by
/// `poll_persist`. Store `&buf[..persist.len()]` (replacing the previous
/// one), then hand this back to `persisted`: datagrams and deliveries that
/// depend on it are held back until then.
#[must_use = "hand it back to `persisted` once the snapshot is durable"]
#[derive(PartialEq, Eq, Debug)]
pub struct Persist {
    pub(crate) generation: u64,
    pub(crate) len: usize,
}

impl Persist {
    /// Octets of the snapshot at the start of the buffer.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Never true: a snapshot has a header.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Which write this is (increasing); for callers that must carry it
    /// across an interface (the C API).
    #[must_use]
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// Rebuilds the token from [`Persist::generation`] and
    /// [`Persist::len`].
    pub const fn from_parts(generation: u64, len: usize) -> Self {
        Persist { generation, len }
    }
}

/// The token handed to `persisted` is not the one last polled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("not the snapshot last polled (generation {0})")]
pub struct UnknownPersist(pub u64);

/// What an endpoint reports, polled after each call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The EESE offered a keyset to the UE (its trigger goes out with
    /// CONFIRM); it takes it into use when the UE uses it
    /// ([`Event::Rekeyed`]).
    Offered {
        /// Its KSI.
        ksi: Ksi,
        /// Its trigger counter.
        counter: u64,
    },
    /// A new keyset is in use.
    Rekeyed {
        /// Its KSI.
        ksi: Ksi,
        /// The trigger counter that installed it.
        counter: u64,
    },
    /// A keyset may no longer send or receive.
    KeysExpired {
        /// Its KSI.
        ksi: Ksi,
        /// Why.
        cause: Cause,
    },
    /// The EESE needs a RAND from the EMKS: call `provide_rand`.
    RandNeeded,
    /// The UE sent its held payload again under a new keyset, because the
    /// EESE named it refused (TR 33.863 §6.5.2.3 step 5).
    Retransmitted {
        /// KSI of the new keyset.
        ksi: Ksi,
        /// Its counter.
        counter: u64,
        /// Sequence number used.
        seq: u32,
    },
    /// The UE used the keyset the EESE offered (authentic data under it,
    /// or a hello naming it): it is the keyset in use.
    Confirmed {
        /// Its KSI.
        ksi: Ksi,
        /// Its counter.
        counter: u64,
    },
}

/// A source of RANDs for new keysets.
pub trait RandSource {
    /// A fresh 128-bit RAND, or `None` when it must come from elsewhere (the
    /// EMKS): the EESE then reports [`Event::RandNeeded`] and waits.
    fn rand(&mut self) -> Option<Rand>;
}

impl<F: FnMut() -> Option<Rand>> RandSource for F {
    fn rand(&mut self) -> Option<Rand> {
        self()
    }
}

impl UeNonce {
    /// A nonce for a new start of a UE from `source` (a device's hardware
    /// random generator, or [`OsRand`]); `None` when it has none to give.
    /// A UE is never built without one: there is no fallback.
    pub fn from_source(source: &mut (impl RandSource + ?Sized)) -> Option<Self> {
        source.rand().map(|r| UeNonce(r.0))
    }

    /// A nonce from the operating system's CSPRNG.
    ///
    /// # Errors
    /// The operating system's error when it has no randomness to give.
    #[cfg(feature = "std")]
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut n = [0u8; 16];
        getrandom::fill(&mut n)?;
        Ok(UeNonce(n))
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

/// A UE's identifier as the hello carries it: 1 to 64 opaque octets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UeId {
    len: u8,
    bytes: [u8; wire::hello::MAX_ID_LEN],
}

impl UeId {
    /// An identifier from 1 to 64 octets.
    ///
    /// # Errors
    /// [`wire::Error::Malformed`] (field identifier length) otherwise.
    pub fn new(id: &[u8]) -> Result<Self, wire::Error> {
        if !(1..=wire::hello::MAX_ID_LEN).contains(&id.len()) {
            return Err(wire::Error::Malformed {
                field: wire::FieldName::IdLength,
                value: id.len() as u64,
            });
        }
        let mut bytes = [0u8; wire::hello::MAX_ID_LEN];
        bytes[..id.len()].copy_from_slice(id);
        // 1..=64 fits an octet.
        Ok(UeId {
            len: id.len() as u8,
            bytes,
        })
    }

    /// The identifier's octets.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        // `len` is 1..=64 (checked by `new`); the `min` lets the compiler
        // see it.
        &self.bytes[..usize::from(self.len).min(wire::hello::MAX_ID_LEN)]
    }
}

/// Hashes the identifier's octets only, not the unused rest of the array
/// (always zero, so equal identifiers still hash equal): an 8-octet id is
/// hashed as 8 octets and its length, not as 65 (the EESE table looks its
/// UE up for every datagram it sends).
impl core::hash::Hash for UeId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl core::fmt::Debug for UeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UeId(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl core::fmt::Display for UeId {
    /// The identifier as text when it is printable ASCII, else as hex.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.as_bytes();
        if b.iter().all(|c| c.is_ascii_graphic()) {
            for &c in b {
                write!(f, "{}", char::from(c))?;
            }
            Ok(())
        } else {
            for c in b {
                write!(f, "{c:02x}")?;
            }
            Ok(())
        }
    }
}
