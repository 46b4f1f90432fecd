//! The EESE side of one UE (also the HSE of solution #1 and the EMSE of
//! solution #2, given their root).

use crate::kdf::{PreparedRoot, Rand, RootKey};
use crate::wire::{
    Cause, ControlAuth, DataPacket, Direction, KeyExpiredRepr, Ksi, MessageType, peek_type,
};

use crate::protect::replay::ReplayWindow;
use crate::protect::suite::SuiteKeys;

use super::keyset::Keyset;
use super::{Config, Event, Instant, RandSource, Reject, SendError, Sink};

/// State of the current keyset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// Sends and receives until `deadline` (te2e).
    Valid { deadline: Instant },
    /// Flagged invalid (TR step 2); authentic contact under it is answered
    /// with a key-expired error and a new trigger.
    Expired(Cause),
}

#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub ks: Keyset,
    pub state: KeyState,
}

/// The keyset a rekey replaced: receives in-flight data until `until` when it
/// was replaced while valid; when it had expired, only recognises the UE's
/// contact so the trigger can be repeated.
#[derive(Clone, Debug)]
pub(crate) struct Previous {
    pub ksi: Ksi,
    pub counter: u64,
    pub keys: SuiteKeys,
    pub recv: ReplayWindow,
    pub until: Instant,
    pub expired: Option<Cause>,
}

impl Previous {
    fn open(
        &mut self,
        buf: &mut [u8],
    ) -> Result<crate::protect::suite::Opened, crate::protect::Error> {
        self.keys.cipher().open_with_window(buf, &mut self.recv)
    }
}

/// One UE's session at the EESE: its root, keysets, timers and counters.
///
/// Sans-IO; every method takes `now` and the shared [`Config`]. See the
/// module docs for the procedure.
#[derive(Clone, Debug)]
pub struct EeseSession {
    pub(crate) root: RootKey,
    /// Per-UE te2e in seconds (0: the configured default).
    pub(crate) te2e_secs: u32,
    /// Highest trigger counter issued.
    pub(crate) counter: u64,
    pub(crate) current: Option<Current>,
    pub(crate) previous: Option<Previous>,
    /// Repeat the current trigger at this time, `retx_left` more times
    /// ([`Instant::NEVER`]: no repetition pending).
    pub(crate) retx_at: Instant,
    pub(crate) retx_left: u8,
    /// No answer to unauthenticated input before this time.
    pub(crate) quiet_until: Instant,
    /// A rekey waits for `provide_rand`.
    pub(crate) rand_pending: bool,
}

impl EeseSession {
    /// A session for a UE whose root (e2e_int_key from the EMKS, or the
    /// e2mKEYSET / e2m_key of solutions #1/#2) the caller fetched. It has no
    /// keyset yet: [`EeseSession::rekey`] or the first send makes one.
    #[must_use]
    pub fn new(root: RootKey) -> Self {
        EeseSession {
            root,
            te2e_secs: 0,
            counter: 0,
            current: None,
            previous: None,
            retx_at: Instant::NEVER,
            retx_left: 0,
            quiet_until: Instant(0),
            rand_pending: false,
        }
    }

    /// Sets this UE's te2e (seconds; 0 = the configured default). Applies
    /// from the next keyset on.
    pub fn set_te2e(&mut self, secs: u32) {
        self.te2e_secs = secs;
    }

    fn te2e(&self, cfg: &Config) -> u32 {
        if self.te2e_secs == 0 {
            u32::try_from(cfg.te2e.as_secs()).unwrap_or(u32::MAX).max(1)
        } else {
            self.te2e_secs
        }
    }

    fn auth(&self, cfg: &Config) -> ControlAuth {
        ControlAuth::new(&PreparedRoot::new(&self.root, cfg.profile).control_key())
    }

    /// KSI and trigger counter of the current keyset, if any, and whether it
    /// is still valid.
    #[must_use]
    pub fn current(&self) -> Option<(Ksi, u64, bool)> {
        self.current.as_ref().map(|c| {
            (
                c.ks.ksi,
                c.ks.counter,
                matches!(c.state, KeyState::Valid { .. }),
            )
        })
    }

