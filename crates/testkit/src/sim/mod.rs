//! Deterministic simulation of one EESE table and several UEs over an
//! adversarial network, with crashes and restores of either side, in the
//! manner of FoundationDB's and TigerBeetle's simulators: everything (the
//! endpoints, the network, the disks, the clock, the adversary) runs in one
//! thread from one seed; invariants are checked after every step; a failing
//! seed replays exactly and shrinks to a short schedule.
//!
//! The invariants:
//! - **I1** no (key, direction, sequence number) ever protects two different
//!   datagrams, over the whole run (a ledger keyed by the algorithm keys,
//!   which the oracle derives from the triggers on the wire and the nonces
//!   every UE start drew);
//! - **I2** no payload is delivered twice, and none that was not sent to
//!   that receiver;
//! - **I3** a datagram that is not octet for octet one the peer sent (forged,
//!   mutated, reflected) changes no state of the endpoint it reaches, a UE
//!   never answers one; the EESE never answers what it refused from an
//!   address with more octets than that address sent, and never sends an
//!   address the UE has not proven more than that address sent;
//! - **I4** once the adversary stops, every payload sent after
//!   [`t_heal`] is delivered, both ways, for every UE;
//! - and whenever a UE and the EESE name the same keyset (KSI and counter),
//!   they hold the same keys.
//!
//! Crashes restore from whatever the contract allows: the last snapshot
//! acknowledged, or the one whose write was under way on a slow disk. With
//! storage faults ([`schedule_with`]), storage is not what the endpoints last
//! wrote: the EESE restores from any earlier snapshot (with a RAND source
//! that may repeat), and UEs restart from older copies or are cloned onto a
//! second device. (A UE reads nothing back from its storage: each start
//! draws a new nonce, so these are the cases its design covers.)

use std::time::Duration;

use ciot_e2e::endpoint::{EeseConfig, UeConfig};
use ciot_e2e::kdf::KdfProfile;
use ciot_e2e::wire::Suite;

mod action;
mod calm;
mod deliver;
mod faults;
mod oracle;
mod world;

pub use action::{Action, Forgery, RandMode, Source};
pub use oracle::Violation;
pub use world::Counts;

use crate::fuzzing::reader::Reader;
use crate::rng::Rng;
use world::World;

/// How a run is set up: the endpoints' settings and how many UEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// UEs served by the one EESE table.
    pub ues: u8,
    /// Every UE's settings.
    pub ue: UeConfig,
    /// The EESE's settings.
    pub eese: EeseConfig,
    /// Where the EESE's RANDs come from.
    pub rand: RandMode,
}

impl SimConfig {
    /// The settings a seed picks: suite, KDF profile, te2e, soft limit,
    /// reservations and trigger repeats vary with it; the timers are short so
    /// a schedule spans many keysets.
    #[must_use]
    pub fn for_seed(seed: u64) -> Self {
        let mut r = Rng::new(seed ^ 0xc0f1_6000_0000_0001);
        let profile = if r.chance(0.5) {
            KdfProfile::Ts33220
        } else {
            KdfProfile::HkdfSha256
        };
        SimConfig {
            rand: match r.below(8) {
                0 => RandMode::Emks,
                1 => RandMode::Repeat,
                _ => RandMode::Fresh,
            },
            ues: r.range(1, 4) as u8,
            ue: UeConfig {
                profile,
                grace: Duration::from_secs(2),
                probe_after: Some(Duration::from_secs(5)),
                keepalive: Some(Duration::from_secs(6)),
                hello_backoff: Duration::from_millis(500),
                hello_backoff_max: Duration::from_secs(8),
            },
            eese: EeseConfig {
                profile,
                suite: if r.chance(0.5) {
                    Suite::AES_128_GCM
                } else {
                    Suite::NEA2_NIA2
                },
                te2e: Duration::from_secs(r.range(20, 240)),
                grace: Duration::from_secs(2),
                soft_limit: if r.chance(0.3) {
                    r.range(3, 40) as u32
                } else {
                    1 << 31
                },
                trigger_retransmit: Duration::from_millis(500),
                trigger_retransmit_max: Duration::from_secs(8),
                trigger_attempts: r.range(0, 3) as u8,
                unsolicited_interval: Duration::from_millis(200),
            },
        }
    }
}

/// The healing bound `T_heal` for these settings (`docs/SECURITY.md` §5):
/// once the network delivers again and nothing more is forged or crashes, a
/// UE that hears nothing sends a hello within `probe_after` of its first
/// unanswered uplink, or within `keepalive` of the last thing it heard, and
/// repeats hellos at most `1.25 × hello_backoff_max` apart; the EESE answers
/// a fresh hello at once with an offer, which the UE uses (its held payload,
/// or a hello naming it) one round trip later. One second covers those
/// round trips and the RAND of the EMKS in the simulation.
#[must_use]
pub fn t_heal(cfg: &SimConfig) -> Duration {
    let silence = cfg
        .ue
        .probe_after
        .unwrap_or(Duration::ZERO)
        .max(cfg.ue.keepalive.unwrap_or(Duration::ZERO));
    silence + cfg.ue.hello_backoff_max * 5 / 4 + Duration::from_secs(1)
}

