//! The Wireshark dissectors against the crate's lax dissector.
//!
//! The Lua dissector (`dissector/ciot_e2e.lua`, decode only): on generated
//! captures, valid and malformed, pcap and pcapng, Ethernet and USER0,
//! every field (abbreviation, value, offset, length) and every finding must
//! agree with `ciot-e2e dissect --json`, packet by packet. The captures
//! hold every message of wire format v3 (hellos with their UE nonce,
//! triggers with and without CONFIRM, key-expired errors with and without
//! NAMED) and every kind of damage, and the test checks they do.
//!
//! The native plugin (`dissector/plugin/`), installed by
//! `dissector/install.sh` into a fresh home folder: with the key log as
//! `ciot_e2e.keylog_file`, every field, finding and plaintext of `tshark -T
//! json` equals `ciot-e2e dissect --keylog --json`, and `tshark -T fields -e
//! frame.number -e ciot_e2e.data.plaintext -e _ws.expert.message` shows
//! frame by frame the same plaintext and findings (nonce reuse among them),
//! on the same generated captures with their key logs, on the demo's
//! captures of both suites and on a capture with a real nonce reuse.
//!
//! Wireshark run as root loads no personal plugins: as root, tshark is run
//! as the user `nobody` (setpriv), and the files it reads are made readable.
//!
//! Skips (and says why) when tshark is not installed, unless
//! `CIOT_E2E_REQUIRE_TSHARK=1` (set by `ci/tshark.sh`), which makes a
//! missing tshark a failure; likewise the plugin's test without the
//! Wireshark development files, unless `CIOT_E2E_REQUIRE_PLUGIN=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ciot_e2e::kdf::{AlgKey, Rand};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Direction, Ksi};
use ciot_e2e_analyze::dissect::pcap::UdpPcapWriter;
use ciot_e2e_analyze::keylog::KeyLogWriter;
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

/// Which Wireshark dissector tshark runs.
#[derive(Clone, Copy)]
enum Dissector<'a> {
    /// `dissector/ciot_e2e.lua`, loaded with `-X lua_script:`, in an empty
    /// home folder (so an installed plugin cannot stand in for it).
    Lua { home: &'a Path },
    /// The plugin installed in `home`, with this key log, messages also
    /// on `port` (Decode As).
    Plugin {
        home: &'a Path,
        keys: &'a Path,
        port: u16,
    },
}

/// tshark's arguments to dissect `port` as ciot_e2e too (Decode As).
fn decode_as(port: u16) -> Vec<String> {
    if port == PORT {
        Vec::new()
    } else {
        vec!["-d".to_owned(), format!("udp.port=={port},ciot_e2e")]
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// tshark with `home` as its home folder. With `plugins`, as root it is run
/// as `nobody`, since Wireshark run as root loads no personal plugins (a
/// script named with `-X lua_script:` it loads as any user).
fn tshark(home: &Path, plugins: bool) -> Command {
    let mut c = if plugins && is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "tshark",
        ]);
        c
    } else {
        Command::new("tshark")
    };
    c.env("HOME", home);
    c
}

/// Makes `dir` and everything in it readable by everyone (tshark may run
/// as `nobody`; key logs are written owner-only).
fn readable(dir: &Path) {
    let mut p = std::fs::metadata(dir).unwrap().permissions();
    p.set_mode(if dir.is_dir() { 0o755 } else { 0o644 });
    std::fs::set_permissions(dir, p).unwrap();
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            readable(&e.unwrap().path());
        }
    }
}

