//! The `protect` and `unprotect` subcommands against the golden data messages
//! of docs/wire-format.md, and `--counter`: the keys of a keyset are bound
//! to the trigger counter that installed it.

use std::process::{Command, Output};

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
/// KSI 1, uplink, seq 0, "Hello", keyset of trigger counter 1.
const GOLDEN_GCM: &str = "0203010002000000001ac6fd14dc627cfe8ac1ce51a5418499cb14136dfd";
const GOLDEN_NEA2_NIA2: &str = "0203010001000000006591f51a19bc3205d9";
/// The same RAND brought again by trigger counter 2.
const GOLDEN_GCM_COUNTER_2: &str = "02030100020000000061801740f3c05754d793e0e2f876a3df264a712350";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
}

fn protect(suite: &str, extra: &[&str]) -> Output {
    bin()
        .args([
            "protect", "--root", ROOT, "--rand", RAND, "--ksi", "1", "--seq", "0",
        ])
        .args([
            "--direction",
            "uplink",
            "--suite",
            suite,
            "--payload",
            "48656c6c6f",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn unprotect(message: &str, extra: &[&str]) -> Output {
    bin()
        .args([
            "unprotect",
            "--root",
            ROOT,
            "--rand",
            RAND,
            "--message",
            message,
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn line(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn counter_defaults_to_1_and_binds_the_keys() {
    for suite in ["aes-128-gcm", "nea2-nia2"] {
        assert_eq!(
            line(&protect(suite, &[])),
            line(&protect(suite, &["--counter", "1"])),
            "{suite}"
        );
    }
    let two = line(&protect("aes-128-gcm", &["--counter", "2"]));
    assert_eq!(two, GOLDEN_GCM_COUNTER_2);
    assert_eq!(line(&unprotect(&two, &["--counter", "2"])), "48656c6c6f");
    // Under the keys of counter 1 it is not authentic: exit 2, one line.
    for counter in [&[][..], &["--counter", "1"][..]] {
        let out = unprotect(&two, counter);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("authentication failed"), "{err}");
    }
    // A counter that is not a u64: a usage error, nothing written.
    for bad in ["-1", "x", "18446744073709551616"] {
        let out = protect("nea2-nia2", &["--counter", bad]);
        assert_ne!(out.status.code(), Some(0), "--counter {bad}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
    let help = bin().args(["protect", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--counter"), "{help}");
    assert!(help.contains("[default: 1]"), "{help}");
}

#[test]
fn cli_protect_and_unprotect_agree_with_the_library() {
    for (suite, golden) in [("aes-128-gcm", GOLDEN_GCM), ("nea2-nia2", GOLDEN_NEA2_NIA2)] {
        let out = bin()
            .args([
                "protect", "--root", ROOT, "--rand", RAND, "--ksi", "1", "--seq", "0",
            ])
            .args([
                "--direction",
                "uplink",
                "--suite",
                suite,
                "--payload",
                "48656c6c6f",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), golden);
        let out = bin()
            .args([
                "unprotect",
                "--root",
                ROOT,
                "--rand",
                RAND,
                "--message",
                golden,
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "48656c6c6f");
        // A flipped tag bit: exit 2 and one line naming the problem.
        let mut bad = hex::decode(golden).unwrap();
        *bad.last_mut().unwrap() ^= 0x80;
        let out = bin()
            .args([
                "unprotect",
                "--root",
                ROOT,
                "--rand",
                RAND,
                "--message",
                &hex::encode(bad),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1);
        assert!(err.contains("authentication failed"), "{err}");
    }
}
