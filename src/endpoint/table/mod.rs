//! The EESE's table of UE sessions: one timer heap, the effects of all
//! sessions polled in one place, and where each UE is.
//!
//! A UE is found by the address its datagrams come from. Its *proven*
//! address is where its use of a keyset the EESE offered came from: only
//! there does the EESE send data, repeat triggers or answer input it cannot
//! authenticate. A fresh, authentic hello from elsewhere (a NAT rebinding,
//! or a relay) makes that address a *candidate*: it gets an answer no larger
//! than the hello (an offer's trigger), and becomes the proven address only
//! when the UE uses that offer from there. A datagram from an address no UE
//! said hello from creates nothing and gets nothing. The answer budget for
//! input that cannot be authenticated is kept for the proven address: it
//! starts empty whenever a UE moves.
//!
//! Sessions live in a slab indexed by a hash of the UE identifier (`store`); their next timers
//! live in one binary heap, so finding the next due timer is O(1) and
//! scheduling one is O(log n). A session's heap entry is replaced lazily: an
//! entry whose time no longer matches the session's schedule is skipped when
//! it surfaces, and the heap is rebuilt when stale entries outnumber the
//! sessions. No thread or task per UE.

use std::boxed::Box;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Duration;
use std::vec::Vec;

use crate::kdf::{Rand, RootKey};
use crate::protect::suite::SuiteKeys;

use super::config::EeseConfig;
use super::eese::{Env, EventSink, Session, SessionStatus, Tombstone};
use super::effects::{Event, OsRand, RandSource, Sealed};
use super::slot::Boxed;
use super::snapshot::SnapshotError;
use super::time::Instant;

mod store;
mod traffic;

use store::Store;

/// Payloads a session keeps while a new keyset is being made for it.
pub const QUEUED_PER_UE: usize = 16;
/// Unpolled events the table keeps; past it the oldest goes.
pub const EVENT_CAPACITY: usize = 1 << 16;
/// Sessions whose expanded ciphers the table keeps by default (see
/// [`EeseTable::set_kept_ciphers`]).
pub const KEPT_CIPHERS: usize = 4096;
/// Removed sessions whose hello marks and counter the table remembers (see
/// [`EeseTable::remove`]); past it the oldest goes.
pub const FORGOTTEN_CAP: usize = 1 << 16;

/// Payloads waiting for a keyset: usually none, so an empty queue is one
/// pointer (an empty `VecDeque` inline would be four) and its storage goes
/// when it empties.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(super) struct Queue(Option<Box<VecDeque<Vec<u8>>>>);

impl Queue {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    pub(super) fn push_back(&mut self, payload: Vec<u8>) {
        self.0.get_or_insert_with(Box::default).push_back(payload);
    }

