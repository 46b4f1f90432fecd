//! What a datagram from the UE does at the EESE.

use crate::protect;
use crate::protect::suite::Opened;
use crate::wire::{Cause, DataPacket, Direction, HelloPacket, Ksi, MessageType, peek_type};

use super::super::effects::{Delivered, Event, Received, Reject};
use super::super::slot::{Slot, Storage};
use super::super::time::Instant;
use super::{
    CREDIT_CAP, Env, ErrorOut, KeyState, REFUSAL_COST, Route, Session, TRIGGER_COST, Which,
};

impl<S: Storage> Session<S> {
    /// Handles a datagram from the UE that came over `route` (the caller
    /// found the session). `hello_verified`: the caller already checked
    /// this hello's tag under this session's control key (the table does,
    /// before it makes a session), so it is not checked twice.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &mut [u8],
        route: Route,
        hello_verified: bool,
    ) -> Result<Received, Reject> {
        self.advance(now, env);
        match peek_type(buf)? {
            MessageType::DATA => self.on_data(now, env, buf, route),
            MessageType::HELLO => self.on_hello(now, env, buf, route, hello_verified),
            // Control messages come from the EESE; a UE never sends them.
            other => Err(Reject::Unexpected(other)),
        }
    }

    /// Octets that came from the address `route` names: they pay for
    /// answers to it (capped, so an idle attacker cannot bank much).
    fn add_credit(&mut self, route: Route, len: u16) {
        let credit = self.credit_of(route);
        *credit = credit.saturating_add(len).min(CREDIT_CAP);
    }

    /// The credit of the address `route` names.
    fn credit_of(&mut self, route: Route) -> &mut u16 {
        match route {
            Route::Peer => &mut self.credit,
            Route::Hello => &mut self.hello_credit,
        }
    }

    /// Input over the proven address that cannot be authenticated under the
    /// keyset in use, or that is authentic but possibly a replay: it may be
    /// answered with the trigger of the offer out (or of the keyset in use),
    /// never with more octets than input from that address brought (QUIC's
    /// anti-amplification rule, RFC 9000 §8, made stricter: 1×, not 3×),
    /// and at most once per `unsolicited_interval`. No other state changes.
    /// Input over any other address is never answered.
    pub(crate) fn unauthenticated(&mut self, now: Instant, env: &Env<'_>, route: Route) {
        if route != Route::Peer || now < self.quiet_until {
            return;
        }
        let has_offer = self.offer.is_some();
        let has_valid = self.valid(now).is_some();
        if (has_offer && self.offer_to.is_none()
            || !has_offer && has_valid && self.current_to.is_none())
            && self.charge(TRIGGER_COST)
        {
            if has_offer {
                self.offer_to = Some(Route::Peer);
            } else {
                self.current_to = Some(Route::Peer);
            }
            self.quiet_until = now.after(env.cfg.unsolicited_interval);
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &mut [u8],
        route: Route,
    ) -> Result<Received, Reject> {
        let len = buf.len();
        // Checked once here; the view goes down to the cipher.
        let packet = DataPacket::new_checked(buf)?;
        if packet.direction() != Direction::Uplink {
            return Err(Reject::WrongDirection);
        }
        // Everything that came from an address pays for answers to it.
        self.add_credit(route, u16::try_from(len).unwrap_or(u16::MAX));
        let ksi = packet.ksi();
        if self.current.as_ref().is_some_and(|c| c.ks.ksi == ksi) {
            return self.on_current(now, env, packet, route);
        }
        for which in [Which::Offer, Which::Newcomer] {
            if self.slot(which).get().is_some_and(|o| o.ks.ksi == ksi) {
                return self.on_offer(now, env, packet, which, route);
            }
        }
        if self.previous.get().is_some_and(|p| p.ks.ksi == ksi) {
            return self.on_previous(now, env, packet, route);
        }
        // Unknown KSI: the UE may hold a keyset this EESE lost or never
        // made; the trigger out (if it can be afforded) tells it.
        self.unauthenticated(now, env, route);
        Err(Reject::UnknownKsi(ksi))
    }

    /// Data under an offer: the UE uses it. Authentic and fresh, it makes
    /// the offer the keyset in use (and the address it came from proven).
    fn on_offer(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        packet: DataPacket<&mut [u8]>,
        which: Which,
        route: Route,
    ) -> Result<Received, Reject> {
        let Some(o) = self.slot_mut(which).get_mut() else {
            return Err(Reject::NoSession);
        };
        let (ksi, counter) = (o.ks.ksi, o.ks.counter);
        // Only until it is promoted: expanded for this message.
        match o.ks.open(&o.ks.cipher(), packet) {
            Ok(opened) => {
                self.promote(now, env, which, route);
                Ok(delivered(ksi, counter, opened))
            }
            Err(e) => self.failed(now, env, route, e),
        }
    }

    fn on_current(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        packet: DataPacket<&mut [u8]>,
        route: Route,
    ) -> Result<Received, Reject> {
        let (Some(c), Some(nonce)) = (self.current.as_mut(), self.ue) else {
            return Err(Reject::NoSession);
        };
        let ksi = c.ks.ksi;
        match c.state {
            KeyState::Valid { deadline } if now < deadline => {
                let cipher = self.cipher.get(&c.ks);
                match c.ks.open(&cipher, packet) {
                    Ok(opened) => {
                        let (counter, soft) = (c.ks.counter, opened.seq >= env.cfg.soft_limit);
                        if soft {
                            // Key-use soft limit: offer the next keyset
                            // while this one goes on.
                            self.rekey(now, env, true);
                        }
                        Ok(delivered(ksi, counter, opened))
                    }
                    Err(e) => self.failed(now, env, route, e),
                }
            }
            KeyState::Valid { .. } | KeyState::Expired(_) => {
                // TR step 3: the UE's contact under an expired keyset. Prove
                // it is the UE's and fresh, refuse it by name, offer the next
                // keyset (step 4).
                let cause = match c.state {
                    KeyState::Expired(cause) => cause,
                    _ => Cause::TE2E_EXPIRED,
                };
                match c.ks.open(&c.ks.cipher(), packet) {
                    Ok(opened) => {
                        let e = ErrorOut {
                            ksi,
                            cause,
                            counter: c.ks.counter,
                            refused: Some(opened.seq),
                            nonce,
                        };
                        self.refuse_and_offer(now, env, e, route);
                        Err(Reject::ExpiredKsi(ksi))
                    }
                    Err(e) => self.failed(now, env, route, e),
                }
            }
            KeyState::Retired => {
                // Authentic or not, it may be a replay from before the
                // restore: never delivered, never named. Authentic contact
                // starts the keyset the restore made necessary, whose trigger
                // goes only within the answer budget. (Opened in place: on
                // this error the caller's buffer is not a payload.)
                if c.ks.authenticate(packet).is_ok() {
                    self.offer_quietly(now, env);
                    self.unauthenticated(now, env, route);
                    Err(Reject::RetiredKsi(ksi))
                } else {
                    self.unauthenticated(now, env, route);
                    Err(Reject::Unauthentic)
                }
            }
        }
    }

    /// Refuses authentic data by name and offers the next keyset; both go
    /// over the proven address only if its credit pays for them (a held-back
    /// message relayed later draws no more than it brought), else they wait
    /// for the UE's next hello.
    fn refuse_and_offer(&mut self, now: Instant, env: &mut Env<'_>, e: ErrorOut, route: Route) {
        let paid = route == Route::Peer && self.charge(REFUSAL_COST);
        self.refuse(e, paid.then_some(Route::Peer));
        // The offer is made (the UE's hello fetches it if it is not sent).
        self.offer_quietly(now, env);
        if paid {
            if self.offer.is_some() {
                self.offer_to = Some(Route::Peer);
            } else if let Some(w) = self.rand_wait.get_mut() {
                w.route = Some(Route::Peer);
            }
        }
    }

    fn on_previous(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        packet: DataPacket<&mut [u8]>,
        route: Route,
    ) -> Result<Received, Reject> {
        let Some(p) = self.previous.get_mut() else {
            return Err(Reject::NoSession);
        };
        let ksi = p.ks.ksi;
        // Only around a rekey: expanded per message.
        let cipher = p.ks.cipher();
        match p.state {
            KeyState::Retired => {
                let ok = cipher.open_packet(packet, None).is_ok();
                self.unauthenticated(now, env, route);
                Err(if ok {
                    Reject::RetiredKsi(ksi)
                } else {
                    Reject::Unauthentic
                })
            }
            KeyState::Valid { .. } if now < p.until => {
                match cipher.open_packet(packet, Some(&mut p.ks.recv)) {
                    Ok(opened) => Ok(delivered(ksi, p.ks.counter, opened)),
                    Err(e) => self.failed(now, env, route, e),
                }
            }
            state => {
                // The UE still uses a keyset a newer one replaced: it missed
                // what followed. Refuse the message by name and offer again.
                let cause = match state {
                    KeyState::Expired(cause) => cause,
                    _ => Cause::REPLACED,
                };
                match cipher.open_packet(packet, Some(&mut p.ks.recv)) {
                    Ok(opened) => {
                        let e = ErrorOut {
                            ksi,
                            cause,
                            counter: p.ks.counter,
                            refused: Some(opened.seq),
                            nonce: p.nonce,
                        };
                        if self.valid(now).is_some() && !self.offer.is_some() {
                            // The keyset in use is the one it missed: its
                            // trigger goes (no CONFIRM: it is in use).
                            let paid = route == Route::Peer && self.charge(REFUSAL_COST);
                            self.refuse(e, paid.then_some(Route::Peer));
                            if paid {
                                self.current_to = Some(Route::Peer);
                            }
                        } else {
                            self.refuse_and_offer(now, env, e, route);
                        }
                        Err(Reject::ExpiredKsi(ksi))
                    }
                    Err(e) => self.failed(now, env, route, e),
                }
            }
        }
    }

    /// A data message that did not open: forged or damaged (answered within
    /// the budget), or a replay (not answered).
    fn failed(
        &mut self,
        now: Instant,
        env: &Env<'_>,
        route: Route,
        e: protect::Error,
    ) -> Result<Received, Reject> {
        if matches!(
            e,
            protect::Error::BadTag | protect::Error::SuiteMismatch { .. }
        ) {
            self.unauthenticated(now, env, route);
        }
        Err(e.into())
    }

    fn on_hello(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &[u8],
        route: Route,
        verified: bool,
    ) -> Result<Received, Reject> {
        let packet = HelloPacket::new_checked(buf)?;
        if !verified {
            packet.verify(&self.auth(env.cfg))?;
        }
        let (nonce, seq) = (packet.nonce(), packet.seq());
        let (theirs, ksi, rekey) = (packet.counter(), packet.ksi(), packet.rekey());
        // Fresh means above the last hello seen from the same start. A
        // start the EESE does not know (the UE started again, or an old
        // start's hello is replayed) gets only an offer, which that start
        // alone can use.
        let current_start = Some(nonce) == self.ue;
        let last = if current_start {
            self.hello_seen
        } else {
            let offered = self
                .newcomer
                .get()
                .filter(|o| o.nonce == nonce)
                .and_then(|o| o.hello_seq);
            offered.max(self.starts.get().and_then(|m| m.get(&nonce)))
        };
        if let Some(last) = last
            && seq <= last
        {
            return Err(Reject::StaleHello { seq, last });
        }
        if route == Route::Hello {
            // Answers go to where this hello came from, and to no other
            // address: what an earlier hello queued is dropped.
            self.forget_hello_route();
        }
        // The hello adds to its address's credit, and its answer (never
        // more than a refusal and a trigger, 83 octets; the hello is at
        // least 84) is paid from it.
        let queued = self.queued_for(route);
        let len = u16::try_from(buf.len()).unwrap_or(u16::MAX);
        self.add_credit(route, len);
        let r = self.answer_hello(now, env, nonce, seq, theirs, ksi, rekey, route);
        let cost = self.queued_for(route).saturating_sub(queued);
        let credit = self.credit_of(route);
        *credit = credit.saturating_sub(cost);
        r
    }

    /// What a fresh, authentic hello does.
    #[allow(clippy::too_many_arguments)]
    fn answer_hello(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        nonce: crate::kdf::UeNonce,
        seq: u32,
        theirs: u64,
        ksi: Ksi,
        rekey: bool,
        route: Route,
    ) -> Result<Received, Reject> {
        let which = self.which_for(nonce);
        if theirs > self.counter {
            // The UE accepted a trigger this EESE no longer knows of (it went
            // back to an older state, or lost it): the next one is above.
            self.counter = theirs;
        }
        let current_start = which == Which::Offer;
        if current_start {
            self.hello_seen = Some(seq);
        }
        // A fresh hello naming the keyset offered to its start: the UE holds
        // it. It becomes the keyset in use (no answer is needed: a UE whose
        // hello was lost gets the offer again from the EESE's timer).
        let names_offer = self.slot(which).get().is_some_and(|o| {
            o.nonce == nonce && !rekey && theirs == o.ks.counter && ksi == o.ks.ksi
        });
        if names_offer {
            if let Some(o) = self.slot_mut(which).get_mut() {
                o.hello_seq = o.hello_seq.max(Some(seq));
            }
            self.promote(now, env, which, route);
            return Ok(Received::Control(MessageType::HELLO));
        }
        if !current_start {
            self.offer(now, env, nonce, Some(seq), theirs, route);
            return Ok(Received::Control(MessageType::HELLO));
        }
        // The UE has not used the keyset that followed a refusal: it may have
        // missed the error, so it goes again (with the trigger below).
        if self
            .refusal
            .get()
            .is_some_and(|r| r.keep && theirs >= r.error.counter)
        {
            self.repeat_refusal(route);
        }
        let names_current = self
            .valid(now)
            .is_some_and(|c| theirs == c.ks.counter && ksi == c.ks.ksi);
        if names_current && rekey {
            // The UE no longer uses the keyset in use (its te2e and grace ran
            // out first): nothing more goes out under it; downlink waits for
            // the next keyset.
            if let Some(c) = self.current.as_mut() {
                c.state = KeyState::Expired(Cause::TE2E_EXPIRED);
                env.events.push(Event::KeysExpired {
                    ksi: c.ks.ksi,
                    cause: Cause::TE2E_EXPIRED,
                });
            }
            self.current_to = None;
        }
        let checks_in = names_current && !rekey;
        if checks_in && route == Route::Peer && !self.offer.is_some() {
            // It holds the keyset in use and is where it was: its trigger.
            self.current_to = Some(Route::Peer);
        } else {
            // It needs a keyset, or speaks from an address it has not proven:
            // an offer, which it proves the address with by using it.
            self.offer(now, env, nonce, Some(seq), theirs, route);
        }
        Ok(Received::Control(MessageType::HELLO))
    }
}

/// What authentic, fresh data under the keyset (`ksi`, `counter`) delivers.
fn delivered(ksi: Ksi, counter: u64, opened: Opened) -> Received {
    Received::Data(Delivered {
        ksi,
        counter,
        seq: opened.seq,
        payload: opened.payload,
    })
}
