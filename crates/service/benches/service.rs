//! The service's figures (docs/PERFORMANCE.md), run by `ci/bench-service.sh`:
//!
//! - `service-rate`: the EESE service's datagram rate against a bare UDP
//!   echo server with the same socket loop, in one run, on loopback, with
//!   10,000 UEs (one socket each) and 32-octet payloads, closed loop with a
//!   fixed number of datagrams in flight;
//! - `service-restart`: from start to serving for an EESE whose state holds
//!   1,000,000 sessions;
//! - state writes per 1,000 messages and per rekey (from the service's own
//!   counters).
//!
//! - `service-rate-pg`: the rate run on the state file and on PostgreSQL
//!   (a throwaway cluster; skipped without PostgreSQL).
//!
//! `CIOT_BENCH=rate|restart|rate-pg` runs one; `CIOT_BENCH_UES`, `CIOT_BENCH_SESSIONS`
//! change the sizes.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{EeseConfig, Instant, Ue, UeConfig, UeId};
use ciot_e2e::kdf::{RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e_service::eese::metrics::Metrics;
use ciot_e2e_service::eese::state::StateStore;
use ciot_e2e_service::eese::{EeseService, ServiceConfig};
use ciot_e2e_service::emks::kek::{DEFAULT_KEK_FILE, Kek};
use ciot_e2e_service::emks::store::RootStore;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::pki;
use ciot_e2e_testkit::pair::Pair;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn root_of(i: usize) -> [u8; 32] {
    let mut r = [0x33; 32];
    r[..8].copy_from_slice(&(i as u64).to_be_bytes());
    r
}

fn ue_name(i: usize) -> String {
    format!("bench-ue-{i}")
}

fn start_emks(d: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = EmksConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        d.join("emks.db"),
        d.join("tls"),
    );
    std::thread::spawn(move || {
        let _ = serve(&cfg, |a| tx.send(a).unwrap());
    });
    format!("https://{}", rx.recv().unwrap())
}

fn service_config(d: &Path, emks: String, max: usize) -> ServiceConfig {
    let mut cfg = ServiceConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        emks,
        d.join("tls"),
        d.join("eese.state"),
    );
    cfg.max_sessions = max;
    // A fleet being enrolled at once: with the default
    // (`UNKNOWN_FETCH_RATE`, 50 first fetches a second) the 10,000
    // first hellos of the rate run would take 200 s to set up.
    cfg.unknown_fetch_rate = 5_000;
    cfg
}

fn restart(sessions: usize) {
    let d = dir("restart");
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    let emks = start_emks(&d);
    // One real session snapshot (a keyset in use: the UE said hello and
    // used the offer), stored for every UE.
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes(root_of(0)));
    let mut pair = Pair::new(UeConfig::default(), EeseConfig::default(), root);
    pair.settle();
    assert!(
        pair.eese
            .status(pair.now)
            .keyset
            .is_some_and(|k| k.confirmed),
        "no keyset in use"
    );
    let snap = pair.eese_disk.last().expect("a snapshot").clone();
    let t = StdInstant::now();
    {
        let mut s = StateStore::open(&d.join("eese.state")).unwrap();
        let ids: Vec<UeId> = (0..sessions)
            .map(|i| UeId::new(ue_name(i).as_bytes()).unwrap())
            .collect();
        for chunk in ids.chunks(100_000) {
            s.write(chunk.iter().map(|id| (id, snap.as_slice())))
                .unwrap();
        }
    }
    let size = std::fs::metadata(d.join("eese.state")).unwrap().len();
    println!(
        "service-restart: wrote {sessions} session snapshots ({} octets each) in {:.1} s; state file {:.1} MiB",
        snap.len(),
        t.elapsed().as_secs_f64(),
        size as f64 / f64::from(1 << 20)
    );
    let mut best = f64::MAX;
    for run in 0..3 {
        let t = StdInstant::now();
        let mut loaded = 0;
        let svc = EeseService::start(service_config(&d, emks.clone(), sessions + 1), |_, _, n| {
            loaded = n;
        })
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        println!("service-restart: run {run}: {loaded} sessions loaded, serving after {secs:.2} s");
        drop(svc);
    }
    println!(
        "service-restart: {sessions} sessions, start to serving {best:.2} s (best of 3; goal <= 5 s)"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The bare echo server: the service's socket loop (one current-thread
/// tokio task that waits for the socket to be readable, then takes a burst
/// of up to 64 datagrams without waiting, each sent at once), with the echo
/// instead of the table.
fn bare_echo(sock: UdpSocket) {
    sock.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sock = tokio::net::UdpSocket::from_std(sock).unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            if sock.readable().await.is_err() {
                return;
            }
            for _ in 0..64 {
                match sock.try_recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let _ = sock.try_send_to(&buf[..n], from);
                    }
                    Err(_) => break,
                }
            }
        }
    });
}

