//! `ciot-e2e loadtest`: one EESE and many UEs in one process over loopback
//! UDP, with a fault layer that drops, duplicates, reorders and injects
//! hostile datagrams. Every echoed payload is checked octet for octet; the
//! run passes only if every message came back and nothing was mis-keyed.
//! The harness is the test kit's `loadtest` module; this file reads the
//! command line.

use ciot_e2e_testkit::loadtest::{self, Params, Settings};
use clap::Args;

use crate::Failure;

/// Arguments of `ciot-e2e loadtest`.
#[derive(Args, Clone, Debug)]
pub struct LoadtestArgs {
    /// Simulated UEs (one loopback UDP socket each).
    #[arg(long, default_value_t = 1000)]
    ues: u32,
    /// Payloads to send in all, spread evenly over the UEs; each is echoed.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Probability that a hostile datagram (garbage, forged or replayed) is
    /// injected next to each real one, in both directions.
    #[arg(long, default_value_t = 0.0)]
    garbage_ratio: f64,
    /// Probability that a real datagram is dropped.
    #[arg(long, default_value_t = 0.0)]
    loss_ratio: f64,
    /// Probability that a real datagram is duplicated [default: --loss-ratio].
    #[arg(long)]
    dup_ratio: Option<f64>,
    /// Probability that a real datagram is held back 1–40 ms, so later ones
    /// overtake it [default: --loss-ratio].
    #[arg(long)]
    reorder_ratio: Option<f64>,
    /// Key lifetime te2e in seconds (short, so every UE rekeys several times).
    #[arg(long, default_value_t = 1)]
    te2e: u32,
    /// Seed of the UEs' roots, the RANDs, the payloads and every fault decision (UE nonces come from the OS).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// UEs with a message in flight at once (the EESE's one socket buffers
    /// only so many datagrams).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// First retransmission timeout in milliseconds (doubles, up to 0.8 s).
    #[arg(long, default_value_t = 200)]
    rto_ms: u64,
    /// Fail the run if it has not finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
}

fn ratio(name: &str, v: f64) -> Result<f64, Failure> {
    if (0.0..=0.5).contains(&v) {
        Ok(v)
    } else {
        Err(Failure::usage(format!(
            "--{name} must be between 0 and 0.5, got {v}"
        )))
    }
}

/// The run's settings from the command line.
fn settings(a: &LoadtestArgs) -> Result<Settings, Failure> {
    let faults = Params {
        loss: ratio("loss-ratio", a.loss_ratio)?,
        dup: ratio("dup-ratio", a.dup_ratio.unwrap_or(a.loss_ratio))?,
        reorder: ratio("reorder-ratio", a.reorder_ratio.unwrap_or(a.loss_ratio))?,
        garbage: ratio("garbage-ratio", a.garbage_ratio)?,
    };
    if a.ues == 0 || a.ues > 50_000 {
        return Err(Failure::usage("--ues must be between 1 and 50000"));
    }
    if a.te2e == 0 || a.window == 0 || a.rto_ms == 0 || a.deadline == 0 {
        return Err(Failure::usage(
            "--te2e, --window, --rto-ms and --deadline must be positive",
        ));
    }
    Ok(Settings {
        ues: a.ues,
        messages: a.messages,
        faults,
        te2e_secs: a.te2e,
        seed: a.seed,
        window: a.window,
        rto_ms: a.rto_ms,
        deadline_secs: a.deadline,
    })
}

/// Runs `ciot-e2e loadtest`.
pub fn loadtest(a: &LoadtestArgs) -> Result<(), Failure> {
    let s = settings(a)?;
    let verdict = loadtest::run(&s, &mut |line| crate::outln!("{line}")).map_err(|e| match e {
        loadtest::Error::Setup(why) => Failure::usage(why),
        loadtest::Error::Panicked => Failure::rejected(e.to_string()),
    })?;
    if verdict.passed() {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "loadtest failed: {}",
            verdict.failures.join("; ")
        )))
    }
}
