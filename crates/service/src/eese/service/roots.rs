//! Roots from the EMKS: the cache, the fetches (bounded for UEs this EESE
//! holds nothing for), RANDs, and the long-poll of the EMKS's change log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::UeId;
use ciot_e2e::kdf::RootKey;
use tokio::sync::mpsc::UnboundedSender;

use super::{Msg, RandChoice};
use crate::ServiceError;
use crate::eese::metrics::{Metrics, inc};
use crate::emks::api::RootAnswer;
use crate::emks::client::EmksClient;

/// A root as the EMKS gave it: which database, which generation.
pub(super) struct Cached {
    pub(super) store: String,
    pub(super) generation: u64,
    pub(super) root: RootKey,
}

/// Per-UE fetch bookkeeping.
#[derive(Default)]
pub(super) struct Fetch {
    pub(super) in_flight: bool,
    pub(super) failures: u32,
    pub(super) retry_at: Option<StdInstant>,
    /// Last failure was the EMKS being unreachable (not a refusal).
    pub(super) unreachable: bool,
    /// The EMKS said the UE is not this enterprise's (or unknown).
    pub(super) unknown: bool,
    /// Waiting in the queue for a free fetch slot.
    queued: bool,
}

/// Why a hello of a UE whose root is not cached was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NotYet {
    /// A fetch is under way (or just started).
    Pending,
    /// The EMKS said it does not know the UE (cached for [`UNKNOWN_TTL`]).
    Unknown,
    /// The EMKS could not be reached; retried with back-off.
    Unreachable,
    /// Too many fetches for UEs this EESE holds nothing for.
    Limited,
}

impl NotYet {
    pub(super) const fn label(self) -> &'static str {
        match self {
            NotYet::Pending => "root_pending",
            NotYet::Unknown => "unknown_ue",
            NotYet::Unreachable => "emks_unreachable",
            NotYet::Limited => "fetch_limited",
        }
    }
}

/// How long a 404 is believed: hellos naming that UE cost nothing more.
pub(super) const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// Fetch bookkeeping entries kept at most (a flood of distinct ids cannot
/// grow it without bound).
const MAX_FETCH_ENTRIES: usize = 65_536;
/// Root fetches under way at once.
const MAX_IN_FLIGHT: usize = 8;
/// RANDs fetched at a time.
const RAND_BATCH: usize = 32;

