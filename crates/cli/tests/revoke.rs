//! Revocation takes effect at the EESE: after `ciot-e2e emks revoke` a
//! running UE gets no more echoes; after the EMKS's database is wiped and
//! the UE provisioned again with a new CK/IK, the old CK/IK gets no echo and
//! the new one does. The EMKS, the EESE and the UEs are processes.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{Proc, bin, free_port, wait_tcp};

const CK: &str = "000102030405060708090a0b0c0d0e0f";
const IK_OLD: &str = "f0e0d0c0b0a090807060504030201000";
const IK_NEW: &str = "0f0e0d0c0b0a09080706050403020100";

fn start_emks(d: &Path, port: u16) -> Proc {
    let p = Proc(
        Command::new(bin())
            .args(["emks", "--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(d.join("emks.db"))
            .arg("--tls-dir")
            .arg(d.join("tls"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tcp(port);
    p
}

fn emks_cmd(d: &Path, port: u16, args: &[&str]) -> Output {
    let o = Command::new(bin())
        .arg("emks")
        .arg(args[0])
        .args(["--emks", &format!("https://127.0.0.1:{port}")])
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn ue(udp: u16, id: &str, ik: &str, count: u32, interval_ms: u32) -> Command {
    let mut c = Command::new(bin());
    c.args(["ue", "--connect", &format!("127.0.0.1:{udp}"), "--id", id])
        .args(["--ck", CK, "--ik", ik])
        .args(["--count", &count.to_string()])
        .args([
            "--interval-ms",
            &interval_ms.to_string(),
            "--timeout-ms",
            "700",
        ]);
    c
}

/// How many of `count` payloads a short UE run got echoed (an unanswered
/// payload costs the UE 10 attempts of 700 ms, so the runs expected to get
/// nothing send one).
fn echoed(udp: u16, id: &str, ik: &str, count: u32) -> u32 {
    let o = ue(udp, id, ik, count, 50).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines().filter(|l| l.starts_with("echo ")).count() as u32
}

#[test]
fn a_revoked_root_or_one_of_a_wiped_emks_database_gets_no_echo() {
    let d = std::env::temp_dir().join(format!("ciot-e2e-revoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    assert!(
        Command::new(bin())
            .args(["pki", "init"])
            .arg(d.join("tls"))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let emks_port = free_port();
    let mut emks = start_emks(&d, emks_port);
    for id in ["ue-x", "ue-y"] {
        emks_cmd(
            &d,
            emks_port,
            &["provision", "--ue", id, "--ck", CK, "--ik", IK_OLD],
        );
    }
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _eese = Proc(
        Command::new(bin())
            .args(["eese", "--listen", &format!("127.0.0.1:{udp}")])
            .args(["--emks", &format!("https://127.0.0.1:{emks_port}")])
            .arg("--tls-dir")
            .arg(d.join("tls"))
            .arg("--state")
            .arg(d.join("eese.state"))
            .arg("--quiet")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A UE of ue-x runs; its root is revoked while it does.
    let mut x = ue(udp, "ue-x", IK_OLD, 40, 150)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = x.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let t = Instant::now();
    let mut before = 0;
    while before < 5 {
        let (_, l) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("ue-x got no echoes");
        if l.starts_with("echo ") {
            before += 1;
        }
        assert!(t.elapsed() < Duration::from_secs(30));
    }
    let o = emks_cmd(&d, emks_port, &["revoke", "--ue", "ue-x"]);
    let revoked_at = Instant::now();
    println!("{}", String::from_utf8_lossy(&o.stdout).trim());
    // Watch ue-x for three seconds more, then stop it: with no echo coming
    // back it would otherwise retry each of its remaining payloads.
    std::thread::sleep(Duration::from_secs(3));
    let _ = x.kill();
    let _ = x.wait();
    let after: Vec<(Duration, String)> = rx
        .try_iter()
        .filter(|(at, l)| *at > revoked_at && l.starts_with("echo "))
        .map(|(at, l)| (at - revoked_at, l))
        .collect();
    println!("ue-x: {before} echoes before the revocation, after it: {after:?}");
    // A second after the revocation reached the EESE (one long-poll round
    // trip), nothing more is echoed.
    assert!(
        after.iter().all(|(dt, _)| *dt < Duration::from_secs(1)),
        "echoes more than a second after the revocation: {after:?}"
    );
    assert_eq!(
        echoed(udp, "ue-x", IK_OLD, 1),
        0,
        "a new start of the revoked UE was served"
    );

    // ue-y is served; then the EMKS's database is wiped and ue-y provisioned
    // again with a new CK/IK (generation 1 again, in another database).
    assert_eq!(echoed(udp, "ue-y", IK_OLD, 3), 3);
    drop(emks);
    std::fs::remove_file(d.join("emks.db")).unwrap();
    emks = start_emks(&d, emks_port);
    emks_cmd(
        &d,
        emks_port,
        &["provision", "--ue", "ue-y", "--ck", CK, "--ik", IK_NEW],
    );
    // The EESE's long-poll of the EMKS's change log reconnects (back-off at
    // most 5 s) and finds another database.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        echoed(udp, "ue-y", IK_OLD, 1),
        0,
        "the old CK/IK was served after the wipe"
    );
    assert_eq!(
        echoed(udp, "ue-y", IK_NEW, 3),
        3,
        "the new CK/IK was not served"
    );
    drop(emks);
    let _ = std::fs::remove_dir_all(&d);
}
