//! The UE side: one connection to one EESE.
//!
//! State lives here; [`receive`] holds what a datagram from the EESE does,
//! [`output`] the effects the caller polls (persist, transmit, event) and
//! the timers.

use core::num::NonZeroU64;

use zeroize::Zeroize;

use crate::kdf::{PreparedRoot, RootKey};
use crate::protect::replay::ReplayWindow;
use crate::protect::suite::SuiteKeys;
use crate::wire::{Cause, ControlAuth, Ksi};

use super::config::UeConfig;
use super::effects::{Event, SendError, Sent, UeId};
use super::events::Events;
use super::keyset::{Expanded, Keyset};
use super::time::{Instant, Jitter};
use settings::Settings;

mod output;
mod receive;
mod restore;
mod settings;

/// How far the UE trusts its current keyset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Sends and receives.
    Usable,
    /// Refused by the EESE or past its lifetime: neither sends nor receives.
    Expired(Cause),
    /// Restored from a snapshot: sends (from its reserved sequence numbers)
    /// but receives nothing, since the window that would stop a replay is
    /// gone; the UE asks for a new keyset at once.
    Retired,
}

#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub ks: Keyset,
    pub cipher: Expanded,
    pub status: Status,
    /// te2e as the trigger announced it, counted from its arrival.
    pub deadline: Instant,
}

/// The keyset a trigger replaced while usable: opens in-flight downlink
/// until `until`, never sends. Only what receiving needs is kept (its
/// ciphers are expanded per message for this short while).
#[derive(Clone, Debug)]
pub(crate) struct Previous {
    pub ksi: Ksi,
    pub counter: u64,
    pub keys: SuiteKeys,
    pub recv: ReplayWindow,
    pub until: Instant,
}

/// Where the held payload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeldState {
    /// Nothing held.
    Empty,
    /// To go out under the next usable keyset; `again` when it went out
    /// before and an error named it refused (TR step 5).
    Waiting { again: bool },
    /// Went out as `(ksi, counter, seq)`; kept in case an error names it.
    Sent { ksi: Ksi, counter: u64, seq: u32 },
}

/// The payload a UE keeps until the next one, so it can go out again after
/// a key-expired error that names it. Zeroized when dropped or replaced.
pub(crate) struct Held<const N: usize> {
    pub buf: [u8; N],
    /// Octets held: at most `N` and `u16::MAX` (no data message carries
    /// more than 65 507 octets).
    pub len: u16,
    pub state: HeldState,
}

