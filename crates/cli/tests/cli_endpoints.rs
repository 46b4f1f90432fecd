//! The runnable endpoints: `demo` shows the whole TR cycle and exits 0; the
//! two-process `eese`/`ue` run echoes every payload across rekeys; the
//! `eese` server keeps nothing for strangers and still serves a real UE after
//! a flood of spoofed datagrams.

use std::net::UdpSocket;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
}

const CK: &str = "0123456789abcdeffedcba9876543210";
const IK: &str = "00112233445566778899aabbccddeeff";

#[test]
fn demo_runs_the_whole_cycle_and_exits_0() {
    let out = bin().args(["demo", "--te2e", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The TR steps, in order.
    let steps = [
        "hello           UE \"demo-ue\"",
        "derive-trigger  KSI 0",
        "keyset KSI 0 expired (te2e-expired)",
        "key-expired     KSI 0 (counter ",
        "refused: te2e-expired; names seq",
        "derive-trigger  KSI 1",
        "retransmitted the refused message under KSI 1",
        "received \"temperature=21.7\" (KSI 1",
        "keyset KSI 1 expired (te2e-expired)",
        "derive-trigger  KSI 2",
        "offered (CONFIRM",
        "received \"command: report now\" (KSI 2",
        "every payload arrived",
    ];
    let mut at = 0;
    for s in steps {
        let found = text[at..]
            .find(s)
            .unwrap_or_else(|| panic!("missing {s:?} after offset {at}:\n{text}"));
        at += found + s.len();
    }
    // The EESE-initiated contact after the second expiry sends no error.
    let after_second_expiry = &text[text.find("keyset KSI 1 expired").unwrap()..];
    assert!(
        !after_second_expiry.contains("key-expired     KSI 1"),
        "{text}"
    );
}

#[test]
fn two_processes_echo_every_payload_across_rekeys() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut eese = bin()
        .args([
            "eese",
            "--listen",
            &listen,
            "--ck",
            CK,
            "--ik",
            IK,
            "--te2e",
            "1",
            "--exit-after",
            "30",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = bin()
        .args([
            "ue",
            "--connect",
            &listen,
            "--ck",
            CK,
            "--ik",
            IK,
            "--count",
            "12",
            "--interval-ms",
            "250",
        ])
        .output()
        .unwrap();
    let _ = eese.kill();
    let _ = eese.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("echoed 12/12 across "), "{last}");
    let rekeys: u32 = last
        .trim_start_matches("echoed 12/12 across ")
        .trim_end_matches(" rekeys")
        .parse()
        .unwrap();
    assert!(rekeys >= 1, "{last}");
}

/// Regression: the UE exited on the ICMP port-unreachable of an EESE that
/// was being restarted ("receive: Connection refused").
#[test]
fn ue_rides_out_an_eese_killed_and_restarted() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let eese = || {
        bin()
            .args(["eese", "--listen", &listen, "--ck", CK, "--ik", IK])
            .args(["--exit-after", "40"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = eese();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ue = bin()
        .args(["ue", "--connect", &listen, "--ck", CK, "--ik", IK])
        .args([
            "--count",
            "20",
            "--interval-ms",
            "150",
            "--timeout-ms",
            "500",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // SIGKILL: the EESE's sessions are gone; the UE's next probe finds
    // the new one, which starts a keyset.
    let _ = first.kill();
    let _ = first.wait();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut second = eese();
    let out = ue.wait_with_output().unwrap();
    let _ = second.kill();
    let _ = second.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("echoed 20/20 across "), "{last}");
}

#[test]
fn ue_without_an_eese_fails_with_a_clear_error() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin()
        .args([
            "ue",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--ck",
            CK,
            "--ik",
            IK,
        ])
        .args(["--count", "1", "--timeout-ms", "50"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn demo_capture_decrypts_with_its_key_log() {
    let dir = std::env::temp_dir().join(format!("ciot-e2e-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pcap, keys) = (dir.join("demo.pcap"), dir.join("demo.keys"));
    let out = bin()
        .args(["demo", "--te2e", "1", "--pcap"])
        .arg(&pcap)
        .arg("--keylog")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The EESE uses port 33863 unless another process holds it; the demo's
    // first line says which.
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let port = first
        .split("EESE on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no EESE address in {first:?}"))
        .to_owned();
    let out = bin()
        .arg("dissect")
        .arg(&pcap)
        .args(["--json", "--port", &port, "--keylog"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["malformed"], 0, "{s}");
    assert!(
        s["messages"].as_u64() > Some(0),
        "port {port} from {first:?}: {s}"
    );
    assert_eq!(s["types"]["derive-trigger"], 3, "{s}");
    assert_eq!(s["types"]["key-expired"], 1, "{s}");
    let data = s["types"]["data"].as_u64().unwrap();
    assert!(data >= 8, "{s}");
    assert_eq!(
        s["decrypted"].as_u64(),
        Some(data),
        "every data message decrypts: {s}"
    );
    assert_eq!(s["bad_tag"], 0, "{s}");
    // The plaintexts are the demo's payloads.
    assert!(
        text.contains(&hex::encode("temperature=21.7")),
        "retransmitted payload decrypted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `eese` server keeps no state for unauthenticated datagrams and sends
/// their sources no more octets than they sent it: after 10,000 spoofed
/// datagrams from 200 source ports (garbage, forged hellos and data, also
/// naming the real UE) a table of 32 sessions still serves a real UE.
#[test]
fn eese_serves_a_real_ue_after_ten_thousand_spoofed_datagrams_without_amplifying() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let eese = bin()
        .args([
            "eese",
            "--listen",
            &listen,
            "--ck",
            CK,
            "--ik",
            IK,
            "--max-sessions",
            "32",
            "--exit-after",
            "12",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut x = 0x9e37_79b9_u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut sent = 0;
    let mut answered = 0usize;
    for p in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        for i in 0..50 {
            let r = next();
            let mut d: Vec<u8> = match i % 4 {
                // Garbage of any length.
                0 => (0..(r % 120)).map(|_| next() as u8).collect(),
                // A forged hello naming the real UE or another, random tag.
                1 => {
                    let id: &[u8] = if r % 2 == 0 { b"ue-1" } else { b"stranger" };
                    let mut h = vec![2, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (r % 200) as u8];
                    h.push(id.len() as u8);
                    h.extend_from_slice(id);
                    h.resize(84 - 16, 0);
                    h.extend((0..16).map(|_| next() as u8));
                    h
                }
                // Forged data under some KSI.
                2 => {
                    let mut m = vec![2, 3, (r % 4) as u8, 0, 2, 0, 0, 0, (p % 256) as u8];
                    m.extend((0..40).map(|_| next() as u8));
                    m
                }
                _ => vec![],
            };
            if d.len() > 1 && i % 8 == 7 {
                d[0] = 1; // an old version
            }
            s.send_to(&d, &listen).unwrap();
            sent += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            answered += n;
        }
    }
    assert_eq!(sent, 10_000);
    let out = bin()
        .args([
            "ue",
            "--connect",
            &listen,
            "--ck",
            CK,
            "--ik",
            IK,
            "--count",
            "3",
            "--interval-ms",
            "50",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let eese_out = eese.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&eese_out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}\n{log}");
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .starts_with("echoed 3/3"),
        "{text}"
    );
    assert_eq!(answered, 0, "the spoofed sources got {answered} octets");
    let stats = log
        .lines()
        .find(|l| l.starts_with("eese: unauthenticated input: "))
        .unwrap_or_else(|| panic!("no statistics line in\n{log}"));
    let nums: Vec<u64> = stats
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (datagrams, octets_in, octets_out, sessions) = (nums[0], nums[1], nums[2], nums[3]);
    assert!(datagrams >= 10_000, "{stats}");
    assert!(octets_out <= octets_in, "{stats}");
    assert_eq!(sessions, 1, "only the real UE has a session: {stats}");
}

/// A single-root `eese` on a free loopback port, its stdout piped.
fn echoing_eese(te2e: &str) -> (std::process::Child, String) {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let eese = bin()
        .args(["eese", "--listen", &listen, "--ck", CK, "--ik", IK])
        .args(["--te2e", te2e, "--exit-after", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    (eese, listen)
}

/// Stops the EESE; its transcript.
fn stop(mut eese: std::process::Child) -> String {
    let _ = eese.kill();
    let out = eese.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ue --no-wait` is for an EESE that posts uplink elsewhere; against one
/// that echoes it still hands over every payload (across rekeys, so some
/// go out again under a new keyset) and prints the echoes as downlink. The
/// identifier has spaces: it is octets, and the EESE shows it as hex.
#[test]
fn ue_no_wait_hands_over_every_payload_and_prints_the_downlink() {
    let (eese, listen) = echoing_eese("1");
    let out = bin()
        .args(["ue", "--connect", &listen, "--ck", CK, "--ik", IK])
        .args(["--id", "bar ue 3", "--no-wait", "--count", "10"])
        .args(["--interval-ms", "250", "--timeout-ms", "800"])
        .output()
        .unwrap();
    let log = stop(eese);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ue failed:\n{text}\n{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().last(), Some("sent 10/10 payloads"), "{text}");
    // Nothing waited for an echo; each arrived as downlink.
    assert!(!text.contains("echo 1:"), "{text}");
    for i in 1..=10 {
        let echo = format!("ue: received \"echo: message {i}\" (KSI ");
        assert!(text.contains(&echo), "no {echo:?} in\n{text}");
        let up = format!("6261722075652033: received \"message {i}\" (KSI ");
        assert!(log.contains(&up), "no {up:?} in\n{log}");
    }
    assert!(log.contains("now using keyset KSI 1"), "{log}");
}

/// `--no-wait` fails when payloads could not be handed over and sent.
#[test]
fn ue_no_wait_without_an_eese_says_how_many_went_out_and_fails() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin()
        .args(["ue", "--connect", &format!("127.0.0.1:{port}")])
        .args(["--ck", CK, "--ik", IK, "--no-wait", "--count", "2"])
        .args(["--interval-ms", "10", "--timeout-ms", "20"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("sent 0/2 payloads"), "{text}");
}

/// `--id-hex` names an identifier that is not text; `--id` and `--id-hex`
/// exclude each other.
#[test]
fn ue_id_hex_names_an_identifier_that_is_not_text() {
    let (eese, listen) = echoing_eese("3600");
    let out = bin()
        .args(["ue", "--connect", &listen, "--ck", CK, "--ik", IK])
        .args(["--id-hex", "00FF10", "--count", "2", "--interval-ms", "50"])
        .output()
        .unwrap();
    let log = stop(eese);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}\n{log}");
    assert!(text.ends_with("echoed 2/2 across 0 rekeys\n"), "{text}");
    assert!(log.contains("00ff10: received \"message 2\""), "{log}");

    let both = bin()
        .args(["ue", "--connect", &listen, "--ck", CK, "--ik", IK])
        .args(["--id", "a", "--id-hex", "00", "--count", "1"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    let bad = bin()
        .args(["ue", "--connect", &listen, "--ck", CK, "--ik", IK])
        .args(["--id-hex", "0g", "--count", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--id-hex"), "{err}");
}

fn free_udp() -> String {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

fn single_eese(listen: &str) -> std::process::Child {
    bin()
        .args(["eese", "--listen", listen, "--ck", CK, "--ik", IK])
        .args(["--exit-after", "40"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// `ue --connect A --connect B`: nothing at A, so after three unanswered
/// hellos the UE moves to B and every payload is echoed there.
#[test]
fn ue_moves_to_the_next_address_when_its_hellos_go_unanswered() {
    let (dead, live) = (free_udp(), free_udp());
    let mut eese = single_eese(&live);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = bin()
        .args(["ue", "--connect", &dead, "--connect", &live])
        .args([
            "--ck",
            CK,
            "--ik",
            IK,
            "--count",
            "3",
            "--interval-ms",
            "50",
        ])
        .output()
        .unwrap();
    let _ = eese.kill();
    let _ = eese.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}");
    assert!(
        text.contains(&format!(
            "ue: 3 hellos to {dead} unanswered; moving to {live}"
        )),
        "{text}"
    );
    assert_eq!(
        text.lines().last(),
        Some("echoed 3/3 across 0 rekeys"),
        "{text}"
    );
}

/// The instance a UE talks to is killed mid-run: the UE's probes go
/// unanswered, it moves to the other address and finishes there.
#[test]
fn ue_finishes_on_the_other_instance_when_its_instance_dies() {
    let (a, b) = (free_udp(), free_udp());
    let (mut first, mut second) = (single_eese(&a), single_eese(&b));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ue = bin()
        .args(["ue", "--connect", &a, "--connect", &b])
        .args(["--ck", CK, "--ik", IK])
        .args([
            "--count",
            "20",
            "--interval-ms",
            "150",
            "--timeout-ms",
            "500",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let _ = first.kill();
    let _ = first.wait();
    let out = ue.wait_with_output().unwrap();
    let _ = second.kill();
    let _ = second.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ue failed:\n{text}");
    assert!(text.contains(&format!("moving to {b}")), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("echoed 20/20 across "), "{last}");
}

#[test]
fn ue_refuses_addresses_of_two_families() {
    let out = bin()
        .args(["ue", "--connect", "127.0.0.1:9", "--connect", "[::1]:9"])
        .args(["--ck", CK, "--ik", IK, "--count", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one family"), "{err}");
}
