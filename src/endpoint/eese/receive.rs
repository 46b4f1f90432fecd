//! What a datagram from the UE does at the EESE.

use crate::protect;
use crate::wire::{Cause, DataPacket, Direction, HelloPacket, MessageType, TriggerRepr, peek_type};

use super::super::effects::{Delivered, Received, Reject};
use super::super::slot::{Slot, Storage};
use super::super::time::Instant;
use super::{CREDIT_CAP, Env, ErrorOut, KeyState, Session};

impl<S: Storage> Session<S> {
    /// Handles a datagram from the UE (the caller found the session).
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &mut [u8],
    ) -> Result<Received, Reject> {
        self.advance(now, env);
        match peek_type(buf)? {
            MessageType::DATA => self.on_data(now, env, buf),
            MessageType::HELLO => self.on_hello(now, env, buf),
            // Control messages come from the EESE; a UE never sends them.
            other => Err(Reject::Unexpected(other)),
        }
    }

    /// Input that cannot be authenticated under the current keyset, or that
    /// is authentic but possibly a replay: it may be answered with the
    /// current trigger, never with more octets than such input brought
    /// (QUIC's anti-amplification rule, RFC 9000 §8, made stricter: 1×, not
    /// 3×), and at most once per `unsolicited_interval`. No other state
    /// changes.
    pub(crate) fn unauthenticated(&mut self, now: Instant, env: &Env<'_>, len: usize) {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        self.credit = self.credit.saturating_add(len).min(CREDIT_CAP);
        let cost = TriggerRepr::LEN as u16;
        if self.valid(now).is_some()
            && !self.send_trigger
            && now >= self.quiet_until
            && self.credit >= cost
        {
            self.credit -= cost;
            self.send_trigger = true;
            self.quiet_until = now.after(env.cfg.unsolicited_interval);
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &mut [u8],
    ) -> Result<Received, Reject> {
        let len = buf.len();
        // Checked once here; the view goes down to the cipher.
        let packet = DataPacket::new_checked(buf)?;
        if packet.direction() != Direction::Uplink {
            return Err(Reject::WrongDirection);
        }
        let ksi = packet.ksi();
        if self.current.as_ref().is_some_and(|c| c.ks.ksi == ksi) {
            return self.on_current(now, env, packet, len);
        }
        if self.previous.get().is_some_and(|p| p.ks.ksi == ksi) {
            return self.on_previous(now, env, packet, len);
        }
        // Unknown KSI: the UE may hold a keyset this EESE lost or never
        // made; the current trigger (if it can be afforded) tells it.
        self.unauthenticated(now, env, len);
        Err(Reject::UnknownKsi(ksi))
    }

    fn on_current(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        packet: DataPacket<&mut [u8]>,
        len: usize,
    ) -> Result<Received, Reject> {
        let Some(c) = self.current.as_mut() else {
            return Err(Reject::NoSession);
        };
        let ksi = c.ks.ksi;
        match c.state {
            KeyState::Valid { deadline } if now < deadline => {
                let cipher = self.cipher.get(&c.ks);
                match c.ks.open(&cipher, packet) {
                    Ok(opened) => {
                        let (counter, soft) = (c.ks.counter, opened.seq >= env.cfg.soft_limit);
                        self.confirm(now, env);
                        if soft {
                            // Key-use soft limit: renew before the space runs out.
                            self.rekey(now, env, true);
                        }
                        Ok(Received::Data(Delivered {
                            ksi,
                            counter,
                            seq: opened.seq,
                            payload: opened.payload,
                        }))
                    }
                    Err(e) => self.failed(now, env, len, e),
                }
            }
            KeyState::Valid { .. } | KeyState::Expired(_) => {
                // TR step 3: the UE's contact under an expired keyset. Prove
                // it is the UE's and fresh, refuse it by name, rekey (step 4).
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
                        };
                        self.refuse(e);
                        self.rekey(now, env, true);
                        Err(Reject::ExpiredKsi(ksi))
                    }
                    Err(e) => self.failed(now, env, len, e),
                }
            }
            KeyState::Retired => {
                // Authentic or not, it may be a replay from before the
                // restore: never delivered, never named. Authentic contact
                // starts the keyset the restore made necessary. (Opened in
                // place: on this error the caller's buffer is not a payload.)
                if c.ks.authenticate(packet).is_ok() {
                    self.rekey(now, env, false);
                    self.unauthenticated(now, env, len);
                    Err(Reject::RetiredKsi(ksi))
                } else {
                    self.unauthenticated(now, env, len);
                    Err(Reject::Unauthentic)
                }
            }
        }
    }

    fn on_previous(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        packet: DataPacket<&mut [u8]>,
        len: usize,
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
                self.unauthenticated(now, env, len);
                Err(if ok {
                    Reject::RetiredKsi(ksi)
                } else {
                    Reject::Unauthentic
                })
            }
            KeyState::Valid { .. } if now < p.until => {
                match cipher.open_packet(packet, Some(&mut p.ks.recv)) {
                    Ok(opened) => Ok(Received::Data(Delivered {
                        ksi,
                        counter: p.ks.counter,
                        seq: opened.seq,
                        payload: opened.payload,
                    })),
                    Err(e) => self.failed(now, env, len, e),
                }
            }
            state => {
                // The UE still uses a keyset this EESE replaced: its trigger
                // was lost. Refuse the message by name and repeat the trigger.
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
                        };
                        self.refuse(e);
                        if self.valid(now).is_some() {
                            self.send_trigger = true;
                        } else {
                            self.rekey(now, env, true);
                        }
                        Err(Reject::ExpiredKsi(ksi))
                    }
                    Err(e) => self.failed(now, env, len, e),
                }
            }
        }
    }

    /// A data message that did not open: forged or damaged (answered within
    /// the unauthenticated budget), or a replay (not answered).
    fn failed(
        &mut self,
        now: Instant,
        env: &Env<'_>,
        len: usize,
        e: protect::Error,
    ) -> Result<Received, Reject> {
        if matches!(
            e,
            protect::Error::BadTag | protect::Error::SuiteMismatch { .. }
        ) {
            self.unauthenticated(now, env, len);
        }
        Err(e.into())
    }

    fn on_hello(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        buf: &[u8],
    ) -> Result<Received, Reject> {
        let packet = HelloPacket::new_checked(buf)?;
        packet.verify(&self.auth(env.cfg))?;
        let seq = packet.seq();
        if let Some(last) = self.hello_seen
            && seq <= last
        {
            return Err(Reject::StaleHello { seq, last });
        }
        // Its number is made durable before anything it causes goes out.
        self.hello_seen = Some(seq);
        self.dirty = true;
        let (theirs, rekey) = (packet.counter(), packet.rekey());
        // The UE has not confirmed the keyset that followed a refusal: it may
        // have missed the error, so it goes again (with the trigger below).
        if self
            .refusal
            .get()
            .is_some_and(|r| r.keep && theirs >= r.error.counter)
            && self.current.as_ref().is_some_and(|c| !c.confirmed)
        {
            self.repeat_refusal();
        }
        if theirs > self.counter {
            // The UE accepted a trigger this EESE no longer knows of (it was
            // restored from an older state): the next one must be above it.
            self.counter = theirs;
            self.rekey(now, env, true);
        } else if let Some(c) = self.valid(now) {
            let ours = c.ks.counter;
            if ours > theirs || (ours == theirs && !rekey) {
                if ours == theirs {
                    self.confirm(now, env);
                }
                // The UE is behind, or checks in: the current trigger.
                self.send_trigger = true;
            } else {
                self.rekey(now, env, true);
            }
        } else {
            // No valid keyset (none, expired, restored): the UE's contact
            // starts one; the EESE starts it, so no error is sent. (While a
            // RAND from the EMKS is awaited, this asks the source again.)
            self.rekey(now, env, true);
        }
        Ok(Received::Control(MessageType::HELLO))
    }
}