    pub(super) fn front(&self) -> Option<&Vec<u8>> {
        self.0.as_ref()?.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<Vec<u8>> {
        let q = self.0.as_mut()?;
        let p = q.pop_front();
        if q.is_empty() {
            self.0 = None;
        }
        p
    }
}

struct Entry<A> {
    session: Session<Boxed>,
    /// Where the UE is, proven: its last use of a keyset offered to it came
    /// from there.
    peer: Option<A>,
    /// Where its last fresh hello came from, when that is not `peer`.
    candidate: Option<A>,
    /// The time of this session's live heap entry ([`Instant::NEVER`]: none).
    scheduled: Instant,
    in_persist: bool,
    in_transmit: bool,
    /// On the `kept` list.
    #[cfg(feature = "kept-ciphers")]
    in_kept: bool,
    /// Payloads waiting for the keyset their send started.
    queued: Queue,
    /// Last authentic datagram from this UE.
    last_active: Instant,
}

/// The table's schedule: the timer heap and the sessions with work to hand
/// out.
struct Lists<Id> {
    timers: BinaryHeap<Reverse<(Instant, Id)>>,
    to_persist: VecDeque<Id>,
    to_transmit: VecDeque<Id>,
    /// Sessions holding expanded ciphers, oldest first (a CLOCK list: a
    /// session that used its ciphers since it was last looked at goes to the
    /// back instead of losing them).
    #[cfg(feature = "kept-ciphers")]
    kept: VecDeque<Id>,
    #[cfg(feature = "kept-ciphers")]
    kept_cap: usize,
}

impl<Id: Ord + Clone> Lists<Id> {
    /// Puts a session on the lists and in the heap as its state asks; says
    /// whether that changed anything.
    fn schedule<A>(&mut self, ue: &Id, e: &mut Entry<A>) -> bool {
        let mut changed = false;
        let next = e.session.poll_timeout().unwrap_or(Instant::NEVER);
        if next != e.scheduled {
            changed = true;
            e.scheduled = next;
            if next != Instant::NEVER {
                self.timers.push(Reverse((next, ue.clone())));
            }
        }
        if e.session.dirty && e.session.inflight.is_none() && !e.in_persist {
            changed = true;
            e.in_persist = true;
            self.to_persist.push_back(ue.clone());
        }
        // Queued data goes only to the proven address: with none, a queue
        // does not make the session ready (it would be polled for nothing,
        // again and again).
        if !e.in_transmit
            && (e.peer.is_some() || e.candidate.is_some())
            && e.session.ready(!e.queued.is_empty() && e.peer.is_some())
        {
            changed = true;
            e.in_transmit = true;
            self.to_transmit.push_back(ue.clone());
        }
        #[cfg(feature = "kept-ciphers")]
        if !e.in_kept && e.session.cipher.is_kept() {
            changed = true;
            e.in_kept = true;
            self.kept.push_back(ue.clone());
        }
        changed
    }
}

/// Frees the addresses `e` (the session of `ue`) was proven at or said a
/// hello from, where no other UE has taken them since.
fn release<Id: Eq, A: Hash + Eq>(peers: &mut HashMap<A, Id>, ue: &Id, e: &Entry<A>) {
    for a in [&e.peer, &e.candidate].into_iter().flatten() {
        if peers.get(a) == Some(ue) {
            peers.remove(a);
        }
    }
}

struct Sink<'a, Id> {
    id: &'a Id,
    q: &'a mut VecDeque<(Id, Event)>,
    lost: &'a mut u64,
}

impl<Id: Clone> EventSink for Sink<'_, Id> {
    fn push(&mut self, e: Event) {
        if self.q.len() >= EVENT_CAPACITY {
            self.q.pop_front();
            *self.lost += 1;
        }
        self.q.push_back((self.id.clone(), e));
    }
}

/// What [`EeseTable::send`] did with a payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendOutcome<A> {
    /// Sealed into the caller's buffer: transmit it to `to`.
    Sent {
        /// What was sealed.
        sealed: Sealed,
        /// Where the UE is.
        to: A,
    },
    /// A new keyset is being offered first (the payload goes once the UE
    /// used it and its snapshot is durable), or the UE's address is not
    /// proven yet (after a restart, until it uses a keyset offered after its
    /// next hello): the payload goes out through
    /// [`EeseTable::poll_transmit`].
    Queued,
}

/// The EESE's sessions, one per UE, with their configuration and RAND
/// source; `Id` names a UE, `A` is where it is (a socket address).
pub struct EeseTable<Id, A = SocketAddr, R = OsRand> {
    cfg: EeseConfig,
    rng: R,
    sessions: Store<Id, Entry<A>>,
    /// Which UE each proven or candidate address belongs to.
    peers: HashMap<A, Id>,
    /// What the table remembers of sessions it removed, oldest first.
    forgotten: HashMap<Id, Tombstone>,
    forgotten_order: VecDeque<Id>,
    lists: Lists<Id>,
    events: VecDeque<(Id, Event)>,
    events_lost: u64,
}

impl<Id: Hash + Eq + Ord + Clone, A: Hash + Eq + Clone, R: RandSource> EeseTable<Id, A, R> {
    /// An empty table.
    #[must_use]
    pub fn new(cfg: EeseConfig, rng: R) -> Self {
        Self::with_capacity(cfg, rng, 0)
    }

    /// An empty table with room for `n` sessions without reallocating.
    #[must_use]
    pub fn with_capacity(cfg: EeseConfig, rng: R, n: usize) -> Self {
        EeseTable {
            cfg,
            rng,
            sessions: Store::with_capacity(n),
            peers: HashMap::with_capacity(n),
            forgotten: HashMap::new(),
            forgotten_order: VecDeque::new(),
            lists: Lists {
                timers: BinaryHeap::with_capacity(n),
                to_persist: VecDeque::new(),
                to_transmit: VecDeque::new(),
                #[cfg(feature = "kept-ciphers")]
                kept: VecDeque::new(),
                #[cfg(feature = "kept-ciphers")]
                kept_cap: KEPT_CIPHERS,
            },
            events: VecDeque::new(),
            events_lost: 0,
        }
    }

