//! The EESE side of one UE (also the HSE of solution #1 and the EMSE of
//! solution #2, given their root): the session both [`Eese`] (one UE, no
//! heap) and [`EeseTable`](super::EeseTable) (many UEs) run.
//!
//! State lives here; [`receive`] holds what a datagram from the UE does,
//! [`output`] sending, the polled effects and the timers, [`restore`] the
//! snapshot.
//!
//! A new keyset is first *offered*: made for one start of the UE (the nonce
//! of its hello), its trigger sent with CONFIRM, and nothing sealed under
//! it. It becomes the keyset in use (*promoted*) when the UE uses it:
//! authentic data under it, or a fresh hello that names it. Only then does
//! its te2e start, does the EESE send under it, and does the UE's address
//! count as proven. So nothing a hello says, replayed or relayed, changes
//! what the EESE sends under or where, and no delay of a trigger makes a
//! keyset arrive expired.

use core::time::Duration;

use crate::kdf::{PreparedRoot, Rand, RootKey, UeNonce};
use crate::wire::{Cause, ControlAuth, Ksi};

use super::config::EeseConfig;
use super::effects::{Event, RandSource};
use super::keyset::Keyset;
use super::slot::{Inline, Kept, Slot, Storage};
use super::snapshot::COUNTER_RESERVE;
use super::time::{Instant, lifetime_secs};

mod output;
mod receive;
mod restore;
mod single;

pub use single::Eese;

/// Octets of answers to input over the UE's proven address a session may
/// still owe: the budget never exceeds what that address sent, and this
/// caps what an idle attacker could bank.
pub(crate) const CREDIT_CAP: u16 = 512;

/// What an answer to data costs: a key-expired error and a trigger.
pub(crate) const REFUSAL_COST: u16 =
    (crate::wire::KeyExpiredRepr::LEN + crate::wire::TriggerRepr::LEN) as u16;
/// What a trigger costs.
pub(crate) const TRIGGER_COST: u16 = crate::wire::TriggerRepr::LEN as u16;

/// How many starts of a UE besides the one in use an EESE session
/// remembers the last hello of (the ones it replaced, and ones whose hellos
/// it took), so that their recorded hellos, replayed in any order, stay
/// stale. A hello of a start older than these (or replayed after the EESE
/// restored a snapshot) is taken, and gets only an offer that start alone
/// could use.
pub const START_MARKS: usize = 4;

/// The last hello seen from starts of the UE other than the one in use,
/// newest last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StartMarks {
    marks: [Option<(UeNonce, u32)>; START_MARKS],
}

impl StartMarks {
    /// The last hello seen from start `nonce`, if remembered.
    pub(crate) fn get(&self, nonce: &UeNonce) -> Option<u32> {
        self.marks
            .iter()
            .flatten()
            .find(|(n, _)| n == nonce)
            .map(|&(_, seq)| seq)
    }

    /// Remembers `seq` as the last hello of start `nonce` (the oldest start
    /// remembered makes room).
    pub(crate) fn note(&mut self, nonce: UeNonce, seq: u32) {
        let seq = self.get(&nonce).map_or(seq, |s| s.max(seq));
        let mut kept = [None; START_MARKS];
        let mut n = 0;
        for m in self.marks.iter().flatten().filter(|(m, _)| *m != nonce) {
            kept[n] = Some(*m);
            n += 1;
        }
        if n == START_MARKS {
            kept.rotate_left(1);
            n -= 1;
        }
        kept[n] = Some((nonce, seq));
        self.marks = kept;
    }
}

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

/// Where a datagram came from, and where an answer goes: the UE's proven
/// address (its last use of a new keyset came from there), or the address
/// its last fresh hello came from. Only answers to a hello, never larger
/// than the hello, go to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) enum Route {
    /// The UE's proven address.
    Peer,
    /// Where the UE's last fresh hello came from (not proven).
    Hello,
}

/// State of the keyset in use at the EESE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// Sends and receives until `deadline` (te2e, counted from the UE's
    /// first use).
    Valid { deadline: Instant },
    /// Flagged invalid (TR step 2); authentic contact under it is answered
    /// with a key-expired error and a new offer.
    Expired(Cause),
    /// Restored from a snapshot: its replay window is gone, so nothing under
    /// it is delivered; authentic contact under it starts a new offer.
    Retired,
}

