//! What the CLI's process tests share: the binary, a child process that is
//! killed when dropped, free loopback ports.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// The `ciot-e2e` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ciot-e2e")
}

/// A child process killed (SIGKILL) and reaped when dropped, so that no
/// test leaves a service running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 20 s) until something listens on 127.0.0.1:`port`.
pub fn wait_tcp(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ciot-e2e pki init DIR/tls`.
pub fn pki_init(dir: &std::path::Path) {
    let ok = std::process::Command::new(bin())
        .args(["pki", "init"])
        .arg(dir.join("tls"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "pki init");
}

/// An EMKS process on a free port with its database and key files in
/// `dir` (TLS in `dir/tls`), serving once this returns; and its port.
pub fn start_emks(dir: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    let p = Proc(
        std::process::Command::new(bin())
            .args(["emks", "--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(dir.join("emks.db"))
            .arg("--tls-dir")
            .arg(dir.join("tls"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tcp(port);
    (p, port)
}

/// `ciot-e2e emks provision` of `ue` with CK/IK at the EMKS on `port`.
pub fn provision(dir: &std::path::Path, port: u16, ue: &str, ck: &str, ik: &str) {
    let o = std::process::Command::new(bin())
        .args(["emks", "provision", "--ue", ue, "--ck", ck, "--ik", ik])
        .args(["--emks", &format!("https://127.0.0.1:{port}")])
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
