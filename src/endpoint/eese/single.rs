//! An EESE for one UE, without a heap: the session with its configuration,
//! its RAND source and a small event queue.

use core::time::Duration;

use crate::kdf::{Rand, RootKey};

use super::super::config::EeseConfig;
use super::super::effects::{
    Event, Persist, RandSource, Received, Reject, Sealed, SendError, Transmit, UnknownPersist,
};
use super::super::events::Events;
use super::super::snapshot::SnapshotError;
use super::super::time::Instant;
use super::{Env, EventSink, Route, Session, SessionStatus};

impl EventSink for Events {
    fn push(&mut self, e: Event) {
        Events::push(self, e);
    }
}

/// An EESE serving one UE, sans-IO and allocation-free; [`EeseTable`]
/// (feature `std`) serves many. The effects are polled in the same order as
/// the UE's: persist, transmit, event (see [`Ue`](crate::endpoint::Ue)).
///
/// [`EeseTable`]: crate::endpoint::EeseTable
pub struct Eese<R> {
    cfg: EeseConfig,
    session: Session,
    rng: R,
    events: Events,
}

impl<R: RandSource> Eese<R> {
    /// An EESE for the UE whose root the caller fetched (from the EMKS);
    /// RANDs come from `rng` (or, when it says `None`, from the EMKS through
    /// [`Event::RandNeeded`] and [`Eese::provide_rand`]).
    pub fn new(cfg: EeseConfig, root: RootKey, rng: R) -> Self {
        Eese {
            cfg,
            session: Session::new(root, None),
            rng,
            events: Events::new(),
        }
    }

    /// Rebuilds the EESE from its last snapshot (see [`EeseTable::restore`]).
    ///
    /// # Errors
    /// [`SnapshotError`] for a damaged snapshot or one of another root.
    ///
    /// [`EeseTable::restore`]: crate::endpoint::EeseTable::restore
    pub fn restore(
        cfg: EeseConfig,
        root: RootKey,
        rng: R,
        snapshot: &[u8],
    ) -> Result<Self, SnapshotError> {
        Ok(Eese {
            session: Session::restore(&cfg, root, snapshot)?,
            cfg,
            rng,
            events: Events::new(),
        })
    }

    fn split(&mut self) -> (&mut Session, Env<'_>) {
        (
            &mut self.session,
            Env {
                cfg: &self.cfg,
                rng: &mut self.rng,
                events: &mut self.events,
            },
        )
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &EeseConfig {
        &self.cfg
    }

    /// The session as the enterprise may see it.
    #[must_use]
    pub fn status(&self, now: Instant) -> SessionStatus {
        self.session.status(now, &self.cfg)
    }

    /// The current keyset's RAND and suite keys (for key logs and tests).
    #[must_use]
    pub fn current_keys(&self) -> Option<(&Rand, &crate::protect::suite::SuiteKeys)> {
        self.session
            .current
            .as_ref()
            .map(|c| (&c.ks.rand, &c.ks.keys))
    }

    /// Handles a datagram from the UE: data is decrypted in place and
    /// returned; a hello is answered with a trigger (polled). Every datagram
    /// is taken as from where the UE is (this EESE knows no addresses: the
    /// [`EeseTable`] tells them apart).
    ///
    /// # Errors
    /// The [`Reject`] that says why the datagram was dropped.
    ///
    /// [`EeseTable`]: crate::endpoint::EeseTable
    pub fn handle_datagram(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, Reject> {
        let (s, mut env) = self.split();
        s.handle_datagram(now, &mut env, buf, Route::Peer, false)
    }

    /// Seals a payload for the UE into `out` (see [`EeseTable::send`]).
    ///
    /// # Errors
    /// [`SendError::EffectsPending`] when no keyset the UE uses is there (a
    /// new one is offered: poll, and send again once the UE used it) or its
    /// snapshot is not yet durable; the others as named.
    ///
    /// [`EeseTable::send`]: crate::endpoint::EeseTable::send
    pub fn send(
        &mut self,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Sealed, SendError> {
        let (s, mut env) = self.split();
        s.send(now, &mut env, payload, out)
    }

    /// Offers a new keyset now (to the UE start of the keyset in use; none
    /// before the UE's first hello).
    pub fn rekey(&mut self, now: Instant) {
        let (s, mut env) = self.split();
        s.advance(now, &mut env);
        s.rekey(now, &mut env, true);
    }

    /// Hands in the RAND the EMKS provided after [`Event::RandNeeded`].
    pub fn provide_rand(&mut self, now: Instant, rand: Rand) {
        let (s, mut env) = self.split();
        s.provide_rand(now, &mut env, rand);
    }

    /// The enterprise's "expire now".
    pub fn expire_now(&mut self, now: Instant) {
        let (s, mut env) = self.split();
        s.expire_now(now, &mut env);
    }

    /// A new root after a new AKA run.
    pub fn replace_root(&mut self, root: RootKey) {
        let (s, mut env) = self.split();
        s.replace_root(&mut env, root);
    }

    /// Sets the UE's te2e (`None`: the configured default).
    pub fn set_te2e(&mut self, te2e: Option<Duration>) {
        self.session.set_te2e(te2e);
    }

    /// The next snapshot to store, written into `out` (at least
    /// [`EESE_SNAPSHOT_LEN`](crate::endpoint::EESE_SNAPSHOT_LEN) octets):
    /// store `&out[..persist.len()]` durably, replacing the last one, then
    /// call [`Eese::persisted`]. One write is outstanding at a time; nothing
    /// is sealed under a keyset before the snapshot that holds it is durable.
    pub fn poll_persist(&mut self, out: &mut [u8]) -> Option<Persist> {
        self.session.poll_persist(&self.cfg, out)
    }

    /// The snapshot of `persist` is durable.
    ///
    /// # Errors
    /// [`UnknownPersist`] when it is not the snapshot last polled.
    pub fn persisted(&mut self, persist: Persist) -> Result<(), UnknownPersist> {
        self.session.persisted(persist)
    }

    /// The next control datagram to send (an error, then a trigger).
    ///
    /// # Errors
    /// [`SendError::BufferTooSmall`] under 50 octets.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, SendError> {
        if out.len() < crate::wire::TriggerRepr::LEN {
            return Err(SendError::BufferTooSmall {
                needed: crate::wire::TriggerRepr::LEN,
                got: out.len(),
            });
        }
        let (s, mut env) = self.split();
        Ok(s.poll_transmit(now, &mut env, out).map(|(t, _)| t))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When [`Eese::handle_timeout`] must next run, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (s, mut env) = self.split();
        s.advance(now, &mut env);
    }
}

impl<R> core::fmt::Debug for Eese<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Eese")
            .field("counter", &self.session.counter)
            .finish_non_exhaustive()
    }
}
