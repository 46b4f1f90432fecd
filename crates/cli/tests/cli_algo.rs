//! `ciot-e2e nia2` and `ciot-e2e nea2` on every published 128-NIA2 / 128-NEA2
//! vector, and their error cases. A failure names the vector.

use std::process::{Command, Output};

use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../tests/data/nea2-nia2.json"))
        .expect("tests/data/nea2-nia2.json parses")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout_line(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout.clone()).expect("utf-8 output");
    assert_eq!(
        s.lines().count(),
        1,
        "{what}: one line of output, got {s:?}"
    );
    s.trim_end().to_owned()
}

/// The 3GPP arguments of a vector as command-line strings.
fn common(case: &Value) -> Vec<String> {
    let s = |f: &str| case[f].as_str().expect("string").to_owned();
    let n = |f: &str| case[f].as_u64().expect("number").to_string();
    vec![
        "--key".into(),
        s("key"),
        "--count".into(),
        s("count"),
        "--bearer".into(),
        n("bearer"),
        "--direction".into(),
        n("direction"),
        "--bits".into(),
        n("length_bits"),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn nia2_prints_the_published_mac_of_every_vector() {
    let all = vectors();
    let cases = all["nia2"].as_array().expect("nia2 table");
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let mut args = vec!["nia2".to_owned()];
        args.extend(common(case));
        args.extend([
            "--message".to_owned(),
            case["message"].as_str().expect("message").to_owned(),
        ]);
        let got = stdout_line(&run(&as_strs(&args)), name);
        assert_eq!(got, case["mac"].as_str().expect("mac"), "vector {name}");
    }
}

#[test]
fn nea2_prints_the_published_ciphertext_of_every_vector() {
    let all = vectors();
    let cases = all["nea2"].as_array().expect("nea2 table");
    assert!(cases.len() >= 2);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let mut args = vec!["nea2".to_owned()];
        args.extend(common(case));
        // Upper-case hex is accepted too.
        args.extend([
            "--data".to_owned(),
            case["plaintext"]
                .as_str()
                .expect("plaintext")
                .to_uppercase(),
        ]);
        let got = stdout_line(&run(&as_strs(&args)), name);
        assert_eq!(
            got,
            case["ciphertext"].as_str().expect("ciphertext"),
            "vector {name}"
        );
    }
}

#[test]
fn bits_default_to_the_whole_data() {
    // NIA2 set 2 is 64 bits of 8 octets: leaving out --bits gives the same MAC.
    let out = run(&[
        "nia2",
        "--key",
        "d3c5d592327fb11c4035c6680af8c6d1",
        "--count",
        "398a59b4",
        "--bearer",
        "26",
        "--direction",
        "1",
        "--message",
        "484583d5afe082ae",
    ]);
    assert_eq!(stdout_line(&out, "nia2 set 2 without --bits"), "b93787e6");

    // NEA2 twice without --bits is the identity.
    let args = |data: &str| {
        run(&[
            "nea2",
            "--key",
            "00112233445566778899aabbccddeeff",
            "--count",
            "00000001",
            "--bearer",
            "0",
            "--direction",
            "0",
            "--data",
            data,
        ])
    };
    let once = stdout_line(&args("0102030405"), "nea2 once");
    assert_eq!(once.len(), 10);
    assert_eq!(stdout_line(&args(&once), "nea2 twice"), "0102030405");
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: one line on stderr, got {err:?}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: stderr {err:?} should mention {needle:?}"
    );
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
}

#[test]
fn bad_inputs_exit_non_zero_with_one_line() {
    let key = "2bd6459f82c5b300952c49104881ff48";
    for cmd in [["nia2", "--message"], ["nea2", "--data"]] {
        let base = |bearer: &'static str,
                    direction: &'static str,
                    data: &'static str,
                    bits: &'static str| {
            let mut v = vec![
                cmd[0],
                "--key",
                key,
                "--count",
                "38a6f056",
                "--bearer",
                bearer,
                "--direction",
                direction,
                cmd[1],
                data,
            ];
            if !bits.is_empty() {
                v.extend(["--bits", bits]);
            }
            v
        };
        assert_one_line_error(&base("32", "0", "00", ""), "BEARER must be 0..=31, got 32");
        assert_one_line_error(
            &base("256", "0", "00", ""),
            "BEARER must be 0..=31, got 256",
        );
        assert_one_line_error(
            &base("1", "2", "00", ""),
            "DIRECTION must be 0 (uplink) or 1 (downlink), got 2",
        );
        assert_one_line_error(
            &base("1", "0", "0000", "17"),
            "17 bits requested but the data holds only 16",
        );
        assert_one_line_error(&base("1", "0", "0000", "8"), "got 2");
        assert_one_line_error(&base("1", "0", "zz", ""), "not hex");
    }
    assert_one_line_error(
        &[
            "nia2",
            "--key",
            "00",
            "--count",
            "38a6f056",
            "--bearer",
            "1",
            "--direction",
            "0",
            "--message",
            "00",
        ],
        "--key must be 16 octets",
    );
    assert_one_line_error(
        &[
            "nea2",
            "--key",
            key,
            "--count",
            "38a6f0",
            "--bearer",
            "1",
            "--direction",
            "0",
            "--data",
            "00",
        ],
        "--count must be 4 octets",
    );
}

/// The nea2-nia2 data message of docs/wire-format.md rebuilt from the
/// subcommands one by one: algorithm keys from `kdf` (FC 0x93, counter 1,
/// the UE nonce), the payload from `nea2` (COUNT = seq 0, BEARER = KSI 1,
/// uplink), the MAC from `nia2` over header and ciphertext; `protect
/// --counter 1 --nonce …` gives the same octets.
#[test]
fn the_doc_data_message_is_nea2_and_nia2_under_the_counter_and_nonce_bound_keys() {
    const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
    const RAND: &str = "000102030405060708090a0b0c0d0e0f";
    const NONCE: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    let keyset = stdout_line(
        &run(&["derive", "keyset", "--root", ROOT, "--rand", RAND]),
        "keyset",
    );
    let key = |distinguisher: &str| {
        let out = run(&[
            "kdf",
            "--key",
            &keyset,
            "--fc",
            "93",
            "--param",
            distinguisher,
            "--param",
            "02",
            "--param",
            "0000000000000001",
            "--param",
            NONCE,
        ]);
        stdout_line(&out, "kdf")[32..].to_owned()
    };
    let (enc, int) = (key("01"), key("02"));
    let common = ["--count", "00000000", "--bearer", "1", "--direction", "0"];
    let ciphertext = stdout_line(
        &run(&[
            &["nea2", "--key", &enc, "--data", "48656c6c6f"][..],
            &common,
        ]
        .concat()),
        "nea2",
    );
    let header = "030301000100000000";
    let mac = stdout_line(
        &run(&[
            &[
                "nia2",
                "--key",
                &int,
                "--message",
                &format!("{header}{ciphertext}"),
            ][..],
            &common,
        ]
        .concat()),
        "nia2",
    );
    let message = format!("{header}{ciphertext}{mac}");
    assert_eq!(message, "0303010001000000000c36b81cdae8c1441f");
    let protected = stdout_line(
        &run(&[
            "protect",
            "--root",
            ROOT,
            "--rand",
            RAND,
            "--ksi",
            "1",
            "--seq",
            "0",
            "--direction",
            "uplink",
            "--suite",
            "nea2-nia2",
            "--payload",
            "48656c6c6f",
            "--counter",
            "1",
            "--nonce",
            NONCE,
        ]),
        "protect",
    );
    assert_eq!(protected, message);
}
