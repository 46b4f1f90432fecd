//! The EMKS as an operator runs it: what it leaves on disk (sealed roots,
//! mode 0600 files, an audit log without keys), its store identity,
//! revocation, check-and-set provisioning, UE identifiers of any octets,
//! and a wrong or exposed KEK refused at start. Each EMKS runs on a
//! loopback thread of this test process and is stopped at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, int_key};
use ciot_e2e_service::ServiceError;
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve_until};
use ciot_e2e_service::pki;
use ciot_e2e_service::tls::client_agent;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-emks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running EMKS; stopped (database and audit log closed) on drop.
struct Emks {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl Emks {
    fn start(cfg: EmksConfig) -> Result<Emks, ServiceError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || serve_until(&cfg, |a| tx.send(a).unwrap(), &s2));
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => {
                let a: SocketAddr = a;
                Ok(Emks {
                    url: format!("https://{a}"),
                    stop,
                    thread: Some(thread),
                })
            }
            Err(_) => Err(thread
                .join()
                .unwrap()
                .expect_err("serve ended without error")),
        }
    }

    fn client(&self, d: &Path, stem: &str) -> EmksClient {
        EmksClient::new(&self.url, &d.join("tls"), stem, Duration::from_secs(5)).unwrap()
    }
}

impl Drop for Emks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(d: &Path) -> EmksConfig {
    EmksConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        d.join("data").join("emks.db"),
        d.join("tls"),
    )
}

fn setup(name: &str) -> PathBuf {
    let d = dir(name);
    pki::init(&d.join("tls"), &["acme".into(), "other".into()]).unwrap();
    std::fs::create_dir_all(d.join("data")).unwrap();
    d
}

fn status(e: ServiceError) -> (u16, String) {
    match e {
        ServiceError::Refused { status, message } => (status, message),
        other => panic!("expected a refusal, got {other}"),
    }
}

