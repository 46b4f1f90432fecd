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
    /// replayed or stale is returned as a [`Reject`] and changes nothing.
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
        packet.verify(&self.auth())?;
        if trigger.profile != self.cfg.profile {
            return Err(Reject::ProfileMismatch {
                configured: self.cfg.profile,
                got: trigger.profile.code(),
            });
        }
        if trigger.counter <= self.last_counter {
            let repeat = self
                .current
                .as_ref()
                .is_some_and(|c| c.ks.counter == trigger.counter && c.status == Status::Usable);
            if !repeat {
                return Err(Reject::StaleTrigger {
                    counter: trigger.counter,
                    last: self.last_counter,
                });
            }
            // The EESE repeats the keyset in use: it is there and agrees.
            self.answered(now);
            self.hello_settled();
            return Ok(Received::Control(MessageType::DERIVE_TRIGGER));
        }
        let ks = Keyset::derive(
            &self.root,
            trigger.ksi,
            trigger.counter,
            trigger.rand,
            trigger.profile,
            trigger.suite,
            u32::MAX,
        )
        .map_err(Reject::from)?;
        // The EESE's te2e is authoritative (it refuses afterwards, TR step
        // 3); the UE stops on its own once its grace past te2e is over too,
        // so a keyset is never used without bound.
        let deadline = now
            .after_ms(u64::from(trigger.lifetime) * 1000)
            .after_ms(self.cfg.grace_ms);
        let old = self.current.replace(Current {
            cipher: Expanded::new(&ks),
            ks,
            status: Status::Usable,
            deadline,
        });
        // Data in flight under a keyset replaced while usable still opens
        // for the grace period.
        self.previous = old
            .filter(|c| c.status == Status::Usable && now < c.deadline)
            .map(|c| Previous {
                ksi: c.ks.ksi,
                counter: c.ks.counter,
                keys: c.ks.keys,
                recv: c.ks.recv,
                until: now.after_ms(self.cfg.grace_ms),
            });
        self.last_counter = trigger.counter;
        // A new keyset starts its sequence numbers at 0: reserve from there.
        self.send_limit = u64::from(self.cfg.send_reserve.max(1));
        self.answered(now);
        self.hello_settled();
        self.events.push(Event::Rekeyed {
            ksi: trigger.ksi,
            counter: trigger.counter,
        });
        Ok(Received::Control(MessageType::DERIVE_TRIGGER))
    }

    #[inline(never)]
    fn on_key_expired(&mut self, now: Instant, buf: &[u8]) -> Result<Received, Reject> {
        let packet = KeyExpiredPacket::new_checked(buf)?;
        let err = KeyExpiredRepr::parse(&packet)?;
        packet.verify(&self.auth())?;
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
        // A trigger follows the error; if it is lost, a hello asks again.
        let retry = now.after_ms(self.hello_backoff);
        if self.hello_due > retry {
            self.hello_due = retry;
        }
        Ok(Received::Control(MessageType::KEY_EXPIRED))
    }

    #[inline(never)]
    fn on_data(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, Reject> {
        // Checked once here; the view goes down to the cipher.
        let packet = DataPacket::new_checked(buf)?;
        if packet.direction() != Direction::Downlink {
            return Err(Reject::WrongDirection);
        }
        let ksi = packet.ksi();
        let durable = self.durable.last_counter;
        let (keys, kept, recv, counter) = match (&mut self.current, &mut self.previous) {
            (Some(c), _) if c.ks.ksi == ksi => match c.status {
                Status::Usable if now < c.deadline => {
                    (&c.ks.keys, c.cipher.kept(), &mut c.ks.recv, c.ks.counter)
                }
                Status::Retired => return Err(Reject::RetiredKsi(ksi)),
                _ => return Err(Reject::ExpiredKsi(ksi)),
            },
            // Only for the grace period after a rekey: expanded per message.
            (_, Some(p)) if p.ksi == ksi && now < p.until => {
                (&p.keys, None, &mut p.recv, p.counter)
            }
            _ => return Err(Reject::UnknownKsi(ksi)),
        };
        if counter > durable {
            // Delivering before the keyset is durable would let a restore
            // plus a replayed trigger deliver this message again.
            return Err(Reject::NotDurable(ksi));
        }
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
}
