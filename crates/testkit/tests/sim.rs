//! The simulator over a fixed set of seeds, as part of `cargo test`: every
//! invariant holds on every schedule, with crashes and restores in them;
//! `ciot-e2e sim` runs the same over more seeds.

use ciot_e2e_testkit::sim::{self, Action};

#[test]
fn fixed_seeds_keep_every_invariant_with_crashes_in_the_schedules() {
    let (mut crashes, mut delivered) = (0, 0);
    for seed in 0..96 {
        let out = sim::run_seed(seed, 1_000);
        assert!(
            out.violations.is_empty(),
            "seed {seed}: {:?}",
            out.violations
        );
        crashes += out.counts.crashes;
        delivered += out.counts.delivered;
    }
    assert!(
        crashes > 100,
        "the schedules crash the endpoints ({crashes})"
    );
    assert!(delivered > 10_000, "and traffic flows ({delivered})");
}

#[test]
fn fixed_seeds_keep_every_invariant_with_storage_faults() {
    let (mut crashes, mut rollbacks, mut delivered) = (0, 0, 0);
    for seed in 0..64 {
        let out = sim::run_seed_with_storage_faults(seed, 1_000);
        assert!(
            out.violations.is_empty(),
            "seed {seed}: {:?}",
            out.violations
        );
        crashes += out.counts.crashes;
        rollbacks += out.counts.rollbacks;
        delivered += out.counts.delivered;
    }
    assert!(
        crashes > 100,
        "the schedules crash the endpoints ({crashes})"
    );
    assert!(
        rollbacks > 50,
        "and restore from older storage, or clone a UE ({rollbacks})"
    );
    assert!(delivered > 5_000, "and traffic flows ({delivered})");
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(sim::run_seed(42, 800), sim::run_seed(42, 800));
    assert_ne!(sim::schedule(1, 50), sim::schedule(2, 50));
}

#[test]
fn schedules_hold_every_kind_of_step() {
    let s = sim::schedule(7, 5_000);
    let has = |f: fn(&Action) -> bool| s.iter().any(f);
    assert!(has(|a| matches!(a, Action::CrashUe { .. })));
    assert!(has(|a| matches!(a, Action::CrashEese { .. })));
    assert!(has(|a| matches!(a, Action::Disk { slow: true, .. })));
    assert!(has(|a| matches!(a, Action::Forge { .. })));
    assert!(has(|a| matches!(a, Action::Replay { .. })));
    assert!(has(|a| matches!(a, Action::Late { .. })));
    assert!(has(|a| matches!(a, Action::ReplaceRoot { .. })));
    assert!(has(|a| matches!(a, Action::Rebind { .. })));
    assert!(has(|a| matches!(a, Action::Hold { .. })));
    assert!(has(|a| matches!(a, Action::Release)));
    assert!(has(|a| matches!(a, Action::DropType { .. })));
    assert!(has(|a| matches!(a, Action::Relay { .. })));
    assert!(has(|a| matches!(a, Action::Evict { .. })));
    assert!(
        !has(|a| matches!(
            a,
            Action::CloneUe { .. } | Action::CrashEese { back: 1.., .. }
        )),
        "storage faults only when asked for"
    );
    let f = sim::schedule_with(7, 5_000, true);
    let has = |g: fn(&Action) -> bool| f.iter().any(g);
    assert!(has(|a| matches!(a, Action::CloneUe { .. })));
    assert!(has(|a| matches!(a, Action::CrashEese { back: 1.., .. })));
    assert!(has(|a| matches!(a, Action::CrashUe { old: true, .. })));
}

#[test]
fn the_fuzz_target_runs_the_simulator() {
    // A schedule of a few steps in the fuzzer's encoding runs clean.
    ciot_e2e_testkit::fuzzing::endpoint(&[0, 3, 0, 3, 1, 0, 0, 3, 2, 1]);
}
