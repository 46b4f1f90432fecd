//! The UE side.

use crate::kdf::{PreparedRoot, RootKey};
use crate::wire::{self, ControlAuth, DataPacket, Direction, Ksi, MessageType, peek_type};

use super::keyset::Keyset;
use super::{Config, Event, Instant, Reject, SendError, Sink};

/// What [`Ue::send`] did with a payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sent {
    /// Protected and transmitted under this KSI and sequence number.
    Now {
        /// KSI used.
        ksi: Ksi,
        /// Sequence number used.
        seq: u32,
    },
    /// No usable keyset: held, and sent when the next trigger arrives.
    Held,
}

/// The message a UE keeps until it is superseded, so it can be sent again
/// under a new keyset after a key-expired error (TR step 5).
#[derive(Clone, Debug)]
pub(crate) struct Held<const N: usize> {
    pub buf: [u8; N],
    pub len: usize,
    /// KSI it was last sent under (None: not sent yet).
    pub sent_under: Option<Ksi>,
    /// Send it as soon as a keyset is installed.
    pub waiting: bool,
}

/// A UE endpoint.
///
/// `HOLD` is the largest payload, in octets, kept for retransmission after a
/// key-expired error; larger payloads are sent but not kept.
///
/// ```
/// use ciot_e2e::endpoint::{Config, EeseSession, Event, Instant, Sink, Ue};
/// use ciot_e2e::kdf::{int_key, Ck, CkIk, Ik, KdfProfile, Rand};
///
/// #[derive(Default)]
/// struct Out { datagrams: Vec<Vec<u8>>, data: Vec<Vec<u8>> }
/// impl Sink for Out {
///     fn transmit(&mut self, d: &[u8]) { self.datagrams.push(d.to_vec()) }
///     fn event(&mut self, e: Event<'_>) {
///         if let Event::Data { payload, .. } = e { self.data.push(payload.to_vec()) }
///     }
/// }
///
/// let cfg = Config::default();
/// let ck_ik = CkIk::new(&Ck::from_bytes([1; 16]), &Ik::from_bytes([2; 16]));
/// let root = int_key(KdfProfile::Ts33220, &ck_ik);
/// let mut ue: Ue = Ue::new(root.clone());
/// let mut eese = EeseSession::new(root);
/// let (mut to_ue, mut to_eese) = (Out::default(), Out::default());
/// let now = Instant::from_millis(0);
/// let mut scratch = [0u8; 256];
///
/// // The EESE starts the contact: trigger, then data.
/// let mut rng = || Some(Rand([9; 16]));
/// eese.send(now, &cfg, b"hello UE", &mut scratch, &mut rng, &mut to_ue).unwrap();
/// for mut d in to_ue.datagrams.drain(..) {
///     ue.handle_datagram(now, &cfg, &mut d, &mut scratch, &mut to_eese);
/// }
/// assert_eq!(to_eese.data, [b"hello UE".to_vec()]);
/// ```
#[derive(Clone, Debug)]
pub struct Ue<const HOLD: usize = 512> {
    pub(crate) root: RootKey,
    pub(crate) auth: ControlAuth,
    /// Highest trigger counter accepted (from this root).
    pub(crate) last_counter: u64,
    pub(crate) current: Option<Keyset>,
    /// The keyset the last trigger replaced, receiving until the instant.
    pub(crate) previous: Option<(Keyset, Instant)>,
    /// The current keyset was refused by the EESE.
    pub(crate) expired: bool,
    pub(crate) held: Held<HOLD>,
    /// Profile of the control key (from the config at creation).
    pub(crate) profile: crate::kdf::KdfProfile,
}

impl<const HOLD: usize> Ue<HOLD> {
    /// A UE with the default configuration's KDF profile; see
    /// [`Ue::with_config`].
    #[must_use]
    pub fn new(root: RootKey) -> Self {
        Self::with_config(root, &Config::default())
    }

    /// A UE whose root is `e2e_int_key` (derive it from CK/IK with
    /// [`crate::kdf::int_key`]) or an e2mKEYSET / e2m_key. It has no keyset
    /// until a trigger arrives.
    #[must_use]
    pub fn with_config(root: RootKey, cfg: &Config) -> Self {
        let auth = ControlAuth::new(&PreparedRoot::new(&root, cfg.profile).control_key());
        Ue {
            root,
            auth,
            last_counter: 0,
            current: None,
            previous: None,
            expired: false,
            held: Held {
                buf: [0; HOLD],
                len: 0,
                sent_under: None,
                waiting: false,
            },
            profile: cfg.profile,
        }
    }

