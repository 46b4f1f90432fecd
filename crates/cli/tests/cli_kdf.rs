//! The `ciot-e2e kdf` and `ciot-e2e derive` subcommands, run as a user runs
//! them: every published vector through the binary, the outputs of `derive`
//! against the library, and bad input refused with one line on stderr.

use std::process::{Command, Output};

use ciot_e2e::kdf::{
    self, Ck, CkIk, Fc, Ik, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind,
};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
        .args(args)
        .output()
        .expect("the ciot-e2e binary runs")
}

/// Runs the binary and returns its one line of stdout; fails the test on a
/// non-zero exit or on anything but one lowercase-hex line.
fn ok_line(args: &[&str]) -> String {
    let out = run(args);
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
    let line = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{args:?}: no newline"));
    assert!(
        !line.contains('\n'),
        "{args:?}: more than one line: {stdout:?}"
    );
    assert!(
        line.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{args:?}: not lowercase hex: {line:?}"
    );
    line.to_owned()
}

/// Runs the binary expecting a refusal: non-zero exit, nothing on stdout and
/// exactly one line on stderr. Returns that line.
fn refused(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    let line = stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{args:?}: {stderr:?}"));
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "{args:?}: not one line: {stderr:?}"
    );
    line.to_owned()
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../tests/data/kdf.json"))
        .expect("tests/data/kdf.json parses")
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} is a string"))
}

#[test]
fn kdf_subcommand_reproduces_every_published_vector() {
    let all = vectors();
    let cases = all["ts33220_kdf"]
        .as_array()
        .expect("ts33220_kdf is an array");
    assert!(cases.len() >= 5);
    for case in cases {
        let name = str_of(case, "name");
        let mut args = vec![
            "kdf",
            "--key",
            str_of(case, "key"),
            "--fc",
            str_of(case, "fc"),
        ];
        for p in case["params"].as_array().expect("params") {
            args.push("--param");
            args.push(p.as_str().expect("hex param"));
        }
        assert_eq!(ok_line(&args), str_of(case, "output"), "vector {name}");
    }
}

#[test]
fn kdf_subcommand_accepts_uppercase_hex() {
    let all = vectors();
    let case = &all["ts33220_kdf"][0];
    let key = str_of(case, "key").to_ascii_uppercase();
    let mut args = vec!["kdf", "--key", &key, "--fc", str_of(case, "fc")];
    let params: Vec<String> = case["params"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p.as_str().expect("hex").to_ascii_uppercase())
        .collect();
    for p in &params {
        args.extend(["--param", p.as_str()]);
    }
    assert_eq!(ok_line(&args), str_of(case, "output"));
}

#[test]
fn kdf_subcommand_takes_the_two_octet_fc_and_empty_parameters() {
    let key = [0x0bu8; 32];
    for (fc_hex, fc) in [("ff01", Fc::extended(0x01)), ("FF9a", Fc::extended(0x9a))] {
        let want = kdf::kdf(&key, fc, &[b"abc", &[]]).expect("valid input");
        let got = ok_line(&[
            "kdf",
            "--key",
            &hex::encode(key),
            "--fc",
            fc_hex,
            "--param",
            "616263",
            "--param",
            "",
        ]);
        assert_eq!(got, hex::encode(want), "--fc {fc_hex}");
    }
    // No parameter at all: S is FC alone.
    let want = kdf::kdf(&key, Fc::new(0x93).expect("not ff"), &[]).expect("valid input");
    assert_eq!(
        ok_line(&["kdf", "--key", &hex::encode(key), "--fc", "93"]),
        hex::encode(want)
    );
}

#[test]
fn kdf_subcommand_refuses_bad_input_with_one_line() {
    let key = "00".repeat(32);
    let msg = refused(&["kdf", "--key", "zz", "--fc", "10"]);
    assert!(msg.contains("--key"), "{msg}");
    assert!(refused(&["kdf", "--key", "abc", "--fc", "10"]).contains("--key"));
    let msg = refused(&["kdf", "--key", &key, "--fc", "ff"]);
    assert!(msg.contains("--fc") && msg.contains("reserved"), "{msg}");
    assert!(refused(&["kdf", "--key", &key, "--fc", "1001"]).contains("--fc"));
    assert!(refused(&["kdf", "--key", &key, "--fc", ""]).contains("--fc"));
    assert!(refused(&["kdf", "--key", &key, "--fc", "ff0102"]).contains("--fc"));
    assert!(refused(&["kdf", "--key", &key, "--fc", "10", "--param", "0g"]).contains("--param"));
}