fn audit_lines(d: &Path) -> Vec<Value> {
    std::fs::read_to_string(d.join("data/emks.db.audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_file_the_emks_writes_holds_a_root_and_every_one_is_private() {
    let d = setup("at-rest");
    let ck = [0x3c; 16];
    let ik = [0xa5; 16];
    let root = int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(ck), &Ik::from_bytes(ik)),
    );
    let root = *root.key().as_bytes();
    let mut ckik = ck.to_vec();
    ckik.extend_from_slice(&ik);
    {
        let e = Emks::start(config(&d)).unwrap();
        let hss = e.client(&d, "hss");
        let eese = e.client(&d, "eese");
        assert_eq!(
            hss.provision(b"ue-1", "acme", "3gpp", &root)
                .unwrap()
                .generation,
            1
        );
        assert_eq!(*eese.root(b"ue-1").unwrap().root.key().as_bytes(), root);
        hss.provision(b"ue-1", "acme", "3gpp", &root).unwrap();
        eese.root(b"ue-1").unwrap();
    }
    // Every file in the database's directory: the database and the audit
    // log (the KEK lives in the TLS directory).
    let mut files = 0;
    for f in std::fs::read_dir(d.join("data")).unwrap() {
        let p = f.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert!(!contains(&bytes, &root), "{} holds the root", p.display());
        assert!(!contains(&bytes, &ckik), "{} holds CK||IK", p.display());
        assert!(
            !contains(&bytes, hex::encode(root).as_bytes()),
            "{} holds the root in hex",
            p.display()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o600, "{}", p.display());
        }
        files += 1;
    }
    assert_eq!(files, 2, "the database and the audit log");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(d.join("tls/emks.kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600);
    }
    assert_eq!(std::fs::read(d.join("tls/emks.kek")).unwrap().len(), 32);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_wrong_missing_or_exposed_kek_is_refused_at_start() {
    let d = setup("kek");
    {
        let e = Emks::start(config(&d)).unwrap();
        e.client(&d, "hss")
            .provision(b"ue-1", "acme", "3gpp", &[1; 32])
            .unwrap();
    }
    let kek = d.join("tls/emks.kek");
    // Another KEK.
    let other = d.join("other.kek");
    std::fs::write(&other, [9u8; 32]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut cfg = config(&d);
    cfg.kek_file = Some(other.clone());
    let e = Emks::start(cfg).err().expect("wrong KEK");
    assert!(
        e.to_string()
            .contains(&format!("wrong KEK: {}", other.display())),
        "{e}"
    );
    // Readable by the group.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Emks::start(config(&d)).err().expect("exposed KEK");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Missing, with a database that holds roots: not made anew.
    let moved = d.join("moved.kek");
    std::fs::rename(&kek, &moved).unwrap();
    let e = Emks::start(config(&d)).err().expect("missing KEK");
    assert!(e.to_string().contains("is missing"), "{e}");
    assert!(!kek.exists());
    std::fs::rename(&moved, &kek).unwrap();
    // The right one still opens everything.
    let e = Emks::start(config(&d)).unwrap();
    assert_eq!(e.client(&d, "eese").root(b"ue-1").unwrap().generation, 1);
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_wiped_database_has_another_identity() {
    let d = setup("identity");
    let first = {
        let e = Emks::start(config(&d)).unwrap();
        e.client(&d, "hss")
            .provision(b"ue-1", "acme", "3gpp", &[1; 32])
            .unwrap();
        let eese = e.client(&d, "eese");
        let a = eese.root(b"ue-1").unwrap();
        assert_eq!(a.store.len(), 32);
        let c = eese.changes(0, Duration::ZERO).unwrap();
        assert_eq!(c.store, a.store);
        a.store
    };
    // The same database again: the same identity.
    {
        let e = Emks::start(config(&d)).unwrap();
        assert_eq!(e.client(&d, "eese").root(b"ue-1").unwrap().store, first);
    }
    std::fs::remove_file(d.join("data/emks.db")).unwrap();
    let e = Emks::start(config(&d)).unwrap();
    e.client(&d, "hss")
        .provision(b"ue-1", "acme", "3gpp", &[1; 32])
        .unwrap();
    let a = e.client(&d, "eese").root(b"ue-1").unwrap();
    assert_eq!(a.generation, 1);
    assert_ne!(
        a.store, first,
        "a wiped database must not pass for the old one"
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn revocation_destroys_the_root_and_provisioning_continues_above_it() {
    let d = setup("revoke");
    let e = Emks::start(config(&d)).unwrap();
    let hss = e.client(&d, "hss");
    let eese = e.client(&d, "eese");
    hss.provision(b"ue-1", "acme", "3gpp", &[1; 32]).unwrap();
    hss.provision(b"ue-1", "acme", "3gpp", &[2; 32]).unwrap();
    let since = eese.changes(0, Duration::ZERO).unwrap().next;
    // Only the HSS revokes.
    let (s, m) = status(eese.revoke(b"ue-1").unwrap_err());
    assert_eq!(s, 403, "{m}");
    assert_eq!(hss.revoke(b"ue-1").unwrap(), 2);
    let (s, _) = status(eese.root(b"ue-1").unwrap_err());
    assert_eq!(s, 404);
    let (s, m) = status(hss.revoke(b"ue-1").unwrap_err());
    assert_eq!(s, 404, "{m}");
    let c = eese.changes(since, Duration::ZERO).unwrap();
    assert_eq!(c.changes.len(), 1);
    let ch = &c.changes[0];
    assert_eq!(
        (ch.generation, ch.revoked, ch.ue_octets()),
        (2, true, Some(b"ue-1".to_vec()))
    );
    assert_eq!(
        hss.provision(b"ue-1", "acme", "3gpp", &[3; 32])
            .unwrap()
            .generation,
        3
    );
    let a = eese.root(b"ue-1").unwrap();
    assert_eq!((a.generation, *a.root.key().as_bytes()), (3, [3; 32]));
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn check_and_set_provisioning_refuses_a_stale_generation() {
    let d = setup("cas");
    let e = Emks::start(config(&d)).unwrap();
    let hss = e.client(&d, "hss");
    let eese = e.client(&d, "eese");
    assert_eq!(
        hss.provision_checked(b"ue-1", "acme", "3gpp", &[1; 32], Some(0))
            .unwrap()
            .generation,
        1
    );
    let (s, m) = status(
        hss.provision_checked(b"ue-1", "acme", "3gpp", &[2; 32], Some(0))
            .unwrap_err(),
    );
    assert_eq!(s, 409);
    assert!(m.contains("at generation 1"), "{m}");
    let (s, m) = status(
        hss.provision_checked(b"ue-1", "acme", "3gpp", &[2; 32], Some(7))
            .unwrap_err(),
    );
    assert_eq!(s, 409);
    assert!(m.contains("at generation 1, expected generation 7"), "{m}");
    let a = eese.root(b"ue-1").unwrap();
    assert_eq!((a.generation, *a.root.key().as_bytes()), (1, [1; 32]));
    assert_eq!(
        hss.provision_checked(b"ue-1", "acme", "3gpp", &[2; 32], Some(1))
            .unwrap()
            .generation,
        2
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ue_identifiers_are_octets_in_paths_and_json() {
    let d = setup("ids");
    let e = Emks::start(config(&d)).unwrap();
    let hss = e.client(&d, "hss");
    let eese = e.client(&d, "eese");
    let ids: [&[u8]; 6] = [
        b"has space",
        "ü-ue".as_bytes(),
        b"bar ue 3",
        b"a/b?c#d%e",
        &[0xff, 0xfe, 0x80, b'x'],
        &[b'x'; 64],
    ];
    for (i, id) in ids.iter().enumerate() {
        let root = [u8::try_from(i).unwrap() + 1; 32];
        let r = hss.provision(id, "acme", "3gpp", &root).unwrap();
        assert_eq!(r.ue_hex, hex::encode(id));
        assert_eq!(r.ue.as_bytes(), if i == 4 { &b""[..] } else { id });
        let a = eese.root(id).unwrap();
        assert_eq!(*a.root.key().as_bytes(), root, "{id:?}");
    }
    // "has space" is not its hex nor its Debug form.
    let (s, _) = status(eese.root(hex::encode("has space").as_bytes()).unwrap_err());
    assert_eq!(s, 404);
    let c = eese.changes(0, Duration::ZERO).unwrap();
    let got: Vec<Vec<u8>> = c.changes.iter().filter_map(|c| c.ue_octets()).collect();
    assert_eq!(got, ids.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
    // Control characters, too long, empty: refused before anything.
    let agent = client_agent(&d.join("tls"), "hss", Duration::from_secs(5)).unwrap();
    for seg in ["a%0Ab", "a%00", "a%7F", &"x".repeat(65), "%1B"] {
        let req = ureq::http::Request::builder()
            .method("PUT")
            .uri(format!("{}/v1/ues/{seg}/root", e.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"enterprise":"acme","root":"{}"}}"#, "11".repeat(32)).into_bytes())
            .unwrap();
        let r = agent.run(req).unwrap();
        assert_eq!(r.status().as_u16(), 400, "{seg}");
    }
    assert!(matches!(
        hss.provision(b"a\nb", "acme", "3gpp", &[1; 32]),
        Err(ServiceError::Usage(_))
    ));
    // An all-zero root is no root.
    let (s, m) = status(
        hss.provision(b"zero", "acme", "3gpp", &[0; 32])
            .unwrap_err(),
    );
    assert_eq!(s, 422, "{m}");
    assert!(status(eese.root(b"zero").unwrap_err()).0 == 404);
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}

/// Found by CI on a busy machine: a TLS handshake refused just before the
/// EMKS stopped left no audit line (the stop cancelled the connection's task
/// between the refusal and the line). A stop now waits, within a bound, for
/// connections still in their handshake, and one it cuts off is audited as
/// such. The second half fails deterministically without that: a connection
/// that never sends its hello is still in its handshake at the stop.
#[test]
fn a_handshake_refused_or_cut_off_by_a_stop_still_leaves_its_audit_line() {
    let d = setup("audit-stop");
    let d2 = setup("audit-stop-ca");
    for round in 1..=10 {
        let e = Emks::start(config(&d)).unwrap();
        let stranger =
            EmksClient::new(&e.url, &d2.join("tls"), "eese", Duration::from_secs(5)).unwrap();
        assert!(stranger.root(b"has space").is_err());
        drop(e);
        let handshakes = audit_lines(&d)
            .iter()
            .filter(|l| l["action"] == "tls_handshake")
            .count();
        assert_eq!(handshakes, round, "round {round}");
    }
    // A connection that says nothing, open while the EMKS stops.
    let e = Emks::start(config(&d)).unwrap();
    let addr = e.url.trim_start_matches("https://").trim_end_matches('/');
    let silent = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(e);
    drop(silent);
    let lines = audit_lines(&d);
    let last = lines.last().unwrap();
    assert_eq!(last["action"], "tls_handshake", "{last}");
    assert_eq!(
        last["result"], "failed: the EMKS stopped during the handshake",
        "{last}"
    );
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn the_audit_log_has_a_line_per_action_and_refusal_and_no_root() {
    let d = setup("audit");
    let e = Emks::start(config(&d)).unwrap();
    let hss = e.client(&d, "hss");
    let eese = e.client(&d, "eese");
    let other = e.client(&d, "eese-other");
    let root = [0x77; 32];
    hss.provision(b"has space", "acme", "3gpp", &root).unwrap();
    eese.root(b"has space").unwrap();
    eese.rands(2).unwrap();
    let _ = other.root(b"has space").unwrap_err(); // 404
    let _ = eese
        .provision(b"has space", "acme", "3gpp", &[1; 32])
        .unwrap_err(); // 403
    let _ = hss
        .provision(b"has space", "other", "3gpp", &[1; 32])
        .unwrap_err(); // 409
    hss.revoke(b"has space").unwrap();
    eese.changes(0, Duration::ZERO).unwrap(); // not logged
    // A client of another CA: the handshake fails.
    let d2 = setup("audit-ca");
    let stranger =
        EmksClient::new(&e.url, &d2.join("tls"), "eese", Duration::from_secs(5)).unwrap();
    assert!(stranger.root(b"has space").is_err());
    drop(e);
    let lines = audit_lines(&d);
    let got: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["peer"].as_str().unwrap_or("").to_string(),
                l["action"].as_str().unwrap().to_string(),
                l["result"].as_str().unwrap().chars().take(3).collect(),
            )
        })
        .collect();
    let want = [
        ("hss", "provision", "200"),
        ("eese:acme", "root_fetch", "200"),
        ("eese:acme", "rand", "200"),
        ("eese:other", "root_fetch", "404"),
        ("eese:acme", "provision", "403"),
        ("hss", "provision", "409"),
        ("hss", "revoke", "200"),
    ];
    assert_eq!(got.len(), want.len() + 1, "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), w, "{got:?}");
    }
    let last = got.last().unwrap();
    assert_eq!(last.1, "tls_handshake");
    assert!(last.0.starts_with("127.0.0.1:"), "{last:?}");
    for l in &lines {
        assert!(l["time"].as_u64().unwrap() > 1_600_000_000_000);
        if l["action"] != "rand" && l["action"] != "tls_handshake" {
            assert_eq!(l["ue"], "has space", "{l}");
            assert_eq!(l["ue_hex"], hex::encode("has space"), "{l}");
        }
    }
    let text = std::fs::read_to_string(d.join("data/emks.db.audit.jsonl")).unwrap();
    assert!(!text.contains(&hex::encode(root)));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn an_audit_log_that_cannot_be_written_refuses_the_request() {
    let d = setup("audit-fail");
    let mut cfg = config(&d);
    // A file system that is always full.
    cfg.audit = Some(PathBuf::from("/dev/full"));
    if !Path::new("/dev/full").exists() {
        return;
    }
    let e = Emks::start(cfg).unwrap();
    let hss = e.client(&d, "hss");
    let (s, m) = status(
        hss.provision(b"ue-1", "acme", "3gpp", &[1; 32])
            .unwrap_err(),
    );
    assert_eq!(s, 500, "{m}");
    assert!(m.contains("audit log"), "{m}");
    drop(e);
    // Nothing was provisioned.
    let e = Emks::start(config(&d)).unwrap();
    let (s, _) = status(e.client(&d, "eese").root(b"ue-1").unwrap_err());
    assert_eq!(s, 404);
    drop(e);
    let _ = std::fs::remove_dir_all(&d);
}