    /// KSI and counter of the keyset in use, and whether it is still usable.
    #[must_use]
    pub fn current(&self) -> Option<(Ksi, u64, bool)> {
        self.current
            .as_ref()
            .map(|k| (k.ksi, k.counter, !self.expired))
    }

    /// The current keyset's suite keys (for tests and key logs).
    #[must_use]
    pub fn current_keys(&self) -> Option<(&crate::kdf::Rand, &crate::protect::suite::SuiteKeys)> {
        self.current.as_ref().map(|k| (&k.rand, &k.keys))
    }

    /// Highest trigger counter accepted.
    #[must_use]
    pub const fn last_counter(&self) -> u64 {
        self.last_counter
    }

    /// A new root after a new AKA run: every keyset of the old root is gone.
    /// The trigger counter starts again, since no trigger of the old root
    /// verifies under the new control key. Reports [`Event::KeysExpired`]
    /// with cause root-replaced for the keyset that was in use, as the EESE
    /// does.
    pub fn replace_root(&mut self, root: RootKey, sink: &mut impl Sink) {
        let lost = self.current.as_ref().map(|k| k.ksi);
        let cfg = Config {
            profile: self.profile,
            ..Config::default()
        };
        *self = Self::with_config(root, &cfg);
        if let Some(ksi) = lost {
            sink.event(Event::KeysExpired {
                ksi,
                cause: crate::wire::Cause::ROOT_REPLACED,
            });
        }
    }