struct Client {
    sock: tokio::net::UdpSocket,
    msgs: Vec<Vec<u8>>,
}

/// Closed loop: every client sends its messages one at a time, each after
/// the previous one's answer (or 200 ms); at most `window` in flight.
async fn drive(
    clients: &[Arc<Client>],
    to: SocketAddr,
    window: usize,
    per: usize,
) -> (u64, u64, f64) {
    let sem = Arc::new(tokio::sync::Semaphore::new(window));
    let t = StdInstant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let c = c.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let (mut ok, mut lost) = (0u64, 0u64);
            for m in c.msgs.iter().take(per) {
                let _permit = sem.acquire().await.unwrap();
                let _ = c.sock.send_to(m, to).await;
                match tokio::time::timeout(Duration::from_millis(200), c.sock.recv(&mut buf)).await
                {
                    Ok(Ok(_)) => ok += 1,
                    _ => lost += 1,
                }
            }
            (ok, lost)
        }));
    }
    let (mut ok, mut lost) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        ok += a;
        lost += b;
    }
    (ok, lost, t.elapsed().as_secs_f64())
}

/// The rate run with the state in `state` (a PostgreSQL URL; the state
/// file when `None`); returns the EESE service's datagrams a second.
fn rate(ues: usize, per: usize, state: Option<&str>) -> f64 {
    let d = dir("rate");
    // Thread names (15 characters at most) of this run: a second run in
    // the same process must not read the first one's threads.
    let tag = if state.is_some() { "-pg" } else { "" };
    let (eese_name, echo_name) = (format!("bench-eese{tag}"), format!("bench-echo{tag}"));
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    {
        let kek = Kek::create(&d.join("tls").join(DEFAULT_KEK_FILE)).unwrap();
        let store = RootStore::open(&d.join("emks.db"), &kek).unwrap();
        let batch: Vec<(Vec<u8>, [u8; 32])> = (0..ues)
            .map(|i| (ue_name(i).into_bytes(), root_of(i)))
            .collect();
        store.provision_batch("acme", "3gpp", &batch).unwrap();
    }
    let emks = start_emks(&d);
    let (tx, rx) = std::sync::mpsc::channel();
    let (mtx, mrx) = std::sync::mpsc::channel::<Arc<Metrics>>();
    let mut cfg = service_config(&d, emks, ues + 1);
    if let Some(url) = state {
        cfg.state = url.into();
    }
    std::thread::Builder::new()
        .name(eese_name.clone())
        .spawn(move || {
            let mut s = EeseService::start(cfg, |a, _, _| tx.send(a).unwrap()).unwrap();
            mtx.send(s.metrics()).unwrap();
            s.run().unwrap();
        })
        .unwrap();
    let service: SocketAddr = rx.recv().unwrap();
    let metrics = mrx.recv().unwrap();
    let bare = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bare_addr = bare.local_addr().unwrap();
    std::thread::Builder::new()
        .name(echo_name.clone())
        .spawn(move || bare_echo(bare))
        .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = rt.block_on(async move {
        // Every UE says hello and gets its keyset, then seals its messages.
        let t = StdInstant::now();
        let cfg = UeConfig {
            hello_backoff: Duration::from_millis(300),
            hello_backoff_max: Duration::from_secs(2),
            ..UeConfig::default()
        };
        let mut setup = Vec::new();
        for i in 0..ues {
            setup.push(tokio::spawn(async move {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes(root_of(i)));
                let id = UeId::new(ue_name(i).as_bytes()).unwrap();
                let mut ue: Ue<256> = Ue::new(cfg, root, id, UeNonce::random().unwrap());
                let clock = StdInstant::now();
                let now = || Instant::from_millis(clock.elapsed().as_millis() as u64);
                let mut out = [0u8; 2048];
                let mut buf = [0u8; 2048];
                let pump = |ue: &mut Ue<256>, out: &mut [u8]| {
                    let mut sent = Vec::new();
                    while let Ok(Some(t)) = ue.poll_transmit(now(), out) {
                        sent.push(out[..t.len].to_vec());
                    }
                    while ue.poll_event().is_some() {}
                    sent
                };
                // Hello, the offer, and the hello that uses it (the EESE
                // takes the keyset into use and answers with its trigger).
                let mut used = false;
                while !used {
                    ue.handle_timeout(now());
                    let installed = ue.status().is_some();
                    for m in pump(&mut ue, &mut out) {
                        let _ = sock.send_to(&m, service).await;
                        used |= installed;
                    }
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(50), sock.recv(&mut buf)).await
                    {
                        let _ = ue.handle_datagram(now(), &mut buf[..n]);
                    }
                }
                let mut msgs = Vec::with_capacity(per);
                while msgs.len() < per {
                    ue.send(now(), &[0x42; 32]).unwrap();
                    msgs.extend(pump(&mut ue, &mut out));
                }
                Arc::new(Client { sock, msgs })
            }));
        }
        let mut clients = Vec::new();
        for s in setup {
            clients.push(s.await.unwrap());
        }
        let commits0 = metrics.state_commits.load(Ordering::Relaxed);
        let snaps0 = metrics.snapshots_written.load(Ordering::Relaxed);
        let rekeys0 = metrics.rekeys.load(Ordering::Relaxed);
        println!(
            "service-rate: {ues} UEs said hello and got a keyset in {:.1} s ({} rekeys, {} snapshots in {} state transactions)",
            t.elapsed().as_secs_f64(),
            rekeys0,
            snaps0,
            commits0
        );
        let window = 256;
        let bcpu0 = thread_cpu(&echo_name);
        let (bok, blost, bsecs) = drive(&clients, bare_addr, window, per).await;
        let bcpu = thread_cpu(&echo_name) - bcpu0;
        let scpu0 = thread_cpu(&eese_name);
        let (sok, slost, ssecs) = drive(&clients, service, window, per).await;
        let scpu = thread_cpu(&eese_name) - scpu0;
        let b = bok as f64 / bsecs;
        let s = sok as f64 / ssecs;
        println!(
            "service-rate: bare echo {b:.0} datagrams/s ({bok} answered, {blost} lost), EESE service {s:.0} datagrams/s ({sok} answered, {slost} lost): {:.2}x (goal >= 0.8x); {ues} UEs, 32-octet payloads, {window} in flight",
            s / b
        );
        // The rate above is bounded by whichever side is slower, here
        // usually the 10,000-socket client; the server thread's own CPU time
        // per answered datagram is the cost the protocol adds.
        let per_b = bcpu * 1e6 / bok.max(1) as f64;
        let per_s = scpu * 1e6 / sok.max(1) as f64;
        println!(
            "service-rate: server thread CPU per answered datagram: bare echo {per_b:.2} us, EESE service {per_s:.2} us ({:.2}x the echo's cost)",
            per_s / per_b.max(f64::MIN_POSITIVE)
        );
        let commits = metrics.state_commits.load(Ordering::Relaxed) - commits0;
        let snaps = metrics.snapshots_written.load(Ordering::Relaxed) - snaps0;
        println!(
            "service-rate: state writes during {sok} messages: {snaps} snapshots, {commits} transactions ({:.3} per 1,000 messages); during setup: {:.2} snapshots per rekey",
            commits as f64 * 1000.0 / sok.max(1) as f64,
            snaps0 as f64 / rekeys0.max(1) as f64
        );
        s
    });
    let _ = std::fs::remove_dir_all(&d);
    rate
}