impl<const N: usize> Held<N> {
    /// The payload held.
    pub(crate) fn payload(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl<const N: usize> Drop for Held<N> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl<const N: usize> Clone for Held<N> {
    fn clone(&self) -> Self {
        Held {
            buf: self.buf,
            len: self.len,
            state: self.state,
        }
    }
}

/// The values a snapshot holds that decide what may be sent or delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Durable {
    pub last_counter: u64,
    /// Counter of the keyset the snapshot holds, if any (a keyset's counter
    /// is above the last accepted, so never 0).
    pub keyset: Option<NonZeroU64>,
    /// Uplink sequence numbers below this may be used.
    pub send_limit: u64,
    /// Hello sequence numbers below this may be used.
    pub hello_limit: u64,
}

impl Durable {
    /// Nothing is durable yet.
    pub const NOTHING: Durable = Durable {
        last_counter: 0,
        keyset: None,
        send_limit: 0,
        hello_limit: 0,
    };
}

/// A UE endpoint.
///
/// `HOLD` is the largest payload, in octets, the UE takes: it keeps the last
/// one for retransmission after a key-expired error (TR 33.863 §6.5.2.3
/// step 5).
///
/// Sans-IO, in the poll style of quinn-proto: the caller feeds datagrams
/// ([`Ue::handle_datagram`]) and payloads ([`Ue::send`]), then drains the
/// effects in this order, after every call: [`Ue::poll_persist`] (store
/// the bytes, then [`Ue::persisted`]), [`Ue::poll_transmit`],
/// [`Ue::poll_event`]; and calls [`Ue::handle_timeout`] at
/// [`Ue::poll_timeout`]. A datagram whose safety depends on a snapshot is not
/// handed out before that snapshot is reported durable.
///
/// ```
/// use ciot_e2e::endpoint::{Eese, EeseConfig, Instant, Received, Ue, UeConfig, UeId};
/// use ciot_e2e::kdf::{int_key, Ck, CkIk, Ik, KdfProfile, Rand};
///
/// let ck_ik = CkIk::new(&Ck::from_bytes([1; 16]), &Ik::from_bytes([2; 16]));
/// let root = int_key(KdfProfile::Ts33220, &ck_ik);
/// let id = UeId::new(b"ue-1")?;
/// let mut ue: Ue = Ue::new(UeConfig::default(), root.clone(), id, 7);
/// // RANDs from a counter, for the example; use OsRand or the EMKS.
/// let mut n = 0u8;
/// let rands = move || { n += 1; Some(Rand([n; 16])) };
/// let mut eese = Eese::new(EeseConfig::default(), root, rands);
/// let now = Instant::from_millis(0);
/// let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
/// let mut disk = Vec::new();
///
/// // The UE persists its reservation, then says hello.
/// ue.send(now, b"temperature=21.5")?;
/// let p = ue.poll_persist(&mut a).unwrap();
/// disk = a[..p.len()].to_vec();
/// ue.persisted(p)?;
/// let hello = ue.poll_transmit(now, &mut a)?.unwrap();
///
/// // The EESE answers with a trigger (after persisting its own state).
/// eese.handle_datagram(now, &mut a[..hello.len])?;
/// let p = eese.poll_persist(&mut b).unwrap();
/// eese.persisted(p)?;
/// let trigger = eese.poll_transmit(now, &mut b)?.unwrap();
///
/// // The UE installs the keyset, persists, and sends the held payload.
/// ue.handle_datagram(now, &mut b[..trigger.len])?;
/// let p = ue.poll_persist(&mut a).unwrap();
/// ue.persisted(p)?;
/// let data = ue.poll_transmit(now, &mut a)?.unwrap();
/// match eese.handle_datagram(now, &mut a[..data.len])? {
///     Received::Data(d) => assert_eq!(&a[d.payload], b"temperature=21.5"),
///     other => panic!("{other:?}"),
/// }
/// # let _ = disk;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ue<const HOLD: usize = 256> {
    pub(crate) cfg: Settings,
    pub(crate) root: RootKey,
    pub(crate) id: UeId,
    /// Highest trigger counter accepted.
    pub(crate) last_counter: u64,
    pub(crate) current: Option<Current>,
    pub(crate) previous: Option<Previous>,
    pub(crate) held: Held<HOLD>,
    /// A hello is wanted at this time ([`Instant::NEVER`]: not wanted).
    pub(crate) hello_due: Instant,
    /// The next hello back-off, in milliseconds.
    pub(crate) hello_backoff: u64,
    /// The next hello's sequence number.
    pub(crate) next_hello: u64,
    /// First uplink since the last authentic datagram from the EESE.
    pub(crate) unanswered_since: Instant,
    /// When the last authentic datagram came from the EESE (or the UE
    /// started).
    pub(crate) last_heard: Instant,
    /// Desired reservations (what the next snapshot holds).
    pub(crate) send_limit: u64,
    pub(crate) hello_limit: u64,
    pub(crate) durable: Durable,
    /// What the snapshot being written holds; its generation is
    /// `generation` (one write is outstanding at a time).
    pub(crate) inflight: Option<Durable>,
    pub(crate) generation: u64,
    pub(crate) events: Events,
    pub(crate) jitter: Jitter,
}

impl<const HOLD: usize> Ue<HOLD> {
    /// A UE with no keyset: its first datagram is a hello (after its first
    /// snapshot is persisted). `root` is `e2e_int_key` (derive it from CK/IK
    /// with [`crate::kdf::int_key`]) or an e2mKEYSET / e2m_key; `seed` feeds
    /// the back-off jitter (any value; differing per device spreads hellos).
    #[must_use]
    // Inlined so that a caller writing the UE into its own storage (the C
    // API) builds it there, not on the stack first.
    #[inline(always)]
    pub fn new(cfg: UeConfig, root: RootKey, id: UeId, seed: u64) -> Self {
        let cfg = Settings::new(&cfg);
        Ue {
            cfg,
            root,
            id,
            last_counter: 0,
            current: None,
            previous: None,
            held: Held {
                buf: [0; HOLD],
                len: 0,
                state: HeldState::Empty,
            },
            hello_due: Instant(0),
            hello_backoff: cfg.hello_backoff_ms,
            next_hello: 0,
            unanswered_since: Instant::NEVER,
            last_heard: Instant(0),
            send_limit: 0,
            hello_limit: 0,
            durable: Durable::NOTHING,
            inflight: None,
            generation: 0,
            events: Events::new(),
            jitter: Jitter::new(seed),
        }
    }

