//! The liveness phase (I4): the adversary stops, crashes stop, disks work,
//! RANDs are fresh and the EMKS answers; every UE and the EESE keep sending.
//! Every payload sent once `T_heal` has passed must arrive.

use std::time::Duration;

use ciot_e2e::endpoint::Instant;

use super::action::Action;
use super::world::World;

/// How long the phase watches after `T_heal`, and the quiet tail at its end
/// (sends in the tail are not required to have arrived yet).
const OBSERVE: Duration = Duration::from_secs(40);
const TAIL: Duration = Duration::from_secs(10);
/// Time per step and between one UE's sends (each direction).
const TICK: Duration = Duration::from_millis(100);
const PERIOD_TICKS: u64 = 20;

pub(crate) fn liveness(w: &mut World, heal: Duration) {
    // The copies of UEs are switched off, and what the adversary held back
    // is lost.
    w.clones.clear();
    w.held.clear();
    w.step(Action::Disk {
        eese: true,
        ue: 0,
        slow: false,
    });
    // Each UE talks both ways, or only listens, or only speaks: a one-way
    // UE must heal by the other side's means alone.
    let modes: Vec<u64> = (0..w.ues.len()).map(|_| w.rng.below(3)).collect();
    let t0 = w.now;
    let from = t0.after(heal);
    let end = from.after(OBSERVE);
    let quiet = end.after(TAIL);
    let mut tick = 0u64;
    while w.now < quiet {
        tick += 1;
        w.counts.steps += 1;
        w.now = w.now.after(TICK);
        w.run_timers();
        if w.now < end {
            for (i, mode) in modes.iter().enumerate() {
                if *mode != 1 && (tick + i as u64 * 3) % PERIOD_TICKS == 0 {
                    w.ue_send(i);
                }
                if *mode != 2 && (tick + i as u64 * 3 + PERIOD_TICKS / 2) % PERIOD_TICKS == 0 {
                    w.eese_send(i);
                }
            }
        }
        let wanted: Vec<_> = w.rand_wanted.iter().copied().collect();
        for id in wanted {
            w.provide_rand(&id);
        }
        w.drain_all();
        // A perfect network: everything in flight arrives, answers too.
        for _ in 0..8 {
            if w.net.is_empty() {
                break;
            }
            for p in std::mem::take(&mut w.net) {
                w.deliver(p);
            }
        }
        w.check_keys();
        if !w.oracle.violations.is_empty() {
            return;
        }
    }
    if w.trace {
        for (i, u) in w.ues.iter().enumerate() {
            eprintln!(
                "UE {i} at the end: {:?} timeout {:?}",
                u.ue,
                u.ue.poll_timeout()
            );
        }
    }
    let late: Vec<(u8, Vec<u8>, Instant)> = w
        .sends
        .iter()
        .filter(|(_, p, t)| *t >= from && *t < end && !w.oracle.was_delivered(p))
        .cloned()
        .collect();
    if let Some((ue, p, t)) = late.first() {
        w.oracle.fail(
            "I4",
            format!(
                "UE {ue}: {:?} sent {} ms after the adversary stopped (T_heal {} ms) never arrived; {} such payloads",
                String::from_utf8_lossy(p),
                t.0 - t0.0,
                heal.as_millis(),
                late.len()
            ),
        );
    }
}