    /// Sessions holding expanded ciphers now (at most the number set with
    /// [`EeseTable::set_kept_ciphers`]).
    #[must_use]
    pub fn kept_ciphers(&self) -> usize {
        #[cfg(feature = "kept-ciphers")]
        return self
            .sessions
            .values()
            .filter(|e| e.session.cipher.is_kept())
            .count();
        #[cfg(not(feature = "kept-ciphers"))]
        return 0;
    }

    /// How many sessions keep their current keyset's ciphers expanded
    /// (about 0.4–1.5 KiB each, by suite and CPU); the others expand them for
    /// every message. Recently active sessions keep theirs (default
    /// [`KEPT_CIPHERS`]; 0 keeps none).
    pub fn set_kept_ciphers(&mut self, n: usize) {
        #[cfg(feature = "kept-ciphers")]
        {
            self.lists.kept_cap = n;
            self.evict_ciphers();
        }
        let _ = n;
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &EeseConfig {
        &self.cfg
    }

    /// Number of sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the table has no session.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Whether a session exists for `ue`.
    #[must_use]
    pub fn contains(&self, ue: &Id) -> bool {
        self.sessions.contains_key(ue)
    }

    /// Timer entries in the queue, stale ones included (for measurements).
    #[must_use]
    pub fn queued_timers(&self) -> usize {
        self.lists.timers.len()
    }

    /// Events dropped because they were not polled in time.
    #[must_use]
    pub const fn events_lost(&self) -> u64 {
        self.events_lost
    }

    /// The UE identifiers, in no order.
    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.sessions.keys()
    }

    /// Adds (or replaces) a UE's session with its root and, optionally, its
    /// own te2e. It has no keyset until the UE's hello or the first send.
    pub fn insert(&mut self, ue: Id, root: RootKey, te2e: Option<Duration>) {
        self.put(ue, Session::new(root, te2e), Instant(0));
    }

    /// Rebuilds a UE's session from its root and last snapshot (after the
    /// EESE restarted). Its keyset is retired: nothing under it is delivered
    /// or sent, and the UE's next authentic contact (or the next send) starts
    /// a new offer. Its address is not known until its next hello.
    ///
    /// # Errors
    /// [`SnapshotError`] for a damaged snapshot or one of another root; the
    /// table is unchanged then.
    pub fn restore(&mut self, ue: Id, root: RootKey, snapshot: &[u8]) -> Result<(), SnapshotError> {
        let s = Session::restore(&self.cfg, root, snapshot)?;
        self.put(ue, s, Instant(0));
        Ok(())
    }

    fn put(&mut self, ue: Id, session: Session<Boxed>, now: Instant) {
        self.forgotten.remove(&ue);
        if let Some(e) = self.sessions.get(&ue) {
            release(&mut self.peers, &ue, e);
        }
        self.sessions.insert(
            ue.clone(),
            Entry {
                session,
                peer: None,
                candidate: None,
                scheduled: Instant::NEVER,
                in_persist: false,
                in_transmit: false,
                #[cfg(feature = "kept-ciphers")]
                in_kept: false,
                queued: Queue::default(),
                last_active: now,
            },
        );
        self.touch(&ue);
    }

    /// Removes a UE's session (eviction, an idle sweep). The table keeps
    /// its hello marks and trigger counter (up to [`FORGOTTEN_CAP`]
    /// sessions), so a session made again for the UE by a hello refuses the
    /// UE's old hellos and never issues an old counter: a replayed hello
    /// brings back nothing. (Past the cap, a replayed hello of the oldest
    /// gets only an offer, which no one but the UE can use.)
    pub fn remove(&mut self, ue: &Id) -> bool {
        match self.sessions.remove(ue) {
            Some(e) => {
                release(&mut self.peers, ue, &e);
                if self
                    .forgotten
                    .insert(ue.clone(), e.session.tombstone())
                    .is_none()
                {
                    self.forgotten_order.push_back(ue.clone());
                }
                while self.forgotten.len() > FORGOTTEN_CAP {
                    let Some(old) = self.forgotten_order.pop_front() else {
                        break;
                    };
                    self.forgotten.remove(&old);
                }
                true
            }
            None => false,
        }
    }

