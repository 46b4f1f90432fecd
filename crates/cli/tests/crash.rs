//! The crash test: an EMKS and an EESE as processes on loopback, 100 UEs in
//! this process (one UDP socket each), the EESE killed with SIGKILL at five
//! seeded random moments and restarted from its state file, keys expired
//! through the admin interface meanwhile, and the EMKS down for a while.
//!
//! The UEs keep no state (each is one start, with a nonce from the OS): they
//! do not restart here; the EESE does, from its state file, and heals each
//! session on the UE's next hello with an offer the UE then uses.
//!
//! Checked: every payload is delivered (echoed) and no transmission twice;
//! after every restart every UE is served again within `T_heal`; the
//! capture of every datagram the UEs sent and received, with the UEs' key
//! log, shows no (key, direction, seq) protecting two different messages
//! (`ciot-e2e dissect --keylog`, the `nonce-reuse` finding). The figures it
//! prints are in docs/SECURITY.md. `CIOT_CRASH_SEED` picks the schedule.
//!
//! The webhook runs (`crash/webhook.rs`): the same `kill -9` of an EESE
//! whose uplink goes to a webhook that fails 30 % of posts and is down
//! across the kill; every payload reaches it, signed. The two tests take
//! turns (`SERIAL`): each times the EESE's healing on a 2-core machine.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Event, Instant, Received, Ue, UeConfig, UeId};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, UeNonce, int_key};
use ciot_e2e_analyze::dissect::pcap::UdpPcapWriter;
use ciot_e2e_analyze::keylog::KeyLogWriter;
use ciot_e2e_service::admin::AdminClient;
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_testkit::rng::Rng;

mod common;

use common::{Proc, bin, free_port, free_udp_port, wait_tcp};

const UES: usize = 100;
const KILLS: usize = 5;
/// UE settings: `T_heal` = max(probe_after, keepalive) + 1.25 × hello
/// back-off max + the EESE's trigger_retransmit_max (8 s) + r (1 s).
const PROBE_AFTER: Duration = Duration::from_millis(500);
const KEEPALIVE: Duration = Duration::from_secs(3);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const T_HEAL: Duration = Duration::from_millis(3000 + 1250 + 8000 + 1000);
/// An application resends a payload not echoed after this long.
const RESEND_AFTER: Duration = Duration::from_secs(3);

