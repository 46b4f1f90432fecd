//! The fault layer, applied where each side sends: it drops, duplicates and
//! delays (so reorders) real datagrams, and next to them injects hostile ones
//! ([`super::hostile`]) from the address the receiver trusts (a UE's own
//! socket toward the EESE, the EESE's socket toward a UE), which is what an
//! on-path attacker can do.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::hostile::{self, Registry, Target};
use crate::rng::Rng;

/// Real datagrams remembered for replays.
const HISTORY: usize = 4096;
/// Longest extra delay of a reordered datagram.
const MAX_DELAY_MS: u64 = 40;
/// A replayed datagram is at least this old, so the original has long
/// arrived (or been dropped).
const REPLAY_MIN_AGE_MS: u64 = 300;

/// Fault probabilities, each between 0 and 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Params {
    /// A real datagram is dropped.
    pub loss: f64,
    /// A real datagram is sent twice.
    pub dup: f64,
    /// A real datagram is held back 1–40 ms, so later ones overtake it.
    pub reorder: f64,
    /// A hostile datagram is injected next to a real one.
    pub garbage: f64,
}

/// Where datagrams go out.
pub trait Emit {
    /// Sends `bytes` to (or, toward the EESE, from) `peer`.
    fn emit(&mut self, peer: u32, bytes: &[u8]);
}

/// What the fault layer did.
#[derive(Clone, Debug, Default)]
pub struct FaultStats {
    /// Real datagrams handed to the layer.
    pub real: u64,
    /// Dropped.
    pub dropped: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Delayed (reordered).
    pub delayed: u64,
    /// Delayed datagrams still held when the run ended.
    pub delayed_discarded: u64,
    /// Injected, per class.
    pub injected: [u64; 3],
    /// Injected, per kind.
    pub kinds: BTreeMap<&'static str, u64>,
}

/// A held-back datagram: due time (ms), order of arrival, peer, octets.
type Delayed = Reverse<(u64, u64, u32, Vec<u8>)>;

/// The fault layer of one sending side.
pub struct Faults {
    p: Params,
    rng: Rng,
    toward_ue: bool,
    delayed: BinaryHeap<Delayed>,
    seq: u64,
    history: Vec<(u32, u64, Vec<u8>)>,
    hist_next: usize,
    remembered_at: u64,
    /// Counts.
    pub stats: FaultStats,
}

impl Faults {
    /// The layer in front of the UEs' sockets (`toward_ue` false) or the
    /// EESE's (`toward_ue` true).
    #[must_use]
    pub fn new(p: Params, seed: u64, toward_ue: bool) -> Self {
        Faults {
            p,
            rng: Rng::new(seed),
            toward_ue,
            delayed: BinaryHeap::new(),
            seq: 0,
            history: Vec::with_capacity(HISTORY),
            hist_next: 0,
            remembered_at: 0,
            stats: FaultStats::default(),
        }
    }

