//! `encode` and `decode` against the golden control messages of
//! docs/wire-format.md: the derive trigger, the key-expired error with and
//! without NAMED, and the hello; bad input gets one line on stderr, a
//! non-zero exit and nothing on stdout.

use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
const GOLDEN_TRIGGER: &str = "020101000000000000000001000102030405060708090a0b0c0d0e0f010200000e10fca967a1394be69ed4e1fbdcb34ff9bf";
const GOLDEN_KEY_EXPIRED: &str =
    "0202010001000000000000000100000000eb711eaf6c18a46be8442892bb66936a";
const GOLDEN_KEY_EXPIRED_NAMED: &str =
    "020201010100000000000000010000000398fb34a3b962e182a826a3a4c7a0f31e";
const GOLDEN_HELLO: &str = "020401010000000000000001000000020775652d303030310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b676b84856f7abad540797024b6630f3";
const GOLDEN_HELLO_LONG: &str = "020400010000000000000000000000013a75652d303030312e73656e736f72732e706c616e742d372e6275696c64696e672d31322e6578616d706c652e636f6d2e656e7465727072697365d92649bf7238e06cfb6753d6b10cf372";
const LONG_ID: &str = "ue-0001.sensors.plant-7.building-12.example.com.enterprise";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
        .args(args)
        .output()
        .unwrap()
}

fn line(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
    text.trim().to_owned()
}

/// The command fails with `code`, one line on stderr holding `needle`, and
/// nothing on stdout.
fn refused(args: &[&str], code: i32, needle: &str) {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn decode_json(hex: &str) -> Value {
    serde_json::from_str(&line(&["decode", hex, "--json", "--root", ROOT])).unwrap()
}

#[test]
fn encode_reproduces_every_golden_control_message() {
    let trigger = [
        "encode",
        "trigger",
        "--root",
        ROOT,
        "--ksi",
        "1",
        "--rand",
        RAND,
        "--counter",
        "1",
        "--lifetime",
        "3600",
        "--suite",
        "aes-128-gcm",
    ];
    assert_eq!(line(&trigger), GOLDEN_TRIGGER);
    let error = [
        "encode",
        "key-expired",
        "--root",
        ROOT,
        "--ksi",
        "1",
        "--cause",
        "te2e-expired",
        "--counter",
        "1",
    ];
    assert_eq!(line(&error), GOLDEN_KEY_EXPIRED);
    assert_eq!(
        line(&[&error[..], &["--refused", "3"]].concat()),
        GOLDEN_KEY_EXPIRED_NAMED
    );
    let hello = |id: &str, extra: &[&str]| {
        line(&[&["encode", "hello", "--root", ROOT, "--id", id][..], extra].concat())
    };
    assert_eq!(
        hello(
            "ue-0001",
            &["--ksi", "1", "--counter", "1", "--seq", "2", "--rekey"]
        ),
        GOLDEN_HELLO
    );
    assert_eq!(
        hello(LONG_ID, &["--counter", "0", "--seq", "1", "--rekey"]),
        GOLDEN_HELLO_LONG
    );
    // The identifier as hex after 0x is the same identifier.
    assert_eq!(
        hello(
            &format!("0x{}", hex::encode("ue-0001")),
            &["--ksi", "1", "--counter", "1", "--seq", "2", "--rekey"]
        ),
        GOLDEN_HELLO
    );
}

#[test]
fn decode_shows_every_field_of_the_v2_control_messages() {
    let t = decode_json(GOLDEN_TRIGGER);
    assert_eq!(
        (&t["version"], &t["type"], &t["length"], &t["tag_valid"]),
        (
            &Value::from(2),
            &Value::from("derive-trigger"),
            &Value::from(50),
            &Value::from(true)
        )
    );

    let k = decode_json(GOLDEN_KEY_EXPIRED);
    assert_eq!(k["length"], 33);
    assert_eq!(k["named"], false);
    assert_eq!(k["seq"], 0);
    assert_eq!(k["refused"], Value::Null);
    assert_eq!(k["cause"], "te2e-expired");
    assert_eq!(k["tag_valid"], true);
    let k = decode_json(GOLDEN_KEY_EXPIRED_NAMED);
    assert_eq!(
        (&k["named"], &k["seq"], &k["refused"]),
        (&true.into(), &3.into(), &3.into())
    );

    let h = decode_json(GOLDEN_HELLO);
    assert_eq!(h["type"], "hello");
    assert_eq!(h["length"], 84);
    assert_eq!(h["ksi"], 1);
    assert_eq!(h["rekey"], true);
    assert_eq!(h["counter"], 1);
    assert_eq!(h["seq"], 2);
    assert_eq!(h["id_length"], 7);
    assert_eq!(h["id"], hex::encode("ue-0001"));
    assert_eq!(h["padding"], 44);
    assert_eq!(h["tag"], &GOLDEN_HELLO[136..]);
    assert_eq!(h["tag_valid"], true);
    let h = decode_json(GOLDEN_HELLO_LONG);
    assert_eq!(
        (&h["length"], &h["id_length"], &h["padding"]),
        (&91.into(), &58.into(), &0.into())
    );

    // Text: one line per field; the identifier as quoted text.
    let out = run(&["decode", GOLDEN_HELLO]);
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "hello (84 octets)",
        "  rekey: true",
        "  seq: 2",
        "  id_length: 7",
        "  id: \"ue-0001\" (7 octets)",
        "  padding: 44 zero octets",
    ] {
        assert!(text.lines().any(|l| l == want), "{want:?} in\n{text}");
    }
    let out = run(&["decode", GOLDEN_KEY_EXPIRED_NAMED]);
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "key-expired (33 octets)",
        "  named: true",
        "  seq: 3",
        "  refused: seq 3",
    ] {
        assert!(text.lines().any(|l| l == want), "{want:?} in\n{text}");
    }
}