/// The same rate run on the state file and on a throwaway PostgreSQL
/// cluster, one after the other.
fn rate_pg(ues: usize, per: usize) {
    let Some(pg) = ciot_e2e_testkit::postgres::Cluster::start() else {
        return;
    };
    println!("service-rate-pg: the state file first");
    let file = rate(ues, per, None);
    println!("service-rate-pg: then PostgreSQL ({})", pg.url());
    let db = rate(ues, per, Some(&pg.url()));
    println!(
        "service-rate-pg: EESE service on the state file {file:.0} datagrams/s, on PostgreSQL {db:.0} datagrams/s: {:.2}x (goal >= 0.8x)",
        db / file.max(f64::MIN_POSITIVE)
    );
}

/// CPU time (user + system, seconds) of this process's thread named
/// `name`, from `/proc/self/task/*/stat` (clock ticks of 10 ms: Linux's
/// `USER_HZ` is 100 on every architecture it exposes to user space).
fn thread_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that closes the name: state is field 3,
        // utime 14 and stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        return (ticks(14) + ticks(15)) as f64 / 100.0;
    }
    0.0
}

fn main() {
    let which = std::env::var("CIOT_BENCH").unwrap_or_default();
    if which.is_empty() || which == "restart" {
        restart(env("CIOT_BENCH_SESSIONS", 1_000_000));
    }
    if which.is_empty() || which == "rate" {
        rate(
            env("CIOT_BENCH_UES", 10_000),
            env("CIOT_BENCH_PER_UE", 20),
            None,
        );
    }
    if which.is_empty() || which == "rate-pg" {
        rate_pg(env("CIOT_BENCH_UES", 10_000), env("CIOT_BENCH_PER_UE", 20));
    }
}