    /// Sends a payload. With a usable keyset it goes out now; otherwise it is
    /// held and goes out when the next trigger arrives. The payload is kept
    /// (when it fits `HOLD`) for retransmission after a key-expired error.
    ///
    /// # Errors
    /// [`SendError::Protect`] when `scratch` is too small or the payload too
    /// long; the payload is then neither sent nor held.
    pub fn send(
        &mut self,
        payload: &[u8],
        scratch: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<Sent, SendError> {
        let kept = payload.len() <= HOLD;
        let Some(ks) = self.current.as_mut().filter(|_| !self.expired) else {
            if !kept {
                return Err(SendError::Protect(crate::protect::Error::PayloadTooLong {
                    len: payload.len(),
                    max: HOLD,
                }));
            }
            self.hold(payload, None, true);
            return Ok(Sent::Held);
        };
        match ks.seal(Direction::Uplink, payload, scratch) {
            Ok((seq, len)) => {
                let ksi = ks.ksi;
                sink.transmit(&scratch[..len]);
                if kept {
                    self.hold(payload, Some(ksi), false);
                } else {
                    self.held.len = 0;
                    self.held.waiting = false;
                    // Nothing is held now: a key-expired error for this KSI
                    // must not resend the emptied buffer.
                    self.held.sent_under = None;
                }
                Ok(Sent::Now { ksi, seq })
            }
            Err(crate::protect::Error::SequenceExhausted) if kept => {
                // Hard limit reached: wait for the EESE's next keyset.
                self.hold(payload, None, true);
                Ok(Sent::Held)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn hold(&mut self, payload: &[u8], sent_under: Option<Ksi>, waiting: bool) {
        if let Some(slot) = self.held.buf.get_mut(..payload.len()) {
            slot.copy_from_slice(payload);
            self.held.len = payload.len();
            self.held.sent_under = sent_under;
            self.held.waiting = waiting;
        }
    }

    fn retransmit_held(&mut self, scratch: &mut [u8], sink: &mut impl Sink) {
        if !self.held.waiting || self.expired {
            return;
        }
        let Some(ks) = self.current.as_mut() else {
            return;
        };
        let payload = &self.held.buf[..self.held.len];
        if let Ok((seq, len)) = ks.seal(Direction::Uplink, payload, scratch) {
            sink.transmit(&scratch[..len]);
            self.held.waiting = false;
            self.held.sent_under = Some(ks.ksi);
            sink.event(Event::Retransmitted { ksi: ks.ksi, seq });
        }
    }

    /// Handles a datagram from the EESE: a trigger installs a keyset (and
    /// sends the held message), a key-expired error stops the keyset it names,
    /// data is decrypted in place and reported. Anything forged, replayed or
    /// stale is reported with [`Event::Rejected`] and changes nothing.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        cfg: &Config,
        buf: &mut [u8],
        scratch: &mut [u8],
        sink: &mut impl Sink,
    ) {
        if let Err(reject) = self.handle_inner(now, cfg, buf, scratch, sink) {
            sink.event(Event::Rejected(reject));
        }
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        cfg: &Config,
        buf: &mut [u8],
        scratch: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), Reject> {
        match peek_type(buf)? {
            MessageType::DERIVE_TRIGGER => self.on_trigger(now, cfg, buf, scratch, sink),
            MessageType::KEY_EXPIRED => self.on_key_expired(buf, sink),
            _ => self.on_data(now, buf, sink),
        }
    }

    fn on_trigger(
        &mut self,
        now: Instant,
        cfg: &Config,
        buf: &[u8],
        scratch: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), Reject> {
        let trigger = match self.auth.open_trigger(buf, self.last_counter) {
            Ok(t) => t,
            Err(wire::Error::StaleCounter { counter, .. })
                if self.current.as_ref().is_some_and(|k| k.counter == counter) =>
            {
                // A repeated trigger for the keyset in use: idempotent. Send
                // the held message if a key-expired error asked for it.
                self.retransmit_held(scratch, sink);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let ks = Keyset::derive(
            &self.root,
            trigger.ksi,
            trigger.counter,
            trigger.rand,
            trigger.profile,
            trigger.suite,
            u32::MAX,
        )?;
        self.last_counter = trigger.counter;
        let old = self.current.replace(ks);
        // In-flight data under a keyset replaced while valid is still accepted
        // for the grace period; an expired one is dropped.
        self.previous = old
            .filter(|_| !self.expired)
            .map(|k| (k, now.after(cfg.grace)));
        self.expired = false;
        sink.event(Event::Rekeyed {
            ksi: trigger.ksi,
            counter: trigger.counter,
        });
        self.retransmit_held(scratch, sink);
        Ok(())
    }

    fn on_key_expired(&mut self, buf: &[u8], sink: &mut impl Sink) -> Result<(), Reject> {
        let err = self.auth.open_key_expired(buf)?;
        let Some(ks) = self.current.as_ref() else {
            return Err(Reject::StaleError {
                ksi: err.ksi,
                counter: err.counter,
            });
        };
        // The error must name the keyset in use, and a generation no older
        // than it (te2e-expired and expired-by-enterprise carry the refused
        // keyset's counter; unknown-ksi and root-replaced the EESE's latest).
        if err.ksi != ks.ksi || err.counter < ks.counter {
            return Err(Reject::StaleError {
                ksi: err.ksi,
                counter: err.counter,
            });
        }
        if !self.expired {
            self.expired = true;
            sink.event(Event::KeysExpired {
                ksi: err.ksi,
                cause: err.cause,
            });
        }
        // TR step 5: the message refused under this keyset goes out again
        // once the trigger for the next one arrives.
        if self.held.sent_under == Some(err.ksi) {
            self.held.waiting = true;
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), Reject> {
        let packet = DataPacket::new_checked(&buf[..])?;
        if packet.direction() != Direction::Downlink {
            return Err(Reject::WrongDirection);
        }
        let ksi = packet.ksi();
        let ks = match (&mut self.current, &mut self.previous) {
            (Some(k), _) if k.ksi == ksi => {
                if self.expired {
                    return Err(Reject::ExpiredKsi(ksi));
                }
                k
            }
            (_, Some((k, until))) if k.ksi == ksi && now < *until => k,
            _ => return Err(Reject::UnknownKsi(ksi)),
        };
        let opened = ks.open(buf)?;
        sink.event(Event::Data {
            ksi,
            seq: opened.seq,
            payload: &buf[opened.payload],
        });
        Ok(())
    }

    /// When [`Ue::handle_timeout`] must next run, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.previous.as_ref().map(|(_, until)| *until)
    }

    /// Ends the previous keyset's grace period when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.previous = None;
        }
    }
}
