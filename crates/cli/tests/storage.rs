//! A UE's storage that is not what it last wrote, and a network that holds
//! back one kind of message, over real UDP on loopback: `ciot-e2e eese` and
//! `ciot-e2e ue` as processes, a relay between them that writes every
//! datagram to a pcap (and can hold back derive triggers), and
//! `ciot-e2e dissect --keylog` over the capture with the EESE's key log.
//!
//! Before wire format 3, the runs here reused AES-GCM (key, nonce) pairs: a
//! second `ue` without `--state` installed the keys of the first run, and a
//! state file put back to an older copy sealed again under used sequence
//! numbers; and a relay holding triggers longer than te2e kept every keyset
//! expired on arrival.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ciot_e2e_analyze::dissect::pcap::UdpPcapWriter;

const CK: &str = "0123456789abcdeffedcba9876543210";
const IK: &str = "00112233445566778899aabbccddeeff";
/// Message type of a derive trigger (octet 1).
const TRIGGER: u8 = 0x01;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("loopback IPv4 only"),
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP relay between UEs and the EESE that writes every datagram it
/// passes to a pcap (as seen between the UE's address and the EESE's), and
/// holds each derive trigger back for `hold` before passing it on.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(eese: SocketAddr, pcap: &Path, hold: Duration) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        front.set_nonblocking(true).unwrap();
        back.set_nonblocking(true).unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let mut w = UdpPcapWriter::new(BufWriter::new(File::create(pcap).unwrap())).unwrap();
        let thread = std::thread::spawn(move || {
            let mut ue: Option<SocketAddr> = None;
            let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
            let mut buf = vec![0u8; 65_536];
            let stamp = || {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
            };
            while !done.load(Ordering::Relaxed) {
                let mut idle = true;
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    idle = false;
                    ue = Some(from);
                    w.write(stamp(), v4(from), v4(eese), &buf[..n]).unwrap();
                    let _ = back.send_to(&buf[..n], eese);
                }
                if let Ok((n, _)) = back.recv_from(&mut buf) {
                    idle = false;
                    let d = buf[..n].to_vec();
                    if d.get(1) == Some(&TRIGGER) && !hold.is_zero() {
                        held.push_back((Instant::now() + hold, d));
                    } else if let Some(to) = ue {
                        w.write(stamp(), v4(eese), v4(to), &d).unwrap();
                        let _ = front.send_to(&d, to);
                    }
                }
                while held.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                    let (_, d) = held.pop_front().unwrap();
                    if let Some(to) = ue {
                        w.write(stamp(), v4(eese), v4(to), &d).unwrap();
                        let _ = front.send_to(&d, to);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            w.into_inner().unwrap();
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An `eese` process, killed when dropped.
struct Eese(Child);

impl Eese {
    fn start(port: u16, te2e: &str, keylog: &Path) -> Self {
        let child = bin()
            .args([
                "eese",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--ck",
                CK,
                "--ik",
                IK,
                "--te2e",
                te2e,
                "--keylog",
                keylog.to_str().unwrap(),
                "--exit-after",
                "120",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Eese(child)
    }
}

impl Drop for Eese {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `ue` through `relay`; returns its last line.
fn ue(relay: SocketAddr, count: u32, extra: &[&str]) -> String {
    let out = bin()
        .args([
            "ue",
            "--connect",
            &relay.to_string(),
            "--ck",
            CK,
            "--ik",
            IK,
            "--count",
            &count.to_string(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ue failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().last().unwrap_or_default().to_string()
}

/// `dissect --keylog` over the capture (the EESE on `port`): its summary
/// lines.
fn dissect(pcap: &Path, keylog: &Path, port: u16) -> String {
    let out = bin()
        .args([
            "dissect",
            pcap.to_str().unwrap(),
            "--keylog",
            keylog.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let at = text.find("Summary").unwrap_or_else(|| panic!("{text}"));
    text[at..].to_string()
}

fn summary_number(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in\n{summary}"))
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-e2e-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_ue_without_storage_or_with_a_rolled_back_state_file_never_reuses_a_nonce() {
    let d = dir("rollback");
    let (keylog, pcap, state) = (
        d.join("eese.keylog"),
        d.join("relay.pcap"),
        d.join("ue.state"),
    );
    let port = free_port();
    let eese = Eese::start(port, "3", &keylog);
    let relay = Relay::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        &pcap,
        Duration::ZERO,
    );
    // Two runs that keep nothing: the second is a UE that lost its storage.
    assert!(ue(relay.addr, 20, &[]).starts_with("echoed 20/20"));
    assert!(ue(relay.addr, 20, &[]).starts_with("echoed 20/20"));
    // A state file, then put back to an older copy.
    assert!(ue(relay.addr, 10, &["--state", state.to_str().unwrap()]).starts_with("echoed 10/10"));
    let old = std::fs::read(&state).unwrap();
    assert!(ue(relay.addr, 10, &["--state", state.to_str().unwrap()]).starts_with("echoed 10/10"));
    std::fs::write(&state, &old).unwrap();
    assert!(ue(relay.addr, 10, &["--state", state.to_str().unwrap()]).starts_with("echoed 10/10"));
    relay.finish();
    drop(eese);
    let summary = dissect(&pcap, &keylog, port);
    assert_eq!(summary_number(&summary, "nonce-reuse:"), 0, "{summary}");
    // Every data message of the capture was decrypted with the EESE's key
    // log: the finding saw them all.
    let data = summary_number(&summary, "data:");
    assert!(data >= 2 * 70, "{summary}");
    assert_eq!(summary_number(&summary, "decrypted:"), data, "{summary}");
}

#[test]
fn triggers_held_back_longer_than_te2e_still_let_every_payload_through() {
    let d = dir("hold");
    let (keylog, pcap) = (d.join("eese.keylog"), d.join("relay.pcap"));
    let port = free_port();
    let eese = Eese::start(port, "2", &keylog);
    let relay = Relay::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        &pcap,
        Duration::from_secs(3),
    );
    let last = ue(
        relay.addr,
        10,
        &["--interval-ms", "400", "--timeout-ms", "5000"],
    );
    assert!(last.starts_with("echoed 10/10"), "{last}");
    relay.finish();
    drop(eese);
    let summary = dissect(&pcap, &keylog, port);
    assert_eq!(summary_number(&summary, "nonce-reuse:"), 0, "{summary}");
}