    /// Takes back a session a hello made and did not keep, and what the
    /// table remembered of the UE before.
    fn unmake(&mut self, ue: &Id, remembered: Option<Tombstone>) {
        if let Some(e) = self.sessions.remove(ue) {
            release(&mut self.peers, ue, &e);
        }
        if let Some(t) = remembered {
            self.forgotten.insert(ue.clone(), t);
        }
    }

    /// A session for `ue` made from its hello, with what the table
    /// remembers of an earlier one, if anything (`put` forgets it).
    fn made_again(&self, ue: &Id, root: RootKey) -> Session<Boxed> {
        match self.forgotten.get(ue) {
            Some(t) => Session::from_tombstone(root, *t),
            None => Session::new(root, None),
        }
    }

    /// Where `ue` is, proven: its last use of a keyset offered to it came
    /// from there.
    #[must_use]
    pub fn peer(&self, ue: &Id) -> Option<&A> {
        self.sessions.get(ue)?.peer.as_ref()
    }

    /// Downlink payloads [`send`](Self::send) queued for `ue` that have not
    /// gone out yet (0 for a UE without a session).
    #[must_use]
    pub fn queued(&self, ue: &Id) -> usize {
        self.sessions.get(ue).map_or(0, |e| e.queued.len())
    }

    /// The UE at `addr` (proven there, or said a hello from there).
    #[must_use]
    pub fn ue_at(&self, addr: &A) -> Option<&Id> {
        self.peers.get(addr)
    }

    /// A session as the enterprise may see it (no key material).
    #[must_use]
    pub fn status(&self, now: Instant, ue: &Id) -> Option<SessionStatus> {
        self.sessions
            .get(ue)
            .map(|e| e.session.status(now, &self.cfg))
    }

    /// The current keyset's RAND and suite keys (for key logs and tests).
    #[must_use]
    pub fn current_keys(&self, ue: &Id) -> Option<(&Rand, &SuiteKeys)> {
        self.sessions
            .get(ue)?
            .session
            .current
            .as_ref()
            .map(|c| (&c.ks.rand, &c.ks.keys))
    }

    /// When `ue` last sent something authentic.
    #[must_use]
    pub fn last_active(&self, ue: &Id) -> Option<Instant> {
        self.sessions.get(ue).map(|e| e.last_active)
    }

    /// The session that has been quiet longest (O(n); for evicting one when
    /// the table is full).
    #[must_use]
    pub fn least_recently_active(&self) -> Option<&Id> {
        self.sessions
            .iter()
            .min_by_key(|(id, e)| (e.last_active, *id))
            .map(|(id, _)| id)
    }

    /// Runs `f` on a session with its environment, then reschedules it (one
    /// lookup for both).
    fn with<T>(
        &mut self,
        ue: &Id,
        f: impl FnOnce(&mut Session<Boxed>, &mut Env<'_>, &mut Entry2<'_, A>) -> T,
    ) -> Option<T> {
        let EeseTable {
            cfg,
            rng,
            sessions,
            events,
            events_lost,
            lists,
            ..
        } = self;
        let entry = sessions.get_mut(ue)?;
        let mut sink = Sink {
            id: ue,
            q: events,
            lost: events_lost,
        };
        let mut env = Env {
            cfg,
            rng,
            events: &mut sink,
        };
        let mut rest = Entry2 {
            queued: &mut entry.queued,
            last_active: &mut entry.last_active,
            peer: entry.peer.as_ref(),
        };
        let r = f(&mut entry.session, &mut env, &mut rest);
        lists.schedule(ue, entry);
        self.tidy();
        Some(r)
    }

    /// Puts a session on the lists and in the heap as its state asks.
    fn touch(&mut self, ue: &Id) {
        if let Some(e) = self.sessions.get_mut(ue) {
            self.lists.schedule(ue, e);
            self.tidy();
        }
    }

    /// Checks (in builds with debug assertions: every test and simulated
    /// schedule) what a send that skips the rescheduling relies on: for
    /// `ue`, [`Lists::schedule`] and [`EeseTable::tidy`] have nothing to do.
    /// (Were it wrong, the schedule run here mends the lists before the
    /// assertion stops the program.)
    #[cfg(all(debug_assertions, feature = "kept-ciphers"))]
    pub(super) fn assert_scheduled(&mut self, ue: &Id) {
        if let Some(e) = self.sessions.get_mut(ue) {
            assert!(
                !self.lists.schedule(ue, e),
                "a plain send left work to schedule"
            );
        }
        assert!(self.lists.kept.len() <= self.lists.kept_cap);
        assert!(self.lists.timers.len() <= 2 * self.sessions.len() + 1024);
    }

