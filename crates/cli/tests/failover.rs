//! Several EESE instances on one PostgreSQL database (`--state
//! postgres://…`), UEs that know both addresses (`ue --connect A --connect
//! B`), and the failures an operator sees: one instance killed (SIGKILL) and
//! started again, the other stopped (SIGSTOP) past its lease and resumed,
//! the database restarted. Every UE must end with all its payloads echoed,
//! the merged captures of every instance, decrypted with all their key
//! logs (`dissect --keylog A --keylog B …`), must show no nonce reuse, and the sessions must be rows in the
//! database. The counts and the worst gap between two echoes of one UE
//! (against `T_heal`) are printed for docs/SCALING.md.
//!
//! Needs PostgreSQL (`initdb`, `pg_ctl`): skipped, and said, without it,
//! unless `CIOT_E2E_REQUIRE_POSTGRES=1` (`.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciot_e2e_testkit::postgres::Cluster;

mod common;

use common::{Proc, bin, free_udp_port, pki_init, provision, start_emks};

const CK: &str = "000102030405060708090a0b0c0d0e0f";
const IK: &str = "f0e0d0c0b0a090807060504030201000";
const UES: usize = 20;
const COUNT: u32 = 40;

struct Setup {
    dir: PathBuf,
    emks: u16,
    url: String,
}