    /// Sends one real datagram to (or from) `peer` through the faults.
    pub fn send(
        &mut self,
        now_ms: u64,
        peer: u32,
        d: &[u8],
        target: &Target,
        reg: &Registry,
        out: &mut impl Emit,
    ) {
        self.stats.real += 1;
        if !d.is_empty() {
            self.remember(now_ms, peer, d);
        }
        if self.rng.chance(self.p.garbage) {
            self.inject(now_ms, peer, d, target, reg, out);
        }
        if self.rng.chance(self.p.loss) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.p.dup) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(self.p.reorder) {
                self.stats.delayed += 1;
                self.seq += 1;
                let at = now_ms + 1 + self.rng.below(MAX_DELAY_MS);
                self.delayed.push(Reverse((at, self.seq, peer, d.to_vec())));
            } else {
                out.emit(peer, d);
            }
        }
    }

    /// Sends the delayed datagrams that are due.
    pub fn release(&mut self, now_ms: u64, out: &mut impl Emit) {
        while self
            .delayed
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= now_ms)
        {
            if let Some(Reverse((_, _, peer, d))) = self.delayed.pop() {
                out.emit(peer, &d);
            }
        }
    }

    /// Drops what is still delayed (end of the run).
    pub fn discard(&mut self) {
        self.stats.delayed_discarded += self.delayed.len() as u64;
        self.delayed.clear();
    }

    fn remember(&mut self, now_ms: u64, peer: u32, d: &[u8]) {
        // At most one a millisecond, so the history spans seconds however
        // fast the traffic, and replays are of old messages.
        if self.history.len() >= 64 && now_ms <= self.remembered_at {
            return;
        }
        self.remembered_at = now_ms;
        let entry = (peer, now_ms, d.to_vec());
        if self.history.len() < HISTORY {
            self.history.push(entry);
        } else if let Some(slot) = self.history.get_mut(self.hist_next) {
            *slot = entry;
        }
        self.hist_next = (self.hist_next + 1) % HISTORY;
    }

    fn inject(
        &mut self,
        now_ms: u64,
        peer: u32,
        real: &[u8],
        t: &Target,
        reg: &Registry,
        out: &mut impl Emit,
    ) {
        let roll = self.rng.below(100);
        let (to, bytes, kind) = if roll < 20 {
            match self.replay(now_ms) {
                Some(r) => r,
                None => hostile::garbage(&mut self.rng, self.toward_ue, peer, real),
            }
        } else if roll < 50 {
            hostile::forged(&mut self.rng, self.toward_ue, peer, t)
        } else {
            hostile::garbage(&mut self.rng, self.toward_ue, peer, real)
        };
        self.stats.injected[kind.class.index()] += 1;
        *self.stats.kinds.entry(kind.what).or_insert(0) += 1;
        reg.put(to, &bytes, kind);
        out.emit(to, &bytes);
    }

    fn replay(&mut self, now_ms: u64) -> Option<(u32, Vec<u8>, hostile::Kind)> {
        for _ in 0..8 {
            let i = self.rng.index(self.history.len());
            let (peer, at, d) = self.history.get(i)?;
            if now_ms.saturating_sub(*at) < REPLAY_MIN_AGE_MS {
                continue;
            }
            let (peer, d) = (*peer, d.clone());
            let (to, kind) = hostile::replayed(&mut self.rng, self.toward_ue, peer, &d);
            return Some((to, d, kind));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciot_e2e::wire::{Ksi, Suite};

    #[derive(Default)]
    struct Wire(Vec<(u32, Vec<u8>)>);

    impl Emit for Wire {
        fn emit(&mut self, peer: u32, bytes: &[u8]) {
            self.0.push((peer, bytes.to_vec()));
        }
    }

    #[test]
    fn faults_follow_their_probabilities_and_every_injection_is_registered() {
        let p = Params {
            loss: 0.1,
            dup: 0.1,
            reorder: 0.1,
            garbage: 0.2,
        };
        let mut f = Faults::new(p, 5, false);
        let reg = Registry::default();
        let mut wire = Wire::default();
        let t = Target {
            ue: 1,
            ksi: Some(Ksi(1)),
            counter: 1,
            suite: Suite::AES_128_GCM,
            seq: None,
        };
        for ms in 0..10_000u64 {
            let mut d = vec![2u8; 60];
            d[..8].copy_from_slice(&ms.to_be_bytes());
            f.send(ms, 1, &d, &t, &reg, &mut wire);
            f.release(ms, &mut wire);
        }
        f.release(u64::MAX, &mut wire);
        let s = &f.stats;
        for (n, what) in [(s.dropped, "dropped"), (s.duplicated, "duplicated")] {
            assert!((800..1200).contains(&n), "{what} {n}");
        }
        let injected: u64 = s.injected.iter().sum();
        assert!((1700..2300).contains(&injected), "{injected}");
        // Whatever is not registered is honest, and every injection is.
        let taken = wire
            .0
            .iter()
            .filter(|(peer, bytes)| reg.take(*peer, bytes).is_some())
            .count() as u64;
        assert_eq!(taken, injected);
        assert_eq!(
            wire.0.len() as u64 - taken,
            s.real - s.dropped + s.duplicated
        );
        assert_eq!(reg.unreceived(), [0; 3]);
    }
}
