//! Sending at the EESE, the effects its owner polls, and its timers.

use core::cmp::min;

use crate::wire::{Cause, Direction, KeyExpiredRepr, TriggerRepr};

use super::super::effects::{
    Datagram, Event, Persist, Sealed, SendError, Transmit, UnknownPersist,
};
use super::super::slot::{Slot, Storage};
use super::super::snapshot::EESE_SNAPSHOT_LEN;
use super::super::time::{Instant, lifetime_secs};
use super::{Env, KeyState, Session, Written};

impl<S: Storage> Session<S> {
    /// Runs the timers due at `now`: te2e expiry (TR step 2), the end of the
    /// previous keyset's grace, trigger repetition. Every call runs this
    /// first, so a late timer never lets an expired keyset send or receive.
    pub(crate) fn advance(&mut self, now: Instant, env: &mut Env<'_>) {
        if let Some(c) = &mut self.current
            && let KeyState::Valid { deadline } = c.state
            && deadline <= now
        {
            c.state = KeyState::Expired(Cause::TE2E_EXPIRED);
            self.retx_left = 0;
            self.retx_at = Instant::NEVER;
            self.send_trigger = false;
            env.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
        }
        let confirmed = self.current.as_ref().is_some_and(|c| c.confirmed);
        if confirmed && self.previous.get().is_some_and(|p| p.until <= now) {
            self.previous.set(None);
        }
        if self.retx_left > 0 && self.retx_at <= now {
            self.retx_left -= 1;
            self.repeat_trigger(now, env);
        }
    }

    /// Queues the unconfirmed trigger again and schedules the next repeat,
    /// doubling up to `trigger_retransmit_max`.
    fn repeat_trigger(&mut self, now: Instant, env: &Env<'_>) {
        if self.valid(now).is_some_and(|c| !c.confirmed) {
            self.send_trigger = true;
            // The UE may have missed the error that named its message, too.
            self.repeat_refusal();
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
        if let Some(c) = &self.current {
            if let KeyState::Valid { deadline } = c.state {
                next = next.min(deadline);
            }
            if c.confirmed
                && let Some(p) = self.previous.get()
            {
                next = next.min(p.until);
            }
        }
        if self.retx_left > 0 {
            next = next.min(self.retx_at);
        }
        (next != Instant::NEVER).then_some(next)
    }

    /// Seals `payload` for the UE into `out`. When the keyset has expired
    /// (or there is none, or it is restored, or at its soft limit) the EESE
    /// starts the contact itself: no error, a new keyset and its trigger
    /// first (TR step 3, skipped), then the data: send again after polling.
    #[inline]
    pub(crate) fn send(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Sealed, SendError> {
        self.advance(now, env);
        if self.rand_pending {
            // The RAND source may answer now (or the EMKS already did).
            self.rekey(now, env, true);
            return Err(if self.rand_pending {
                SendError::RandPending
            } else {
                SendError::EffectsPending
            });
        }
        let usable = self.valid(now).is_some_and(|c| !c.ks.send.rekey_soon());
        if !usable {
            self.rekey(now, env, true);
            return Err(if self.rand_pending {
                SendError::RandPending
            } else {
                SendError::EffectsPending
            });
        }
        // While the UE has not confirmed the keyset, the trigger goes in
        // front of data at least every `trigger_retransmit_max`.
        if self.retx_left == 0
            && self.retx_at <= now
            && self.current.as_ref().is_some_and(|c| !c.confirmed)
        {
            self.repeat_trigger(now, env);
        }
        let durable = self.durable_counter;
        let Some(c) = self.current.as_mut() else {
            return Err(SendError::EffectsPending);
        };
        if c.ks.counter > durable
            || !c.announced
            || self.send_trigger
            || self.refusal.get().is_some_and(|r| r.send)
        {
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
                // The sequence space is used up: start a new keyset.
                self.rekey(now, env, true);
                Err(SendError::EffectsPending)
            }
        }
    }

    /// The next snapshot to store, when the state moved past the last one
    /// (a new keyset, a new te2e, a new root); one write outstanding at a
    /// time. `out` holds at least `EESE_SNAPSHOT_LEN` octets.
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
            hello: self.hello_seen,
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
                self.hello_durable = self.hello_durable.max(w.hello);
                self.inflight.set(None);
                Ok(())
            }
            _ => Err(UnknownPersist(persist.generation)),
        }
    }

    /// Whether `poll_transmit` (or a send of data waiting for this session,
    /// `queued`) can make progress now: an error to send, a trigger whose
    /// snapshot is durable, or data not blocked on a snapshot or a RAND.
    /// Nothing goes out while a hello's number is not durable.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn ready(&self, queued: bool) -> bool {
        if self.hello_pending() {
            return false;
        }
        let blocked = self
            .current
            .as_ref()
            .is_some_and(|c| c.ks.counter > self.durable_counter);
        self.refusal_to_send().is_some()
            || (self.send_trigger && !blocked)
            || (queued && !blocked && !self.rand_pending)
    }

    /// The next control datagram: a key-expired error, then a trigger. A
    /// trigger waits until the snapshot holding its counter is durable, and
    /// both until the last hello's number is.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        out: &mut [u8],
    ) -> Option<Transmit> {
        self.advance(now, env);
        if self.hello_pending() {
            return None;
        }
        if let Some(e) = self.refusal_to_send() {
            let repr = KeyExpiredRepr {
                ksi: e.ksi,
                cause: e.cause,
                counter: e.counter,
                refused: e.refused,
                tag: [0; 16],
            };
            let len = repr.emit_signed(&self.auth(env.cfg), out).ok()?;
            self.refusal_sent();
            return Some(Transmit {
                len,
                what: Datagram::KeyExpired {
                    ksi: e.ksi,
                    cause: e.cause,
                    refused: e.refused,
                },
            });
        }
        if !self.send_trigger {
            return None;
        }
        let auth = self.auth(env.cfg);
        let durable = self.durable_counter;
        let Some(c) = self.current.as_mut() else {
            self.send_trigger = false;
            return None;
        };
        let KeyState::Valid { deadline } = c.state else {
            self.send_trigger = false;
            return None;
        };
        if c.ks.counter > durable || out.len() < TriggerRepr::LEN {
            return None;
        }
        let len =
            c.ks.trigger(&auth, lifetime_secs(now.until(deadline)), out)?;
        c.announced = true;
        self.send_trigger = false;
        Some(Transmit {
            len,
            what: Datagram::Trigger {
                ksi: c.ks.ksi,
                counter: c.ks.counter,
            },
        })
    }
}