    /// The current keyset's suite keys (for tests and key logs).
    #[must_use]
    pub fn current_keys(&self) -> Option<(&Rand, &crate::protect::suite::SuiteKeys)> {
        self.current.as_ref().map(|c| (&c.ks.rand, &c.ks.keys))
    }

    /// Whether a rekey waits for a RAND from the EMKS.
    #[must_use]
    pub const fn rand_pending(&self) -> bool {
        self.rand_pending
    }

    /// Starts a new keyset now (TR step 4): takes a RAND from `rng` (or asks
    /// for one with [`Event::RandNeeded`]), derives, sends the trigger.
    pub fn rekey(
        &mut self,
        now: Instant,
        cfg: &Config,
        rng: &mut impl RandSource,
        sink: &mut impl Sink,
    ) {
        match rng.rand() {
            Some(rand) => self.install(now, cfg, rand, sink),
            None => {
                if !self.rand_pending {
                    self.rand_pending = true;
                    sink.event(Event::RandNeeded);
                }
            }
        }
    }

    /// Hands in the RAND the EMKS provided after [`Event::RandNeeded`].
    /// Ignored when no rekey waits for one.
    pub fn provide_rand(&mut self, now: Instant, cfg: &Config, rand: Rand, sink: &mut impl Sink) {
        if self.rand_pending {
            self.install(now, cfg, rand, sink);
        }
    }

    fn install(&mut self, now: Instant, cfg: &Config, rand: Rand, sink: &mut impl Sink) {
        let ksi = self.current.as_ref().map_or(Ksi(0), |c| c.ks.ksi.next());
        let counter = self.counter.saturating_add(1);
        let Ok(ks) = Keyset::derive(
            &self.root,
            ksi,
            counter,
            rand,
            cfg.profile,
            cfg.suite,
            cfg.soft_limit,
        ) else {
            // Only an unknown configured suite fails; nothing changes then.
            return;
        };
        self.rand_pending = false;
        self.counter = counter;
        let lifetime = self.te2e(cfg);
        let old = self.current.replace(Current {
            ks,
            state: KeyState::Valid {
                deadline: now.after(core::time::Duration::from_secs(u64::from(lifetime))),
            },
        });
        self.previous = old.map(|c| Previous {
            ksi: c.ks.ksi,
            counter: c.ks.counter,
            keys: c.ks.keys,
            recv: c.ks.recv,
            until: now.after(cfg.grace),
            expired: match c.state {
                KeyState::Valid { .. } => None,
                KeyState::Expired(cause) => Some(cause),
            },
        });
        self.send_trigger(cfg, sink);
        self.retx_at = now.after(cfg.trigger_retransmit);
        self.retx_left = cfg.trigger_attempts;
        sink.event(Event::Rekeyed { ksi, counter });
    }

    fn send_trigger(&self, cfg: &Config, sink: &mut impl Sink) {
        if let Some(c) = &self.current {
            sink.transmit(&c.ks.trigger(&self.auth(cfg), self.te2e(cfg)));
        }
    }

    fn send_error(&self, cfg: &Config, ksi: Ksi, cause: Cause, counter: u64, sink: &mut impl Sink) {
        let mut buf = [0u8; KeyExpiredRepr::LEN];
        let repr = KeyExpiredRepr {
            ksi,
            cause,
            counter,
            tag: [0; 16],
        };
        if repr.emit_signed(&self.auth(cfg), &mut buf).is_ok() {
            sink.transmit(&buf);
        }
    }

