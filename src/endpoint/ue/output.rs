//! What the caller polls from a UE (persist, transmit, event) and its timers.

use core::cmp::min;
use core::num::NonZeroU64;

use crate::wire::{Cause, Direction, HelloRepr, Ksi, data};

use super::super::effects::{Datagram, Event, Persist, SendError, Transmit, UnknownPersist};
use super::super::snapshot::UE_SNAPSHOT_LEN;
use super::super::time::Instant;
use super::{Durable, HeldState, Status, Ue};

impl<const HOLD: usize> Ue<HOLD> {
    /// The longest datagram the UE transmits: a hello with a 64-octet
    /// identifier, or a data message carrying `HOLD` octets under
    /// AES-128-GCM. A `poll_transmit` buffer of this size always suffices.
    pub const MAX_DATAGRAM: usize = {
        let data = data::HEADER_LEN + HOLD + 16;
        if data > HelloRepr::MAX_LEN {
            data
        } else {
            HelloRepr::MAX_LEN
        }
    };

    /// Runs every timer due at `now`: te2e of the keyset, the end of the
    /// previous keyset's grace, the probe after unanswered uplink. Every
    /// call runs this first, so a late timer never lets an expired keyset
    /// send or receive.
    pub(crate) fn advance(&mut self, now: Instant) {
        if self.previous.as_ref().is_some_and(|p| p.until <= now) {
            self.previous = None;
        }
        if let Some(c) = &mut self.current
            && matches!(c.status, Status::Usable | Status::Retired)
            && c.deadline <= now
        {
            c.status = Status::Expired(Cause::TE2E_EXPIRED);
            self.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
        }
        if !self.has_usable() && self.holding() {
            self.want_hello(now);
        }
        if let Some(after) = self.cfg.probe_after()
            && self.unanswered_since != Instant::NEVER
            && self.unanswered_since.after_ms(after) <= now
        {
            // Uplink went out and nothing authentic came back: ask.
            self.unanswered_since = Instant::NEVER;
            self.want_hello(now);
        }
        if let Some(k) = self.cfg.keepalive()
            && self.last_heard.after_ms(k) <= now
        {
            // Silence for too long: say where the UE is. The hello's answer
            // (or the next keepalive) moves the mark on.
            self.last_heard = now;
            self.want_hello(now);
        }
    }

