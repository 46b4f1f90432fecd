//! Sans-IO UE and EESE endpoints running the rekey procedure of TR 33.863
//! §6.5.2.3–6.5.2.5 (and the same on the HSE/EMSE of solutions #1/#2),
//! crash-safe and self-healing.
//!
//! No sockets, threads, clocks or disks inside. The caller pushes in
//! (`handle_datagram`, `send`, `handle_timeout`) and then pulls the effects
//! out, in the poll style of quinn-proto, in this order:
//!
//! 1. `poll_persist`: bytes to store durably, replacing the previous
//!    snapshot; then `persisted` says they are;
//! 2. `poll_transmit`: a datagram to send to the peer;
//! 3. `poll_event`: what happened (rekeyed, expired, …).
//!
//! A datagram protected under (keyset, direction, seq) is not handed out
//! before the snapshot that covers it is reported durable, and no payload is
//! delivered under a keyset whose acceptance is not durable. A restore from
//! the last durable snapshot can therefore neither reuse a nonce nor deliver
//! a replay; `docs/SECURITY.md` states the contract, the healing bound and the
//! amplification bound.
//!
//! The procedure, as the EESE runs it:
//! 1. deriving a keyset starts te2e ([`EeseConfig::te2e`] or a per-UE value);
//! 2. when te2e runs out the keyset is flagged expired ([`Event::KeysExpired`]);
//! 3. the UE's next (authentic, fresh) contact under it is answered with a
//!    key-expired error that names the refused message — skipped when the
//!    EESE itself starts the contact;
//! 4. a fresh RAND gives the next keyset and a derive trigger goes out;
//! 5. the UE retransmits the message the error named, under the new keyset.
//!
//! The UE opens its contact with a [hello](crate::wire::hello), and sends
//! another when it has no usable keyset or hears nothing back, with back-off
//! and jitter ([`UeConfig`]); the EESE answers every fresh, authentic hello
//! with a trigger the UE can use. Forged, replayed, truncated or stale input
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
pub use eese::{Eese, KeysetState, KeysetStatus, SessionStatus};
#[cfg(feature = "std")]
pub use effects::OsRand;
pub use effects::{
    Datagram, Delivered, Event, Persist, RandSource, Received, Reject, Sealed, SendError, Sent,
    Transmit, UeId, UnknownPersist,
};
pub use snapshot::{COUNTER_RESERVE, EESE_SNAPSHOT_LEN, SnapshotError, UE_SNAPSHOT_LEN};
#[cfg(feature = "std")]
pub use table::{EVENT_CAPACITY, EeseTable, KEPT_CIPHERS, QUEUED_PER_UE, SendOutcome};
pub use time::Instant;
pub use ue::{Ue, UeStatus};