const CK: &str = "000102030405060708090a0b0c0d0e0f";
const IK: &str = "f0e0d0c0b0a090807060504030201000";

fn ck_ik() -> CkIk {
    let ck = Ck::from_slice(&hex::decode(CK).expect("hex")).expect("16 octets");
    let ik = Ik::from_slice(&hex::decode(IK).expect("hex")).expect("16 octets");
    CkIk::new(&ck, &ik)
}

#[test]
fn derive_int_key_equals_the_library_for_both_profiles() {
    for (flag, profile) in [
        ("3gpp", KdfProfile::Ts33220),
        ("hkdf", KdfProfile::HkdfSha256),
    ] {
        let want = hex::encode(kdf::int_key(profile, &ck_ik()).key().as_bytes());
        let got = ok_line(&["derive", "int-key", "--ck", CK, "--ik", IK, "--kdf", flag]);
        assert_eq!(got, want, "--kdf {flag}");
    }
    // The default profile is the 3GPP KDF.
    let default = ok_line(&["derive", "int-key", "--ck", CK, "--ik", IK]);
    assert_eq!(
        default,
        hex::encode(kdf::int_key(KdfProfile::Ts33220, &ck_ik()).key().as_bytes())
    );
}

#[test]
fn derive_keyset_equals_the_library_for_every_root_kind_and_profile() {
    let root_hex = "3c1f845e9207d46ba158e32d70c916fa4b8825d06eb30a97f1425ce8397da613";
    let rand_hex = "a55a0ff0123456789abcdef001234567";
    let root_octets: [u8; 32] = hex::decode(root_hex).expect("hex").try_into().expect("32");
    let rand = Rand::from_slice(&hex::decode(rand_hex).expect("hex")).expect("16 octets");
    let mut seen = Vec::new();
    for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
        for (flag, profile) in [
            ("3gpp", KdfProfile::Ts33220),
            ("hkdf", KdfProfile::HkdfSha256),
        ] {
            let root = RootKey::new(kind, RootBytes::from_bytes(root_octets));
            let want = hex::encode(PreparedRoot::new(&root, profile).keyset(&rand).as_bytes());
            let got = ok_line(&[
                "derive",
                "keyset",
                "--root",
                root_hex,
                "--rand",
                rand_hex,
                "--root-kind",
                kind.name(),
                "--kdf",
                flag,
            ]);
            assert_eq!(got, want, "--root-kind {} --kdf {flag}", kind.name());
            seen.push(got);
        }
    }
    // Six combinations, six different keysets.
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    // Defaults: root kind int-key, profile 3gpp.
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes(root_octets));
    let want = PreparedRoot::new(&root, KdfProfile::Ts33220).keyset(&rand);
    let got = ok_line(&["derive", "keyset", "--root", root_hex, "--rand", rand_hex]);
    assert_eq!(got, hex::encode(want.as_bytes()));
}

#[test]
fn derive_chains_int_key_into_keyset() {
    let root = ok_line(&["derive", "int-key", "--ck", CK, "--ik", IK]);
    let rand = "00112233445566778899aabbccddeeff";
    let via_cli = ok_line(&["derive", "keyset", "--root", &root, "--rand", rand]);
    let lib_root = kdf::int_key(KdfProfile::Ts33220, &ck_ik());
    let want = kdf::keyset(
        KdfProfile::Ts33220,
        &lib_root,
        &Rand::from_slice(&hex::decode(rand).expect("hex")).expect("16 octets"),
    );
    assert_eq!(via_cli, hex::encode(want.as_bytes()));
}