/// Runs tshark; fails on any error it reports, on stdout or stderr.
fn run_tshark(mut c: Command) -> String {
    let out = c.output().expect("run tshark");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // tshark exits 0 even when a script fails: "Lua Error" is a failure
    // while dissecting, "Lua: Error" one while loading the script.
    for text in [&stdout[..], &stderr[..]] {
        for marker in ["Lua Error", "Lua: Error", "_ws.lua.error"] {
            assert!(
                !text.contains(marker),
                "{marker} in tshark output:\n{}",
                &text[..text.len().min(4000)]
            );
        }
    }
    // Nothing else on stderr either (an unknown preference, a plugin that
    // failed to load, a dissector bug).
    let noise: Vec<_> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Running as user"))
        .collect();
    assert!(
        noise.is_empty(),
        "tshark wrote to stderr:\n{}",
        noise.join("\n")
    );
    assert!(out.status.success(), "tshark failed: {stderr}");
    stdout
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

/// The protocol's UDP port: the demo's EESE takes another when it is busy.
const PORT: u16 = 33863;

/// `ciot-e2e dissect --json` (`--keylog keys`, messages also on `port`):
/// its JSON objects, one per message.
fn ours_json(capture: &Path, keys: Option<&Path>, port: u16) -> Vec<Value> {
    let mut c = Command::new(BIN);
    c.arg("dissect").arg("--json").arg(capture);
    if port != PORT {
        c.arg("--port").arg(port.to_string());
    }
    if let Some(k) = keys {
        c.arg("--keylog").arg(k);
    }
    let out = c.output().expect("run dissect");
    assert!(
        out.status.success(),
        "dissect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("one JSON object per line"))
        .filter(|v| v.get("summary").is_none())
        .collect()
}

/// `ciot-e2e dissect --json`: frame number → packet.
fn ours(capture: &Path, keys: Option<&Path>, port: u16) -> BTreeMap<u64, Packet> {
    let mut packets = BTreeMap::new();
    for v in ours_json(capture, keys, port) {
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

/// tshark with a dissector: frame number → packet.
fn theirs(capture: &Path, dissector: Dissector<'_>) -> BTreeMap<u64, Packet> {
    let mut c = match dissector {
        Dissector::Lua { home } => {
            let mut c = tshark(home, false);
            c.arg("-X")
                .arg(format!("lua_script:{}", lua_script().display()));
            c
        }
        Dissector::Plugin { home, keys, port } => {
            let mut c = tshark(home, true);
            c.arg("-o")
                .arg(format!("ciot_e2e.keylog_file:{}", keys.display()));
            c.args(decode_as(port));
            c
        }
    };
    c.args(["-n", "-r"])
        .arg(capture)
        .args(["-T", "json", "-x", "--no-duplicate-keys"]);
    let stdout = run_tshark(c);
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
            } else if ftype == 2 {
                // FT_BOOLEAN (the tag's verdict): ours is a JSON boolean.
                (shown == "1").to_string()
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
fn compare(capture: &Path, dissector: Dissector<'_>, seen: &mut Seen) -> usize {
    let (keys, port) = match dissector {
        Dissector::Lua { .. } => (None, PORT),
        Dissector::Plugin { keys, port, .. } => (Some(keys), port),
    };
    let ours = ours(capture, keys, port);
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
    let theirs = theirs(capture, dissector);
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
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
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
        let n = compare(c, Dissector::Lua { home: &home }, &mut seen);
        eprintln!("{}: {n} messages agree (Lua)", c.display());
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

/// Whether the plugin can be built here (the Wireshark development files).
fn plugin_buildable() -> bool {
    let ok = Command::new("pkg-config")
        .args(["--exists", "wireshark"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("CIOT_E2E_REQUIRE_PLUGIN").is_ok_and(|v| v == "1") {
        panic!(
            "the plugin is required (CIOT_E2E_REQUIRE_PLUGIN=1) but pkg-config finds no wireshark"
        );
    }
    ok
}

/// Installs the plugin into `home` with `dissector/install.sh`.
fn install_plugin(home: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = Command::new("bash");
    c.arg(root.join("dissector/install.sh")).env("HOME", home);
    // rustup and cargo find their own folders through HOME unless told.
    let real = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    if std::env::var_os("RUSTUP_HOME").is_none() {
        c.env("RUSTUP_HOME", real.join(".rustup"));
    }
    if std::env::var_os("CARGO_HOME").is_none() {
        c.env("CARGO_HOME", real.join(".cargo"));
    }
    let out = c.output().expect("run dissector/install.sh");
    assert!(
        out.status.success(),
        "dissector/install.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = Command::new("tshark").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let mm: Vec<&str> = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .expect("TShark (Wireshark) x.y.z")
        .split('.')
        .take(2)
        .collect();
    let plugin = home.join(format!(
        ".local/lib/wireshark/plugins/{}/epan/ciot_e2e.so",
        mm.join(".")
    ));
    assert!(plugin.is_file(), "{} not installed", plugin.display());
}

/// `tshark -T fields -e frame.number -e ciot_e2e.data.plaintext -e
/// _ws.expert.message` with the plugin: frame → (plaintext, messages).
fn fields_of(
    capture: &Path,
    home: &Path,
    keys: &Path,
    port: u16,
    extra: &[&str],
) -> BTreeMap<u64, (String, String)> {
    let mut c = tshark(home, true);
    c.args(extra)
        .args(decode_as(port))
        .arg("-r")
        .arg(capture)
        .arg("-o")
        .arg(format!("ciot_e2e.keylog_file:{}", keys.display()))
        .args(["-T", "fields", "-e", "frame.number"])
        .args(["-e", "ciot_e2e.data.plaintext", "-e", "_ws.expert.message"]);
    run_tshark(c)
        .lines()
        .map(|l| {
            let mut w = l.split('\t');
            let n = w.next().unwrap().parse().expect("frame number");
            let plain = w.next().unwrap_or_default().to_owned();
            let messages = w.next().unwrap_or_default().to_owned();
            (n, (plain, messages))
        })
        .collect()
}

/// The same from `ciot-e2e dissect --keylog --json`: frame → (plaintext,
/// the finding messages joined as tshark joins them), and the frames whose
/// message tshark is not handed (empty).
fn fields_ours(
    capture: &Path,
    keys: &Path,
    port: u16,
) -> (BTreeMap<u64, (String, String)>, BTreeSet<u64>) {
    let mut frames = BTreeMap::new();
    let mut empty = BTreeSet::new();
    for v in ours_json(capture, Some(keys), port) {
        let n = v["frame"].as_u64().unwrap();
        if v["length"].as_u64() == Some(0) {
            empty.insert(n);
            continue;
        }
        // tshark shows an empty octet string (an empty payload decrypted)
        // as "<MISSING>"; no plaintext at all as nothing.
        let plain = match v["plaintext"].as_str() {
            Some("") => "<MISSING>".to_owned(),
            Some(p) => p.to_owned(),
            None => String::new(),
        };
        let messages: Vec<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["message"].as_str().unwrap())
            .collect();
        frames.insert(n, (plain, messages.join(",")));
    }
    (frames, empty)
}

/// Compares the `-T fields` view frame by frame (tshark run with `extra`
/// arguments); returns (plaintexts, nonce-reuse findings) seen.
fn compare_fields(
    capture: &Path,
    home: &Path,
    keys: &Path,
    port: u16,
    extra: &[&str],
) -> (usize, usize) {
    let theirs = fields_of(capture, home, keys, port, extra);
    let (ours, empty) = fields_ours(capture, keys, port);
    let mut differences = Vec::new();
    for (n, t) in &theirs {
        if empty.contains(n) {
            continue;
        }
        let mine = ours.get(n).cloned().unwrap_or_default();
        if &mine != t {
            differences.push(format!(
                "frame {n}:\n  ciot-e2e: {mine:?}\n  tshark:   {t:?}"
            ));
        }
    }
    for n in ours.keys() {
        if !theirs.contains_key(n) {
            differences.push(format!("frame {n}: not in tshark's output"));
        }
    }
    assert!(
        differences.is_empty(),
        "{}: {} frames differ; first ones:\n{}",
        capture.display(),
        differences.len(),
        differences[..differences.len().min(5)].join("\n")
    );
    let plaintexts = ours.values().filter(|(p, _)| !p.is_empty()).count();
    let reuse = ours
        .values()
        .filter(|(_, m)| m.contains("nonce reuse"))
        .count();
    (plaintexts, reuse)
}

/// A capture with real nonce reuse, and its key log: under each suite, a
/// data message, the same datagram again (a duplicate, no finding) and
/// other contents under the same keys, direction and seq (a finding).
fn reuse_capture(dir: &Path) -> (PathBuf, PathBuf, u16) {
    let gcm = SuiteKeys::Aes128Gcm(AlgKey::from_bytes([0x11; 16]));
    let nea2 = SuiteKeys::Nea2Nia2 {
        enc: AlgKey::from_bytes([0x22; 16]),
        int: AlgKey::from_bytes([0x33; 16]),
    };
    let seal = |keys: &SuiteKeys, ksi: u8, payload: &[u8]| {
        let mut buf = vec![0u8; 128];
        let n = keys
            .cipher()
            .seal(Ksi(ksi), Direction::Downlink, 7, payload, &mut buf)
            .unwrap();
        buf.truncate(n);
        buf
    };
    let ue = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50000);
    let eese = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 33863);
    let mut w = UdpPcapWriter::new(Vec::new()).unwrap();
    let mut t = 0;
    for (keys, ksi) in [(&gcm, 3), (&nea2, 4)] {
        let first = seal(keys, ksi, b"first payload");
        let other = seal(keys, ksi, b"other payload");
        for m in [&first, &first, &other] {
            t += 1;
            w.write(Duration::new(t, 0), eese, ue, m).unwrap();
        }
    }
    let cap = dir.join("reuse.pcap");
    std::fs::write(&cap, w.into_inner().unwrap()).unwrap();
    let mut kw = KeyLogWriter::new_insecure(Vec::new());
    kw.append(Ksi(3), Some(1), &Rand([5; 16]), &gcm).unwrap();
    kw.append(Ksi(4), Some(2), &Rand([6; 16]), &nea2).unwrap();
    let log = dir.join("reuse.keys");
    std::fs::write(&log, kw.into_inner()).unwrap();
    (cap, log, PORT)
}

/// The demo's capture and key log for `suite`, and the EESE's port (33863
/// unless something else holds it).
fn demo_capture(dir: &Path, suite: &str) -> (PathBuf, PathBuf, u16) {
    let cap = dir.join(format!("demo-{suite}.pcap"));
    let keys = dir.join(format!("demo-{suite}.keys"));
    let out = Command::new(BIN)
        .args(["demo", "--te2e", "1", "--suite", suite, "--pcap"])
        .arg(&cap)
        .arg("--keylog")
        .arg(&keys)
        .output()
        .expect("run ciot-e2e demo");
    assert!(
        out.status.success(),
        "demo --suite {suite} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "ciot-e2e demo: EESE on 127.0.0.1:33863, UE …"
    let stdout = String::from_utf8_lossy(&out.stdout);
    let port = stdout
        .split("EESE on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no EESE address in the demo's output:\n{stdout}"));
    (cap, keys, port)
}

#[test]
fn plugin_decrypts_and_agrees_with_ciot_e2e_dissect_keylog_frame_by_frame() {
    if !tshark_available() {
        eprintln!("SKIPPED: tshark is not installed (apt-get install tshark; ci/tshark.sh does)");
        return;
    }
    if !plugin_buildable() {
        eprintln!(
            "SKIPPED: no Wireshark development files (apt-get install libwireshark-dev; \
             ci/tshark.sh does)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("ciot-e2e-plugin-{}", std::process::id()));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    install_plugin(&home);
    let with_keys = |name: &str, args: &[&str]| {
        let keys = dir.join(format!("{name}.keys"));
        let mut all = args.to_vec();
        all.extend(["--keylog", keys.to_str().unwrap()]);
        (generate(&dir, name, &all), keys, PORT)
    };
    let captures = [
        with_keys("valid.pcap", &["--messages", "400", "--seed", "1"]),
        with_keys(
            "malformed-10.pcap",
            &[
                "--messages",
                "1000",
                "--seed",
                "7",
                "--malformed-ratio",
                "0.1",
            ],
        ),
        with_keys(
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
        with_keys(
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
        demo_capture(&dir, "aes-128-gcm"),
        demo_capture(&dir, "nea2-nia2"),
        reuse_capture(&dir),
    ];
    readable(&dir);
    let mut seen = Seen::default();
    for (cap, keys, port) in &captures {
        let port = *port;
        let plugin = Dissector::Plugin {
            home: &home,
            keys,
            port,
        };
        let n = compare(cap, plugin, &mut seen);
        let (plaintexts, reuse) = compare_fields(cap, &home, keys, port, &[]);
        // Two passes (every frame dissected again after the first pass):
        // the nonce ledger answers each frame as it did the first time.
        assert_eq!(
            compare_fields(cap, &home, keys, port, &["-2"]),
            (plaintexts, reuse),
            "{} in two passes",
            cap.display()
        );
        eprintln!(
            "{}: {n} messages agree field by field, {plaintexts} plaintexts and {reuse} nonce \
             reuses frame by frame (plugin)",
            cap.display()
        );
        let name = cap.file_name().unwrap().to_str().unwrap();
        if name.starts_with("demo") {
            assert!(plaintexts > 0, "{name}: nothing decrypted");
        }
        assert_eq!(reuse, if name == "reuse.pcap" { 2 } else { 0 }, "{name}");
    }
    // A display filter on the finding picks the second message of each
    // pair, in one pass and in two.
    let (reuse, reuse_keys, _) = &captures[captures.len() - 1];
    for extra in [&[][..], &["-2"][..]] {
        let mut c = tshark(&home, true);
        c.args(extra)
            .arg("-r")
            .arg(reuse)
            .arg("-o")
            .arg(format!("ciot_e2e.keylog_file:{}", reuse_keys.display()))
            .args(["-Y", "ciot_e2e.expert.nonce-reuse", "-T", "fields"])
            .args(["-e", "frame.number"]);
        assert_eq!(
            run_tshark(c),
            "3\n6\n",
            "tshark {extra:?} -Y ciot_e2e.expert.nonce-reuse"
        );
    }
    // The plaintext is a data source of its own (a tab in Wireshark).
    let mut c = tshark(&home, true);
    c.arg("-r")
        .arg(reuse)
        .arg("-o")
        .arg(format!("ciot_e2e.keylog_file:{}", reuse_keys.display()))
        .args(["-x", "-Y", "frame.number == 1"]);
    let dump = run_tshark(c);
    let tab = dump
        .split("Decrypted CIoT E2E payload (13 bytes):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no plaintext data source in:\n{dump}"));
    assert!(
        tab.starts_with("0000  66 69 72 73 74 20 70 61 79 6c 6f 61 64 "),
        "{tab}"
    );
    // A key log that cannot be read: said on every data message, with the
    // reason, and nothing decrypted.
    let missing = dir.join("no-such.keys");
    let unread = fields_of(reuse, &home, &missing, PORT, &[]);
    for (n, (plain, messages)) in &unread {
        assert!(plain.is_empty(), "frame {n} decrypted without keys");
        assert!(
            messages.starts_with("key log not read: ") && messages.contains("no-such.keys"),
            "frame {n}: {messages:?}"
        );
    }
    assert_eq!(unread.len(), 6);
    for abbrev in ["ciot_e2e.data.plaintext", "ciot_e2e.data.tag_valid"] {
        assert!(
            seen.fields.iter().any(|(a, _)| a == abbrev),
            "no message compared had {abbrev}"
        );
    }
    for kind in ["truncated", "bad_tag", "nonce-reuse", "unknown_type"] {
        assert!(seen.findings.contains(kind), "no finding {kind} compared");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