impl Setup {
    /// One EESE instance, writing its own capture and key log (`tag`).
    fn eese(&self, name: &str, tag: &str, udp: u16) -> Proc {
        let p = Proc(
            Command::new(bin())
                .args(["eese", "--listen", &format!("127.0.0.1:{udp}")])
                .args(["--emks", &format!("https://127.0.0.1:{}", self.emks)])
                .arg("--tls-dir")
                .arg(self.dir.join("tls"))
                .args(["--state", &self.url, "--instance", name])
                .args(["--te2e", "4"])
                .arg("--keylog")
                .arg(self.dir.join(format!("{tag}.keys")))
                .arg("--pcap")
                .arg(self.dir.join(format!("{tag}.pcap")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Ready once it answers on UDP is hard to see from here; the UEs
        // repeat their hellos, so a short pause is enough.
        std::thread::sleep(Duration::from_millis(400));
        p
    }
}

/// A UE run: its output lines with the time each arrived.
struct UeRun {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

fn start_ue(id: &str, first: u16, second: u16) -> UeRun {
    let mut child = Command::new(bin())
        .args(["ue", "--id", id, "--ck", CK, "--ik", IK])
        .args(["--connect", &format!("127.0.0.1:{first}")])
        .args(["--connect", &format!("127.0.0.1:{second}")])
        .args(["--count", &COUNT.to_string()])
        .args(["--interval-ms", "300", "--timeout-ms", "800"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push((Instant::now(), line));
        }
    });
    UeRun { child, lines }
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// The captures merged into one (frame order does not matter to the
/// nonce-reuse check: it keys on the keyset, direction and seq).
fn merge_captures(parts: &[PathBuf], out: &Path) -> usize {
    use pcap_file::pcap::{PcapReader, PcapWriter};
    let mut w: Option<PcapWriter<std::fs::File>> = None;
    let mut n = 0;
    for p in parts {
        let Ok(f) = std::fs::File::open(p) else {
            continue;
        };
        let Ok(mut r) = PcapReader::new(f) else {
            continue;
        };
        if w.is_none() {
            w = Some(
                PcapWriter::with_header(std::fs::File::create(out).unwrap(), r.header()).unwrap(),
            );
        }
        // A record torn by SIGKILL ends that capture.
        while let Some(Ok(pkt)) = r.next_packet() {
            w.as_mut().unwrap().write_packet(&pkt).unwrap();
            n += 1;
        }
    }
    n
}

/// What the instances' merged capture says about uplink: payloads sent
/// (distinct UE address and plaintext), the data messages that carried
/// them (a UE sends a payload again when its echo does not come), the
/// payloads echoed, and echoes beyond the messages sent (a delivery twice).
struct Tally {
    payloads: usize,
    uplink_messages: usize,
    echoed: usize,
    delivered_twice: usize,
}

fn tally(dissect_json: &str) -> Tally {
    use std::collections::HashMap;
    let mut up: HashMap<(String, String), usize> = HashMap::new();
    let mut down: HashMap<(String, String), usize> = HashMap::new();
    for line in dissect_json.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(plain) = v["plaintext"].as_str() else {
            continue;
        };
        let direction = v["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["abbrev"] == "ciot_e2e.flags")
            .flat_map(|f| f["children"].as_array().into_iter().flatten())
            .find(|c| c["abbrev"] == "ciot_e2e.flags.direction")
            .and_then(|c| c["value"].as_u64());
        let text = String::from_utf8(hex::decode(plain).unwrap_or_default()).unwrap_or_default();
        match direction {
            Some(0) => {
                let ue = v["src"].as_str().unwrap_or_default().to_string();
                *up.entry((ue, text)).or_default() += 1;
            }
            Some(1) => {
                if let Some(p) = text.strip_prefix("echo: ") {
                    let ue = v["dst"].as_str().unwrap_or_default().to_string();
                    *down.entry((ue, p.to_string())).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    Tally {
        payloads: up.len(),
        uplink_messages: up.values().sum(),
        echoed: down.len(),
        delivered_twice: down
            .iter()
            .map(|(k, n)| n.saturating_sub(up.get(k).copied().unwrap_or(0)))
            .sum(),
    }
}

#[test]
fn ues_ride_out_a_killed_a_stopped_instance_and_a_database_restart() {
    let Some(pg) = Cluster::start() else { return };
    let dir = std::env::temp_dir().join(format!("ciot-e2e-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    pki_init(&dir);
    let (_emks, emks_port) = start_emks(&dir);
    let ids: Vec<String> = (0..UES).map(|i| format!("fleet-{i:02}")).collect();
    for id in &ids {
        provision(&dir, emks_port, id, CK, IK);
    }
    let s = Setup {
        dir: dir.clone(),
        emks: emks_port,
        url: pg.url(),
    };
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut a = s.eese("a", "a1", pa);
    let b = s.eese("b", "b1", pb);

    let t0 = Instant::now();
    let ues: Vec<UeRun> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            if i % 2 == 0 {
                start_ue(id, pa, pb)
            } else {
                start_ue(id, pb, pa)
            }
        })
        .collect();
    let at = |secs: u64| {
        let t = t0 + Duration::from_secs(secs);
        if let Some(d) = t.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    // A dies and comes back (a new process, its own capture).
    at(3);
    drop(a);
    at(5);
    a = s.eese("a", "a2", pa);
    // B stops for 15 s: past its lease; its UEs move to A.
    at(8);
    signal(&b, "-STOP");
    at(23);
    signal(&b, "-CONT");
    // The database restarts once.
    at(26);
    pg.restart();

    let mut echoed_all = 0;
    let mut worst_gap = Duration::ZERO;
    let mut failures = Vec::new();
    for (id, mut u) in ids.iter().zip(ues) {
        let status = u.child.wait().unwrap();
        let lines = u.lines.lock().unwrap().clone();
        let last = lines.last().map(|(_, l)| l.clone()).unwrap_or_default();
        let echoes: Vec<Instant> = lines
            .iter()
            .filter(|(_, l)| l.starts_with("echo "))
            .map(|(t, _)| *t)
            .collect();
        for w in echoes.windows(2) {
            worst_gap = worst_gap.max(w[1] - w[0]);
        }
        if status.success() && last.starts_with(&format!("echoed {COUNT}/{COUNT}")) {
            echoed_all += 1;
        } else {
            failures.push(format!("{id}: {last}"));
        }
    }
    let rows = pg.psql("SELECT count(*) FROM eese_sessions");
    let owners =
        pg.psql("SELECT string_agg(DISTINCT owner, ',' ORDER BY owner) FROM eese_sessions");
    drop(a);
    drop(b);

    // Every instance's capture, merged; every key log, concatenated.
    let caps: Vec<PathBuf> = ["a1", "a2", "b1"]
        .iter()
        .map(|t| dir.join(format!("{t}.pcap")))
        .collect();
    let merged = dir.join("all.pcap");
    let frames = merge_captures(&caps, &merged);
    let mut dissect = Command::new(bin());
    dissect.arg("dissect").arg(&merged);
    for t in ["a1", "a2", "b1"] {
        dissect.arg("--keylog").arg(dir.join(format!("{t}.keys")));
    }
    let o = dissect
        .args(["--port", &pa.to_string(), "--port", &pb.to_string()])
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    let summary = &last["summary"];
    let t = tally(&out);
    println!(
        "failover: {echoed_all}/{UES} UEs echoed {COUNT}/{COUNT}; worst gap between two echoes of one UE {:.1} s; \
         {frames} frames captured, {} data decrypted, {} bad tag, nonce_reuse {}; {rows} session rows (owners {owners}); \
         uplink: {} payloads sent as {} messages (re-sent after a missing echo: {}), {} echoed by the instances, \
         delivered more often than sent: {}",
        worst_gap.as_secs_f64(),
        summary["decrypted"],
        summary["bad_tag"],
        summary["nonce_reuse"],
        t.payloads,
        t.uplink_messages,
        t.uplink_messages - t.payloads,
        t.echoed,
        t.delivered_twice,
    );
    assert_eq!(
        t.delivered_twice, 0,
        "an uplink message was echoed more often than it was sent"
    );
    assert_eq!(
        t.payloads,
        UES * COUNT as usize,
        "every payload reached an instance"
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(summary["nonce_reuse"], 0, "{summary}");
    assert!(summary["decrypted"].as_u64().unwrap_or(0) >= (UES as u64) * u64::from(COUNT));
    assert_eq!(rows, UES.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}