/// The keyset in use: one the UE used after it was offered (or one restored
/// from a snapshot, retired).
#[derive(Clone, Debug)]
pub(crate) struct Current {
    /// Made for the UE start `Session::ue` (always set while a keyset is
    /// in use).
    pub ks: Keyset,
    pub state: KeyState,
}

/// A keyset offered to one start of the UE (`nonce`): its trigger goes
/// out with CONFIRM; nothing is sealed under it until the UE uses it.
#[derive(Clone, Debug)]
pub(crate) struct Offer {
    pub ks: Keyset,
    /// The UE start it is offered to.
    pub nonce: UeNonce,
    /// The newest fresh hello of that start (for its hellos' freshness).
    pub hello_seq: Option<u32>,
    /// Where its trigger went: repeated on the timer only to the proven
    /// address.
    pub route: Route,
    /// Made by the EESE itself (te2e or the soft limit ran out, it has data
    /// to send, the enterprise asked): its repeats are free. Repeats of an
    /// offer made in answer to input (a hello, a refused or retired
    /// message, possibly held back and relayed) are paid from the credit
    /// of the address they go to, like the first answer.
    pub own: bool,
}

/// Which offer: the one to the UE start the keyset in use belongs to, or
/// the one to another start (a UE that started again, or a hello of an old
/// start replayed: only that start can use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Offer,
    Newcomer,
}

/// The keyset a promotion replaced, kept (receive only) for the grace
/// period.
#[derive(Clone, Debug)]
pub(crate) struct Previous {
    pub ks: Keyset,
    /// The UE start it was made for.
    pub nonce: UeNonce,
    /// Delivers in-flight data until then, if it was valid when replaced.
    pub until: Instant,
    pub state: KeyState,
}

/// A key-expired error to send, bound to the UE start of the keyset it
/// refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorOut {
    pub ksi: Ksi,
    pub cause: Cause,
    pub counter: u64,
    pub refused: Option<u32>,
    pub nonce: UeNonce,
}

/// The last message refused by name: to send (`send`, and where), and kept
/// (`keep`) until the UE uses the keyset that followed, so that a hello that
/// shows the UE may have missed the error gets it again (the UE sends a
/// payload again only if it still holds exactly that message, so repeating
/// it is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub error: ErrorOut,
    pub send: Option<Route>,
    pub keep: bool,
}

/// An offer to make (waiting for a RAND from the EMKS, or being made), and
/// where its trigger is to go (`None`: nowhere now; the UE's next hello
/// fetches it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RandWait {
    pub nonce: UeNonce,
    pub hello: Option<u32>,
    pub route: Option<Route>,
    /// The offer is the EESE's own ([`Offer::own`]).
    pub own: bool,
}

/// A snapshot being written: what becomes durable with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub generation: u64,
    pub counter: u64,
}

/// What a table keeps of a session it removed (its hello marks and
/// counter), so that the UE's old hellos stay old and its counters keep
/// rising if the session is made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct Tombstone {
    pub ue: Option<UeNonce>,
    pub hello_seen: Option<u32>,
    pub counter: u64,
}