/// A token bucket: `rate` tokens a second, at most `rate` saved.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: StdInstant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: StdInstant::now(),
        }
    }

    fn take(&mut self, now: StdInstant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(super) struct Roots {
    emks: EmksClient,
    tx: UnboundedSender<Msg>,
    metrics: Arc<Metrics>,
    cache: HashMap<UeId, Cached>,
    fetches: HashMap<UeId, Fetch>,
    unknown_bucket: Bucket,
    in_flight: usize,
    /// Fetches for UEs this EESE holds state for, waiting for a free slot.
    queue: std::collections::VecDeque<UeId>,
    rand: RandChoice,
    pub(super) rands_in_flight: bool,
    pub(super) rand_retry_at: Option<StdInstant>,
    /// The identity of the EMKS database the cached roots came from.
    pub(super) store: Option<String>,
}

impl Roots {
    pub(super) fn new(
        emks: EmksClient,
        tx: UnboundedSender<Msg>,
        metrics: Arc<Metrics>,
        rand: RandChoice,
        unknown_fetch_rate: u32,
    ) -> Self {
        Roots {
            emks,
            tx,
            metrics,
            cache: HashMap::new(),
            fetches: HashMap::new(),
            unknown_bucket: Bucket::new(unknown_fetch_rate.max(1)),
            in_flight: 0,
            queue: std::collections::VecDeque::new(),
            rand,
            rands_in_flight: false,
            rand_retry_at: None,
            store: None,
        }
    }

    pub(super) fn get(&self, id: &UeId) -> Option<&Cached> {
        self.cache.get(id)
    }

    pub(super) fn contains(&self, id: &UeId) -> bool {
        self.cache.contains_key(id)
    }

    pub(super) fn ids(&self) -> Vec<UeId> {
        self.cache.keys().copied().collect()
    }

    pub(super) fn fetch_state(&self, id: &UeId) -> Option<&Fetch> {
        self.fetches.get(id)
    }

    /// Forgets `id`'s root (and any back-off, so its next hello fetches).
    pub(super) fn forget(&mut self, id: &UeId) {
        self.cache.remove(id);
        self.fetches.remove(id);
    }

    /// Forgets the back-off of `id` (fetch again now, whatever it said).
    pub(super) fn refetch(&mut self, id: &UeId) {
        if let Some(f) = self.fetches.get_mut(id) {
            f.retry_at = None;
        }
        self.request(id, true);
    }

    /// Starts a fetch of `id`'s root unless one is under way or backing
    /// off. `known`: this EESE holds state for the UE (a snapshot, a
    /// session, an admin request waiting); other UEs are bounded by the
    /// token bucket, so a flood of hellos naming unknown UEs costs the EMKS
    /// at most `unknown_fetch_rate` fetches a second.
    pub(super) fn request(&mut self, id: &UeId, known: bool) -> NotYet {
        let now = StdInstant::now();
        if let Some(f) = self.fetches.get(id) {
            if f.in_flight || f.queued {
                return NotYet::Pending;
            }
            if f.retry_at.is_some_and(|t| now < t) {
                return if f.unknown {
                    NotYet::Unknown
                } else {
                    NotYet::Unreachable
                };
            }
        }
        if self.in_flight >= MAX_IN_FLIGHT {
            if known && self.queue.len() < MAX_FETCH_ENTRIES {
                self.fetches.entry(*id).or_default().queued = true;
                self.queue.push_back(*id);
                return NotYet::Pending;
            }
            return NotYet::Limited;
        }
        if !known && !self.unknown_bucket.take(now) {
            return NotYet::Limited;
        }
        if self.fetches.len() >= MAX_FETCH_ENTRIES {
            self.fetches.retain(|_, f| f.in_flight || f.queued);
        }
        let f = self.fetches.entry(*id).or_default();
        f.in_flight = true;
        self.in_flight += 1;
        let (emks, tx, metrics, ue) = (
            self.emks.clone(),
            self.tx.clone(),
            self.metrics.clone(),
            *id,
        );
        tokio::task::spawn_blocking(move || {
            let t = StdInstant::now();
            let result = emks.root(ue.as_bytes());
            metrics.fetch_latency(t.elapsed());
            match &result {
                Ok(_) => inc(&metrics.emks_fetches_ok),
                Err(_) => inc(&metrics.emks_fetches_failed),
            }
            let _ = tx.send(Msg::Root { ue, result });
        });
        NotYet::Pending
    }

    /// A fetch ended: what changed for the UE.
    pub(super) fn fetched(
        &mut self,
        ue: &UeId,
        result: Result<RootAnswer, ServiceError>,
    ) -> Fetched {
        self.in_flight = self.in_flight.saturating_sub(1);
        while self.in_flight < MAX_IN_FLIGHT
            && let Some(next) = self.queue.pop_front()
        {
            if let Some(f) = self.fetches.get_mut(&next) {
                f.queued = false;
            }
            self.request(&next, true);
        }
        let f = self.fetches.entry(*ue).or_default();
        f.in_flight = false;
        match result {
            Ok(a) => {
                self.fetches.remove(ue);
                let changed = self
                    .cache
                    .get(ue)
                    .is_some_and(|c| c.store != a.store || c.generation != a.generation);
                if self.store.is_none() {
                    self.store = Some(a.store.clone());
                }
                self.cache.insert(
                    *ue,
                    Cached {
                        store: a.store,
                        generation: a.generation,
                        root: a.root,
                    },
                );
                if changed {
                    inc(&self.metrics.root_changes);
                    Fetched::NewRoot
                } else {
                    Fetched::Root
                }
            }
            Err(e) => {
                f.failures = f.failures.saturating_add(1);
                let refused = matches!(e, ServiceError::Refused { status: 404, .. });
                f.unknown = refused;
                f.unreachable = !refused;
                let backoff = if refused {
                    UNKNOWN_TTL
                } else {
                    Duration::from_millis(500 << f.failures.min(5)).min(Duration::from_secs(10))
                };
                f.retry_at = Some(StdInstant::now() + backoff);
                if refused {
                    Fetched::Unknown(e)
                } else {
                    Fetched::Failed(e)
                }
            }
        }
    }

    /// Asks the EMKS for RANDs when the pool runs low (RAND source `emks`).
    pub(super) fn want_rands(&mut self, pool_len: usize, waiting: bool) {
        if self.rand == RandChoice::Emks
            && (waiting || pool_len < RAND_BATCH / 4)
            && !self.rands_in_flight
            && self.rand_retry_at.is_none_or(|t| StdInstant::now() >= t)
        {
            self.rands_in_flight = true;
            let (emks, tx) = (self.emks.clone(), self.tx.clone());
            tokio::task::spawn_blocking(move || {
                let _ = tx.send(Msg::Rands(emks.rands(RAND_BATCH)));
            });
        }
    }

    pub(super) fn count_rands(&self, n: usize) {
        self.metrics
            .emks_rands
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Forgets settled fetch entries whose back-off ran out.
    pub(super) fn tidy(&mut self) {
        let now = StdInstant::now();
        self.fetches
            .retain(|_, f| f.in_flight || f.queued || f.retry_at.is_some_and(|t| now < t));
    }
}

/// What a finished fetch means for the UE.
pub(super) enum Fetched {
    /// Its root, as cached before or new to this EESE.
    Root,
    /// Another root than the cached one (a new AKA run, or another EMKS
    /// database): its keysets are void.
    NewRoot,
    /// The EMKS does not know it (or it is another enterprise's, or
    /// revoked): its keys are dropped now.
    Unknown(ServiceError),
    /// The EMKS could not be reached.
    Failed(ServiceError),
}

/// The long-poll of the EMKS's change log, on a blocking task of its own.
pub(super) fn spawn_changes(emks: EmksClient, tx: UnboundedSender<Msg>) {
    tokio::task::spawn_blocking(move || changes_loop(&emks, &tx));
}

fn changes_loop(emks: &EmksClient, tx: &UnboundedSender<Msg>) {
    let mut since: Option<u64> = None;
    let mut last_store = String::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        // The first call only learns where the log stands.
        let wait = if since.is_some() {
            Duration::from_secs(25)
        } else {
            Duration::ZERO
        };
        match emks.changes(since.unwrap_or(u64::MAX / 2), wait) {
            Ok(r) => {
                backoff = Duration::from_millis(500);
                let first = since.is_none();
                since = Some(r.next.min(u64::MAX / 2));
                let another = r.store != last_store;
                last_store.clone_from(&r.store);
                // What changed while this EESE did not listen, a log that
                // starts over, or another database: look again.
                if (first || r.reset || another)
                    && tx
                        .send(Msg::Reset {
                            store: r.store.clone(),
                        })
                        .is_err()
                {
                    return;
                }
                if first {
                    continue;
                }
                for c in &r.changes {
                    let Some(ue) = c.ue_octets().and_then(|o| UeId::new(&o).ok()) else {
                        continue;
                    };
                    let msg = Msg::Change {
                        ue,
                        generation: c.generation,
                        revoked: c.revoked,
                        store: r.store.clone(),
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
            Err(_) => {
                // The position is kept: the EMKS's log (100,000 changes)
                // still has what happened during the outage, and says
                // `reset` when it does not (or another database answers).
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
