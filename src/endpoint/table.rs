//! The EESE's table of UE sessions with one timer queue.
//!
//! Sessions live in a hash map keyed by a UE identifier; their next timers
//! live in one binary heap, so finding the next due timer is O(1) and
//! scheduling or expiring one is O(log n). No thread or task per UE. A
//! session's heap entry is replaced lazily: an entry whose time no longer
//! matches the session's schedule is skipped when it surfaces, and the heap is
//! rebuilt when stale entries outnumber the sessions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use crate::kdf::{Rand, RootKey};
use crate::wire::Ksi;

use super::{Config, EeseSession, Event, Instant, RandSource, Reject, SendError, Sink};

/// Where the table puts what its sessions have to say, per UE.
pub trait TableSink<Id> {
    /// Send a datagram to this UE.
    fn transmit(&mut self, ue: &Id, datagram: &[u8]);
    /// Report an event of this UE's session.
    fn event(&mut self, ue: &Id, event: Event<'_>);
}

struct ForUe<'a, Id, S> {
    id: &'a Id,
    sink: &'a mut S,
}

impl<Id, S: TableSink<Id>> Sink for ForUe<'_, Id, S> {
    fn transmit(&mut self, datagram: &[u8]) {
        self.sink.transmit(self.id, datagram);
    }
    fn event(&mut self, event: Event<'_>) {
        self.sink.event(self.id, event);
    }
}

struct Entry {
    session: EeseSession,
    /// The time of this session's live heap entry ([`Instant::NEVER`]: none).
    scheduled: Instant,
}

/// The EESE's sessions, one per UE, with a shared [`Config`].
pub struct EeseTable<Id> {
    cfg: Config,
    sessions: HashMap<Id, Entry>,
    timers: BinaryHeap<Reverse<(Instant, Id)>>,
}

impl<Id: Hash + Eq + Ord + Clone> EeseTable<Id> {
    /// An empty table.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        Self::with_capacity(cfg, 0)
    }

    /// An empty table with room for `n` sessions without reallocating.
    #[must_use]
    pub fn with_capacity(cfg: Config, n: usize) -> Self {
        EeseTable {
            cfg,
            sessions: HashMap::with_capacity(n),
            timers: BinaryHeap::with_capacity(n),
        }
    }

    /// The shared configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
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

    /// Timer entries in the queue, stale ones included (for measurements).
    #[must_use]
    pub fn queued_timers(&self) -> usize {
        self.timers.len()
    }

    /// Adds (or replaces) a UE's session with its root and, optionally, its
    /// own te2e in seconds.
    pub fn insert(&mut self, ue: Id, root: RootKey, te2e_secs: Option<u32>) {
        let mut session = EeseSession::new(root);
        session.set_te2e(te2e_secs.unwrap_or(0));
        self.sessions.insert(
            ue,
            Entry {
                session,
                scheduled: Instant::NEVER,
            },
        );
    }

    /// Removes a UE's session.
    pub fn remove(&mut self, ue: &Id) -> Option<EeseSession> {
        self.sessions.remove(ue).map(|e| e.session)
    }

    /// A UE's session.
    #[must_use]
    pub fn get(&self, ue: &Id) -> Option<&EeseSession> {
        self.sessions.get(ue).map(|e| &e.session)
    }

    /// KSI of a UE's current keyset.
    #[must_use]
    pub fn ksi(&self, ue: &Id) -> Option<Ksi> {
        self.get(ue).and_then(|s| s.current()).map(|(k, _, _)| k)
    }

    fn with<R, S: TableSink<Id>>(
        &mut self,
        ue: &Id,
        sink: &mut S,
        f: impl FnOnce(&mut EeseSession, &Config, &mut ForUe<'_, Id, S>) -> R,
    ) -> Option<R> {
        let entry = self.sessions.get_mut(ue)?;
        let mut out = ForUe { id: ue, sink };
        let r = f(&mut entry.session, &self.cfg, &mut out);
        let next = entry.session.poll_timeout().unwrap_or(Instant::NEVER);
        if next != entry.scheduled {
            entry.scheduled = next;
            if next != Instant::NEVER {
                self.timers.push(Reverse((next, ue.clone())));
            }
        }
        self.compact();
        Some(r)
    }

    fn compact(&mut self) {
        if self.timers.len() > 2 * self.sessions.len() + 1024 {
            self.timers = self
                .sessions
                .iter()
                .filter(|(_, e)| e.scheduled != Instant::NEVER)
                .map(|(id, e)| Reverse((e.scheduled, id.clone())))
                .collect();
        }
    }

    /// Feeds a datagram from `ue`. An unknown UE gets
    /// `Event::Rejected(Reject::NoSession)`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        ue: &Id,
        buf: &mut [u8],
        rng: &mut impl RandSource,
        sink: &mut impl TableSink<Id>,
    ) {
        if self
            .with(ue, sink, |s, cfg, out| {
                s.handle_datagram(now, cfg, buf, rng, out)
            })
            .is_none()
        {
            sink.event(ue, Event::Rejected(Reject::NoSession));
        }
    }

    /// Sends a payload to `ue` (rekeying first when its keyset expired).
    ///
    /// # Errors
    /// As [`EeseSession::send`]; `None` when there is no such UE.
    pub fn send(
        &mut self,
        now: Instant,
        ue: &Id,
        payload: &[u8],
        scratch: &mut [u8],
        rng: &mut impl RandSource,
        sink: &mut impl TableSink<Id>,
    ) -> Option<Result<(Ksi, u32), SendError>> {
        self.with(ue, sink, |s, cfg, out| {
            s.send(now, cfg, payload, scratch, rng, out)
        })
    }

    /// Starts a new keyset for `ue` now.
    pub fn rekey(
        &mut self,
        now: Instant,
        ue: &Id,
        rng: &mut impl RandSource,
        sink: &mut impl TableSink<Id>,
    ) {
        self.with(ue, sink, |s, cfg, out| s.rekey(now, cfg, rng, out));
    }

    /// Hands in a RAND from the EMKS for `ue`.
    pub fn provide_rand(
        &mut self,
        now: Instant,
        ue: &Id,
        rand: Rand,
        sink: &mut impl TableSink<Id>,
    ) {
        self.with(ue, sink, |s, cfg, out| s.provide_rand(now, cfg, rand, out));
    }

    /// `ue` (re)established its connection: see [`EeseSession::on_connect`].
    pub fn on_connect(
        &mut self,
        now: Instant,
        ue: &Id,
        rng: &mut impl RandSource,
        sink: &mut impl TableSink<Id>,
    ) {
        self.with(ue, sink, |s, cfg, out| s.on_connect(now, cfg, rng, out));
    }

    /// The enterprise's "expire now" for `ue`.
    pub fn expire_now(&mut self, ue: &Id, sink: &mut impl TableSink<Id>) {
        self.with(ue, sink, |s, _, out| s.expire_now(out));
    }

    /// A new root for `ue` (new AKA run).
    pub fn replace_root(&mut self, ue: &Id, root: RootKey, sink: &mut impl TableSink<Id>) {
        self.with(ue, sink, |s, _, out| s.replace_root(root, out));
    }

    /// When [`EeseTable::handle_timeout`] must next run, if ever.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek() {
            match self.sessions.get(id) {
                Some(e) if e.scheduled == *at => return Some(*at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, sink: &mut impl TableSink<Id>) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.timers.pop() else {
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
                self.with(&id, sink, |s, cfg, out| s.handle_timeout(now, cfg, out));
            }
        }
    }
}
