//! The EESE side of one UE (also the HSE of solution #1 and the EMSE of
//! solution #2, given their root): the session both [`Eese`] (one UE, no
//! heap) and [`EeseTable`](super::EeseTable) (many UEs) run.
//!
//! State lives here; [`receive`] holds what a datagram from the UE does,
//! [`output`] sending, the polled effects and the timers, [`restore`] the
//! snapshot.

use core::time::Duration;

use crate::kdf::{PreparedRoot, Rand, RootKey};
use crate::wire::{Cause, ControlAuth, Ksi};

use super::config::EeseConfig;
use super::effects::{Event, RandSource};
use super::keyset::Keyset;
use super::slot::{Inline, Kept, Slot, Storage};
use super::time::{Instant, lifetime_secs};

mod output;
mod receive;
mod restore;
mod single;

pub use single::Eese;

/// Octets of answers to unauthenticated input a session may still owe: the
/// budget never exceeds what such input brought, and this caps what an idle
/// attacker could bank.
pub(crate) const CREDIT_CAP: u16 = 512;

/// Where a session reports events.
pub(crate) trait EventSink {
    fn push(&mut self, e: Event);
}

/// What a session needs from its owner for one call.
pub(crate) struct Env<'a> {
    pub cfg: &'a EeseConfig,
    pub rng: &'a mut dyn RandSource,
    pub events: &'a mut dyn EventSink,
}

/// State of a keyset at the EESE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// Sends and receives until `deadline` (te2e).
    Valid { deadline: Instant },
    /// Flagged invalid (TR step 2); authentic contact under it is answered
    /// with a key-expired error and a new trigger.
    Expired(Cause),
    /// Restored from a snapshot: its replay window is gone, so nothing under
    /// it is delivered; authentic contact under it starts a new keyset.
    Retired,
}

#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub ks: Keyset,
    pub state: KeyState,
    /// Authentic data or a hello from the UE showed it holds this keyset.
    pub confirmed: bool,
    /// Its trigger went out at least once.
    pub announced: bool,
}

/// The keyset a rekey replaced, kept (receive only) while the UE may still
/// use it: for the grace period when it was valid, and in any case until the
/// UE confirms the new one.
#[derive(Clone, Debug)]
pub(crate) struct Previous {
    pub ks: Keyset,
    /// Delivers in-flight data until then, if it was valid when replaced.
    pub until: Instant,
    pub state: KeyState,
}

/// A key-expired error to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorOut {
    pub ksi: Ksi,
    pub cause: Cause,
    pub counter: u64,
    pub refused: Option<u32>,
}

/// The last message refused by name: sent (`send`), and kept (`keep`) until
/// the UE confirms the keyset that followed, so that a hello that shows the
/// UE may have missed the error gets it again (the UE sends a payload again
/// only if it still holds exactly that message, so repeating it is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub error: ErrorOut,
    pub send: bool,
    pub keep: bool,
}

/// A snapshot being written: what becomes durable with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub generation: u64,
    pub counter: u64,
    pub hello: Option<u32>,
}

/// One UE's session at the EESE: its root, keysets, timers and counters.
/// What it seldom holds lives in `S`'s slots (inline for [`Eese`], boxed in
/// the table).
#[derive(Clone, Debug)]
pub(crate) struct Session<S: Storage = Inline> {
    pub root: RootKey,
    /// Per-UE te2e in seconds (0: the configured default).
    pub te2e_secs: u32,
    /// Highest trigger counter issued.
    pub counter: u64,
    /// Highest trigger counter a durable snapshot covers.
    pub durable_counter: u64,
    /// State changed since the last snapshot polled.
    pub dirty: bool,
    /// The snapshot being written.
    pub inflight: S::Slot<Written>,
    pub generation: u64,
    /// Highest hello sequence number seen.
    pub hello_seen: Option<u32>,
    /// Highest hello sequence number a durable snapshot covers. Nothing a
    /// hello caused goes out before its number is durable, so a hello
    /// replayed after a restore is stale (or its first copy had no effect).
    pub hello_durable: Option<u32>,
    pub current: Option<Current>,
    /// The current keyset's ciphers, expanded (kept while the session is
    /// active; the table drops them from sessions that go quiet).
    pub cipher: Kept<S>,
    pub previous: S::Slot<Previous>,
    /// Repeat the unconfirmed trigger at this time; `retx_left` more times
    /// on the timer, then only in front of data.
    pub retx_at: Instant,
    pub retx_left: u8,
    pub retx_shift: u8,
    /// A trigger (for the current keyset) to transmit.
    pub send_trigger: bool,
    pub refusal: S::Slot<Refusal>,
    /// Octets of unauthenticated input not yet answered.
    pub credit: u16,
    /// No answer to unauthenticated input before this time.
    pub quiet_until: Instant,
    /// A rekey waits for `provide_rand`.
    pub rand_pending: bool,
}

