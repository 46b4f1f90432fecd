//! What the caller polls from a UE (transmit, event) and its timers.

use core::cmp::min;

use crate::wire::{Cause, Direction, HelloRepr, Ksi, data};

use super::super::effects::{Datagram, Event, SendError, Transmit};
use super::super::time::Instant;
use super::{HeldState, Status, Ue};

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
    /// previous keyset's grace, the probe after unanswered uplink, the
    /// keepalive. Every call runs this first, so a late timer never lets an
    /// expired keyset send or receive.
    pub(crate) fn advance(&mut self, now: Instant) {
        if self.previous.as_ref().is_some_and(|p| p.until <= now) {
            self.previous = None;
        }
        if let Some(c) = &mut self.current
            && c.status == Status::Usable
            && c.deadline <= now
        {
            c.status = Status::Expired(Cause::TE2E_EXPIRED);
            self.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
            // Past te2e and its grace, and the EESE said nothing: ask for
            // the next keyset now (the EESE stops sending under this one when
            // it hears), and go on receiving for a grace period.
            self.want_hello(now);
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
        // (Receiving past it ends without a timer: nothing happens then.)
        let deadline = self
            .current
            .as_ref()
            .filter(|c| c.status == Status::Usable)
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

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The next datagram to send to the EESE, written into `out`: a hello
    /// when one is due, else the held payload when a usable keyset covers it.
    /// `None` when nothing is to go out now. Two hellos never go out at one
    /// instant, whatever the back-off, so a drain loop that polls until
    /// `None` always ends.
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
        // Hello sequence numbers are u32 on the wire; 2^32 hellos from one
        // start do not happen, and past them the UE stays silent.
        let seq = u32::try_from(self.next_hello).ok()?;
        let rekey = !self.has_usable();
        let repr = HelloRepr {
            ksi: self.current.as_ref().map_or(Ksi(0), |c| c.ks.ksi),
            rekey,
            counter: self.last_counter,
            seq,
            nonce: self.nonce,
            id: self.id.as_bytes(),
            tag: [0; 16],
        };
        let len = repr.emit_signed(&self.auth(), out).ok()?;
        self.next_hello += 1;
        if self.confirming && !rekey {
            // A confirmation goes out once; a repeated CONFIRM asks again.
            self.hello_due = Instant::NEVER;
        } else {
            // Never again at this instant, whatever the back-off.
            self.hello_due = now.after_ms(self.jitter.spread(self.hello_backoff).max(1));
            self.hello_backoff = min(
                self.hello_backoff.saturating_mul(2),
                self.cfg.hello_backoff_max_ms,
            );
        }
        self.confirming = false;
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
        let cur = self.current.as_mut()?;
        if cur.ks.next_seq().is_none() {
            // Every sequence number of this keyset is used: it cannot send
            // again. Ask for the next one.
            cur.status = Status::Expired(Cause::TE2E_EXPIRED);
            self.events.push(Event::KeysExpired {
                ksi: cur.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
            self.want_hello(now);
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