    /// The UE (re)established the connection the keys travel over (the TR
    /// assumes one exists; how it is set up is the caller's). The EESE starts
    /// the contact: it repeats the current trigger, or makes a new keyset when
    /// none is valid. The connection is not authenticated, so this answers at
    /// most once per [`Config::unsolicited_interval`].
    pub fn on_connect(
        &mut self,
        now: Instant,
        cfg: &Config,
        rng: &mut impl RandSource,
        sink: &mut impl Sink,
    ) {
        if now < self.quiet_until {
            return;
        }
        self.quiet_until = now.after(cfg.unsolicited_interval);
        if matches!(&self.current, Some(c) if matches!(c.state, KeyState::Valid { .. })) {
            self.send_trigger(cfg, sink);
        } else {
            self.rekey(now, cfg, rng, sink);
        }
    }

    /// The enterprise's "expire now" (TR §6.5.2.4): the current keyset stops
    /// at once; the next contact rekeys.
    pub fn expire_now(&mut self, sink: &mut impl Sink) {
        if let Some(c) = &mut self.current
            && matches!(c.state, KeyState::Valid { .. })
        {
            c.state = KeyState::Expired(Cause::EXPIRED_BY_ENTERPRISE);
            self.retx_at = Instant::NEVER;
            sink.event(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::EXPIRED_BY_ENTERPRISE,
            });
        }
    }

    /// A new root (new e2e_int_key after a new AKA, or a new e2mKEYSET /
    /// e2m_key): every keyset of the old root is gone.
    pub fn replace_root(&mut self, root: RootKey, sink: &mut impl Sink) {
        self.root = root;
        self.previous = None;
        self.retx_at = Instant::NEVER;
        self.rand_pending = false;
        if let Some(c) = self.current.take() {
            sink.event(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::ROOT_REPLACED,
            });
        }
    }

    /// Sends an application payload to the UE. When the keyset has expired
    /// (or there is none) the EESE starts the contact itself: no error, a new
    /// trigger first, then the data (TR step 3, skipped). Returns the KSI and
    /// sequence number used.
    ///
    /// # Errors
    /// [`SendError::RandPending`] while a RAND from the EMKS is awaited (send
    /// again after [`Event::Rekeyed`]); [`SendError::Protect`] when `scratch`
    /// is too small for the message.
    pub fn send(
        &mut self,
        now: Instant,
        cfg: &Config,
        payload: &[u8],
        scratch: &mut [u8],
        rng: &mut impl RandSource,
        sink: &mut impl Sink,
    ) -> Result<(Ksi, u32), SendError> {
        let usable = matches!(&self.current, Some(c) if matches!(c.state, KeyState::Valid { .. }) && !c.ks.send.rekey_soon());
        if !usable {
            self.rekey(now, cfg, rng, sink);
        }
        let Some(c) = self
            .current
            .as_mut()
            .filter(|c| matches!(c.state, KeyState::Valid { .. }))
        else {
            return Err(SendError::RandPending);
        };
        let (seq, len) = c.ks.seal(Direction::Downlink, payload, scratch)?;
        let ksi = c.ks.ksi;
        sink.transmit(&scratch[..len]);
        Ok((ksi, seq))
    }

    /// Handles a datagram from the UE. A payload is decrypted in place and
    /// reported with [`Event::Data`]; anything else yields its answer or
    /// [`Event::Rejected`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        cfg: &Config,
        buf: &mut [u8],
        rng: &mut impl RandSource,
        sink: &mut impl Sink,
    ) {
        if let Err(reject) = self.handle_inner(now, cfg, buf, rng, sink) {
            sink.event(Event::Rejected(reject));
        }
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        cfg: &Config,
        buf: &mut [u8],
        rng: &mut impl RandSource,
        sink: &mut impl Sink,
    ) -> Result<(), Reject> {
        let ty = peek_type(buf)?;
        if ty != MessageType::DATA {
            // The UE sends data only; control messages come from the EESE.
            return Err(Reject::Unexpected(ty));
        }
        let packet = DataPacket::new_checked(&buf[..])?;
        if packet.direction() != Direction::Uplink {
            return Err(Reject::WrongDirection);
        }
        let ksi = packet.ksi();

        if let Some(c) = self.current.as_mut().filter(|c| c.ks.ksi == ksi) {
            match c.state {
                KeyState::Valid { .. } => {
                    let opened = c.ks.open(buf)?;
                    // Authentic data under the new keyset confirms the trigger.
                    self.retx_at = Instant::NEVER;
                    let soft = opened.seq >= cfg.soft_limit;
                    sink.event(Event::Data {
                        ksi,
                        seq: opened.seq,
                        payload: &buf[opened.payload],
                    });
                    if soft {
                        // Key-use soft limit: renew before the sequence space runs out.
                        self.rekey(now, cfg, rng, sink);
                    }
                    return Ok(());
                }
                KeyState::Expired(cause) => {
                    // TR step 3: prove the contact is the UE's, answer with the
                    // error, then rekey (step 4). The payload is not delivered.
                    c.ks.open(buf)?;
                    let counter = c.ks.counter;
                    self.send_error(cfg, ksi, cause, counter, sink);
                    self.rekey(now, cfg, rng, sink);
                    return Err(Reject::ExpiredKsi(ksi));
                }
            }
        }

        if let Some(p) = self
            .previous
            .as_mut()
            .filter(|p| p.ksi == ksi && now < p.until)
        {
            match p.expired {
                None => {
                    let opened = p.open(buf)?;
                    sink.event(Event::Data {
                        ksi,
                        seq: opened.seq,
                        payload: &buf[opened.payload],
                    });
                    return Ok(());
                }
                Some(cause) => {
                    // The trigger was lost: the UE still uses the expired
                    // keyset. Answer again and repeat the same trigger.
                    p.open(buf)?;
                    let counter = p.counter;
                    self.send_error(cfg, ksi, cause, counter, sink);
                    self.send_trigger(cfg, sink);
                    return Err(Reject::ExpiredKsi(ksi));
                }
            }
        }

        // Unknown KSI: cannot be authenticated, so answer at most once per
        // interval (no amplification), with the current trigger when valid.
        if now >= self.quiet_until {
            self.quiet_until = now.after(cfg.unsolicited_interval);
            self.send_error(cfg, ksi, Cause::UNKNOWN_KSI, self.counter, sink);
            if matches!(&self.current, Some(c) if matches!(c.state, KeyState::Valid { .. })) {
                self.send_trigger(cfg, sink);
            }
        }
        Err(Reject::UnknownKsi(ksi))
    }

    /// When [`EeseSession::handle_timeout`] must next run, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.current.as_ref().and_then(|c| match c.state {
            KeyState::Valid { deadline } => Some(deadline),
            KeyState::Expired(_) => None,
        });
        let retx = (self.retx_at != Instant::NEVER).then_some(self.retx_at);
        [deadline, self.previous.as_ref().map(|p| p.until), retx]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`: te2e expiry (TR step 2), the end of the
    /// previous keyset's grace, and trigger repetition.
    pub fn handle_timeout(&mut self, now: Instant, cfg: &Config, sink: &mut impl Sink) {
        if let Some(c) = &mut self.current
            && let KeyState::Valid { deadline } = c.state
            && deadline <= now
        {
            c.state = KeyState::Expired(Cause::TE2E_EXPIRED);
            self.retx_at = Instant::NEVER;
            sink.event(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::TE2E_EXPIRED,
            });
        }
        if self.previous.as_ref().is_some_and(|p| p.until <= now) {
            self.previous = None;
        }
        if self.retx_at <= now {
            if self.retx_left == 0 {
                self.retx_at = Instant::NEVER;
            } else {
                self.retx_left -= 1;
                self.send_trigger(cfg, sink);
                let shift = cfg.trigger_attempts.saturating_sub(self.retx_left).min(16);
                self.retx_at = now.after(cfg.trigger_retransmit * (1u32 << shift));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The per-session memory budget (docs/PERFORMANCE.md): a session's state
    /// is at most 240 octets, so a table entry stays within 256.
    #[test]
    fn session_state_fits_its_memory_budget() {
        assert!(core::mem::size_of::<super::EeseSession>() <= 240);
    }
}
