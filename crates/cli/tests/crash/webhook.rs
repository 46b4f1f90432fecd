//! The crash test's webhook runs. Uplink to the enterprise survives everything between the EESE and its
//! webhook: an EMKS and an EESE as processes, two UEs (`ciot-e2e ue
//! --no-wait`, one of them named "bar ue 3"), a webhook that answers 500 to
//! 30 % of requests and is down while the EESE is killed with SIGKILL and
//! restarted. Every one of the 45 payloads reaches the webhook, each post
//! with a valid Standard Webhooks signature (checked here with HMAC-SHA256
//! directly, not with the crate's signer).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Proc, bin, free_port, wait_tcp};
use base64::Engine as _;
use hmac::{KeyInit, Mac};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CK: &str = "000102030405060708090a0b0c0d0e0f";

fn ik(i: u8) -> String {
    format!("{i:02x}e0d0c0b0a090807060504030201000")
}

/// One post as the webhook saw it.
#[derive(Clone, Debug)]
struct Post {
    id: String,
    body: serde_json::Value,
}

/// The enterprise's webhook: checks every signature, answers 500 to about
/// 30 % of posts (a fixed pseudo-random sequence), and can be taken down
/// (its port closed) and brought up again on the same port.
struct Webhook {
    port: u16,
    up: Arc<AtomicBool>,
    /// Posts answered 200, in arrival order.
    taken: Arc<Mutex<Vec<Post>>>,
    /// Posts with a missing or wrong signature.
    bad: Arc<Mutex<Vec<String>>>,
    answered_500: Arc<Mutex<u32>>,
}

fn read_request(conn: &mut TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// Whether `sig` is a valid Standard Webhooks signature of this post.
fn signed(headers: &HashMap<String, String>, body: &[u8]) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let (Some(id), Some(ts), Some(sig)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts_secs) = ts.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_secs) > 300 {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    sig.split(' ').any(|s| s == want)
}

impl Webhook {
    fn start() -> Self {
        let w = Webhook {
            port: free_port(),
            up: Arc::new(AtomicBool::new(false)),
            taken: Arc::default(),
            bad: Arc::default(),
            answered_500: Arc::default(),
        };
        w.set_up(true);
        w
    }