    /// Back to the state [`Ue::new`] makes, keeping the configuration, the
    /// root, the identifier and the jitter generator; field by field, so no
    /// second UE is built on the stack. The held payload is zeroized.
    pub(crate) fn reset(&mut self) {
        self.last_counter = 0;
        self.current = None;
        self.previous = None;
        self.held.buf.zeroize();
        self.held.len = 0;
        self.held.state = HeldState::Empty;
        self.hello_due = Instant(0);
        self.hello_backoff = self.cfg.hello_backoff_ms;
        self.next_hello = 0;
        self.unanswered_since = Instant::NEVER;
        self.last_heard = Instant(0);
        self.send_limit = 0;
        self.hello_limit = 0;
        self.durable = Durable::NOTHING;
        self.inflight = None;
        self.generation = 0;
        self.events = Events::new();
    }

    /// The configuration, to the millisecond (the UE keeps its intervals
    /// in whole milliseconds, which is all its timers use).
    #[must_use]
    pub fn config(&self) -> UeConfig {
        self.cfg.config()
    }

    /// The UE's identifier.
    #[must_use]
    pub const fn id(&self) -> &UeId {
        &self.id
    }

    pub(crate) fn auth(&self) -> ControlAuth {
        ControlAuth::new(&PreparedRoot::new(&self.root, self.cfg.profile).control_key())
    }

    /// The keyset in use, if any.
    #[must_use]
    pub fn status(&self) -> Option<UeStatus> {
        self.current.as_ref().map(|c| UeStatus {
            ksi: c.ks.ksi,
            counter: c.ks.counter,
            usable: c.status == Status::Usable,
            retired: c.status == Status::Retired,
        })
    }

    /// The current keyset's RAND and suite keys (for key logs and tests).
    #[must_use]
    pub fn current_keys(&self) -> Option<(&crate::kdf::Rand, &crate::protect::suite::SuiteKeys)> {
        self.current.as_ref().map(|c| (&c.ks.rand, &c.ks.keys))
    }

    /// Highest trigger counter accepted.
    #[must_use]
    pub const fn last_counter(&self) -> u64 {
        self.last_counter
    }

    /// Whether a payload waits to go out.
    #[must_use]
    pub fn holding(&self) -> bool {
        matches!(self.held.state, HeldState::Waiting { .. })
    }

    /// Takes a payload to send. It goes out at the next
    /// [`Ue::poll_transmit`] when a usable keyset exists ([`Sent::Queued`]),
    /// else after the next trigger ([`Sent::Held`]; a hello asks for it).
    /// The UE keeps it, so it can go out again if the EESE names it refused.
    ///
    /// # Errors
    /// [`SendError::PayloadTooLong`] over `HOLD` octets (or 65 535, more
    /// than any data message carries); [`SendError::Busy`] while the
    /// previous payload has not gone out. Nothing changes then.
    pub fn send(&mut self, now: Instant, payload: &[u8]) -> Result<Sent, SendError> {
        let max = HOLD.min(usize::from(u16::MAX));
        let len = match u16::try_from(payload.len()) {
            Ok(len) if payload.len() <= HOLD => len,
            _ => {
                return Err(SendError::PayloadTooLong {
                    len: payload.len(),
                    max,
                });
            }
        };
        if self.holding() {
            return Err(SendError::Busy);
        }
        self.advance(now);
        if let Some(old) = self.held.buf.get_mut(..usize::from(self.held.len)) {
            old.zeroize();
        }
        if let Some(slot) = self.held.buf.get_mut(..payload.len()) {
            slot.copy_from_slice(payload);
        }
        self.held.len = len;
        self.held.state = HeldState::Waiting { again: false };
        if self.can_send(now) {
            Ok(Sent::Queued)
        } else {
            self.want_hello(now);
            Ok(Sent::Held)
        }
    }

    /// A new root after a new AKA run: every keyset of the old root is gone
    /// (reported as expired with cause root-replaced), the trigger counter
    /// starts again, and a hello asks for a keyset of the new root. A payload
    /// waiting to go out still does, under the new root; one already sent is
    /// forgotten.
    pub fn replace_root(&mut self, now: Instant, root: RootKey) {
        if let Some(c) = self.current.take() {
            self.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::ROOT_REPLACED,
            });
        }
        self.root = root;
        self.previous = None;
        self.last_counter = 0;
        self.send_limit = 0;
        if matches!(self.held.state, HeldState::Sent { .. }) {
            self.held.state = HeldState::Empty;
        }
        // Nothing of the old root's snapshots speaks for the new one.
        self.durable = Durable::NOTHING;
        self.inflight = None;
        self.hello_backoff = self.cfg.hello_backoff_ms;
        self.hello_due = now;
    }

    /// Whether the current keyset may send at `now` (usable or retired,
    /// within its lifetime).
    pub(crate) fn can_send(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|c| {
            matches!(c.status, Status::Usable | Status::Retired) && now < c.deadline
        })
    }

    /// Whether the UE holds a keyset it can receive under.
    pub(crate) fn has_usable(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.status == Status::Usable)
    }

    /// Asks for a hello now, unless one is already scheduled (a repeat
    /// waiting out its back-off stays where it is).
    pub(crate) fn want_hello(&mut self, now: Instant) {
        if self.hello_due == Instant::NEVER {
            self.hello_due = now;
        }
    }

    /// Something authentic came from the EESE at `now`: it is there.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.unanswered_since = Instant::NEVER;
        self.last_heard = now;
    }
}