#[test]
fn derive_refuses_wrong_lengths_with_one_line() {
    let root = "11".repeat(32);
    let rand = "22".repeat(16);
    let msg = refused(&["derive", "int-key", "--ck", &CK[2..], "--ik", IK]);
    assert!(msg.contains("--ck") && msg.contains("16 octets"), "{msg}");
    let msg = refused(&["derive", "int-key", "--ck", CK, "--ik", &format!("{IK}00")]);
    assert!(msg.contains("--ik"), "{msg}");
    assert!(refused(&["derive", "int-key", "--ck", "xyz", "--ik", IK]).contains("--ck"));
    let msg = refused(&["derive", "keyset", "--root", &root[2..], "--rand", &rand]);
    assert!(msg.contains("--root") && msg.contains("32 octets"), "{msg}");
    let msg = refused(&["derive", "keyset", "--root", &root, "--rand", &rand[2..]]);
    assert!(msg.contains("--rand") && msg.contains("16 octets"), "{msg}");
    assert!(refused(&["derive", "keyset", "--root", &root, "--rand", ""]).contains("--rand"));
}

#[test]
fn unknown_choices_are_refused() {
    // Refused by the argument parser: non-zero exit, the offending value named.
    let root = "11".repeat(32);
    let rand = "22".repeat(16);
    for args in [
        vec![
            "derive",
            "keyset",
            "--root",
            &root,
            "--rand",
            &rand,
            "--root-kind",
            "e2m",
        ],
        vec![
            "derive", "keyset", "--root", &root, "--rand", &rand, "--kdf", "sha1",
        ],
        vec!["derive", "int-key", "--ck", CK],
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
        assert!(!out.stderr.is_empty(), "{args:?}: silent refusal");
    }
}

/// docs/key-hierarchy.md: an algorithm key is the low 128 bits of
/// `kdf --fc 93 --param <distinguisher> --param <identity> --param <counter>
/// --param <UE nonce>` over the keyset, the counter being the trigger's,
/// eight octets big endian, and the nonce the 16 octets of the UE start the
/// keyset was made for (wire format 3).
#[test]
fn algorithm_keys_through_the_raw_kdf_are_bound_to_the_trigger_counter_and_the_nonce() {
    let root = ok_line(&["derive", "int-key", "--ck", CK, "--ik", IK]);
    let rand = "00112233445566778899aabbccddeeff";
    let keyset_hex = ok_line(&["derive", "keyset", "--root", &root, "--rand", rand]);
    let keyset = kdf::KeySet::from_slice(&hex::decode(&keyset_hex).expect("hex")).expect("32");
    let nonces = [
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        "000102030405060708090a0b0c0d0e0f",
    ];
    let mut seen = std::collections::HashSet::new();
    for nonce_hex in nonces {
        let nonce = kdf::UeNonce::from_slice(&hex::decode(nonce_hex).expect("hex")).expect("16");
        for (counter, counter_hex) in [(1u64, "0000000000000001"), (2, "0000000000000002")] {
            for alg in [
                kdf::Algorithm::Nea2,
                kdf::Algorithm::Nia2,
                kdf::Algorithm::Aes128Gcm,
            ] {
                let out = ok_line(&[
                    "kdf",
                    "--key",
                    &keyset_hex,
                    "--fc",
                    "93",
                    "--param",
                    &format!("{:02x}", alg.distinguisher()),
                    "--param",
                    &format!("{:02x}", alg.identity()),
                    "--param",
                    counter_hex,
                    "--param",
                    nonce_hex,
                ]);
                let want = kdf::alg_key(KdfProfile::Ts33220, &keyset, alg, counter, &nonce);
                assert_eq!(
                    &out[32..],
                    hex::encode(want.as_bytes()),
                    "{alg:?} {counter} {nonce_hex}"
                );
                assert!(
                    seen.insert(out[32..].to_owned()),
                    "{alg:?} {counter} {nonce_hex} repeats"
                );
            }
        }
    }
    // The AES-128-GCM key of the keyset of docs/key-hierarchy.md's worked
    // example for nonce f0 f1 … ff (also computed with Python's `hmac`).
    let gcm = |c: &str| {
        ok_line(&[
            "kdf",
            "--key",
            &keyset_hex,
            "--fc",
            "93",
            "--param",
            "03",
            "--param",
            "01",
            "--param",
            c,
            "--param",
            nonces[0],
        ])[32..]
            .to_owned()
    };
    assert_eq!(gcm("0000000000000001"), "10ebd793daa96bef7ade3c7d0b1b3c3a");
    assert_eq!(gcm("0000000000000002"), "5afe3132087b8e665e16e224dec5087e");
}
