//! The admin interface on its own: HTTPS only, the admin and read tokens,
//! UE ids as percent-encoded octets, a full command channel, and idle or
//! half-sent connections bounded by the connection cap and the timeouts.
//! The server runs on a tokio runtime of this test with a stand-in for the
//! service loop; dropping the runtime stops it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciot_e2e::endpoint::UeId;
use ciot_e2e_service::ServiceError;
use ciot_e2e_service::admin::{AdminClient, AdminConfig, AdminLimits, Command, Request2, serve};
use ciot_e2e_service::eese::metrics::Metrics;
use ciot_e2e_service::pki;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-admin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    d
}

fn token(d: &Path, name: &str) -> String {
    std::fs::read_to_string(d.join("tls").join(name))
        .unwrap()
        .trim()
        .to_string()
}

/// An admin server with a stand-in service loop that records the commands
/// and answers them (`nobody` is unknown).
struct Server {
    rt: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Command>>>,
    /// The channel's receiver when the stand-in loop does not read it.
    _held: Option<mpsc::Receiver<Request2>>,
}

impl Server {
    fn start(d: &Path, limits: AdminLimits, read_token: bool, queue: usize, answer: bool) -> Self {
        let tls = d.join("tls");
        let mut cfg = AdminConfig::from_files(
            "127.0.0.1:0".parse().unwrap(),
            &tls,
            &tls.join(pki::ADMIN_TOKEN),
            read_token
                .then(|| tls.join(pki::ADMIN_READ_TOKEN))
                .as_deref(),
        )
        .unwrap();
        cfg.limits = limits;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::channel::<Request2>(queue);
        let addr = rt
            .block_on(serve(cfg, tx, Arc::new(Metrics::default())))
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let held = if answer {
            let seen = seen.clone();
            rt.spawn(async move {
                while let Some(r) = rx.recv().await {
                    seen.lock().unwrap().push(r.command.clone());
                    let reply = match &r.command {
                        Command::ExpireAll => Ok(json!({ "expired": 0 })),
                        Command::Show(u) if u.as_bytes() == b"nobody" => {
                            Err((404, "no session for UE nobody".to_string()))
                        }
                        Command::Show(_) => Ok(json!({ "keyset": null })),
                        Command::Expire(_) => Ok(json!({ "expired": true })),
                        Command::Te2e(_, s) => Ok(json!({ "te2e_secs": s })),
                        Command::Send(_, p) => {
                            Ok(json!({ "outcome": "queued", "octets": p.len() }))
                        }
                    };
                    let _ = r.reply.send(reply);
                }
            });
            None
        } else {
            Some(rx)
        };
        Server {
            rt: Some(rt),
            addr,
            seen,
            _held: held,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn seen(&self) -> Vec<Command> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn refusal(e: ServiceError) -> (u16, String) {
    match e {
        ServiceError::Refused { status, message } => (status, message),
        other => panic!("expected a refusal, got {other}"),
    }
}

/// Reads until the peer closes or `limit` passes; returns what came and
/// whether it was closed.
fn read_until_closed(s: &mut impl Read, limit: Duration) -> (Vec<u8>, bool) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// A TLS connection to the admin interface that trusts the test CA.
fn tls(d: &Path, addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let pem = std::fs::read(d.join("tls/ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp(addr));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

fn short_limits(max_connections: usize, t: Duration) -> AdminLimits {
    AdminLimits {
        handshake_timeout: t,
        header_read_timeout: t,
        body_read_timeout: t,
        idle_timeout: t,
        max_connections,
        answer_timeout: Duration::from_secs(5),
    }
}

#[test]
fn https_only_plain_http_fails_the_handshake_and_http_urls_are_refused() {
    let d = dir("https");
    let srv = Server::start(&d, AdminLimits::default(), false, 8, true);
    let tok = token(&d, pki::ADMIN_TOKEN);

    // The client takes https:// only, and says so.
    let e = AdminClient::new(&format!("http://{}", srv.addr), &d.join("tls"), &tok)
        .err()
        .expect("an http:// URL was taken");
    assert!(matches!(e, ServiceError::Usage(_)), "{e}");
    assert!(e.to_string().contains("https://"), "{e}");

    // Plain HTTP to the port: no HTTP answer at all, the connection ends.
    let mut s = tcp(srv.addr);
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n\r\n"
    )
    .unwrap();
    // Closed at once (not a TLS record), at the latest by the handshake
    // deadline (10 s) on a loaded machine.
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15));
    assert!(closed, "a plain HTTP request was left open");
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1 200"),
        "plain HTTP got an answer: {}",
        String::from_utf8_lossy(&got)
    );
    let plain = ciot_e2e_service::tls::plain_agent(Duration::from_secs(5));
    let r = plain
        .get(&format!("http://{}/metrics", srv.addr))
        .header("Authorization", &format!("Bearer {tok}"))
        .call();
    assert!(
        r.as_ref().map_or(true, |r| r.status().as_u16() != 200),
        "plain HTTP answered 200"
    );

    // HTTPS trusting the test CA works; a client trusting another CA does not.
    let c = AdminClient::new(&srv.url(), &d.join("tls"), &tok).unwrap();
    assert!(c.metrics().unwrap().contains("ciot_eese_sessions"));
    let other = dir("https-other");
    let c = AdminClient::new(&srv.url(), &other.join("tls"), &tok).unwrap();
    assert!(matches!(c.metrics(), Err(ServiceError::Unreachable(_))));
    drop(srv);
    for x in [&d, &other] {
        let _ = std::fs::remove_dir_all(x);
    }
}

#[cfg(unix)]
#[test]
fn token_files_must_be_private_and_long() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("tokens");
    let tls = d.join("tls");
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let good = tls.join(pki::ADMIN_TOKEN);
    assert_eq!(
        std::fs::metadata(&good).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(token(&d, pki::ADMIN_TOKEN).len(), 64);
    assert_eq!(token(&d, pki::ADMIN_READ_TOKEN).len(), 64);

    let open = d.join("open.token");
    std::fs::write(&open, "a".repeat(64)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = AdminConfig::from_files(listen, &tls, &open, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("open.token") && e.contains("0644"), "{e}");
    let e = AdminConfig::from_files(listen, &tls, &good, Some(&open))
        .unwrap_err()
        .to_string();
    assert!(e.contains("open.token") && e.contains("0644"), "{e}");
    let e = AdminClient::from_files("https://127.0.0.1:1", &tls, &open)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("0644"), "{e}");

    let short = d.join("short.token");
    std::fs::write(&short, "a".repeat(31)).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = AdminConfig::from_files(listen, &tls, &short, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("short.token") && e.contains("at least 32"),
        "{e}"
    );

    let e = AdminConfig::from_files(listen, &tls, &good, Some(&good))
        .unwrap_err()
        .to_string();
    assert!(e.contains("equals the admin token"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_read_token_may_only_show_and_read_metrics() {
    let d = dir("read");
    let srv = Server::start(&d, AdminLimits::default(), true, 8, true);
    let tls = d.join("tls");
    let read = AdminClient::new(&srv.url(), &tls, &token(&d, pki::ADMIN_READ_TOKEN)).unwrap();
    let admin = AdminClient::new(&srv.url(), &tls, &token(&d, pki::ADMIN_TOKEN)).unwrap();

    assert!(read.metrics().unwrap().contains("ciot_eese_sessions"));
    assert_eq!(read.show("ue-1").unwrap()["ue"], "ue-1");
    for r in [
        read.expire("ue-1"),
        read.expire_all(),
        read.te2e("ue-1", 60),
        read.send("ue-1", b"x"),
    ] {
        let (s, m) = refusal(r.unwrap_err());
        assert_eq!(s, 403, "{m}");
        assert!(m.contains("read token"), "{m}");
    }
    assert_eq!(srv.seen().len(), 1, "a refused command reached the loop");

    // The admin token does everything; a wrong one nothing.
    assert_eq!(admin.expire("ue-1").unwrap()["expired"], true);
    assert_eq!(admin.te2e("ue-1", 60).unwrap()["te2e_secs"], 60);
    assert_eq!(admin.send("ue-1", b"x").unwrap()["outcome"], "queued");
    admin.expire_all().unwrap();
    let wrong = AdminClient::new(&srv.url(), &tls, &"f".repeat(64)).unwrap();
    assert_eq!(refusal(wrong.show("ue-1").unwrap_err()).0, 401);
    assert_eq!(srv.seen().len(), 5);
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ue_ids_are_percent_encoded_octets() {
    let d = dir("ids");
    let srv = Server::start(&d, AdminLimits::default(), false, 8, true);
    let tls = d.join("tls");
    let tok = token(&d, pki::ADMIN_TOKEN);
    let c = AdminClient::new(&srv.url(), &tls, &tok).unwrap();

    let cases: [(&[u8], Value); 5] = [
        (b"has space", json!("has space")),
        ("ü-ue".as_bytes(), json!("ü-ue")),
        (b"a/b?c#d%e", json!("a/b?c#d%e")),
        (&[0xff, 0xfe, b'a'], Value::Null),
        (&[b'x'; 64], json!("x".repeat(64))),
    ];
    for (id, text) in &cases {
        let v = c.show(id).unwrap();
        assert_eq!(v["ue"], *text, "{v}");
        assert_eq!(v["ue_hex"], hex::encode(id), "{v}");
        let v = c.expire(id).unwrap();
        assert_eq!(v["ue_hex"], hex::encode(id), "{v}");
    }
    let want: Vec<Command> = cases
        .iter()
        .flat_map(|(id, _)| {
            let u = UeId::new(id).unwrap();
            [Command::Show(u), Command::Expire(u)]
        })
        .collect();
    assert_eq!(srv.seen(), want);
    let (s, m) = refusal(c.show("nobody").unwrap_err());
    assert_eq!((s, m.as_str()), (404, "no session for UE nobody"));

    // Refused before the loop: control characters, length, bad encoding.
    let n = srv.seen().len();
    for bad in [&b"a\x01b"[..], b"tab\there", b"del\x7f", &[b'x'; 65]] {
        let (s, m) = refusal(c.show(bad).unwrap_err());
        assert_eq!(s, 400, "{m}");
        assert!(m.contains("UE identifier"), "{m}");
    }
    let agent = ciot_e2e_service::tls::ca_agent(&tls, Duration::from_secs(5)).unwrap();
    for path in ["/v1/ues/ab%zz", "/v1/ues/ab%4", "/v1/ues/%00"] {
        let mut r = agent
            .get(&format!("{}{path}", srv.url()))
            .header("Authorization", &format!("Bearer {tok}"))
            .call()
            .unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}: {body}");
        assert!(body.contains("UE identifier"), "{path}: {body}");
    }
    assert_eq!(srv.seen().len(), n, "a refused id reached the loop");
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_full_command_channel_is_answered_503() {
    let d = dir("full");
    let limits = AdminLimits {
        answer_timeout: Duration::from_secs(2),
        ..AdminLimits::default()
    };
    // Nobody reads the channel: one command fills it.
    let srv = Server::start(&d, limits, false, 1, false);
    let tls = d.join("tls");
    let tok = token(&d, pki::ADMIN_TOKEN);
    let first = {
        let (url, tls, tok) = (srv.url(), tls.clone(), tok.clone());
        std::thread::spawn(move || {
            AdminClient::new(&url, &tls, &tok)
                .unwrap()
                .expire("ue-1")
                .unwrap_err()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let c = AdminClient::new(&srv.url(), &tls, &tok).unwrap();
    let t0 = Instant::now();
    let (s, m) = refusal(c.expire("ue-2").unwrap_err());
    assert_eq!(s, 503, "{m}");
    assert!(m.contains("too many"), "{m}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a full channel waited"
    );
    let (s, m) = refusal(first.join().unwrap());
    assert_eq!(s, 503, "{m}");
    assert!(m.contains("no answer"), "{m}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn idle_and_half_sent_connections_are_capped_and_released_by_the_timeouts() {
    const CAP: usize = 8;
    let t = Duration::from_millis(1500);
    let d = dir("bounds");
    let srv = Server::start(&d, short_limits(CAP, t), false, 8, true);
    let tls_dir = d.join("tls");
    let tok = token(&d, pki::ADMIN_TOKEN);
    let c = AdminClient::new(&srv.url(), &tls_dir, &tok).unwrap();
    assert!(c.metrics().is_ok());
    // Let the client's pooled connection go before counting slots.
    std::thread::sleep(t + Duration::from_millis(500));

    // Idle TCP connections (no TLS hello) fill the cap; more are closed at once.
    let idle: Vec<TcpStream> = (0..CAP).map(|_| tcp(srv.addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 * CAP {
        let mut s = tcp(srv.addr);
        let (_, closed) = read_until_closed(&mut s, Duration::from_millis(700));
        assert!(closed, "a connection over the cap was kept open");
    }
    assert!(
        c.metrics().is_err(),
        "a request got a slot while the cap was full"
    );
    // The handshake timeout releases them.
    for mut s in idle {
        let (_, closed) = read_until_closed(&mut s, t + Duration::from_secs(2));
        assert!(closed, "an idle connection outlived the handshake timeout");
    }
    assert!(c.metrics().unwrap().contains("ciot_eese_sessions"));
    std::thread::sleep(t + Duration::from_millis(500));

    // Half-sent requests: a head without its end, a body without its end,
    // and a connection that did one request and idles.
    let mut held = Vec::new();
    for i in 0..CAP {
        let mut s = tls(&d, srv.addr);
        match i % 3 {
            0 => write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n").unwrap(),
            1 => write!(
                s,
                "PUT /v1/ues/ue-1/te2e HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"secs\""
            )
            .unwrap(),
            _ => {
                write!(
                    s,
                    "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\n\r\n"
                )
                .unwrap();
            }
        }
        s.flush().unwrap();
        held.push((i % 3, s));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        c.metrics().is_err(),
        "a request got a slot while half-sent requests held the cap"
    );
    for (kind, mut s) in held {
        let (got, closed) = read_until_closed(&mut s, t * 2 + Duration::from_secs(2));
        let text = String::from_utf8_lossy(&got);
        assert!(
            closed,
            "a half-sent connection ({kind}) outlived its timeouts"
        );
        match kind {
            1 => assert!(text.contains("408"), "{text}"),
            2 => assert!(text.contains("200 OK"), "{text}"),
            _ => {}
        }
    }
    assert!(c.metrics().unwrap().contains("ciot_eese_sessions"));
    assert!(
        !srv.seen().iter().any(|c| matches!(c, Command::Te2e(..))),
        "a half-sent body reached the loop"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}
