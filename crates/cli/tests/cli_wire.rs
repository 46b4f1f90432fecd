//! `encode` and `decode` against the golden control messages of
//! docs/wire-format.md (wire format 3): the derive trigger with and without
//! CONFIRM, the key-expired error with and without NAMED, and the hello;
//! the tags of triggers and errors bound to the UE nonce; bad input gets
//! one line on stderr, a non-zero exit and nothing on stdout.

use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = "780e78ce2cc0714f3ebad7b93bd66c70551bd795a1195d23c9a548d23682ad57";
const RAND: &str = "000102030405060708090a0b0c0d0e0f";
/// The nonce of the UE start every example answers (or, in a hello, is).
const NONCE: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
/// Another start of the same UE.
const OTHER_NONCE: &str = "000102030405060708090a0b0c0d0e0f";
const GOLDEN_TRIGGER_CONFIRM: &str = "030101010000000000000001000102030405060708090a0b0c0d0e0f010200000e10e33925d0ee09e5cda5c6f9a2448f8fbc";
const GOLDEN_TRIGGER: &str = "030101000000000000000001000102030405060708090a0b0c0d0e0f010200000e10f3e3fa0751fc8777653a76f2c3197533";
const GOLDEN_KEY_EXPIRED: &str =
    "030201000100000000000000010000000079c3865c5cfb610679486a550af26ec0";
const GOLDEN_KEY_EXPIRED_NAMED: &str =
    "03020101010000000000000001000000031a94762b044b29e43de5f932285b8a23";
const GOLDEN_HELLO: &str = "03040101000000000000000100000002f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0775652d3030303100000000000000000000000000000000000000000000000000000000f0d00efe8f3ca3e0b1b94054522e9979";
const GOLDEN_HELLO_LONG: &str = "03040001000000000000000000000000f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff3a75652d303030312e73656e736f72732e706c616e742d372e6275696c64696e672d31322e6578616d706c652e636f6d2e656e74657270726973657ffb48c8e401dc36201f0b1db7d8851b";
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
    serde_json::from_str(&line(&[
        "decode", hex, "--json", "--root", ROOT, "--nonce", NONCE,
    ]))
    .unwrap()
}