impl<S: Storage> Session<S> {
    /// A session for a UE whose root (e2e_int_key from the EMKS, or the
    /// e2mKEYSET / e2m_key of solutions #1/#2) the caller fetched. It has no
    /// keyset yet.
    pub(crate) fn new(root: RootKey, te2e: Option<Duration>) -> Self {
        Session {
            root,
            te2e_secs: te2e.map_or(0, lifetime_secs),
            counter: 0,
            durable_counter: 0,
            dirty: true,
            inflight: Default::default(),
            generation: 0,
            hello_seen: None,
            hello_durable: None,
            current: None,
            cipher: Kept::default(),
            previous: Default::default(),
            retx_at: Instant::NEVER,
            retx_left: 0,
            retx_shift: 0,
            send_trigger: false,
            refusal: Default::default(),
            credit: 0,
            quiet_until: Instant(0),
            rand_pending: false,
        }
    }

    /// A hello was taken whose number no durable snapshot covers yet.
    pub(crate) fn hello_pending(&self) -> bool {
        self.hello_seen > self.hello_durable
    }

    pub(crate) fn te2e(&self, cfg: &EeseConfig) -> Duration {
        if self.te2e_secs == 0 {
            cfg.te2e
        } else {
            Duration::from_secs(u64::from(self.te2e_secs))
        }
    }

    pub(crate) fn auth(&self, cfg: &EeseConfig) -> ControlAuth {
        ControlAuth::new(&PreparedRoot::new(&self.root, cfg.profile).control_key())
    }

    /// The current keyset, when it is valid at `now`.
    pub(crate) fn valid(&self, now: Instant) -> Option<&Current> {
        self.current
            .as_ref()
            .filter(|c| matches!(c.state, KeyState::Valid { deadline } if now < deadline))
    }

    /// Starts a new keyset now (TR step 4): takes a RAND (or asks for one
    /// with [`Event::RandNeeded`]), derives it, and queues its trigger when
    /// `announce`.
    pub(crate) fn rekey(&mut self, now: Instant, env: &mut Env<'_>, announce: bool) {
        match env.rng.rand() {
            Some(rand) => self.install(now, env, rand, announce),
            None => {
                if !self.rand_pending {
                    self.rand_pending = true;
                    env.events.push(Event::RandNeeded);
                }
            }
        }
    }

    /// Hands in the RAND the EMKS provided; ignored when no rekey waits.
    pub(crate) fn provide_rand(&mut self, now: Instant, env: &mut Env<'_>, rand: Rand) {
        if self.rand_pending {
            self.install(now, env, rand, true);
        }
    }

    fn install(&mut self, now: Instant, env: &mut Env<'_>, rand: Rand, announce: bool) {
        let ksi = self.current.as_ref().map_or(Ksi(0), |c| c.ks.ksi.next());
        let counter = self.counter.saturating_add(1);
        let Ok(ks) = Keyset::derive(
            &self.root,
            ksi,
            counter,
            rand,
            env.cfg.profile,
            env.cfg.suite,
            env.cfg.soft_limit,
        ) else {
            // Only an unknown configured suite fails; nothing changes then.
            return;
        };
        self.rand_pending = false;
        self.counter = counter;
        self.dirty = true;
        let deadline = now.after(self.te2e(env.cfg));
        let old = self.current.replace(Current {
            ks,
            state: KeyState::Valid { deadline },
            confirmed: false,
            announced: false,
        });
        self.cipher.clear();
        self.previous.set(old.map(|c| Previous {
            ks: c.ks,
            until: now.after(env.cfg.grace),
            state: match c.state {
                KeyState::Valid { deadline } if now < deadline => c.state,
                KeyState::Valid { .. } => KeyState::Expired(Cause::TE2E_EXPIRED),
                other => other,
            },
        }));
        self.send_trigger = announce;
        self.retx_at = now.after(env.cfg.trigger_retransmit);
        self.retx_left = env.cfg.trigger_attempts;
        self.retx_shift = 0;
        env.events.push(Event::Rekeyed { ksi, counter });
    }

    /// The UE showed it holds the current keyset.
    pub(crate) fn confirm(&mut self, now: Instant, env: &mut Env<'_>) {
        if let Some(c) = &mut self.current
            && !c.confirmed
        {
            c.confirmed = true;
            env.events.push(Event::Confirmed {
                ksi: c.ks.ksi,
                counter: c.ks.counter,
            });
            self.retx_left = 0;
            self.retx_at = Instant::NEVER;
            self.unkeep_refusal();
        }
        if self.previous.get().is_some_and(|p| p.until <= now) {
            self.previous.set(None);
        }
    }

