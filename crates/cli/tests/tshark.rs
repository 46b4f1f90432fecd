//! The Wireshark dissector (`dissector/ciot_e2e.lua`) against the crate's
//! lax dissector: on generated captures, valid and malformed, pcap and
//! pcapng, Ethernet and USER0, every field (abbreviation, value, offset,
//! length) and every finding must agree, packet by packet. The captures
//! hold every message of wire format v3 (hellos with their UE nonce,
//! triggers with and without CONFIRM, key-expired errors with and without
//! NAMED) and every kind of damage, and the test checks they do.
//!
//! Skips (and says why) when tshark is not installed, unless
//! `CIOT_E2E_REQUIRE_TSHARK=1` (set by `ci/tshark.sh`), which makes a
//! missing tshark a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The offset recorded for an empty field, whose position tshark does not give.
const EMPTY: u64 = u64::MAX;

const BIN: &str = env!("CARGO_BIN_EXE_ciot-e2e");

/// abbrev → (value, offset, length), and findings as (kind, message).
#[derive(Debug, Default, PartialEq)]
struct Packet {
    fields: BTreeMap<String, (String, u64, u64)>,
    findings: Vec<(String, String)>,
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CIOT_E2E_REQUIRE_TSHARK").is_ok_and(|v| v == "1") {
        panic!("tshark is required (CIOT_E2E_REQUIRE_TSHARK=1) but `tshark --version` failed");
    }
    ok
}

fn lua_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dissector/ciot_e2e.lua")
}

fn generate(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new(BIN)
        .arg("gen-pcap")
        .args(args)
        .arg(&out)
        .status()
        .expect("run ciot-e2e gen-pcap");
    assert!(status.success(), "gen-pcap {args:?} failed");
    out
}

/// `ciot-e2e dissect --json`: frame number → packet.
fn ours(capture: &Path) -> BTreeMap<u64, Packet> {
    let out = Command::new(BIN)
        .arg("dissect")
        .arg("--json")
        .arg(capture)
        .output()
        .expect("run dissect");
    assert!(
        out.status.success(),
        "dissect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packets = BTreeMap::new();
    for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        if v.get("summary").is_some() {
            continue;
        }
        let mut p = Packet::default();
        flatten_ours(&v["fields"], &mut p);
        for x in v["findings"].as_array().expect("findings") {
            p.findings.push((
                x["kind"].as_str().unwrap().to_owned(),
                x["message"].as_str().unwrap().to_owned(),
            ));
        }
        p.findings.sort();
        packets.insert(v["frame"].as_u64().expect("frame"), p);
    }
    packets
}

