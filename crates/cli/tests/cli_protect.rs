//! The `protect` and `unprotect` subcommands against the golden data messages
//! of docs/wire-format.md.

use std::process::Command;

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
const GOLDEN_GCM: &str = "0103010002000000007731df5429aa7684fb9c8d8c2a8ac4c0db48cbf45d";
const GOLDEN_NEA2_NIA2: &str = "010301000100000000e2845c2d48647b88e4";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
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
