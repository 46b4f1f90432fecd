//! Replays the fuzz corpus, saved crashes and regressions through the fuzz
//! targets' own functions (`ciot_e2e_testkit::fuzzing`), so a regression fails
//! `cargo test` on stable without a fuzzer.
//!
//! - `fuzz/corpus/<target>/*`: seeds and whatever the fuzzers kept;
//! - `fuzz/artifacts/<target>/*`: crashes a local fuzzing run saved (if any);
//! - `fuzz/regressions/<target>/*`: crashes found and fixed, each also a named
//!   test below.
//!
//! `CIOT_E2E_WRITE_SEEDS=1 cargo test --test fuzz_corpus` rewrites the seeds
//! from `ciot_e2e_testkit::fuzzing::seeds`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use ciot_e2e_testkit::fuzzing::{self, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target named {name}"))
}

/// Runs every file under `<kind>/<target>/` through its target; returns how
/// many ran and panics naming every file that failed.
fn replay(kind: &str) -> usize {
    let root = fuzz_dir().join(kind);
    let Ok(dirs) = fs::read_dir(&root) else {
        return 0;
    };
    let mut ran = 0;
    let mut failed = Vec::new();
    for dir in dirs {
        let dir = dir.expect("readable directory entry").path();
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("readable")
            .map(|e| e.expect("entry").path())
            .collect();
        if files.is_empty() {
            continue;
        }
        files.sort();
        let run = target(&name);
        for file in files.into_iter().filter(|f| f.is_file()) {
            let bytes = fs::read(&file).expect("readable file");
            ran += 1;
            if panic::catch_unwind(|| run(&bytes)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} {kind} input(s) fail:\n{}",
        failed.len(),
        failed.join("\n")
    );
    ran
}

#[test]
fn corpus_replays_without_failure() {
    let ran = replay("corpus");
    assert!(
        ran >= fuzzing::seeds::all().len(),
        "only {ran} corpus files found"
    );
}

#[test]
fn saved_crashes_replay_without_failure() {
    replay("artifacts");
}

#[test]
fn regressions_replay_without_failure() {
    replay("regressions");
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "{} holds no seeds", dir.display());
    }
}

#[test]
fn committed_seeds_match_the_generator() {
    let write = std::env::var_os("CIOT_E2E_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, name, bytes) in fuzzing::seeds::all() {
        let path = fuzz_dir().join("corpus").join(target).join(&name);
        if write {
            fs::create_dir_all(path.parent().expect("has parent")).expect("create corpus dir");
            fs::write(&path, &bytes).expect("write seed");
        } else if fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seeds missing or stale (regenerate with CIOT_E2E_WRITE_SEEDS=1):\n{}",
        stale.join("\n")
    );
}

/// The oracles are live: a genuine input passes, and the replay harness
/// reports a target that panics.
#[test]
fn replay_reports_a_failing_target() {
    let r = panic::catch_unwind(|| {
        let bad: fn(&[u8]) = |b| assert!(b.is_empty(), "oracle fired");
        bad(b"x");
    });
    assert!(r.is_err());
}

fn regression(target_name: &str, file: &str) {
    let path = fuzz_dir().join("regressions").join(target_name).join(file);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    target(target_name)(&bytes);
}

/// `CIOT_E2E_DESCRIBE=<target>:<file> cargo test --test fuzz_corpus describe -- --nocapture`
/// prints the script a crash stands for.
#[test]
fn describe() {
    if let Some(spec) = std::env::var_os("CIOT_E2E_DESCRIBE") {
        let spec = spec.to_string_lossy().into_owned();
        let (t, file) = spec.split_once(':').expect("<target>:<file>");
        let bytes = fs::read(file).expect("readable file");
        println!(
            "{}",
            fuzzing::describe(t, &bytes).unwrap_or_else(|| format!("{bytes:02x?}"))
        );
    }
}

/// Found by `unprotect` (an oracle bug, not a crate bug): libFuzzer learned a
/// NEA2/NIA2 message sealed under the fixed keys in an earlier run and fed it
/// raw; the message is genuine, so it must open, and the oracle must judge it
/// by re-sealing rather than by the run's own record.
#[test]
fn message_sealed_in_another_run_is_genuine() {
    regression("unprotect", "message-sealed-in-another-run");
}

/// Found by `repr_roundtrip` (an oracle bug, not a crate bug): the oracle
/// still held a hello to version 2's length, `max(84, 33 + idlen)`; version
/// 3 puts the 16-octet nonce before the identifier: `max(84, 49 + idlen)`.
#[test]
fn hello_of_the_longest_identifier() {
    regression("repr_roundtrip", "hello-of-the-longest-identifier");
}

/// Found by `endpoint` with a te2e of 2 s: a payload refused by name as its
/// keyset ran out, whose refusal went unsent, was replaced at the UE by the
/// next before the EESE's answer to the UE's hello named it, and lost (I4).
/// Also `a_payload_that_may_yet_be_named_refused_is_never_replaced_by_the_next`
/// in tests/procedure.rs.
#[test]
fn payload_replaced_before_its_refusal() {
    regression("endpoint", "payload-replaced-before-its-refusal");
}