    fn set_up(&self, up: bool) {
        if !up {
            self.up.store(false, Ordering::SeqCst);
            // The accept loop sees it within 10 ms and closes the port.
            std::thread::sleep(Duration::from_millis(50));
            return;
        }
        let l = loop {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", self.port)) {
                break l;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        l.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, taken, bad, n500) = (
            self.up.clone(),
            self.taken.clone(),
            self.bad.clone(),
            self.answered_500.clone(),
        );
        std::thread::spawn(move || {
            // xorshift: a fixed sequence of 500s, about 30 %.
            let mut x: u32 = 0x9e37_79b9;
            while up.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                while let Some((headers, body)) = read_request(&mut conn) {
                    if !signed(&headers, &body) {
                        bad.lock().unwrap().push(format!("{headers:?}"));
                    }
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let fail = x % 10 < 3;
                    let answer: &[u8] = if fail {
                        *n500.lock().unwrap() += 1;
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        taken.lock().unwrap().push(Post {
                            id: headers.get("webhook-id").cloned().unwrap_or_default(),
                            body: serde_json::from_slice(&body).unwrap_or_default(),
                        });
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    };
                    if conn.write_all(answer).is_err() || !up.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
            // Dropping the listener closes the port: the webhook is down.
        });
    }

    /// Distinct payloads taken, by webhook-id (a retry after a lost answer
    /// may come twice under one id: the enterprise drops it by id).
    fn distinct(&self) -> BTreeMap<String, Post> {
        self.taken
            .lock()
            .unwrap()
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect()
    }
}

fn start_eese(d: &Path, udp: u16, emks: u16, hook: u16) -> Proc {
    let c = Command::new(bin())
        .args(["eese", "--listen", &format!("127.0.0.1:{udp}")])
        .args(["--emks", &format!("https://127.0.0.1:{emks}")])
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .arg("--state")
        .arg(d.join("eese.state"))
        .args(["--webhook", &format!("http://127.0.0.1:{hook}/uplink")])
        .arg("--webhook-secret-file")
        .arg(d.join("whsec"))
        .arg("--quiet")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Serving once the UDP port is taken.
    let t = Instant::now();
    while UdpSocket::bind(("127.0.0.1", udp)).is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the EESE did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(c)
}

/// A UE run: `count` payloads without waiting for echoes.
fn ue(udp: u16, id: &str, i: u8, count: u32) -> Child {
    Command::new(bin())
        .args(["ue", "--connect", &format!("127.0.0.1:{udp}"), "--id", id])
        .args(["--ck", CK, "--ik", &ik(i)])
        .args(["--count", &count.to_string(), "--interval-ms", "100"])
        .args(["--timeout-ms", "1000", "--no-wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(c: Child, what: &str) {
    let o = c.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{what}: {out}");
}

#[test]
fn every_uplink_payload_reaches_a_failing_webhook_through_a_kill_9_and_an_outage() {
    let _turn = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = std::env::temp_dir().join(format!("ciot-e2e-webhook-{}", std::process::id()));
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
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(d.join("whsec"))
            .unwrap();
        writeln!(f, "{SECRET}").unwrap();
    }
    let emks_port = free_port();
    let _emks = Proc(
        Command::new(bin())
            .args([
                "emks",
                "--listen",
                &format!("127.0.0.1:{emks_port}"),
                "--db",
            ])
            .arg(d.join("emks.db"))
            .arg("--tls-dir")
            .arg(d.join("tls"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tcp(emks_port);
    let ues = [("ue-a", 1u8), ("bar ue 3", 3u8)];
    for (id, i) in ues {
        let o = Command::new(bin())
            .args([
                "emks",
                "provision",
                "--emks",
                &format!("https://127.0.0.1:{emks_port}"),
            ])
            .arg("--tls-dir")
            .arg(d.join("tls"))
            .args(["--ue", id, "--ck", CK, "--ik", &ik(i)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    let hook = Webhook::start();
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut eese = start_eese(&d, udp, emks_port, hook.port);

    // Phase 1: the webhook up, failing 30 % of the time.
    let (a, b) = (ue(udp, "ue-a", 1, 8), ue(udp, "bar ue 3", 3, 7));
    finish(a, "phase 1, ue-a");
    finish(b, "phase 1, bar ue 3");

    // Phase 2: the webhook down; the payloads wait in the outbox, and the
    // EESE is killed with SIGKILL while they do.
    hook.set_up(false);
    let (a, b) = (ue(udp, "ue-a", 1, 8), ue(udp, "bar ue 3", 3, 7));
    finish(a, "phase 2, ue-a");
    finish(b, "phase 2, bar ue 3");
    std::thread::sleep(Duration::from_millis(300));
    let before_kill = hook.distinct().len();
    drop(eese);
    eese = start_eese(&d, udp, emks_port, hook.port);

    // Phase 3: the restarted EESE takes more while the webhook is still
    // down, then the webhook comes back (still failing 30 %).
    let (a, b) = (ue(udp, "ue-a", 1, 7), ue(udp, "bar ue 3", 3, 8));
    finish(a, "phase 3, ue-a");
    finish(b, "phase 3, bar ue 3");
    std::thread::sleep(Duration::from_secs(2));
    hook.set_up(true);

    let t = Instant::now();
    while hook.distinct().len() < 45 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(eese);
    hook.set_up(false);
    let got = hook.distinct();
    let bad = hook.bad.lock().unwrap().clone();
    let n500 = *hook.answered_500.lock().unwrap();
    println!(
        "webhook: {} distinct payloads ({} posts taken, {n500} answered 500, {} before the kill), {} bad signatures",
        got.len(),
        hook.taken.lock().unwrap().len(),
        before_kill,
        bad.len()
    );
    assert!(bad.is_empty(), "posts without a valid signature: {bad:?}");
    assert!(n500 > 0, "the webhook never failed");
    // Every payload of every UE run, as a multiset of (UE, payload).
    let mut want: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (id, counts) in [("ue-a", [8, 8, 7]), ("bar ue 3", [7, 7, 8])] {
        for n in counts {
            for k in 1..=n {
                *want
                    .entry((id.to_string(), hex::encode(format!("message {k}"))))
                    .or_default() += 1;
            }
        }
    }
    let mut have: BTreeMap<(String, String), u32> = BTreeMap::new();
    for p in got.values() {
        let ue = p.body["ue"].as_str().unwrap_or("?").to_string();
        assert_eq!(
            p.body["ue_hex"].as_str(),
            Some(hex::encode(ue.as_bytes()).as_str()),
            "{:?}",
            p.body
        );
        let payload = p.body["payload"].as_str().unwrap_or("?").to_string();
        *have.entry((ue, payload)).or_default() += 1;
    }
    assert_eq!(
        have, want,
        "the webhook did not get every payload exactly once by id"
    );
    assert_eq!(got.len(), 45);
    let _ = std::fs::remove_dir_all(&d);
}