#[test]
fn encode_reproduces_every_golden_control_message() {
    let trigger = [
        "encode",
        "trigger",
        "--root",
        ROOT,
        "--nonce",
        NONCE,
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
    assert_eq!(
        line(&[&trigger[..], &["--confirm"]].concat()),
        GOLDEN_TRIGGER_CONFIRM
    );
    let error = [
        "encode",
        "key-expired",
        "--root",
        ROOT,
        "--nonce",
        NONCE,
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
        line(
            &[
                &[
                    "encode", "hello", "--root", ROOT, "--nonce", NONCE, "--id", id,
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    assert_eq!(
        hello(
            "ue-0001",
            &["--ksi", "1", "--counter", "1", "--seq", "2", "--rekey"]
        ),
        GOLDEN_HELLO
    );
    assert_eq!(
        hello(LONG_ID, &["--counter", "0", "--seq", "0", "--rekey"]),
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
fn decode_shows_every_field_of_the_v3_control_messages() {
    let t = decode_json(GOLDEN_TRIGGER);
    assert_eq!(
        (&t["version"], &t["type"], &t["length"], &t["tag_valid"]),
        (
            &Value::from(3),
            &Value::from("derive-trigger"),
            &Value::from(50),
            &Value::from(true)
        )
    );
    assert_eq!(t["confirm"], false);
    let t = decode_json(GOLDEN_TRIGGER_CONFIRM);
    assert_eq!(
        (&t["confirm"], &t["tag_valid"]),
        (&true.into(), &true.into())
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
    assert_eq!(h["nonce"], NONCE);
    assert_eq!(h["id_length"], 7);
    assert_eq!(h["id"], hex::encode("ue-0001"));
    assert_eq!(h["padding"], 28);
    assert_eq!(h["tag"], &GOLDEN_HELLO[136..]);
    assert_eq!(h["tag_valid"], true);
    let h = decode_json(GOLDEN_HELLO_LONG);
    assert_eq!(
        (&h["length"], &h["seq"], &h["id_length"], &h["padding"]),
        (&107.into(), &0.into(), &58.into(), &0.into())
    );

    // Text: one line per field; the identifier as quoted text.
    let out = run(&["decode", GOLDEN_HELLO]);
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "hello (84 octets)",
        "  rekey: true",
        "  seq: 2",
        "  nonce: f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        "  id_length: 7",
        "  id: \"ue-0001\" (7 octets)",
        "  padding: 28 zero octets",
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

/// docs/wire-format.md: an identifier is shown as text when every octet is
/// ASCII graphic (0x21..=0x7e), else in hex; a space is not graphic.
#[test]
fn a_hello_whose_identifier_is_not_text_is_shown_in_hex() {
    let shown = |id: &str| -> String {
        let hello = line(&[
            "encode",
            "hello",
            "--root",
            ROOT,
            "--nonce",
            NONCE,
            "--id",
            id,
            "--counter",
            "4",
            "--seq",
            "9",
        ]);
        let out = run(&["decode", &hello]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("  id: "))
            .unwrap_or_else(|| panic!("no id line in\n{text}"))
            .to_owned()
    };
    assert_eq!(shown("0x00ff10"), "00ff10 (3 octets)");
    assert_eq!(shown("ue 7"), "75652037 (4 octets)");
    assert_eq!(shown("0x75650a37"), "75650a37 (4 octets)");
    assert_eq!(shown("!~ue-7"), "\"!~ue-7\" (6 octets)");
    // Text that starts with 0x is given in hex: "0x7" is 30 78 37.
    assert_eq!(shown("0x307837"), "\"0x7\" (3 octets)");
}

#[test]
fn the_new_cause_encodes_and_decodes() {
    let e = line(&[
        "encode",
        "key-expired",
        "--root",
        ROOT,
        "--nonce",
        NONCE,
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
            "--nonce",
            NONCE,
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
    // 64 octets is the longest identifier: a 113-octet hello.
    let longest = line(&strs(&hello(&"x".repeat(64))));
    assert_eq!(longest.len(), 2 * 113);
    // A nonce that is not 16 octets.
    for nonce in ["f0f1", &NONCE[2..], &format!("{NONCE}00"), "not hex"] {
        let mut args = hello("ue-7");
        args[5] = nonce.to_owned();
        refused(&strs(&args), 1, "--nonce");
    }

    // Malformed v3 control messages are refused by decode (exit 2).
    let mut bad = hex::decode(GOLDEN_HELLO).unwrap();
    bad[32] = 0;
    refused(
        &["decode", &hex::encode(&bad)],
        2,
        "malformed identifier length: value 0x0 is not allowed",
    );
    let mut bad = hex::decode(GOLDEN_HELLO).unwrap();
    bad[46] = 1;
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
    // A version 1 message, and a version 2 one (the key-expired error of
    // docs/wire-format.md version 2).
    refused(
        &[
            "decode",
            "010201000100000000000000010608f2da38c4bf721c69f45a443f53fb",
        ],
        2,
        "unknown protocol version 1",
    );
    refused(
        &[
            "decode",
            "0202010001000000000000000100000000eb711eaf6c18a46be8442892bb66936a",
        ],
        2,
        "unknown protocol version 2",
    );
    // A hello shorter than 84 octets is truncated, whatever its identifier
    // length says (here 58: the long hello cut at 83).
    refused(
        &["decode", &GOLDEN_HELLO_LONG[..2 * 83]],
        2,
        "malformed message: truncated: needed 84 octets, got 83",
    );
    refused(
        &["decode", &GOLDEN_HELLO_LONG[..2 * 84]],
        2,
        "malformed message: truncated: needed 107 octets, got 84",
    );
    // A forged hello under --root (a nonce bit flipped): the fields, then
    // exit 2 with the reason.
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

/// A trigger's or an error's tag covers the nonce of the UE start it
/// answers: `decode --root` checks it with `--nonce`, and without it says
/// it did not (exit 0), never that it is bad. A hello's tag needs the root
/// alone.
#[test]
fn trigger_and_error_tags_are_checked_only_with_the_nonce_they_answer() {
    for golden in [
        GOLDEN_TRIGGER,
        GOLDEN_TRIGGER_CONFIRM,
        GOLDEN_KEY_EXPIRED,
        GOLDEN_KEY_EXPIRED_NAMED,
    ] {
        let out = run(&["decode", golden, "--root", ROOT]);
        assert_eq!(out.status.code(), Some(0), "{golden}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().any(|l| l
                == "  tag check: not done (the tag covers the nonce of the UE start it answers: give --nonce)"),
            "{text}"
        );
        assert!(
            !text.contains("INVALID") && !text.contains("valid under"),
            "{text}"
        );
        assert!(out.stderr.is_empty());
        let json: Value =
            serde_json::from_str(&line(&["decode", golden, "--json", "--root", ROOT])).unwrap();
        assert_eq!(json.get("tag_valid"), None, "{golden}");
        assert!(
            json["tag_not_checked"]
                .as_str()
                .unwrap()
                .contains("--nonce")
        );

        // Under the nonce it answers: valid. Under another start's: bad.
        let ok = run(&["decode", golden, "--root", ROOT, "--nonce", NONCE]);
        assert_eq!(ok.status.code(), Some(0));
        assert!(
            String::from_utf8(ok.stdout)
                .unwrap()
                .contains("tag check: valid under the given root")
        );
        let out = run(&["decode", golden, "--root", ROOT, "--nonce", OTHER_NONCE]);
        assert_eq!(out.status.code(), Some(2), "{golden}");
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .contains("tag check: INVALID under the given root")
        );
        assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
        // Without --root, --nonce changes nothing: no tag check.
        let out = run(&["decode", golden, "--nonce", OTHER_NONCE]);
        assert_eq!(out.status.code(), Some(0));
        assert!(!String::from_utf8(out.stdout).unwrap().contains("tag check"));
    }
    // The same trigger made for another start has another tag.
    let other = line(&[
        "encode",
        "trigger",
        "--root",
        ROOT,
        "--nonce",
        OTHER_NONCE,
        "--ksi",
        "1",
        "--rand",
        RAND,
        "--counter",
        "1",
    ]);
    assert_eq!(other[..68], GOLDEN_TRIGGER[..68]);
    assert_ne!(other[68..], GOLDEN_TRIGGER[68..]);
    // A hello: the root alone, whatever --nonce says.
    for extra in [&[][..], &["--nonce", OTHER_NONCE][..]] {
        let args = [&["decode", GOLDEN_HELLO, "--root", ROOT][..], extra].concat();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .contains("tag check: valid under the given root")
        );
    }
    // A bad --nonce is a usage error.
    refused(
        &["decode", GOLDEN_TRIGGER, "--root", ROOT, "--nonce", "f0f1"],
        1,
        "--nonce must be 16 octets",
    );
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

/// docs/wire-format.md: `decode --root` checks the tag with the control key
/// of `--kdf` and does not compare the trigger's KDF octet with it (a UE
/// would refuse the trigger as a profile mismatch after its tag).
#[test]
fn decode_checks_the_tag_not_the_kdf_profile_a_trigger_names() {
    use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
    use ciot_e2e::wire::{ControlAuth, Ksi, Suite, TriggerRepr};
    let root = RootKey::new(
        RootKind::IntKey,
        RootBytes::from_bytes(hex::decode(ROOT).unwrap().try_into().unwrap()),
    );
    let control = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
    let nonce = UeNonce::from_bytes(hex::decode(NONCE).unwrap().try_into().unwrap());
    let mut buf = [0u8; TriggerRepr::LEN];
    TriggerRepr {
        ksi: Ksi(1),
        confirm: true,
        counter: 1,
        rand: Rand(hex::decode(RAND).unwrap().try_into().unwrap()),
        profile: KdfProfile::HkdfSha256,
        suite: Suite::AES_128_GCM,
        lifetime: 3600,
        tag: [0; 16],
    }
    .emit_signed(&control.answer(&nonce), &mut buf)
    .unwrap();
    let out = run(&[
        "decode",
        &hex::encode(buf),
        "--root",
        ROOT,
        "--nonce",
        NONCE,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l == "  kdf: hkdf (0x02)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "  tag check: valid under the given root"),
        "{text}"
    );
    // Under the other profile's control key the tag does not hold.
    let out = run(&[
        "decode",
        &hex::encode(buf),
        "--root",
        ROOT,
        "--nonce",
        NONCE,
        "--kdf",
        "hkdf",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
