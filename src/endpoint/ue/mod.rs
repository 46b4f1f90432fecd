//! The UE side: one connection to one EESE.
//!
//! State lives here; [`receive`] holds what a datagram from the EESE does,
//! [`output`] the effects the caller polls (transmit, event) and the timers.
//!
//! A UE keeps nothing that must survive a restart: every time it starts it
//! draws a new [`UeNonce`] (its *start*), its hello carries it, and it
//! installs only keysets whose trigger is bound to it and whose keys mix it
//! in. So whatever its storage does (lost, rolled back, copied to another
//! device), no key it seals under was ever used by it or an earlier copy of
//! it (`docs/SECURITY.md` §4).

use zeroize::Zeroize;

use crate::kdf::{PreparedRoot, Rand, RootKey, UeNonce};
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
mod settings;

/// How far the UE trusts its current keyset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Sends and receives.
    Usable,
    /// Refused by the EESE or past its lifetime: neither sends nor receives.
    Expired(Cause),
}

#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub ks: Keyset,
    pub cipher: Expanded,
    pub status: Status,
    /// te2e as the trigger announced it, counted from its arrival, plus the
    /// grace period: it sends until then, and asks for the next keyset then.
    pub deadline: Instant,
    /// It receives until then (a grace period past `deadline`): downlink the
    /// EESE sent before it heard the UE ask still arrives.
    pub recv_until: Instant,
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

/// A UE endpoint.
///
/// `HOLD` is the largest payload, in octets, the UE takes: it keeps the last
/// one for retransmission after a key-expired error (TR 33.863 §6.5.2.3
/// step 5).
///
/// Sans-IO, in the poll style of quinn-proto: the caller feeds datagrams
/// ([`Ue::handle_datagram`]) and payloads ([`Ue::send`]), then drains the
/// effects in this order, after every call: [`Ue::poll_transmit`], then
/// [`Ue::poll_event`]; and calls [`Ue::handle_timeout`] at
/// [`Ue::poll_timeout`]. The UE asks for no storage: build a new one, with a
/// fresh [`UeNonce`] from the device's random source, every time the device
/// starts.
///
/// ```
/// use ciot_e2e::endpoint::{Eese, EeseConfig, Instant, Received, Ue, UeConfig, UeId};
/// use ciot_e2e::kdf::{int_key, Ck, CkIk, Ik, KdfProfile, Rand, UeNonce};
///
/// let ck_ik = CkIk::new(&Ck::from_bytes([1; 16]), &Ik::from_bytes([2; 16]));
/// let root = int_key(KdfProfile::Ts33220, &ck_ik);
/// let id = UeId::new(b"ue-1")?;
/// // Every start of the UE draws a new nonce from the device's random
/// // source (here a fixed one, for the example).
/// let mut ue: Ue = Ue::new(UeConfig::default(), root.clone(), id, UeNonce::from_bytes([9; 16]));
/// // RANDs from a counter, for the example; use OsRand or the EMKS.
/// let mut n = 0u8;
/// let rands = move || { n += 1; Some(Rand([n; 16])) };
/// let mut eese = Eese::new(EeseConfig::default(), root, rands);
/// let now = Instant::from_millis(0);
/// let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
///
/// // The UE takes a payload and says hello.
/// ue.send(now, b"temperature=21.5")?;
/// let hello = ue.poll_transmit(now, &mut a)?.unwrap();
///
/// // The EESE offers a keyset made for this start of the UE.
/// eese.handle_datagram(now, &mut a[..hello.len])?;
/// let trigger = eese.poll_transmit(now, &mut b)?.unwrap();
///
/// // The UE installs it and sends the held payload, which also confirms the
/// // keyset to the EESE.
/// ue.handle_datagram(now, &mut b[..trigger.len])?;
/// let data = ue.poll_transmit(now, &mut a)?.unwrap();
/// match eese.handle_datagram(now, &mut a[..data.len])? {
///     Received::Data(d) => assert_eq!(&a[d.payload], b"temperature=21.5"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ue<const HOLD: usize = 256> {
    pub(crate) cfg: Settings,
    pub(crate) root: RootKey,
    pub(crate) id: UeId,
    /// This start of the UE.
    pub(crate) nonce: UeNonce,
    /// Highest trigger counter accepted since this start.
    pub(crate) last_counter: u64,
    pub(crate) current: Option<Current>,
    pub(crate) previous: Option<Previous>,
    pub(crate) held: Held<HOLD>,
    /// A hello is wanted at this time ([`Instant::NEVER`]: not wanted).
    pub(crate) hello_due: Instant,
    /// The next hello back-off, in milliseconds.
    pub(crate) hello_backoff: u64,
    /// The next hello's sequence number (from 0 at every start).
    pub(crate) next_hello: u64,
    /// The hello due is a confirmation of the keyset in use: it goes out
    /// once, not repeated with back-off.
    pub(crate) confirming: bool,
    /// No hello that confirms a repeated trigger before this time.
    pub(crate) confirm_after: Instant,
    /// First uplink since the last authentic datagram from the EESE.
    pub(crate) unanswered_since: Instant,
    /// When the last authentic datagram came from the EESE (or the UE
    /// started).
    pub(crate) last_heard: Instant,
    pub(crate) events: Events,
    pub(crate) jitter: Jitter,
}