fn flatten_ours(fields: &Value, p: &mut Packet) {
    for f in fields.as_array().expect("fields array") {
        let value = match &f["value"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let abbrev = f["abbrev"].as_str().unwrap().to_owned();
        let len = f["length"].as_u64().unwrap();
        let offset = if len == 0 {
            EMPTY
        } else {
            f["offset"].as_u64().unwrap()
        };
        let prev = p.fields.insert(abbrev.clone(), (value, offset, len));
        assert!(prev.is_none(), "{abbrev} twice in one message");
        if let Some(children) = f.get("children") {
            flatten_ours(children, p);
        }
    }
}

/// tshark with the Lua dissector: frame number → packet.
fn theirs(capture: &Path) -> BTreeMap<u64, Packet> {
    let out = Command::new("tshark")
        .arg("-X")
        .arg(format!("lua_script:{}", lua_script().display()))
        .args(["-n", "-r"])
        .arg(capture)
        .args(["-T", "json", "-x", "--no-duplicate-keys"])
        .output()
        .expect("run tshark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // tshark exits 0 even when the script fails: "Lua Error" is a failure
    // while dissecting, "Lua: Error" one while loading the script.
    for text in [&stdout, &stderr] {
        for marker in ["Lua Error", "Lua: Error", "_ws.lua.error"] {
            assert!(
                !text.contains(marker),
                "{marker} in tshark output:\n{}",
                &text[..text.len().min(4000)]
            );
        }
    }
    assert!(out.status.success(), "tshark failed: {stderr}");
    let all: Value = serde_json::from_str(&stdout).expect("tshark JSON");
    let mut packets = BTreeMap::new();
    for pkt in all.as_array().expect("array of packets") {
        let layers = &pkt["_source"]["layers"];
        let number: u64 = layers["frame"]["frame.number"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let Some(layer) = layers.get("ciot_e2e") else {
            continue;
        };
        let base = layers["ciot_e2e_raw"][1]
            .as_u64()
            .expect("ciot_e2e_raw offset");
        let mut p = Packet::default();
        flatten_theirs(layer, base, &mut p);
        p.findings.sort();
        packets.insert(number, p);
    }
    packets
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn flatten_theirs(obj: &Value, base: u64, p: &mut Packet) {
    let Some(map) = obj.as_object() else { return };
    for (k, v) in map {
        if k == "_ws.expert" {
            for x in one_or_many(v) {
                let kind = x
                    .as_object()
                    .and_then(|m| m.keys().find_map(|k| k.strip_prefix("ciot_e2e.expert.")))
                    .unwrap_or("?")
                    .to_owned();
                let message = x["_ws.expert.message"].as_str().unwrap_or("").to_owned();
                p.findings.push((kind, message));
            }
        } else if k.ends_with("_tree") {
            for t in one_or_many(v) {
                flatten_theirs(t, base, p);
            }
        } else if k.starts_with("ciot_e2e.") && !k.ends_with("_raw") {
            let Some(raw) = map.get(&format!("{k}_raw")) else {
                // tshark gives no position for an empty field (an empty
                // payload); ours() leaves it out of the comparison too.
                let value = if v.as_str() == Some("") {
                    String::new()
                } else {
                    format!("{v} (no position)")
                };
                p.fields.insert(k.clone(), (value, EMPTY, 0));
                continue;
            };
            let ftype = raw[4].as_u64().unwrap_or(0);
            let shown = v.as_str().unwrap_or_default();
            let value = if ftype == 30 {
                shown.replace(':', "")
            } else if let Some(hex) = shown.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).expect("hex value").to_string()
            } else {
                shown.to_owned()
            };
            let offset = raw[1].as_u64().unwrap() - base;
            p.fields
                .insert(k.clone(), (value, offset, raw[2].as_u64().unwrap()));
        }
    }
}

/// What a capture exercised: (abbrev, value) of some fields, finding kinds.
#[derive(Default)]
struct Seen {
    fields: BTreeSet<(String, String)>,
    findings: BTreeSet<String>,
}

/// Compares tshark with ciot-e2e on `capture`; returns how many messages
/// agreed, recording what they exercised in `seen`.
fn compare(capture: &Path, seen: &mut Seen) -> usize {
    let ours = ours(capture);
    for p in ours.values() {
        for (abbrev, (value, _, _)) in &p.fields {
            let value = match abbrev.as_str() {
                "ciot_e2e.flags.named"
                | "ciot_e2e.flags.rekey"
                | "ciot_e2e.flags.confirm"
                | "ciot_e2e.version"
                | "ciot_e2e.type" => value.clone(),
                _ => String::new(),
            };
            seen.fields.insert((abbrev.clone(), value));
        }
        seen.findings
            .extend(p.findings.iter().map(|(kind, _)| kind.clone()));
    }
    let theirs = theirs(capture);
    let mut differences = Vec::new();
    for (n, mine) in &ours {
        match theirs.get(n) {
            Some(t) if t == mine => {}
            Some(t) => differences.push(format!(
                "frame {n}:\n  ciot-e2e: {mine:?}\n  tshark:   {t:?}"
            )),
            // Wireshark does not hand an empty UDP payload or frame to a
            // dissector: the only message it cannot see has no fields.
            None if mine.fields.is_empty() => {}
            None => differences.push(format!("frame {n}: tshark found no message")),
        }
    }
    for n in theirs.keys() {
        if !ours.contains_key(n) {
            differences.push(format!("frame {n}: only tshark found a message"));
        }
    }
    assert!(
        differences.is_empty(),
        "{}: {} frames differ; first ones:\n{}",
        capture.display(),
        differences.len(),
        differences
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!ours.is_empty(), "no messages in {}", capture.display());
    ours.len()
}

#[test]
fn lua_dissector_agrees_with_ciot_e2e_dissect_field_by_field() {
    if !tshark_available() {
        eprintln!("SKIPPED: tshark is not installed (apt-get install tshark; ci/tshark.sh does)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ciot-e2e-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let captures = [
        generate(&dir, "valid.pcap", &["--messages", "400", "--seed", "1"]),
        generate(
            &dir,
            "malformed.pcap",
            &[
                "--messages",
                "1500",
                "--seed",
                "2",
                "--malformed-ratio",
                "0.6",
            ],
        ),
        generate(
            &dir,
            "mixed.pcapng",
            &[
                "--messages",
                "800",
                "--seed",
                "3",
                "--malformed-ratio",
                "0.4",
            ],
        ),
        generate(
            &dir,
            "user0.pcap",
            &[
                "--user0",
                "--messages",
                "500",
                "--seed",
                "4",
                "--malformed-ratio",
                "0.5",
            ],
        ),
    ];
    let mut seen = Seen::default();
    for c in &captures {
        let n = compare(c, &mut seen);
        eprintln!("{}: {n} messages agree", c.display());
    }
    for (abbrev, value) in [
        ("ciot_e2e.type", "4"),
        ("ciot_e2e.version", "1"),
        ("ciot_e2e.version", "2"),
        ("ciot_e2e.flags.confirm", "0"),
        ("ciot_e2e.flags.confirm", "1"),
        ("ciot_e2e.flags.named", "0"),
        ("ciot_e2e.flags.named", "1"),
        ("ciot_e2e.flags.rekey", "0"),
        ("ciot_e2e.flags.rekey", "1"),
        ("ciot_e2e.key_expired.seq", ""),
        ("ciot_e2e.hello.nonce", ""),
        ("ciot_e2e.hello.id", ""),
        ("ciot_e2e.hello.padding", ""),
        ("ciot_e2e.hello.tag", ""),
    ] {
        assert!(
            seen.fields.contains(&(abbrev.to_owned(), value.to_owned())),
            "no message compared had {abbrev} = {value:?}"
        );
    }
    for kind in [
        "truncated",
        "unknown_version",
        "unknown_type",
        "reserved_bits",
        "unknown_suite",
        "unknown_kdf",
        "unknown_cause",
        "zero_lifetime",
        "trailing_data",
        "bad_id_length",
        "nonzero_padding",
        "unnamed_seq",
    ] {
        assert!(seen.findings.contains(kind), "no finding {kind} compared");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