    /// Keeps the lists within bounds: kept ciphers within their cap, stale
    /// heap entries fewer than the sessions. (Inline: on every call of the
    /// hot path it is two comparisons.)
    #[inline]
    fn tidy(&mut self) {
        #[cfg(feature = "kept-ciphers")]
        if self.lists.kept.len() > self.lists.kept_cap {
            self.evict_ciphers();
        }
        if self.lists.timers.len() > 2 * self.sessions.len() + 1024 {
            self.rebuild_timers();
        }
    }

    /// The timer heap rebuilt from the sessions, without stale entries.
    #[cold]
    fn rebuild_timers(&mut self) {
        self.lists.timers = self
            .sessions
            .iter()
            .filter(|(_, e)| e.scheduled != Instant::NEVER)
            .map(|(id, e)| Reverse((e.scheduled, id.clone())))
            .collect();
    }

    /// Drops kept ciphers, from the sessions that used them least recently,
    /// until at most `kept_cap` sessions hold them.
    #[cfg(feature = "kept-ciphers")]
    fn evict_ciphers(&mut self) {
        while self.lists.kept.len() > self.lists.kept_cap {
            let Some(id) = self.lists.kept.pop_front() else {
                return;
            };
            let Some(e) = self.sessions.get_mut(&id) else {
                continue;
            };
            if e.session.cipher.is_kept() && e.session.cipher.take_used() {
                // Used since last looked at: a second chance.
                self.lists.kept.push_back(id);
            } else {
                e.session.cipher.clear();
                e.in_kept = false;
            }
        }
    }

    /// The next event, with the UE it concerns.
    pub fn poll_event(&mut self) -> Option<(Id, Event)> {
        self.events.pop_front()
    }

    /// Offers a new keyset to `ue` now (to the start of the keyset in use;
    /// none before the UE's first hello).
    pub fn rekey(&mut self, now: Instant, ue: &Id) {
        self.with(ue, |s, env, _| {
            s.advance(now, env);
            s.rekey(now, env, true);
        });
    }

    /// Hands in a RAND from the EMKS for `ue`.
    pub fn provide_rand(&mut self, now: Instant, ue: &Id, rand: Rand) {
        self.with(ue, |s, env, _| s.provide_rand(now, env, rand));
    }

    /// The enterprise's "expire now" for `ue` (TR §6.5.2.4).
    pub fn expire_now(&mut self, now: Instant, ue: &Id) -> bool {
        self.with(ue, |s, env, _| s.expire_now(now, env)).is_some()
    }

    /// The enterprise's "expire now" for every UE; returns how many sessions.
    pub fn expire_all(&mut self, now: Instant) -> usize {
        // In the order of the identifiers, so the effects come out the same
        // way every time.
        let mut ids: Vec<Id> = self.sessions.keys().cloned().collect();
        ids.sort_unstable();
        for id in &ids {
            self.expire_now(now, id);
        }
        ids.len()
    }

    /// Sets `ue`'s te2e (`None`: the configured default), from its next
    /// keyset on.
    pub fn set_te2e(&mut self, ue: &Id, te2e: Option<Duration>) -> bool {
        self.with(ue, |s, _, _| s.set_te2e(te2e)).is_some()
    }

    /// A new root for `ue` (new AKA run).
    pub fn replace_root(&mut self, ue: &Id, root: RootKey) -> bool {
        self.with(ue, |s, env, _| s.replace_root(env, root))
            .is_some()
    }

    /// When [`EeseTable::handle_timeout`] must next run, if ever.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.lists.timers.peek() {
            match self.sessions.get(id) {
                Some(e) if e.scheduled == *at => return Some(*at),
                _ => {
                    self.lists.timers.pop();
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.lists.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.lists.timers.pop() else {
                break;
            };
            let due = self.sessions.get_mut(&id).is_some_and(|e| {
                let due = e.scheduled == at;
                if due {
                    e.scheduled = Instant::NEVER;
                }
                due
            });
            if due {
                self.with(&id, |s, env, _| s.advance(now, env));
            }
        }
    }
}

/// The parts of an entry a session call may touch beside the session.
struct Entry2<'a, A> {
    queued: &'a mut Queue,
    last_active: &'a mut Instant,
    peer: Option<&'a A>,
}