impl<const HOLD: usize> Ue<HOLD> {
    /// A UE with no keyset: its first datagram is a hello. `root` is
    /// `e2e_int_key` (derive it from CK/IK with [`crate::kdf::int_key`]) or
    /// an e2mKEYSET / e2m_key; `nonce` is 16 octets from the device's random
    /// source, drawn anew at every start (power-up, reboot, wake from a
    /// state that was stored) and never stored: it is what makes every key
    /// of this start new ([`UeNonce`]). Build it with [`UeNonce::from_bytes`]
    /// from a hardware random generator, or [`UeNonce::from_source`] from a
    /// [`RandSource`](super::RandSource). It also seeds the back-off jitter.
    #[must_use]
    // Inlined so that a caller writing the UE into its own storage (the C
    // API) builds it there, not on the stack first.
    #[inline(always)]
    pub fn new(cfg: UeConfig, root: RootKey, id: UeId, nonce: UeNonce) -> Self {
        let cfg = Settings::new(&cfg);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&nonce.0[..8]);
        Ue {
            cfg,
            root,
            id,
            nonce,
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
            confirming: false,
            confirm_after: Instant(0),
            unanswered_since: Instant::NEVER,
            last_heard: Instant(0),
            events: Events::new(),
            jitter: Jitter::new(u64::from_le_bytes(seed)),
        }
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

    /// This start's nonce (what its hellos carry).
    #[must_use]
    pub const fn nonce(&self) -> &UeNonce {
        &self.nonce
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
        })
    }

    /// The current keyset's RAND and suite keys (for key logs and tests).
    #[must_use]
    pub fn current_keys(&self) -> Option<(&Rand, &SuiteKeys)> {
        self.current.as_ref().map(|c| (&c.ks.rand, &c.ks.keys))
    }

    /// Highest trigger counter accepted since this start.
    #[must_use]
    pub const fn last_counter(&self) -> u64 {
        self.last_counter
    }

    /// Whether a payload waits to go out.
    #[must_use]
    pub fn holding(&self) -> bool {
        matches!(self.held.state, HeldState::Waiting { .. })
    }

    /// Whether [`Ue::send`] would refuse a payload at `now` with
    /// [`SendError::Busy`]: the previous one has not gone out, or it went
    /// out under the keyset in use and that keyset has stopped since (its
    /// lifetime ran out here, or the EESE refused it) with no newer one in:
    /// the EESE may yet name it refused, and its answer to the UE's hello
    /// (which the UE sends by itself) settles that.
    #[must_use]
    pub fn busy(&self, now: Instant) -> bool {
        if self.holding() {
            return true;
        }
        let HeldState::Sent { ksi, counter, .. } = self.held.state else {
            return false;
        };
        self.current.as_ref().is_some_and(|c| {
            c.ks.ksi == ksi
                && c.ks.counter == counter
                && (c.status != Status::Usable || c.deadline <= now)
        })
    }

    /// Takes a payload to send. It goes out at the next
    /// [`Ue::poll_transmit`] when a usable keyset exists ([`Sent::Queued`]),
    /// else after the next trigger ([`Sent::Held`]; a hello asks for it).
    /// The UE keeps it, so it can go out again if the EESE names it refused.
    /// It lives in the UE's memory only: a payload handed over and not yet
    /// sent is lost if the device restarts (delivery is at most once).
    ///
    /// # Errors
    /// [`SendError::PayloadTooLong`] over `HOLD` octets (or 65 535, more
    /// than any data message carries); [`SendError::Busy`] while
    /// [`Ue::busy`]: the previous payload has not gone out, or may yet be
    /// named refused (it would be lost if this one took its place). Nothing
    /// changes then.
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
        if self.busy(now) {
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
        if matches!(self.held.state, HeldState::Sent { .. }) {
            self.held.state = HeldState::Empty;
        }
        self.hello_backoff = self.cfg.hello_backoff_ms;
        self.hello_due = now;
    }

    /// Whether the current keyset may send at `now` (usable, within its
    /// lifetime).
    pub(crate) fn can_send(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.status == Status::Usable && now < c.deadline)
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
        // Wanted for itself: it repeats with back-off until answered.
        self.confirming = false;
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
}

impl<const HOLD: usize> core::fmt::Debug for Ue<HOLD> {
    /// Keys and the held payload are never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ue")
            .field("id", &self.id)
            .field("nonce", &self.nonce)
            .field("last_counter", &self.last_counter)
            .field("status", &self.status())
            .field("held_len", &self.held.len)
            .field("held", &self.held.state)
            .field("next_hello", &self.next_hello)
            .field("hello_due", &self.hello_due)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::time::Duration;

    use super::*;
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
        let mut ue: Ue<70_000> = Ue::new(UeConfig::default(), root(), id(), UeNonce([1; 16]));
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
            ..UeConfig::default()
        };
        let mut ue: Ue<16> = Ue::new(cfg, root(), id(), UeNonce([1; 16]));
        let mut out = [0u8; 256];
        for t in 0..3 {
            ue.handle_timeout(Instant(t));
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
    fn two_starts_with_the_same_root_and_id_say_hello_with_different_nonces() {
        let mut out = [0u8; 256];
        let mut a: Ue<16> = Ue::new(UeConfig::default(), root(), id(), UeNonce([1; 16]));
        let mut b: Ue<16> = Ue::new(UeConfig::default(), root(), id(), UeNonce([2; 16]));
        let ta = a.poll_transmit(Instant(0), &mut out).unwrap().unwrap();
        let ha = out[..ta.len].to_vec();
        let tb = b.poll_transmit(Instant(0), &mut out).unwrap().unwrap();
        let hb = &out[..tb.len];
        let na = crate::wire::HelloPacket::new_checked(&ha[..])
            .unwrap()
            .nonce();
        let nb = crate::wire::HelloPacket::new_checked(hb).unwrap().nonce();
        assert_eq!((na, nb), (UeNonce([1; 16]), UeNonce([2; 16])));
    }
}