/// What one schedule did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The run's seed.
    pub seed: u64,
    /// Steps, crashes, deliveries.
    pub counts: Counts,
    /// The invariants it broke (the run stops at the first step that broke
    /// one).
    pub violations: Vec<Violation>,
}

/// The schedule a seed generates: `steps` steps.
#[must_use]
pub fn schedule(seed: u64, steps: usize) -> Vec<Action> {
    schedule_with(seed, steps, false)
}

/// The schedule a seed generates, with storage faults (UEs restarted from
/// older copies or cloned, the EESE restored from any earlier snapshot)
/// when `storage_faults`.
#[must_use]
pub fn schedule_with(seed: u64, steps: usize, storage_faults: bool) -> Vec<Action> {
    let mut r = Rng::new(seed ^ 0x5c4e_d01e);
    (0..steps)
        .map(|_| Action::generate(&mut r, storage_faults))
        .collect()
}

/// Runs `actions` in the world of `seed` (its settings, keys and RANDs),
/// then the liveness phase; checks every invariant after every step.
#[must_use]
pub fn run(seed: u64, actions: &[Action]) -> Outcome {
    run_with(seed, SimConfig::for_seed(seed), actions)
}

/// [`run`], printing every step and datagram on stderr.
#[must_use]
pub fn run_traced(seed: u64, actions: &[Action]) -> Outcome {
    let cfg = SimConfig::for_seed(seed);
    let mut w = World::new(seed, cfg.ues, cfg.ue, cfg.eese, cfg.rand);
    w.trace = true;
    for a in actions {
        w.step(*a);
        w.check_keys();
        if let Some(v) = w.oracle.violations.first() {
            eprintln!("=> {}: {}", v.invariant, v.what);
            return outcome(seed, w);
        }
    }
    calm::liveness(&mut w, t_heal(&cfg));
    outcome(seed, w)
}

/// [`run`] with explicit settings.
#[must_use]
pub fn run_with(seed: u64, cfg: SimConfig, actions: &[Action]) -> Outcome {
    let mut w = World::new(seed, cfg.ues, cfg.ue, cfg.eese, cfg.rand);
    for a in actions {
        w.step(*a);
        w.check_keys();
        if !w.oracle.violations.is_empty() {
            return outcome(seed, w);
        }
    }
    calm::liveness(&mut w, t_heal(&cfg));
    outcome(seed, w)
}

fn outcome(seed: u64, w: World) -> Outcome {
    Outcome {
        seed,
        counts: w.counts,
        violations: w.oracle.violations,
    }
}

/// Runs the schedule `seed` generates.
#[must_use]
pub fn run_seed(seed: u64, steps: usize) -> Outcome {
    run(seed, &schedule(seed, steps))
}

/// Runs the schedule `seed` generates with storage faults.
#[must_use]
pub fn run_seed_with_storage_faults(seed: u64, steps: usize) -> Outcome {
    run(seed, &schedule_with(seed, steps, true))
}

/// The shortest schedule found that still breaks the same invariant, by
/// removing ever smaller runs of steps (delta debugging) while it keeps
/// failing that way.
#[must_use]
pub fn shrink(seed: u64, actions: &[Action]) -> Vec<Action> {
    let first = |a: &[Action]| run(seed, a).violations.first().map(|v| v.invariant);
    let Some(invariant) = first(actions) else {
        return actions.to_vec();
    };
    let fails = |a: &[Action]| first(a) == Some(invariant);
    let mut cur = actions.to_vec();
    let mut chunk = cur.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut removed = false;
        while i < cur.len() {
            let mut next = cur.clone();
            next.drain(i..(i + chunk).min(next.len()));
            if fails(&next) {
                cur = next;
                removed = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !removed {
            return cur;
        }
        if !removed {
            chunk = (chunk / 2).max(1);
        }
    }
}

/// The settings' seed and the schedule the fuzz target reads from `bytes`
/// (to replay, [`shrink`] or trace what it found).
#[must_use]
pub fn fuzz_schedule(bytes: &[u8]) -> (u64, Vec<Action>) {
    let mut r = Reader::new(bytes);
    let seed = u64::from(r.u16());
    let mut actions = Vec::new();
    while !r.is_empty() && actions.len() < 256 {
        actions.push(Action::decode(&mut r));
    }
    (seed, actions)
}

/// The fuzz target's body: the first octet picks the settings' seed, the
/// rest is a schedule; any violated invariant panics with the schedule.
pub fn fuzz(bytes: &[u8]) {
    let (seed, actions) = fuzz_schedule(bytes);
    let out = run(seed, &actions);
    if let Some(v) = out.violations.first() {
        panic!(
            "invariant {} broken: {}\nseed {seed}, schedule:\n{}",
            v.invariant,
            v.what,
            actions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