fn start_emks(dir: &Path, port: u16) -> Proc {
    let c = Command::new(bin())
        .args(["emks", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(dir.join("emks.db"))
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp(port);
    Proc(c)
}

fn start_eese(dir: &Path, udp: u16, admin: u16, emks: u16) -> Proc {
    let c = Command::new(bin())
        .args([
            "eese",
            "--listen",
            &format!("127.0.0.1:{udp}"),
            "--emks",
            &format!("https://127.0.0.1:{emks}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--te2e",
            "6",
            "--quiet",
        ])
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .arg("--state")
        .arg(dir.join("eese.state"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_tcp(admin);
    Proc(c)
}

fn aka(i: usize) -> ([u8; 16], [u8; 16]) {
    let mut ck = [0x5a; 16];
    ck[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let mut ik = [0xa5; 16];
    ik[8..].copy_from_slice(&(i as u64 * 7919).to_be_bytes());
    (ck, ik)
}

struct Device {
    id: String,
    ue: Ue<256>,
    sock: UdpSocket,
    addr: SocketAddrV4,
    next: u32,
    /// (payload number, attempt, first sent) of the payload awaiting its echo.
    waiting: Option<(u32, u32, StdInstant)>,
    send_at: StdInstant,
}

#[derive(Default)]
struct Ledger {
    /// (ue, payload) → attempts echoed.
    echoed: HashMap<(usize, u32), Vec<u32>>,
    sent: u64,
    resent: u64,
    transmission_twice: u64,
}

enum Ev {
    Kill,
    EmksDown,
    EmksUp,
    Expire,
    ExpireAll,
}

/// Writes key material: readable by the owner only (0600 on Unix).
fn write_secret(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).unwrap().write_all(bytes).unwrap();
}

/// A UE's effects: its datagrams go out (and into the capture) until it has
/// none, then its events; a keyset it installed goes into the key log. True
/// if anything happened.
fn drain(
    d: &mut Device,
    tnow: Instant,
    at: Duration,
    eese: SocketAddrV4,
    out: &mut [u8],
    cap: &mut UdpPcapWriter<Vec<u8>>,
    keylog: &mut KeyLogWriter<Vec<u8>>,
) -> bool {
    let mut any = false;
    loop {
        let mut progress = false;
        while let Ok(Some(t)) = d.ue.poll_transmit(tnow, out) {
            let _ = d.sock.send_to(&out[..t.len], eese);
            cap.write(at, d.addr, eese, &out[..t.len]).unwrap();
            progress = true;
        }
        while let Some(ev) = d.ue.poll_event() {
            if let Event::Rekeyed { ksi, counter } = ev {
                let (rand, keys) = d.ue.current_keys().expect("keys of the keyset installed");
                assert_eq!(
                    d.ue.status().map(|s| (s.ksi, s.counter)),
                    Some((ksi, counter)),
                    "{}: the keyset installed is not the one in use",
                    d.id
                );
                keylog.append(ksi, Some(counter), rand, keys).unwrap();
            }
            progress = true;
        }
        if !progress {
            return any;
        }
        any = true;
    }
}

#[path = "crash/webhook.rs"]
mod webhook;

/// Held by each test of this file while it runs.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn eese_survives_kill_9_without_losing_a_payload_or_reusing_a_nonce() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed: u64 = std::env::var("CIOT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x33863);
    println!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = std::env::temp_dir().join(format!("ciot-e2e-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new(bin())
        .args(["pki", "init"])
        .arg(dir.join("tls"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    let emks_port = free_port();
    let mut emks = Some(start_emks(&dir, emks_port));
    let hss = EmksClient::new(
        &format!("https://127.0.0.1:{emks_port}"),
        &dir.join("tls"),
        "hss",
        Duration::from_secs(10),
    )
    .unwrap();
    for i in 0..UES {
        let (ck, ik) = aka(i);
        let root = int_key(
            KdfProfile::Ts33220,
            &CkIk::new(&Ck::from_bytes(ck), &Ik::from_bytes(ik)),
        );
        hss.provision(
            format!("crash-ue-{i}").as_bytes(),
            "acme",
            "3gpp",
            root.key().as_bytes(),
        )
        .unwrap();
    }

    let udp_port = free_udp_port();
    let admin_port = free_port();
    let mut eese = Some(start_eese(&dir, udp_port, admin_port, emks_port));
    let eese_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, udp_port);
    let token = std::fs::read_to_string(dir.join("tls/admin.token")).unwrap();

    let t0 = StdInstant::now();
    let cfg = UeConfig {
        probe_after: Some(PROBE_AFTER),
        keepalive: Some(KEEPALIVE),
        hello_backoff: Duration::from_millis(100),
        hello_backoff_max: BACKOFF_MAX,
        ..UeConfig::default()
    };
    let mut devices: Vec<Device> = (0..UES)
        .map(|i| {
            let (ck, ik) = aka(i);
            let root = int_key(
                KdfProfile::Ts33220,
                &CkIk::new(&Ck::from_bytes(ck), &Ik::from_bytes(ik)),
            );
            let id = format!("crash-ue-{i}");
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_nonblocking(true).unwrap();
            let SocketAddr::V4(addr) = sock.local_addr().unwrap() else {
                panic!("v4")
            };
            Device {
                ue: Ue::new(
                    cfg,
                    root,
                    UeId::new(id.as_bytes()).unwrap(),
                    UeNonce::random().unwrap(),
                ),
                id,
                sock,
                addr,
                next: 0,
                waiting: None,
                send_at: t0 + Duration::from_millis(rng.range(0, 1000)),
            }
        })
        .collect();

    // The schedule: kills 5–8 s apart from 4 s on; the EMKS down for 4 s
    // between the third and fourth kill; admin expiries throughout.
    let mut schedule: Vec<(Duration, Ev)> = Vec::new();
    let mut at = Duration::from_secs(4);
    for k in 0..KILLS {
        at += Duration::from_millis(rng.range(5000, 8000));
        schedule.push((at, Ev::Kill));
        if k == 2 {
            schedule.push((at + Duration::from_millis(2500), Ev::EmksDown));
            schedule.push((at + Duration::from_millis(6500), Ev::EmksUp));
        }
    }
    let traffic_end = at + Duration::from_secs(5);
    let mut e = Duration::from_secs(2);
    while e < traffic_end {
        schedule.push((e, Ev::Expire));
        e += Duration::from_millis(rng.range(700, 1500));
    }
    schedule.push((Duration::from_secs(9), Ev::ExpireAll));
    schedule.sort_by_key(|(t, _)| *t);
    let mut schedule = schedule.into_iter().peekable();

    let (admin_tx, admin_rx) = mpsc::channel::<Option<String>>();
    let admin_url = format!("https://127.0.0.1:{admin_port}");
    {
        let token = token.clone();
        let tls_dir = dir.join("tls");
        std::thread::spawn(move || {
            let c = AdminClient::new(&admin_url, &tls_dir, &token).unwrap();
            let (mut ok, mut failed) = (0u32, 0u32);
            while let Ok(cmd) = admin_rx.recv() {
                let r = match cmd {
                    Some(ue) => c.expire(&ue),
                    None => c.expire_all(),
                };
                if r.is_ok() { ok += 1 } else { failed += 1 }
            }
            println!("admin expiries: {ok} answered, {failed} refused or unanswered (EESE down)");
        });
    }

    let mut cap = UdpPcapWriter::new(Vec::new()).unwrap();
    let mut keylog = KeyLogWriter::new_insecure(Vec::new());
    let mut ledger = Ledger::default();
    let mut restarts: Vec<StdInstant> = Vec::new();
    let mut healed: Vec<Vec<Option<Duration>>> = Vec::new();
    let mut emks_down: Option<StdInstant> = None;
    let mut echoes_while_emks_down = 0u64;
    let mut kills = 0;
    let mut out = vec![0u8; 2048];
    let mut buf = vec![0u8; 2048];
    let deadline = traffic_end + T_HEAL + Duration::from_secs(10);
    let now_ep = |t: StdInstant| Instant::from_millis(t.duration_since(t0).as_millis() as u64);

    loop {
        let now = StdInstant::now();
        let el = now - t0;
        while schedule.peek().is_some_and(|(t, _)| *t <= el) {
            let (_, ev) = schedule.next().unwrap();
            match ev {
                Ev::Kill => {
                    drop(eese.take()); // SIGKILL
                    kills += 1;
                    std::thread::sleep(Duration::from_millis(rng.range(50, 400)));
                    eese = Some(start_eese(&dir, udp_port, admin_port, emks_port));
                    restarts.push(StdInstant::now());
                    healed.push(vec![None; UES]);
                }
                Ev::EmksDown => {
                    drop(emks.take());
                    emks_down = Some(StdInstant::now());
                }
                Ev::EmksUp => {
                    emks = Some(start_emks(&dir, emks_port));
                    emks_down = None;
                }
                Ev::Expire => {
                    let i = rng.index(UES);
                    let _ = admin_tx.send(Some(format!("crash-ue-{i}")));
                }
                Ev::ExpireAll => {
                    let _ = admin_tx.send(None);
                }
            }
        }
        let now = StdInstant::now();
        let tnow = now_ep(now);
        let mut idle = true;
        for (i, d) in devices.iter_mut().enumerate() {
            // Receive.
            while let Ok((n, from)) = d.sock.recv_from(&mut buf) {
                idle = false;
                let SocketAddr::V4(from) = from else { continue };
                cap.write(now - t0, from, d.addr, &buf[..n]).unwrap();
                let r = d.ue.handle_datagram(tnow, &mut buf[..n]);
                // What it did goes out (and into the key log) before the next
                // datagram: every keyset installed is logged with its keys.
                drain(
                    d,
                    tnow,
                    now - t0,
                    eese_addr,
                    &mut out,
                    &mut cap,
                    &mut keylog,
                );
                if let Ok(Received::Data(got)) = r {
                    let text = String::from_utf8_lossy(&buf[got.payload]).into_owned();
                    let Some((n_, a_)) = text
                        .strip_prefix(&format!("echo: {}#", d.id))
                        .and_then(|r| r.split_once('/'))
                    else {
                        panic!("unexpected echo {text:?} at {}", d.id);
                    };
                    let (num, attempt): (u32, u32) = (n_.parse().unwrap(), a_.parse().unwrap());
                    let e = ledger.echoed.entry((i, num)).or_default();
                    if e.contains(&attempt) {
                        ledger.transmission_twice += 1;
                    }
                    e.push(attempt);
                    if d.waiting.is_some_and(|(w, _, _)| w == num) {
                        d.waiting = None;
                        d.send_at = now + Duration::from_millis(200 + (i as u64 * 37) % 300);
                    }
                    if emks_down.is_some() {
                        echoes_while_emks_down += 1;
                    }
                    if let (Some(r), Some(h)) = (restarts.last(), healed.last_mut())
                        && h[i].is_none()
                    {
                        h[i] = Some(now - *r);
                    }
                }
            }
            d.ue.handle_timeout(tnow);
            // Send: a new payload, or the same one again after RESEND_AFTER.
            if el < traffic_end || d.waiting.is_some() {
                let job = match d.waiting {
                    None if now >= d.send_at && el < traffic_end => {
                        d.next += 1;
                        Some((d.next, 1))
                    }
                    Some((num, att, since)) if now - since >= RESEND_AFTER => Some((num, att + 1)),
                    _ => None,
                };
                if let Some((num, att)) = job
                    && !d.ue.holding()
                {
                    let payload = format!("{}#{num}/{att}", d.id);
                    if d.ue.send(tnow, payload.as_bytes()).is_ok() {
                        if att == 1 {
                            ledger.sent += 1;
                        } else {
                            ledger.resent += 1;
                        }
                        d.waiting = Some((num, att, now));
                    } else if att == 1 {
                        d.next -= 1;
                    }
                }
            }
            if drain(
                d,
                tnow,
                now - t0,
                eese_addr,
                &mut out,
                &mut cap,
                &mut keylog,
            ) {
                idle = false;
            }
        }
        let el = StdInstant::now() - t0;
        if el >= traffic_end && devices.iter().all(|d| d.waiting.is_none()) {
            break;
        }
        assert!(el < deadline, "not every payload echoed by the deadline");
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(admin_tx);
    let run_secs = t0.elapsed().as_secs_f64();

    // Heal times: every UE served again after every restart.
    let mut worst = Duration::ZERO;
    let mut sum = Duration::ZERO;
    let mut count = 0u32;
    for (k, h) in healed.iter().enumerate() {
        for (i, t) in h.iter().enumerate() {
            let t = t.unwrap_or_else(|| panic!("UE {i} never served after restart {k}"));
            worst = worst.max(t);
            sum += t;
            count += 1;
        }
    }
    let mean = sum / count.max(1);

    // Delivery: every payload echoed; no transmission twice.
    let payloads = ledger.echoed.len() as u64;
    let app_duplicates = ledger.echoed.values().filter(|v| v.len() > 1).count();
    for (i, d) in devices.iter().enumerate() {
        for n in 1..=d.next {
            assert!(
                ledger.echoed.contains_key(&(i, n)),
                "payload {n} of {} never delivered",
                d.id
            );
        }
    }

    // Nonce reuse on the capture.
    let pcap = dir.join("crash.pcap");
    let keys = dir.join("crash.keys");
    std::fs::write(&pcap, cap.into_inner().unwrap()).unwrap();
    write_secret(&keys, &keylog.into_inner());
    let o = Command::new(bin())
        .arg("dissect")
        .arg(&pcap)
        .arg("--keylog")
        .arg(&keys)
        .args(["--port", &udp_port.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let summary: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Summary"))
        .collect();
    println!("{}", summary.join("\n"));
    let reuse_line = summary
        .iter()
        .find(|l| l.trim_start().starts_with("nonce-reuse:"))
        .expect("nonce-reuse line");
    let decrypted_line = summary
        .iter()
        .find(|l| l.trim_start().starts_with("decrypted:"))
        .expect("decrypted line");

    println!(
        "crash test: {UES} UEs, {run_secs:.1} s, {kills} kill -9 restarts, EMKS down 4 s \
         ({echoes_while_emks_down} echoes while it was down); {} payloads sent, {payloads} delivered, \
         {} resent by the application, {} delivered under two attempts, {} transmissions delivered twice; \
         heal after restart: mean {:.0} ms, worst {:.0} ms (T_heal {} ms); {}",
        ledger.sent,
        ledger.resent,
        app_duplicates,
        ledger.transmission_twice,
        mean.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0,
        T_HEAL.as_millis(),
        reuse_line.trim()
    );
    assert_eq!(kills, KILLS);
    assert_eq!(payloads, ledger.sent, "every payload delivered");
    assert_eq!(
        ledger.transmission_twice, 0,
        "a transmission delivered twice"
    );
    assert!(
        worst <= T_HEAL,
        "a UE took {worst:?} to heal (T_heal {T_HEAL:?})"
    );
    assert!(
        echoes_while_emks_down > 0,
        "sessions stopped while the EMKS was down"
    );
    assert_eq!(
        reuse_line.trim(),
        "nonce-reuse: 0",
        "{}",
        text.lines()
            .filter(|l| l.contains("nonce-reuse"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !decrypted_line.contains("decrypted: 0,"),
        "nothing decrypted: {decrypted_line}"
    );
    drop(eese);
    drop(emks);
    let _ = std::fs::remove_dir_all(&dir);
    let _: Option<PathBuf> = None;
}