/// One UE's session at the EESE: its root, keysets, timers and counters.
/// What it seldom holds lives in `S`'s slots (inline for [`Eese`], boxed in
/// the table).
#[derive(Clone, Debug)]
pub(crate) struct Session<S: Storage = Inline> {
    pub root: RootKey,
    /// Per-UE te2e in seconds (0: the configured default).
    pub te2e_secs: u32,
    /// Highest trigger counter issued (offers included).
    pub counter: u64,
    /// Highest trigger counter a durable snapshot covers.
    pub durable_counter: u64,
    /// The first counter issued under the clock floor since the session
    /// was made or restored: a session that loses its state issues above
    /// it without any write, so only counters past it need writing.
    pub floor_counter: u64,
    /// The next offer's counter is at least [`counter_floor`] of the time:
    /// set when the session is made or restored, so a session that lost its
    /// state (or went back to an old one) never issues a counter again,
    /// whatever its RAND source does, as long as its clock has moved on
    /// since (a restart takes far longer than a millisecond).
    pub floor_due: bool,
    /// State changed since the last snapshot polled.
    pub dirty: bool,
    /// The snapshot being written.
    pub inflight: S::Slot<Written>,
    pub generation: u64,
    /// The UE start the keyset in use belongs to.
    pub ue: Option<UeNonce>,
    /// Highest hello sequence number seen from that start.
    pub hello_seen: Option<u32>,
    /// The same for a few other starts (earlier ones, or ones whose
    /// hellos were replayed).
    pub starts: S::Slot<StartMarks>,
    /// KSI of the last keyset made.
    pub last_ksi: Option<Ksi>,
    pub current: Option<Current>,
    /// The current keyset's ciphers, expanded (kept while the session is
    /// active; the table drops them from sessions that go quiet).
    pub cipher: Kept<S>,
    /// An offer to the start `ue`.
    pub offer: S::Slot<Offer>,
    /// An offer to another start.
    pub newcomer: S::Slot<Offer>,
    pub previous: S::Slot<Previous>,
    /// Repeat the offer's trigger at this time; `retx_left` more times.
    pub retx_at: Instant,
    pub retx_left: u8,
    pub retx_shift: u8,
    /// Triggers to transmit, and where: the offer's, the newcomer's, the
    /// current keyset's (a repeat that answers a check-in).
    pub offer_to: Option<Route>,
    pub newcomer_to: Option<Route>,
    pub current_to: Option<Route>,
    pub refusal: S::Slot<Refusal>,
    /// Octets from the proven address not yet spent on answers.
    pub credit: u16,
    /// The same for the address the last fresh hello came from, while it is
    /// not proven: it becomes `credit` when the UE proves it.
    pub hello_credit: u16,
    /// No answer to unauthenticated input before this time.
    pub quiet_until: Instant,
    /// An offer waits for `provide_rand`.
    pub rand_wait: S::Slot<RandWait>,
    /// Set when an offer was promoted by input over this route; the table
    /// reads it to move the UE's proven address.
    pub promoted_from: Option<Route>,
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
            floor_counter: 0,
            floor_due: true,
            // Nothing to write before a keyset is taken into use.
            dirty: false,
            inflight: Default::default(),
            generation: 0,
            ue: None,
            hello_seen: None,
            starts: Default::default(),
            last_ksi: None,
            current: None,
            cipher: Kept::default(),
            offer: Default::default(),
            newcomer: Default::default(),
            previous: Default::default(),
            retx_at: Instant::NEVER,
            retx_left: 0,
            retx_shift: 0,
            offer_to: None,
            newcomer_to: None,
            current_to: None,
            refusal: Default::default(),
            credit: 0,
            hello_credit: 0,
            quiet_until: Instant(0),
            rand_wait: Default::default(),
            promoted_from: None,
        }
    }

    /// A session made again for a UE whose earlier one a table removed.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn from_tombstone(root: RootKey, t: Tombstone) -> Self {
        let mut s = Session::new(root, None);
        s.ue = t.ue;
        s.hello_seen = t.hello_seen;
        s.counter = t.counter;
        s
    }

    /// What a table keeps when it removes this session.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn tombstone(&self) -> Tombstone {
        Tombstone {
            ue: self.ue,
            hello_seen: self.hello_seen,
            counter: self.counter,
        }
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

    /// The offer slot for `which`.
    pub(crate) fn slot(&self, which: Which) -> &S::Slot<Offer> {
        match which {
            Which::Offer => &self.offer,
            Which::Newcomer => &self.newcomer,
        }
    }

    /// The offer slot for `which`, to change.
    pub(crate) fn slot_mut(&mut self, which: Which) -> &mut S::Slot<Offer> {
        match which {
            Which::Offer => &mut self.offer,
            Which::Newcomer => &mut self.newcomer,
        }
    }

    /// Which offer slot is for the UE start `nonce`: the offer when it is
    /// the start the keyset in use belongs to, else the newcomer's.
    pub(crate) fn which_for(&self, nonce: UeNonce) -> Which {
        if Some(nonce) == self.ue {
            Which::Offer
        } else {
            Which::Newcomer
        }
    }

    /// Offers a new keyset (TR step 4) to the UE start `nonce`, its trigger
    /// to go over `route`: takes a RAND (or asks for one with
    /// [`Event::RandNeeded`]) and derives it. An offer to that start that is
    /// out already goes again instead (the UE missed its trigger), unless
    /// the UE accepted it already (`theirs`, the highest counter it says it
    /// accepted, reaches it): it asks again because that keyset ran out.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        env: &mut Env<'_>,
        nonce: UeNonce,
        hello: Option<u32>,
        theirs: u64,
        route: Route,
    ) {
        let which = self.which_for(nonce);
        if let Some(o) = self.slot_mut(which).get_mut()
            && o.nonce == nonce
            && o.ks.counter > theirs
        {
            o.hello_seq = o.hello_seq.max(hello);
            if route == Route::Peer {
                o.route = Route::Peer;
            }
            self.send_offer(which, route);
            return;
        }
        let wanted = RandWait {
            nonce,
            hello,
            route: Some(route),
            own: false,
        };
        match env.rng.rand() {
            Some(rand) => self.install(now, env, wanted, rand),
            None => {
                match self.rand_wait.get().copied() {
                    None => env.events.push(Event::RandNeeded),
                    Some(w) if w.nonce != nonce => self.remember_start(w.nonce, w.hello),
                    Some(_) => {}
                }
                self.rand_wait.put(wanted);
            }
        }
    }

    /// Keeps the last hello seen from start `nonce` (one that is no longer
    /// the start in use or the newcomer offer's): its hellos stay old. A
    /// session that only ever saw one start allocates nothing for this.
    fn remember_start(&mut self, nonce: UeNonce, seen: Option<u32>) {
        if let Some(seq) = seen {
            self.starts.get_or_put(StartMarks::default).note(nonce, seq);
        }
    }

    /// Queues the trigger of offer `which` for `route`.
    fn send_offer(&mut self, which: Which, route: Route) {
        match which {
            Which::Offer => self.offer_to = Some(route),
            Which::Newcomer => self.newcomer_to = Some(route),
        }
    }

    /// An offer to the UE start the keyset in use belongs to, unless one is
    /// out already (its timer repeats it). `own`: the EESE's own rekey (te2e
    /// or the soft limit ran out, it has data to send, the enterprise
    /// asked), whose repeats are free; otherwise it answers input, and
    /// [`offer_quietly`](Self::offer_quietly) is used. Without a known start
    /// nothing can be offered: the UE's next hello brings one.
    pub(crate) fn rekey(&mut self, now: Instant, env: &mut Env<'_>, own: bool) {
        if !(self.offer.is_some() || self.rand_wait.is_some())
            && let Some(nonce) = self.ue
        {
            self.offer(now, env, nonce, None, 0, Route::Peer);
        }
        if own {
            if let Some(o) = self.offer.get_mut() {
                o.own = true;
            }
            if let Some(w) = self.rand_wait.get_mut() {
                w.own = true;
            }
        }
    }

    /// An offer made in answer to input over the proven address that may be
    /// a replay or held back (authentic data under a keyset that expired,
    /// was replaced or was restored): made, but nothing of it is queued; the
    /// caller sends its trigger only if the credit pays for it, and the UE's
    /// next hello fetches it otherwise.
    pub(crate) fn offer_quietly(&mut self, now: Instant, env: &mut Env<'_>) {
        let (queued, waiting) = (self.offer_to, self.rand_wait.is_some());
        self.rekey(now, env, false);
        self.offer_to = queued;
        if !waiting && let Some(w) = self.rand_wait.get_mut() {
            w.route = None;
        }
    }

    /// Octets queued as answers over `route`: a refusal and triggers.
    pub(crate) fn queued_for(&self, route: Route) -> u16 {
        let trigger = crate::wire::TriggerRepr::LEN as u16;
        let mut n = 0;
        if self.refusal_to_send().is_some_and(|(_, r)| r == route) {
            n += crate::wire::KeyExpiredRepr::LEN as u16;
        }
        for to in [self.offer_to, self.newcomer_to, self.current_to] {
            if to == Some(route) {
                n += trigger;
            }
        }
        n
    }

    /// Hands in the RAND the EMKS provided; ignored when no offer waits.
    pub(crate) fn provide_rand(&mut self, now: Instant, env: &mut Env<'_>, rand: Rand) {
        if let Some(w) = self.rand_wait.take() {
            self.install(now, env, w, rand);
        }
    }

    /// The address the last hello came from is no longer where answers to
    /// it go (another fresh hello came from elsewhere): what was queued for
    /// it is dropped, so no address gets answers to another's hello.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn forget_hello_route(&mut self) {
        for to in [
            &mut self.offer_to,
            &mut self.newcomer_to,
            &mut self.current_to,
        ] {
            if *to == Some(Route::Hello) {
                *to = None;
            }
        }
        if let Some(r) = self.refusal.get_mut()
            && r.send == Some(Route::Hello)
        {
            r.send = None;
        }
        if let Some(w) = self.rand_wait.get_mut()
            && w.route == Some(Route::Hello)
        {
            w.route = None;
        }
        self.hello_credit = 0;
    }

    fn install(&mut self, now: Instant, env: &mut Env<'_>, wanted: RandWait, rand: Rand) {
        let RandWait {
            nonce,
            hello,
            route,
            own,
        } = wanted;
        let ksi = self.last_ksi.map_or(Ksi(0), Ksi::next);
        let floor = if self.floor_due {
            counter_floor(now)
        } else {
            0
        };
        let counter = self.counter.saturating_add(1).max(floor);
        let Ok(ks) = Keyset::derive(
            &self.root,
            ksi,
            counter,
            &rand,
            &nonce,
            env.cfg.profile,
            env.cfg.suite,
            env.cfg.soft_limit,
        ) else {
            // Only an unknown configured suite fails; nothing changes then.
            return;
        };
        self.rand_wait.set(None);
        self.counter = counter;
        if self.floor_due {
            self.floor_due = false;
            self.floor_counter = counter;
        }
        self.last_ksi = Some(ksi);
        // Offers are not written before their triggers go out (nothing is
        // sealed under them); the counter is, before it runs half a reserve
        // past what a restore (stored + reserve) or a lost state (the clock
        // floor, a millisecond later) would issue above anyway.
        let covered = self.durable_counter.max(self.floor_counter);
        if counter.saturating_sub(covered) >= COUNTER_RESERVE / 2 {
            self.dirty = true;
        }
        let which = self.which_for(nonce);
        let offer = Offer {
            ks,
            nonce,
            hello_seq: hello,
            route: route.unwrap_or(Route::Hello),
            own,
        };
        match which {
            Which::Offer => {
                self.offer.put(offer);
                self.retx_at = now.after(env.cfg.trigger_retransmit);
                self.retx_left = env.cfg.trigger_attempts;
                self.retx_shift = 0;
            }
            Which::Newcomer => {
                if let Some(o) = self.newcomer.get()
                    && o.nonce != nonce
                {
                    self.remember_start(o.nonce, o.hello_seq);
                }
                self.newcomer.put(offer);
            }
        }
        if let Some(route) = route {
            self.send_offer(which, route);
        }
        env.events.push(Event::Offered { ksi, counter });
    }

    /// The UE used offer `which` (over `route`): it becomes the keyset in
    /// use, its te2e starts, and the snapshot that holds it is written before
    /// anything is sealed under it.
    pub(crate) fn promote(&mut self, now: Instant, env: &mut Env<'_>, which: Which, route: Route) {
        let Some(offer) = self.slot_mut(which).take() else {
            return;
        };
        let (ksi, counter, nonce) = (offer.ks.ksi, offer.ks.counter, offer.nonce);
        let deadline = now.after(self.te2e(env.cfg));
        let old = self.current.replace(Current {
            ks: offer.ks,
            state: KeyState::Valid { deadline },
        });
        let old_start = self.ue;
        self.previous
            .set(old.zip(old_start).map(|(c, start)| Previous {
                ks: c.ks,
                nonce: start,
                until: now.after(env.cfg.grace),
                state: match c.state {
                    KeyState::Valid { deadline } if now < deadline => c.state,
                    KeyState::Valid { .. } => KeyState::Expired(Cause::TE2E_EXPIRED),
                    other => other,
                },
            }));
        if Some(nonce) == self.ue {
            self.hello_seen = self.hello_seen.max(offer.hello_seq);
            self.unkeep_refusal();
            self.offer_to = None;
        } else {
            // A new start of the UE: what was for the old one goes, but its
            // hellos stay old.
            if let Some(old) = self.ue {
                self.remember_start(old, self.hello_seen);
            }
            self.ue = Some(nonce);
            self.hello_seen = offer.hello_seq;
            self.offer.set(None);
            self.offer_to = None;
            self.refusal.set(None);
            if self.rand_wait.get().is_some_and(|w| w.nonce != nonce) {
                self.rand_wait.set(None);
            }
        }
        if which == Which::Newcomer {
            self.newcomer_to = None;
        }
        self.cipher.clear();
        self.retx_left = 0;
        self.retx_at = Instant::NEVER;
        self.dirty = true;
        self.promoted_from = Some(route);
        if route == Route::Hello {
            // The UE proved the address its hellos came from: what that
            // address sent and was not answered with is its credit now.
            self.credit = core::mem::take(&mut self.hello_credit);
        }
        env.events.push(Event::Rekeyed { ksi, counter });
        env.events.push(Event::Confirmed { ksi, counter });
    }

    /// Refuses a message by name: the error goes out over `route` (if it
    /// can be afforded), and is kept to repeat.
    pub(crate) fn refuse(&mut self, error: ErrorOut, send: Option<Route>) {
        self.refusal.put(Refusal {
            error,
            send,
            keep: true,
        });
    }

    /// The kept refusal goes out again, over `route`.
    pub(crate) fn repeat_refusal(&mut self, route: Route) {
        if let Some(r) = self.refusal.get_mut()
            && r.keep
        {
            r.send = Some(route);
        }
    }

    /// The refusal to send now, if any, and where.
    pub(crate) fn refusal_to_send(&self) -> Option<(ErrorOut, Route)> {
        self.refusal
            .get()
            .and_then(|r| r.send.map(|route| (r.error, route)))
    }

    /// The UE used the keyset after the refusal: it is no longer kept (but
    /// still sent if it has not gone out yet).
    fn unkeep_refusal(&mut self) {
        match self.refusal.get_mut() {
            Some(r) if r.send.is_some() => r.keep = false,
            Some(_) => self.refusal.set(None),
            None => {}
        }
    }

    /// The refusal went out.
    pub(crate) fn refusal_sent(&mut self) {
        match self.refusal.get_mut() {
            Some(r) if r.keep => r.send = None,
            Some(_) => self.refusal.set(None),
            None => {}
        }
    }

    /// Spends `cost` octets of the proven address's credit, if it has them.
    pub(crate) fn charge(&mut self, cost: u16) -> bool {
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }

    /// The enterprise's "expire now" (TR §6.5.2.4): the current keyset stops
    /// at once; the next contact rekeys.
    pub(crate) fn expire_now(&mut self, now: Instant, env: &mut Env<'_>) {
        if let Some(c) = &mut self.current
            && matches!(c.state, KeyState::Valid { deadline } if now < deadline)
        {
            c.state = KeyState::Expired(Cause::EXPIRED_BY_ENTERPRISE);
            self.current_to = None;
            env.events.push(Event::KeysExpired {
                ksi: c.ks.ksi,
                cause: Cause::EXPIRED_BY_ENTERPRISE,
            });
        }
    }

    /// A new root (new e2e_int_key after a new AKA, or a new e2mKEYSET /
    /// e2m_key): every keyset and offer of the old root is gone. Counters go
    /// on rising.
    pub(crate) fn replace_root(&mut self, env: &mut Env<'_>, root: RootKey) {
        self.root = root;
        self.previous.set(None);
        self.offer.set(None);
        self.newcomer.set(None);
        self.cipher.clear();
        self.retx_left = 0;
        self.retx_at = Instant::NEVER;
        self.rand_wait.set(None);
        self.offer_to = None;
        self.newcomer_to = None;
        self.current_to = None;
        self.refusal.set(None);
        self.ue = None;
        self.hello_seen = None;
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
                confirmed: c.state != KeyState::Retired,
                next_seq: c.ks.next_seq(),
            }),
            offered: self
                .offer
                .get()
                .or(self.newcomer.get())
                .map(|o| (o.ks.ksi, o.ks.counter)),
            counter: self.counter,
            te2e: self.te2e(cfg),
            rand_pending: self.rand_wait.is_some(),
        }
    }
}

/// The least counter a session made or restored at `now` may issue: above
/// any counter a session could have issued by the millisecond before, unless
/// it issued 1,024 a millisecond ever since it was made.
pub(crate) const fn counter_floor(now: Instant) -> u64 {
    now.as_millis().saturating_add(1).saturating_mul(1024)
}

/// A session as the enterprise may see it: no key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// The keyset in use, if any.
    pub keyset: Option<KeysetStatus>,
    /// A keyset offered and not yet used by the UE (KSI, counter).
    pub offered: Option<(Ksi, u64)>,
    /// Highest trigger counter issued to this UE.
    pub counter: u64,
    /// This UE's te2e.
    pub te2e: Duration,
    /// An offer waits for a RAND from the EMKS.
    pub rand_pending: bool,
}

/// The keyset in use by a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysetStatus {
    /// KSI.
    pub ksi: Ksi,
    /// Trigger counter.
    pub counter: u64,
    /// Valid, expired or retired.
    pub state: KeysetState,
    /// The UE used it (every keyset in use but one restored from a
    /// snapshot).
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