/// The UE's current keyset, as [`Ue::status`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UeStatus {
    /// KSI.
    pub ksi: Ksi,
    /// Trigger counter that installed it.
    pub counter: u64,
    /// Sends and receives.
    pub usable: bool,
    /// Restored from a snapshot: sends only, until a new keyset arrives.
    pub retired: bool,
}

impl<const HOLD: usize> core::fmt::Debug for Ue<HOLD> {
    /// Keys and the held payload are never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ue")
            .field("id", &self.id)
            .field("last_counter", &self.last_counter)
            .field("status", &self.status())
            .field("held_len", &self.held.len)
            .field("held", &self.held.state)
            .field("durable", &self.durable)
            .field("inflight", &self.inflight.map(|_| self.generation))
            .field("send_limit", &self.send_limit)
            .field("hello_due", &self.hello_due)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use core::time::Duration;

    use super::*;
    use crate::endpoint::UE_SNAPSHOT_LEN;
    use crate::kdf::{RootBytes, RootKind};

    fn root() -> RootKey {
        RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]))
    }

    fn id() -> UeId {
        UeId::new(b"ue-test").unwrap()
    }

    #[test]
    fn a_payload_no_data_message_can_carry_is_refused_even_with_a_larger_hold() {
        // Taken and then never sent, before: the seal refused it on every poll.
        let mut ue: Ue<70_000> = Ue::new(UeConfig::default(), root(), id(), 1);
        let big = std::vec![0u8; 65_536];
        assert_eq!(
            ue.send(Instant(0), &big),
            Err(SendError::PayloadTooLong {
                len: 65_536,
                max: 65_535
            })
        );
        assert!(!ue.holding());
    }

    #[test]
    fn a_huge_hello_back_off_saturates_instead_of_panicking() {
        // `Duration * 2` panicked on overflow when the back-off doubled.
        let cfg = UeConfig {
            hello_backoff: Duration::MAX,
            hello_backoff_max: Duration::MAX,
            hello_reserve: 1,
            ..UeConfig::default()
        };
        let mut ue: Ue<16> = Ue::new(cfg, root(), id(), 1);
        let mut out = [0u8; 256];
        let mut snap = [0u8; UE_SNAPSHOT_LEN];
        for t in 0..3 {
            ue.handle_timeout(Instant(t));
            if let Some(p) = ue.poll_persist(&mut snap) {
                ue.persisted(p).unwrap();
            }
            let _ = ue.poll_transmit(Instant(t), &mut out);
            ue.hello_due = Instant(t);
        }
        assert!(
            ue.next_hello >= 2,
            "hellos went out and doubled the back-off"
        );
        assert_eq!(ue.hello_backoff, u64::MAX);
    }

    #[test]
    fn restore_in_place_is_restore_on_a_ue_that_ran() {
        let mut ue: Ue<16> = Ue::new(UeConfig::default(), root(), id(), 9);
        let mut snap = [0u8; UE_SNAPSHOT_LEN];
        let mut out = [0u8; 256];
        ue.send(Instant(5), b"held").unwrap();
        let p = ue.poll_persist(&mut snap).unwrap();
        let len = p.len();
        ue.persisted(p).unwrap();
        ue.poll_transmit(Instant(5), &mut out).unwrap();
        let fresh: Ue<16> =
            Ue::restore(UeConfig::default(), root(), id(), 9, &snap[..len]).unwrap();
        ue.restore_in_place(&snap[..len]).unwrap();
        // Everything but the jitter generator, which keeps running.
        assert_eq!(format!("{ue:?}"), format!("{fresh:?}"));
        assert_eq!(ue.poll_timeout(), fresh.poll_timeout());
        assert_eq!(ue.next_hello, fresh.next_hello);
        assert_eq!(ue.hello_backoff, fresh.hello_backoff);
        assert!(ue.poll_event().is_none());
        assert_eq!(ue.held.len, 0);
        // A refused snapshot changes nothing.
        let before = format!("{ue:?}");
        assert!(ue.restore_in_place(&snap[..len - 1]).is_err());
        assert_eq!(format!("{ue:?}"), before);
    }
}
