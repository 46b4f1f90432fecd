//! Sending at the EESE, the effects its owner polls, and its timers.

use core::cmp::min;

use crate::wire::{Cause, Direction, KeyExpiredRepr, TriggerRepr};

use super::super::effects::{
    Datagram, Event, Persist, Sealed, SendError, Transmit, UnknownPersist,
};
use super::super::slot::{Slot, Storage};
use super::super::snapshot::EESE_SNAPSHOT_LEN;
use super::super::time::{Instant, lifetime_secs};
use super::{Env, KeyState, Route, Session, TRIGGER_COST, Which, Written};

impl<S: Storage> Session<S> {
    /// Runs the timers due at `now`: te2e expiry (TR step 2), the end of the
    /// previous keyset's grace, the offer's repeats. Every call runs this
    /// first, so a late timer never lets an expired keyset send or receive.
    pub(crate) fn advance(&mut self, now: Instant, env: &mut Env<'_>) {
        if let Some(c) = &mut self.current
            && let KeyState::Valid { deadline } = c.state
            && deadline <= now
        {
            c.state = KeyState::Expired(Cause::TE2E_EXPIRED);
            self.current_to = None;
            env.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
        }
        if self.previous.get().is_some_and(|p| p.until <= now) {
            self.previous.set(None);
        }
        if self.retx_left > 0 && self.retx_at <= now {
            self.retx_left -= 1;
            self.repeat_offer(now, env);
        }
    }

    /// Queues the offer's trigger again, to the proven address only (the UE
    /// at an address it has not proven repeats its hello instead), and
    /// schedules the next repeat, doubling up to `trigger_retransmit_max`.
    /// An offer made in answer to input is repeated only when the credit of
    /// the proven address pays for it (else the UE's next hello fetches it).
    fn repeat_offer(&mut self, now: Instant, env: &Env<'_>) {
        if let Some(own) = self
            .offer
            .get()
            .filter(|o| o.route == Route::Peer)
            .map(|o| o.own)
        {
            let kept = self.refusal.get().is_some_and(|r| r.keep);
            let cost = TRIGGER_COST + if kept { KeyExpiredRepr::LEN as u16 } else { 0 };
            if own || self.charge(cost) {
                self.offer_to = Some(Route::Peer);
                // The UE may have missed the error that named its message,
                // too.
                self.repeat_refusal(Route::Peer);
            }
            self.retx_shift = self.retx_shift.saturating_add(1).min(16);
            let next = min(
                env.cfg.trigger_retransmit * (1u32 << self.retx_shift),
                env.cfg.trigger_retransmit_max,
            );
            self.retx_at = now.after(next);
        } else {
            self.retx_left = 0;
            self.retx_at = Instant::NEVER;
        }
    }