#[test]
fn a_hello_whose_identifier_is_not_text_is_shown_in_hex() {
    let hex_hello = line(&[
        "encode",
        "hello",
        "--root",
        ROOT,
        "--id",
        "0x00ff10",
        "--counter",
        "4",
        "--seq",
        "9",
    ]);
    let out = run(&["decode", &hex_hello]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l == "  id: 00ff10 (3 octets)"),
        "{text}"
    );
}

#[test]
fn the_new_cause_encodes_and_decodes() {
    let e = line(&[
        "encode",
        "key-expired",
        "--root",
        ROOT,
        "--ksi",
        "4",
        "--cause",
        "replaced",
        "--counter",
        "7",
    ]);
    assert_eq!(&e[8..10], "05");
    let out = run(&["decode", &e]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l == "  cause: replaced (0x05)"),
        "{text}"
    );
}

#[test]
fn bad_input_is_one_line_on_stderr_and_nothing_on_stdout() {
    let hello = |id: &str| -> Vec<String> {
        [
            "encode",
            "hello",
            "--root",
            ROOT,
            "--id",
            id,
            "--counter",
            "1",
            "--seq",
            "1",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    for (id, needle) in [
        (String::new(), "--id must be 1 to 64 octets, got 0"),
        ("x".repeat(65), "--id must be 1 to 64 octets, got 65"),
        ("0x".into(), "--id must be 1 to 64 octets, got 0"),
        ("0xabc".into(), "--id"),
        (format!("0x{}", "00".repeat(65)), "got 65"),
    ] {
        refused(&strs(&hello(&id)), 1, needle);
    }
    // 64 octets is the longest identifier: a 97-octet hello.
    let longest = line(&strs(&hello(&"x".repeat(64))));
    assert_eq!(longest.len(), 2 * 97);

    // Malformed v2 control messages are refused by decode (exit 2).
    let mut bad = hex::decode(GOLDEN_HELLO).unwrap();
    bad[16] = 0;
    refused(
        &["decode", &hex::encode(&bad)],
        2,
        "malformed identifier length: value 0x0 is not allowed",
    );
    let mut bad = hex::decode(GOLDEN_HELLO).unwrap();
    bad[30] = 1;
    refused(
        &["decode", &hex::encode(&bad)],
        2,
        "malformed padding: value 0x1 is not allowed",
    );
    let mut bad = hex::decode(GOLDEN_KEY_EXPIRED_NAMED).unwrap();
    bad[3] = 0;
    refused(
        &["decode", &hex::encode(&bad)],
        2,
        "malformed seq: value 0x3 is not allowed",
    );
    // A version 1 message.
    refused(
        &[
            "decode",
            "010201000100000000000000010608f2da38c4bf721c69f45a443f53fb",
        ],
        2,
        "unknown protocol version 1",
    );
    // A forged hello under --root: the fields, then exit 2 with the reason.
    let mut forged = hex::decode(GOLDEN_HELLO).unwrap();
    forged[17] ^= 1;
    let out = run(&["decode", &hex::encode(&forged), "--root", ROOT]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("tag check: INVALID under the given root")
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

/// `ciot-e2e decode … | head`: a reader that goes away ends the process
/// quietly, exit 0, no panic.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    for args in [
        vec!["decode", GOLDEN_HELLO],
        vec!["decode", "--json", GOLDEN_HELLO],
        vec!["kdf", "--key", "00", "--fc", "10"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
