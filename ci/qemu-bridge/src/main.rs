//! `qemu-bridge <udp-peer> <seconds> <qemu> [qemu arguments…]`
//!
//! Starts QEMU with `-serial` on a TCP socket this program listens on, and
//! relays between that serial line and a UDP socket connected to
//! `<udp-peer>`: each frame the firmware writes (0xc1, a two-octet big-endian
//! length, the datagram) goes out as one UDP datagram, and each datagram
//! that comes back is written to the serial line as such a frame. QEMU's own
//! output (the firmware's semihosting) passes through. Exits with QEMU's
//! status, or 124 when QEMU runs longer than `<seconds>` (it is killed).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant};

const FRAME_START: u8 = 0xc1;

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("qemu-bridge: {what}: {e}");
    ExitCode::from(2)
}

/// Serial line to UDP: reassembles frames, sends each as a datagram.
fn uplink(mut serial: TcpStream, udp: UdpSocket) {
    let mut frame = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match serial.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        frame.extend_from_slice(&buf[..n]);
        loop {
            // Skip to a frame start; then wait for the whole frame.
            match frame.iter().position(|&b| b == FRAME_START) {
                Some(at) => drop(frame.drain(..at)),
                None => {
                    frame.clear();
                    break;
                }
            }
            if frame.len() < 3 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([frame[1], frame[2]]));
            if frame.len() < 3 + len {
                break;
            }
            if udp.send(&frame[3..3 + len]).is_err() {
                eprintln!("qemu-bridge: UDP send failed");
            }
            frame.drain(..3 + len);
        }
    }
}

/// UDP to the serial line: each datagram as one frame.
fn downlink(mut serial: TcpStream, udp: UdpSocket) {
    let mut buf = [0u8; 65_535];
    loop {
        match udp.recv(&mut buf) {
            Ok(n) => {
                let Ok(len) = u16::try_from(n) else { continue };
                let mut frame = Vec::with_capacity(3 + n);
                frame.push(FRAME_START);
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&buf[..n]);
                if serial.write_all(&frame).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(_) => return,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(peer), Some(secs), Some(qemu)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: qemu-bridge <udp-peer> <seconds> <qemu> [qemu arguments…]");
        return ExitCode::from(2);
    };
    let Ok(peer) = peer.parse::<SocketAddr>() else {
        return fail("peer", "not an address");
    };
    let Ok(limit) = secs.parse::<u64>().map(Duration::from_secs) else {
        return fail("seconds", "not a number");
    };
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => return fail("listen", e),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return fail("listen", e),
    };
    let mut child = match Command::new(qemu)
        .args(&args[3..])
        .args([
            "-chardev",
            &format!("socket,id=uart0,host=127.0.0.1,port={port}"),
            "-serial",
            "chardev:uart0",
        ])
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail("start QEMU", e),
    };
    let serial = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => {
            let _ = child.kill();
            return fail("accept the serial line", e);
        }
    };
    let udp = match UdpSocket::bind("127.0.0.1:0").and_then(|u| {
        u.connect(peer)?;
        u.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(u)
    }) {
        Ok(u) => u,
        Err(e) => {
            let _ = child.kill();
            return fail("UDP", e);
        }
    };
    let relays = (|| -> std::io::Result<()> {
        let (s, u) = (serial.try_clone()?, udp.try_clone()?);
        thread::spawn(move || uplink(s, u));
        thread::spawn(move || downlink(serial, udp));
        Ok(())
    })();
    if let Err(e) = relays {
        let _ = child.kill();
        return fail("relay", e);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1));
            }
            Ok(None) if start.elapsed() > limit => {
                eprintln!("qemu-bridge: QEMU still running after {limit:?}: stopped");
                let _ = child.kill();
                let _ = child.wait();
                return ExitCode::from(124);
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return fail("wait for QEMU", e),
        }
    }
}
