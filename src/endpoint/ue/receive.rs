//! What a datagram from the EESE does at the UE.

use crate::wire::{
    DataPacket, Direction, KeyExpiredPacket, KeyExpiredRepr, MessageType, TriggerPacket,
    TriggerRepr, peek_type,
};

use super::super::effects::{Delivered, Event, Received, Reject};
use super::super::keyset::{Expanded, Keyset, with_cipher};
use super::super::time::Instant;
use super::{Current, HeldState, Previous, Status, Ue};

impl<const HOLD: usize> Ue<HOLD> {
    /// Handles a datagram from the EESE. A trigger installs a keyset (the
    /// held payload then goes out), a key-expired error stops the keyset it
    /// names, data is decrypted in place and returned. Anything forged,
    /// replayed, stale or made for another start of the UE is returned as a
    /// [`Reject`] and changes nothing.
    ///
    /// # Errors
    /// The [`Reject`] that says why the datagram was dropped.
    pub fn handle_datagram(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, Reject> {
        self.advance(now);
        match peek_type(buf)? {
            MessageType::DERIVE_TRIGGER => self.on_trigger(now, buf),
            MessageType::KEY_EXPIRED => self.on_key_expired(now, buf),
            MessageType::DATA => self.on_data(now, buf),
            other => Err(Reject::Unexpected(other)),
        }
    }

    // Each handler is its own function, so the deepest stack is the largest
    // handler's frame, not the sum of the three (a device's stack).
    #[inline(never)]
    fn on_trigger(&mut self, now: Instant, buf: &[u8]) -> Result<Received, Reject> {
        let packet = TriggerPacket::new_checked(buf)?;
        let trigger = TriggerRepr::parse(&packet)?;
        // Bound to this start's nonce: a trigger made for an earlier start
        // of this UE (or a copy of it) does not verify.
        self.verify_answer(buf)?;
        if trigger.profile != self.cfg.profile {
            return Err(Reject::ProfileMismatch {
                configured: self.cfg.profile,
                got: trigger.profile.code(),
            });
        }
        if trigger.counter <= self.last_counter {
            // The very keyset in use, repeated by the EESE (it has not seen
            // the UE confirm it, or it answers a check-in): the same counter,
            // KSI, RAND and suite. Anything else under an old counter is
            // stale.
            let repeat = self.current.as_ref().is_some_and(|c| {
                c.status == Status::Usable
                    && c.ks.counter == trigger.counter
                    && c.ks.ksi == trigger.ksi
                    && c.ks.rand == trigger.rand
                    && c.ks.keys.suite() == trigger.suite
            });
            if !repeat {
                return Err(Reject::StaleTrigger {
                    counter: trigger.counter,
                    last: self.last_counter,
                });
            }
            self.answered(now);
            self.hello_settled();
            // CONFIRM: the EESE has not seen the UE use it (the confirmation
            // was lost): confirm again, at most once per back-off.
            if trigger.confirm && !self.holding() && now >= self.confirm_after {
                self.confirm(now);
            }
            return Ok(Received::Control(MessageType::DERIVE_TRIGGER));
        }
        self.install(now, &trigger)?;
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    }

    /// Verifies a trigger's or an error's tag, bound to this start's nonce.
    /// Its own frame: the control key's derivation and the MAC are not on
    /// the stack while a keyset is made (the deepest path on a device).
    #[inline(never)]
    fn verify_answer(&self, buf: &[u8]) -> Result<(), Reject> {
        Ok(self.auth().verify_message(buf, &self.nonce)?)
    }

    /// Installs the keyset `trigger` names (verified and fresh).
    fn install(&mut self, now: Instant, trigger: &TriggerRepr) -> Result<(), Reject> {
        let ks = Keyset::derive(
            &self.root,
            trigger.ksi,
            trigger.counter,
            &trigger.rand,
            &self.nonce,
            trigger.profile,
            trigger.suite,
            u32::MAX,
        )
        .map_err(Reject::from)?;
        // The EESE counts te2e from the UE's first use of the keyset, which
        // follows its arrival here; the UE stops on its own once its grace
        // past te2e is over too, so a keyset is never used without bound.
        let deadline = now
            .after_ms(u64::from(trigger.lifetime) * 1000)
            .after_ms(self.cfg.grace_ms);
        let old = self.current.replace(Current {
            cipher: Expanded::new(&ks),
            ks,
            status: Status::Usable,
            deadline,
            recv_until: deadline.after_ms(self.cfg.grace_ms),
        });
        // Data in flight under a keyset replaced while it received still
        // opens for the grace period.
        self.previous = old.filter(|c| now < c.recv_until).map(|c| Previous {
            ksi: c.ks.ksi,
            counter: c.ks.counter,
            keys: c.ks.keys,
            recv: c.ks.recv,
            until: now.after_ms(self.cfg.grace_ms),
        });
        self.last_counter = trigger.counter;
        self.answered(now);
        self.hello_settled();
        // The EESE sends under the keyset once the UE has used it (CONFIRM):
        // the held payload does that; with nothing to send, a hello naming it
        // does.
        if trigger.confirm && !self.holding() {
            self.confirm(now);
        }
        self.events.push(Event::Rekeyed {
            ksi: trigger.ksi,
            counter: trigger.counter,
        });
        Ok(())
    }

    #[inline(never)]
    fn on_key_expired(&mut self, now: Instant, buf: &[u8]) -> Result<Received, Reject> {
        let packet = KeyExpiredPacket::new_checked(buf)?;
        let err = KeyExpiredRepr::parse(&packet)?;
        self.verify_answer(buf)?;
        let stale = Reject::StaleError {
            ksi: err.ksi,
            counter: err.counter,
        };
        // TR step 5: the payload the EESE refused, and says it did not
        // deliver, goes out again under the next keyset, even when that
        // keyset is already in (the trigger overtook the error).
        let names_held = matches!(
            (err.refused, self.held.state),
            (Some(seq), HeldState::Sent { ksi, counter, seq: s })
                if (ksi, counter, s) == (err.ksi, err.counter, seq)
        );
        // Otherwise it must name the keyset in use, this very generation.
        let names_current = self
            .current
            .as_ref()
            .is_some_and(|c| c.ks.ksi == err.ksi && c.ks.counter == err.counter);
        if !names_held && !names_current {
            return Err(stale);
        }
        self.unanswered_since = Instant::NEVER;
        self.last_heard = now;
        if names_held {
            self.held.state = HeldState::Waiting { again: true };
        }
        if !names_current {
            return Ok(Received::Control(MessageType::KEY_EXPIRED));
        }
        if let Some(cur) = self.current.as_mut()
            && cur.status != Status::Expired(err.cause)
        {
            if !matches!(cur.status, Status::Expired(_)) {
                self.events.push(Event::KeysExpired {
                    ksi: err.ksi,
                    cause: err.cause,
                });
            }
            cur.status = Status::Expired(err.cause);
        }
        // Downlink the EESE sealed before it refused the keyset still opens
        // for a grace period, and no longer: it sends nothing under it now.
        if let Some(cur) = self.current.as_mut() {
            cur.recv_until = cur.recv_until.min(now.after_ms(self.cfg.grace_ms));
        }
        // A trigger follows the error; if it is lost, a hello asks again.
        let retry = now.after_ms(self.hello_backoff.max(1));
        if self.hello_due > retry {
            self.hello_due = retry;
        }
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    }

    // Inlined on servers (the platform backend), where the call costs more
    // than the frame.
    #[cfg_attr(not(feature = "platform-aes-gcm"), inline(never))]
    #[cfg_attr(feature = "platform-aes-gcm", inline)]
    fn on_data(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, Reject> {
        // Checked once here; the view goes down to the cipher.
        let packet = DataPacket::new_checked(buf)?;
        if packet.direction() != Direction::Downlink {
            return Err(Reject::WrongDirection);
        }
        let ksi = packet.ksi();
        let (keys, kept, recv, counter) = match (&mut self.current, &mut self.previous) {
            // Past its te2e (or refused by the EESE) it still receives for a
            // grace period: the EESE may have sent before it heard.
            (Some(c), _) if c.ks.ksi == ksi => {
                if now >= c.recv_until {
                    return Err(Reject::ExpiredKsi(ksi));
                }
                (&c.ks.keys, c.cipher.kept(), &mut c.ks.recv, c.ks.counter)
            }
            // Only for the grace period after a rekey: expanded per message.
            (_, Some(p)) if p.ksi == ksi && now < p.until => {
                (&p.keys, None, &mut p.recv, p.counter)
            }
            _ => return Err(Reject::UnknownKsi(ksi)),
        };
        let opened = with_cipher(kept, keys, |cipher| cipher.open_packet(packet, Some(recv)))?;
        self.answered(now);
        Ok(Received::Data(Delivered {
            ksi,
            counter,
            seq: opened.seq,
            payload: opened.payload,
        }))
    }

    /// A usable keyset is in hand: no hello is wanted until something else
    /// goes wrong, and the back-off starts again.
    fn hello_settled(&mut self) {
        self.hello_due = Instant::NEVER;
        self.hello_backoff = self.cfg.hello_backoff_ms;
    }

    /// A hello naming the keyset in use goes out now: it tells the EESE the
    /// UE holds it (the EESE sends nothing under a keyset before that). Sent
    /// once; a repeated trigger with CONFIRM asks for it again.
    fn confirm(&mut self, now: Instant) {
        self.hello_due = now;
        self.confirming = true;
        self.confirm_after = now.after_ms(self.cfg.hello_backoff_ms.max(1));
    }
}