    /// When `advance` must next run, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        // On every call of the table's hot path: plain comparisons.
        let mut next = Instant::NEVER;
        if let Some(c) = &self.current
            && let KeyState::Valid { deadline } = c.state
        {
            next = next.min(deadline);
        }
        if let Some(p) = self.previous.get() {
            next = next.min(p.until);
        }
        if self.retx_left > 0 {
            next = next.min(self.retx_at);
        }
        (next != Instant::NEVER).then_some(next)
    }

    /// Seals `payload` for the UE into `out` under the keyset in use. When
    /// there is none the UE can receive under (expired, restored, none yet)
    /// the EESE starts the contact itself: no error, a new offer (TR step 3,
    /// skipped); the payload waits until the UE has used it. Near the soft
    /// limit the next keyset is offered while this one goes on.
    #[inline]
    pub(crate) fn send(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Sealed, SendError> {
        self.advance(now, env);
        let waiting = |s: &Self| {
            if s.rand_wait.is_some() {
                SendError::RandPending
            } else {
                SendError::EffectsPending
            }
        };
        let Some(c) = self.valid(now) else {
            self.rekey(now, env, true);
            return Err(waiting(self));
        };
        if c.ks.send.rekey_soon() && !self.offer.is_some() {
            self.rekey(now, env, true);
        }
        let durable = self.durable_counter;
        let Some(c) = self.current.as_mut() else {
            return Err(SendError::EffectsPending);
        };
        if c.ks.counter > durable {
            // Its snapshot first: a restore must know this keyset (and retire
            // it) before anything went out under it.
            return Err(SendError::EffectsPending);
        }
        let cipher = self.cipher.get(&c.ks);
        match c.ks.seal(&cipher, Direction::Downlink, payload, out) {
            Ok((seq, len)) => Ok(Sealed {
                len,
                ksi: c.ks.ksi,
                counter: c.ks.counter,
                seq,
            }),
            Err(crate::protect::Error::BufferTooSmall { needed, got }) => {
                Err(SendError::BufferTooSmall { needed, got })
            }
            Err(crate::protect::Error::PayloadTooLong { len, max }) => {
                Err(SendError::PayloadTooLong { len, max })
            }
            Err(_) => {
                // The sequence space is used up: it stops; the next keyset
                // is offered.
                c.state = KeyState::Expired(Cause::TE2E_EXPIRED);
                self.rekey(now, env, true);
                Err(waiting(self))
            }
        }
    }

    /// [`Session::send`] in its steady state, for the table's hot path: the
    /// keyset in use valid and its snapshot durable, its ciphers kept, no
    /// timer due and no new keyset to offer. Then a send seals and moves the
    /// sequence number (and the ciphers' use mark) and nothing else, so the
    /// caller has nothing to reschedule. `None` when any of that does not
    /// hold, or the seal fails (nothing has changed then): the caller runs
    /// [`Session::send`], which does what the state asks.
    #[cfg(feature = "kept-ciphers")]
    #[inline]
    pub(crate) fn send_plain(
        &mut self,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Option<Sealed> {
        // A timer due (te2e, the previous keyset's grace, a repeat): `advance`
        // has work.
        if self.poll_timeout().is_some_and(|t| t <= now) {
            return None;
        }
        let c = self.current.as_mut()?;
        if !matches!(c.state, KeyState::Valid { .. })
            || c.ks.counter > self.durable_counter
            || (c.ks.send.rekey_soon() && !self.offer.is_some())
        {
            return None;
        }
        let cipher = self.cipher.kept()?;
        let (seq, len) = c.ks.seal(cipher, Direction::Downlink, payload, out).ok()?;
        Some(Sealed {
            len,
            ksi: c.ks.ksi,
            counter: c.ks.counter,
            seq,
        })
    }

    /// The next snapshot to store, when the state moved past the last one
    /// (a keyset taken into use, a new te2e, a new root, counters half a
    /// reserve ahead); one write outstanding at a time. `out` holds at least
    /// `EESE_SNAPSHOT_LEN` octets.
    pub(crate) fn poll_persist(
        &mut self,
        cfg: &crate::endpoint::EeseConfig,
        out: &mut [u8],
    ) -> Option<Persist> {
        if self.inflight.is_some() || !self.dirty || out.len() < EESE_SNAPSHOT_LEN {
            return None;
        }
        let len = self.write_snapshot(cfg, out);
        self.dirty = false;
        self.generation += 1;
        self.inflight.put(Written {
            generation: self.generation,
            counter: self.counter,
        });
        Some(Persist {
            generation: self.generation,
            len,
        })
    }

    /// The snapshot of `persist` is durable.
    pub(crate) fn persisted(&mut self, persist: Persist) -> Result<(), UnknownPersist> {
        match self.inflight.get().copied() {
            Some(w) if w.generation == persist.generation => {
                self.durable_counter = self.durable_counter.max(w.counter);
                self.inflight.set(None);
                Ok(())
            }
            _ => Err(UnknownPersist(persist.generation)),
        }
    }

    /// Whether `poll_transmit` (or a send of data waiting for this session,
    /// `queued`) can make progress now: a control datagram to send, or data
    /// under a keyset in use whose snapshot is durable.
    pub(crate) fn ready(&self, queued: bool) -> bool {
        let control = self.refusal_to_send().is_some()
            || self.offer_to.is_some()
            || self.newcomer_to.is_some()
            || self.current_to.is_some();
        control
            || (queued
                && self.current.as_ref().is_some_and(|c| {
                    matches!(c.state, KeyState::Valid { .. })
                        && c.ks.counter <= self.durable_counter
                }))
    }

    /// The next control datagram and where it goes: a key-expired error, then
    /// a trigger (the newcomer's, the offer's, the keyset in use's).
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        out: &mut [u8],
    ) -> Option<(Transmit, Route)> {
        self.advance(now, env);
        if !self.ready(false) {
            // Nothing to sign: the control key is not derived (the table
            // polls here before every queued payload).
            return None;
        }
        let auth = self.auth(env.cfg);
        if let Some((e, route)) = self.refusal_to_send() {
            let repr = KeyExpiredRepr {
                ksi: e.ksi,
                cause: e.cause,
                counter: e.counter,
                refused: e.refused,
                tag: [0; 16],
            };
            let len = repr.emit_signed(&auth.answer(&e.nonce), out).ok()?;
            self.refusal_sent();
            return Some((
                Transmit {
                    len,
                    what: Datagram::KeyExpired {
                        ksi: e.ksi,
                        cause: e.cause,
                        refused: e.refused,
                    },
                },
                route,
            ));
        }
        if out.len() < TriggerRepr::LEN {
            return None;
        }
        let lifetime = lifetime_secs(self.te2e(env.cfg));
        for which in [Which::Newcomer, Which::Offer] {
            let to = match which {
                Which::Newcomer => self.newcomer_to.take(),
                Which::Offer => self.offer_to.take(),
            };
            let Some(route) = to else { continue };
            let Some(o) = self.slot(which).get() else {
                continue;
            };
            let len = o.ks.trigger(&auth.answer(&o.nonce), true, lifetime, out)?;
            return Some((
                Transmit {
                    len,
                    what: Datagram::Trigger {
                        ksi: o.ks.ksi,
                        counter: o.ks.counter,
                    },
                },
                route,
            ));
        }
        let route = self.current_to.take()?;
        let c = self.current.as_ref()?;
        let nonce = self.ue?;
        let KeyState::Valid { deadline } = c.state else {
            return None;
        };
        let len = c.ks.trigger(
            &auth.answer(&nonce),
            false,
            lifetime_secs(now.until(deadline)),
            out,
        )?;
        Some((
            Transmit {
                len,
                what: Datagram::Trigger {
                    ksi: c.ks.ksi,
                    counter: c.ks.counter,
                },
            },
            route,
        ))
    }
}