    /// Refuses a message by name: the error goes out, and is kept to repeat.
    pub(crate) fn refuse(&mut self, error: ErrorOut) {
        self.refusal.put(Refusal {
            error,
            send: true,
            keep: true,
        });
    }

    /// The kept refusal goes out again.
    pub(crate) fn repeat_refusal(&mut self) {
        if let Some(r) = self.refusal.get_mut()
            && r.keep
        {
            r.send = true;
        }
    }

    /// The refusal to send now, if any.
    pub(crate) fn refusal_to_send(&self) -> Option<ErrorOut> {
        self.refusal.get().filter(|r| r.send).map(|r| r.error)
    }

    /// The UE confirmed the keyset after the refusal: it is no longer kept
    /// (but still sent if it has not gone out yet).
    fn unkeep_refusal(&mut self) {
        match self.refusal.get_mut() {
            Some(r) if r.send => r.keep = false,
            Some(_) => self.refusal.set(None),
            None => {}
        }
    }

    /// The refusal went out.
    pub(crate) fn refusal_sent(&mut self) {
        match self.refusal.get_mut() {
            Some(r) if r.keep => r.send = false,
            Some(_) => self.refusal.set(None),
            None => {}
        }
    }

    /// The enterprise's "expire now" (TR §6.5.2.4): the current keyset stops
    /// at once; the next contact rekeys.
    pub(crate) fn expire_now(&mut self, now: Instant, env: &mut Env<'_>) {
        if let Some(c) = &mut self.current
            && matches!(c.state, KeyState::Valid { deadline } if now < deadline)
        {
            c.state = KeyState::Expired(Cause::EXPIRED_BY_ENTERPRISE);
            self.retx_left = 0;
            self.retx_at = Instant::NEVER;
            self.send_trigger = false;
            env.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::EXPIRED_BY_ENTERPRISE,
            });
        }
    }

    /// A new root (new e2e_int_key after a new AKA, or a new e2mKEYSET /
    /// e2m_key): every keyset of the old root is gone. Counters go on rising.
    pub(crate) fn replace_root(&mut self, env: &mut Env<'_>, root: RootKey) {
        self.root = root;
        self.previous.set(None);
        self.cipher.clear();
        self.retx_left = 0;
        self.retx_at = Instant::NEVER;
        self.rand_pending = false;
        self.send_trigger = false;
        self.refusal.set(None);
        self.hello_seen = None;
        self.hello_durable = None;
        self.dirty = true;
        if let Some(c) = self.current.take() {
            env.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::ROOT_REPLACED,
            });
        }
    }

    /// Sets this UE's te2e (`None`: the configured default), from the next
    /// keyset on.
    pub(crate) fn set_te2e(&mut self, te2e: Option<Duration>) {
        self.te2e_secs = te2e.map_or(0, lifetime_secs);
        self.dirty = true;
    }

    /// What [`SessionStatus`] reports.
    pub(crate) fn status(&self, now: Instant, cfg: &EeseConfig) -> SessionStatus {
        SessionStatus {
            keyset: self.current.as_ref().map(|c| KeysetStatus {
                ksi: c.ks.ksi,
                counter: c.ks.counter,
                state: match c.state {
                    KeyState::Valid { deadline } if now < deadline => KeysetState::Valid {
                        remaining: now.until(deadline),
                    },
                    KeyState::Valid { .. } => KeysetState::Expired(Cause::TE2E_EXPIRED),
                    KeyState::Expired(cause) => KeysetState::Expired(cause),
                    KeyState::Retired => KeysetState::Retired,
                },
                confirmed: c.confirmed,
                next_seq: c.ks.next_seq(),
            }),
            counter: self.counter,
            te2e: self.te2e(cfg),
            rand_pending: self.rand_pending,
        }
    }
}

/// A session as the enterprise may see it: no key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The current keyset, if any.
    pub keyset: Option<KeysetStatus>,
    /// Highest trigger counter issued to this UE.
    pub counter: u64,
    /// This UE's te2e.
    pub te2e: Duration,
    /// A rekey waits for a RAND from the EMKS.
    pub rand_pending: bool,
}

/// The current keyset of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysetStatus {
    /// KSI.
    pub ksi: Ksi,
    /// Trigger counter.
    pub counter: u64,
    /// Valid, expired or retired.
    pub state: KeysetState,
    /// The UE showed it holds it.
    pub confirmed: bool,
    /// The downlink sequence number it uses next (`None`: all used).
    pub next_seq: Option<u32>,
}

/// Whether a keyset may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysetState {
    /// Valid for this much longer (te2e).
    Valid {
        /// Time left.
        remaining: Duration,
    },
    /// Flagged invalid, for this reason.
    Expired(Cause),
    /// Restored from a snapshot: the next contact starts a new keyset.
    Retired,
}
