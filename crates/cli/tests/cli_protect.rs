//! The `protect` and `unprotect` subcommands against the golden data messages
//! of docs/wire-format.md (wire format 3), `--counter` and `--nonce`: the
//! keys of a keyset are bound to the trigger counter that installed it and
//! to the nonce of the UE start it was made for. The goldens were also
//! recomputed outside the crate (Python's `hmac` and `cryptography`).

use std::process::{Command, Output};

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
/// The nonce of the UE start the keyset was made for.
const NONCE: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
/// KSI 1, uplink, seq 0, "Hello", keyset of trigger counter 1, UE nonce
/// [`NONCE`].
const GOLDEN_GCM: &str = "0303010002000000008e58e77d83c1937085964f93d4185b20f828c95723";
const GOLDEN_NEA2_NIA2: &str = "0303010001000000000c36b81cdae8c1441f";
/// The same RAND brought again by trigger counter 2.
const GOLDEN_GCM_COUNTER_2: &str = "030301000200000000787959ccbeede4582f9aee64ed0d846e46e0210435";
/// The same keyset made for another start of the UE (nonce 00 01 … 0f).
const GOLDEN_GCM_OTHER_NONCE: &str = "030301000200000000fe3a1dc53c19abf578c12e23ab731396e6ef9175d3";
const OTHER_NONCE: &str = "000102030405060708090a0b0c0d0e0f";
/// Downlink, otherwise [`GOLDEN_GCM`]: the GCM nonce's direction octet is 1.
const GOLDEN_GCM_DOWNLINK: &str = "0303010102000000008d94f571b14c2b23bc1b2f9083963f6c30d10a9a52";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
}

fn protect(suite: &str, extra: &[&str]) -> Output {
    protect_as("uplink", suite, extra)
}

fn protect_as(direction: &str, suite: &str, extra: &[&str]) -> Output {
    // --nonce once: given in `extra`, it replaces the default.
    let nonce = if extra.contains(&"--nonce") {
        &[][..]
    } else {
        &["--nonce", NONCE][..]
    };
    bin()
        .args([
            "protect", "--root", ROOT, "--rand", RAND, "--ksi", "1", "--seq", "0",
        ])
        .args(nonce)
        .args([
            "--direction",
            direction,
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
    let nonce = if extra.contains(&"--nonce") {
        &[][..]
    } else {
        &["--nonce", NONCE][..]
    };
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
        .args(nonce)
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
        let out = protect(suite, &[]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), golden);
        let out = unprotect(golden, &[]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "48656c6c6f");
        // A flipped tag bit: exit 2 and one line naming the problem.
        let mut bad = hex::decode(golden).unwrap();
        *bad.last_mut().unwrap() ^= 0x80;
        let out = unprotect(&hex::encode(bad), &[]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1);
        assert!(err.contains("authentication failed"), "{err}");
    }
}

#[test]
fn the_nonce_binds_the_keys_and_is_required() {
    // Another start of the UE: the same keyset, other keys.
    let other = line(&protect("aes-128-gcm", &["--nonce", OTHER_NONCE]));
    assert_eq!(other, GOLDEN_GCM_OTHER_NONCE);
    assert_ne!(other, GOLDEN_GCM);
    assert_eq!(
        line(&unprotect(&other, &["--nonce", OTHER_NONCE])),
        "48656c6c6f"
    );
    for (message, nonce) in [(&other[..], NONCE), (GOLDEN_GCM, OTHER_NONCE)] {
        let out = unprotect(message, &["--nonce", nonce]);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("authentication failed"), "{err}");
    }
    for suite in ["aes-128-gcm", "nea2-nia2"] {
        let a = line(&protect(suite, &[]));
        let b = line(&protect(suite, &["--nonce", OTHER_NONCE]));
        assert_eq!(a[..18], b[..18], "{suite}: the same header");
        assert_ne!(a[18..], b[18..], "{suite}: other keys");
    }
    // Downlink: the GCM nonce's direction octet, `00 00 00 01 ‖ 0^32 ‖ seq`.
    assert_eq!(
        line(&protect_as("downlink", "aes-128-gcm", &[])),
        GOLDEN_GCM_DOWNLINK
    );
    // Required, and 16 octets.
    let out = bin()
        .args([
            "protect", "--root", ROOT, "--rand", RAND, "--ksi", "1", "--seq", "0",
        ])
        .args(["--direction", "uplink", "--suite", "aes-128-gcm"])
        .args(["--payload", "00"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr).unwrap().contains("--nonce"));
    for bad in ["f0f1", "zz"] {
        let out = protect("aes-128-gcm", &["--nonce", bad]);
        assert_eq!(out.status.code(), Some(1), "--nonce {bad}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--nonce"), "{err}");
    }
}
