//! `ciot-e2e sim`: the deterministic simulator over a range of seeds (see
//! the test kit's `sim` module for the world and its invariants).

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ciot_e2e_testkit::sim::{self, Outcome};
use clap::Args;

use crate::Failure;

/// Arguments of `ciot-e2e sim`.
#[derive(Args)]
pub struct SimArgs {
    /// Seeds to run, as `FIRST..END` (END excluded) or one number.
    #[arg(long, default_value = "0..100", value_parser = parse_seeds)]
    seeds: Range<u64>,
    /// Steps of each schedule (before the liveness phase).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Threads (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print each schedule's counts.
    #[arg(long)]
    verbose: bool,
    /// Print every step and datagram of the shortest failing schedule
    /// (on stderr).
    #[arg(long)]
    trace: bool,
    /// Storage that is not what the endpoints last wrote: UEs restarted
    /// from older copies of their storage or cloned onto a second device,
    /// the EESE restored from any earlier snapshot (with a RAND source that
    /// may repeat). The summary line then also counts the rollbacks.
    #[arg(long)]
    storage_faults: bool,
}

fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = |_| format!("seeds must be FIRST..END or one number, got {s:?}");
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (
                a.trim().parse().map_err(bad)?,
                b.trim().parse().map_err(bad)?,
            );
            if a >= b {
                return Err(format!("empty seed range {s:?}"));
            }
            Ok(a..b)
        }
        None => {
            let a: u64 = s.trim().parse().map_err(bad)?;
            Ok(a..a.saturating_add(1))
        }
    }
}

/// Runs `ciot-e2e sim`.
pub fn sim(a: &SimArgs) -> Result<(), Failure> {
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(a.seeds.start);
    let (steps, crashes, schedules) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let rollbacks = AtomicU64::new(0);
    let failures: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= a.seeds.end {
                        return;
                    }
                    let out = sim::run(seed, &sim::schedule_with(seed, a.steps, a.storage_faults));
                    steps.fetch_add(out.counts.steps, Ordering::Relaxed);
                    crashes.fetch_add(out.counts.crashes, Ordering::Relaxed);
                    rollbacks.fetch_add(out.counts.rollbacks, Ordering::Relaxed);
                    schedules.fetch_add(1, Ordering::Relaxed);
                    if a.verbose {
                        crate::outln!(
                            "seed {seed}: {} steps, {} crashes, {} rollbacks, {} delivered, {} violations",
                            out.counts.steps,
                            out.counts.crashes,
                            out.counts.rollbacks,
                            out.counts.delivered,
                            out.violations.len()
                        );
                    }
                    if !out.violations.is_empty()
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(out);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|o| o.seed);
    for out in &failures {
        let v = &out.violations[0];
        crate::outln!("violation: seed {}: {}: {}", out.seed, v.invariant, v.what);
    }
    if let Some(first) = failures.first() {
        let full = sim::schedule_with(first.seed, a.steps, a.storage_faults);
        let short = sim::shrink(first.seed, &full);
        crate::outln!(
            "shortest failing schedule for seed {} ({} of {} steps):",
            first.seed,
            short.len(),
            full.len()
        );
        for step in &short {
            crate::outln!("  {step}");
        }
        if a.trace {
            let _ = sim::run_traced(first.seed, &short);
        }
        if let Some(v) = sim::run(first.seed, &short).violations.first() {
            crate::outln!("  => {}: {}", v.invariant, v.what);
        }
    }
    if a.storage_faults {
        crate::outln!(
            "sim: {} schedules, {} steps, {} crashes, {} rollbacks, {} violations",
            schedules.load(Ordering::Relaxed),
            steps.load(Ordering::Relaxed),
            crashes.load(Ordering::Relaxed),
            rollbacks.load(Ordering::Relaxed),
            failures.len()
        );
    } else {
        crate::outln!(
            "sim: {} schedules, {} steps, {} crashes, {} violations",
            schedules.load(Ordering::Relaxed),
            steps.load(Ordering::Relaxed),
            crashes.load(Ordering::Relaxed),
            failures.len()
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "{} schedules broke an invariant",
            failures.len()
        )))
    }
}
