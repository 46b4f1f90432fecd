//! Sans-IO UE and EESE endpoints running the rekey procedure of TR 33.863
//! §6.5.2.3–6.5.2.5 (and the same on the HSE/EMSE of solutions #1/#2),
//! safe whatever either side's storage does, and self-healing.
//!
//! No sockets, threads, clocks or disks inside. The caller pushes in
//! (`handle_datagram`, `send`, `handle_timeout`) and then pulls the effects
//! out, in the poll style of quinn-proto, in this order:
//!
//! 1. `poll_persist` (the EESE only): bytes to store durably, replacing the
//!    previous snapshot; then `persisted` says they are;
//! 2. `poll_transmit`: a datagram to send to the peer;
//! 3. `poll_event`: what happened (offered, rekeyed, expired, …).
//!
//! **A UE keeps no state that must survive a restart.** Every time it starts
//! it draws a fresh [`UeNonce`](crate::kdf::UeNonce) from the device's random
//! source; its hello carries it, the derive trigger and the key-expired
//! error answering it are bound to it, and it enters every algorithm key. So
//! no storage history (lost, rolled back, cloned, re-initialised) and no
//! replay can bring a UE back to keys it, or an earlier copy of it, used.
//!
//! **The EESE offers, then takes into use.** A new keyset is first offered
//! to one start of the UE (its trigger has CONFIRM) and nothing is sealed
//! under it; it becomes the keyset in use when the UE uses it (data under
//! it, or a fresh hello naming it). Only then does its te2e start, is the
//! UE's address proven, and is the snapshot written; downlink under it goes
//! once that snapshot is durable, so a restored EESE never seals under a
//! keyset it does not know. `docs/SECURITY.md` states the contract, the
//! healing bound and the amplification bound.
//!
//! The procedure, as the EESE runs it:
//! 1. a keyset's te2e ([`EeseConfig::te2e`] or a per-UE value) starts when
//!    the UE first uses it;
//! 2. when te2e runs out the keyset is flagged expired ([`Event::KeysExpired`]);
//! 3. the UE's next (authentic, fresh) contact under it is answered with a
//!    key-expired error that names the refused message — skipped when the
//!    EESE itself starts the contact;
//! 4. a fresh RAND gives the next keyset, offered with a derive trigger;
//! 5. the UE retransmits the message the error named, under the new keyset
//!    (which is also its first use of it).
//!
//! The UE opens its contact with a [hello](crate::wire::hello), and sends
//! another when it has no usable keyset or hears nothing back, with back-off
//! and jitter ([`UeConfig`]); the EESE answers every fresh, authentic hello
//! with an offer the UE can use. Forged, replayed, truncated or stale input
//! changes no state; it is returned as a [`Reject`] with the reason.

mod config;
mod eese;
mod effects;
mod events;
mod keyset;
mod slot;
mod snapshot;
#[cfg(feature = "std")]
mod table;
mod time;
mod ue;

pub use config::{EeseConfig, UeConfig};
pub use eese::{Eese, KeysetState, KeysetStatus, START_MARKS, SessionStatus};
#[cfg(feature = "std")]
pub use effects::OsRand;
pub use effects::{
    Datagram, Delivered, Event, Persist, RandSource, Received, Reject, Sealed, SendError, Sent,
    Transmit, UeId, UnknownPersist,
};
pub use snapshot::{COUNTER_RESERVE, EESE_SNAPSHOT_LEN, SnapshotError};
#[cfg(feature = "std")]
pub use table::{
    EVENT_CAPACITY, EeseTable, FORGOTTEN_CAP, KEPT_CIPHERS, QUEUED_PER_UE, SendOutcome,
};
pub use time::Instant;
pub use ue::{Ue, UeStatus};