    /// When [`Ue::handle_timeout`] must next run, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self
            .current
            .as_ref()
            .filter(|c| matches!(c.status, Status::Usable | Status::Retired))
            .map(|c| c.deadline);
        let probe = self
            .cfg
            .probe_after()
            .filter(|_| self.unanswered_since != Instant::NEVER)
            .map(|ms| self.unanswered_since.after_ms(ms));
        let keepalive = self.cfg.keepalive().map(|ms| self.last_heard.after_ms(ms));
        // The earliest of the timers that are set; compared one by one
        // (an iterator over them costs a device several hundred octets).
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let at = earliest(deadline, self.previous.as_ref().map(|p| p.until));
        let at = earliest(
            at,
            (self.hello_due != Instant::NEVER).then_some(self.hello_due),
        );
        earliest(earliest(at, probe), keepalive)
    }

    /// Runs the timers due at `now`; then poll the effects.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// Keeps the reservations ahead of use: a new one once half of the last
    /// is used, so sending rarely waits for a write.
    fn reserve(&mut self) {
        if self.hello_due != Instant::NEVER {
            let r = u64::from(self.cfg.hello_reserve.max(1));
            if self.next_hello + r.div_ceil(2) >= self.hello_limit {
                self.hello_limit = self.next_hello + r;
            }
        }
        if let Some(c) = &self.current
            && matches!(c.status, Status::Usable | Status::Retired)
            && let Some(seq) = c.ks.next_seq()
        {
            let r = u64::from(self.cfg.send_reserve.max(1));
            if u64::from(seq) + r.div_ceil(2) >= self.send_limit {
                self.send_limit = u64::from(seq) + r;
            }
        }
    }

    /// What the next snapshot holds.
    fn desired(&self) -> Durable {
        Durable {
            last_counter: self.last_counter,
            keyset: self
                .current
                .as_ref()
                .and_then(|c| NonZeroU64::new(c.ks.counter)),
            send_limit: self.send_limit,
            hello_limit: self.hello_limit,
        }
    }

    /// The next snapshot to store, written into `out`, when the state that
    /// decides what may be sent or delivered has moved past the last durable
    /// one: a new keyset, or a new reservation of sequence numbers (one write
    /// per `send_reserve` uplink messages and per `hello_reserve` hellos).
    /// One write is outstanding at a time: `None` until the last one is
    /// reported with [`Ue::persisted`]. `out` must hold
    /// [`UE_SNAPSHOT_LEN`](super::super::UE_SNAPSHOT_LEN) octets.
    pub fn poll_persist(&mut self, out: &mut [u8]) -> Option<Persist> {
        if self.inflight.is_some() || out.len() < UE_SNAPSHOT_LEN {
            return None;
        }
        self.reserve();
        let want = self.desired();
        if want == self.durable {
            return None;
        }
        let len = self.write_snapshot(&want, out);
        self.generation += 1;
        self.inflight = Some(want);
        Some(Persist {
            generation: self.generation,
            len,
        })
    }

    /// The snapshot of `persist` is durable: what it covers may now go out.
    ///
    /// # Errors
    /// [`UnknownPersist`] when it is not the snapshot last polled; nothing
    /// changes then.
    pub fn persisted(&mut self, persist: Persist) -> Result<(), UnknownPersist> {
        match self.inflight {
            Some(state) if persist.generation == self.generation => {
                self.durable = state;
                self.inflight = None;
                Ok(())
            }
            _ => Err(UnknownPersist(persist.generation)),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The next datagram to send to the EESE, written into `out`: a hello
    /// when one is due, else the held payload when a usable keyset covers it.
    /// `None` when nothing may go out yet (nothing to send, or a snapshot to
    /// persist first).
    ///
    /// # Errors
    /// [`SendError::BufferTooSmall`] when `out` is shorter than
    /// [`Ue::MAX_DATAGRAM`]; nothing changes then.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, SendError> {
        if out.len() < Self::MAX_DATAGRAM {
            return Err(SendError::BufferTooSmall {
                needed: Self::MAX_DATAGRAM,
                got: out.len(),
            });
        }
        self.advance(now);
        if let Some(t) = self.transmit_hello(now, out) {
            return Ok(Some(t));
        }
        Ok(self.transmit_held(now, out))
    }

    // Its own frame apart from the data path's (see `on_trigger`).
    #[inline(never)]
    fn transmit_hello(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        if self.hello_due > now {
            return None;
        }
        if self.next_hello >= self.durable.hello_limit {
            self.reserve();
            return None;
        }
        // Hello sequence numbers are u32 on the wire; 2^32 hellos from one
        // root do not happen, and past them the UE stays silent.
        let seq = u32::try_from(self.next_hello).ok()?;
        let rekey = !self.has_usable();
        let repr = HelloRepr {
            ksi: self.current.as_ref().map_or(Ksi(0), |c| c.ks.ksi),
            rekey,
            counter: self.last_counter,
            seq,
            id: self.id.as_bytes(),
            tag: [0; 16],
        };
        let len = repr.emit_signed(&self.auth(), out).ok()?;
        self.next_hello += 1;
        self.hello_due = now.after_ms(self.jitter.spread(self.hello_backoff));
        self.hello_backoff = min(
            self.hello_backoff.saturating_mul(2),
            self.cfg.hello_backoff_max_ms,
        );
        self.reserve();
        Some(Transmit {
            len,
            what: Datagram::Hello { seq, rekey },
        })
    }

    #[inline(never)]
    fn transmit_held(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        let HeldState::Waiting { again } = self.held.state else {
            return None;
        };
        if !self.can_send(now) {
            return None;
        }
        let durable = self.durable;
        let cur = self.current.as_mut()?;
        let Some(seq) = cur.ks.next_seq() else {
            // Every sequence number of this keyset is used: it cannot send
            // again. Ask for the next one.
            cur.status = Status::Expired(Cause::TE2E_EXPIRED);
            self.events.push(Event::KeysExpired {
                ksi: cur.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
            self.want_hello(now);
            return None;
        };
        let covered = durable.keyset.map(NonZeroU64::get) == Some(cur.ks.counter)
            && durable.last_counter >= cur.ks.counter
            && u64::from(seq) < durable.send_limit;
        if !covered {
            self.reserve();
            return None;
        }
        let payload = self.held.payload();
        let (seq, len) = cur
            .ks
            .seal_expanding(cur.cipher.kept(), Direction::Uplink, payload, out)
            .ok()?;
        let (ksi, counter) = (cur.ks.ksi, cur.ks.counter);
        self.held.state = HeldState::Sent { ksi, counter, seq };
        if again {
            self.events.push(Event::Retransmitted { ksi, counter, seq });
        }
        if self.unanswered_since == Instant::NEVER {
            self.unanswered_since = now;
        }
        self.reserve();
        Some(Transmit {
            len,
            what: Datagram::Data {
                ksi,
                counter,
                seq,
                retransmission: again,
            },
        })
    }
}
