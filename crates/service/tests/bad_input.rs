//! Bad input at the EMKS's and the admin interface's every door gets a
//! clear error and changes nothing: malformed JSON, unknown UE, the wrong
//! client certificate or token, oversized bodies, a provisioning that races
//! a fetch. The servers run on loopback threads of this test process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ciot_e2e_service::ServiceError;
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::{EeseService, ServiceConfig};
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::pki;
use ciot_e2e_service::tls::client_agent;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-svc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts an EMKS on a thread; returns its URL.
fn emks(d: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = EmksConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        d.join("emks.db"),
        d.join("tls"),
    );
    std::thread::spawn(move || {
        let _ = serve(&cfg, |a| tx.send(a).unwrap());
    });
    let a: SocketAddr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    format!("https://{a}")
}

fn client(url: &str, d: &Path, stem: &str) -> EmksClient {
    EmksClient::new(url, &d.join("tls"), stem, Duration::from_secs(5)).unwrap()
}

fn status(e: ServiceError) -> (u16, String) {
    match e {
        ServiceError::Refused { status, message } => (status, message),
        other => panic!("expected a refusal, got {other}"),
    }
}

fn raw(agent: &ureq::Agent, method: &str, url: &str, body: Option<&[u8]>) -> (u16, String) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.map(<[u8]>::to_vec).unwrap_or_default())
        .unwrap();
    let mut r = agent.run(req).unwrap();
    let s = r.status().as_u16();
    (s, r.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn emks_refuses_bad_input_clearly_and_changes_nothing() {
    let d = dir("emks-bad");
    pki::init(&d.join("tls"), &["acme".into(), "other".into()]).unwrap();
    let url = emks(&d);
    let hss = client(&url, &d, "hss");
    let root = [7u8; 32];
    assert_eq!(
        hss.provision(b"ue-1", "acme", "3gpp", &root)
            .unwrap()
            .generation,
        1
    );

    // The wrong certificate for the door.
    let eese = client(&url, &d, "eese");
    let (s, m) = status(
        eese.provision(b"ue-1", "acme", "3gpp", &[9; 32])
            .unwrap_err(),
    );
    assert_eq!(s, 403, "{m}");
    assert!(m.contains("only the HSS"), "{m}");
    let (s, m) = status(hss.root(b"ue-1").unwrap_err());
    assert_eq!((s, m.contains("only an EESE")), (403, true), "{m}");
    // Another enterprise's UE looks exactly like an unknown one.
    let other = client(&url, &d, "eese-other");
    let (s1, m1) = status(other.root(b"ue-1").unwrap_err());
    let (s2, _) = status(other.root(b"nobody").unwrap_err());
    assert_eq!((s1, s2), (404, 404));
    assert!(
        m1.contains("no UE \"ue-1\" in enterprise \"other\""),
        "{m1}"
    );
    // A UE stays with its enterprise.
    let (s, _) = status(
        hss.provision(b"ue-1", "other", "3gpp", &[9; 32])
            .unwrap_err(),
    );
    assert_eq!(s, 409);

    // Malformed, wrong and oversized bodies.
    let agent = client_agent(&d.join("tls"), "hss", Duration::from_secs(5)).unwrap();
    let put = format!("{url}/v1/ues/ue-1/root");
    for (body, want) in [
        (&b"{not json"[..], 400),
        (&br#"{"enterprise":"acme"}"#[..], 400),
        (&br#"{"enterprise":"acme","root":"zz"}"#[..], 422),
        (&br#"{"enterprise":"acme","root":"0011"}"#[..], 422),
        (&br#"{"enterprise":"ACME!","root":"00"}"#[..], 422),
        (&br#"{"enterprise":"acme","root":"00","extra":1}"#[..], 400),
        (&br#"{"enterprise":"acme","kdf":"md5","root":"0000000000000000000000000000000000000000000000000000000000000000"}"#[..], 422),
    ] {
        let (s, text) = raw(&agent, "PUT", &put, Some(body));
        assert_eq!(s, want, "{}: {text}", String::from_utf8_lossy(body));
        assert!(text.contains("\"error\""), "{text}");
    }
    let big = format!(r#"{{"enterprise":"acme","root":"{}"}}"#, "0".repeat(8192));
    assert_eq!(raw(&agent, "PUT", &put, Some(big.as_bytes())).0, 413);
    let long = format!("{url}/v1/ues/{}/root", "u".repeat(65));
    assert_eq!(
        raw(
            &agent,
            "PUT",
            &long,
            Some(br#"{"enterprise":"acme","root":"00"}"#)
        )
        .0,
        400
    );
    assert_eq!(
        raw(&agent, "GET", &format!("{url}/v1/nothing"), None).0,
        404
    );
    let eese_agent = client_agent(&d.join("tls"), "eese", Duration::from_secs(5)).unwrap();
    assert_eq!(
        raw(
            &eese_agent,
            "POST",
            &format!("{url}/v1/rand"),
            Some(br#"{"count":0}"#)
        )
        .0,
        422
    );
    assert_eq!(
        raw(
            &eese_agent,
            "POST",
            &format!("{url}/v1/rand"),
            Some(br#"{"count":65}"#)
        )
        .0,
        422
    );
    assert_eq!(
        raw(
            &eese_agent,
            "GET",
            &format!("{url}/v1/changes?since=x"),
            None
        )
        .0,
        400
    );

    // No client certificate, or one of another CA: no connection at all.
    let d2 = dir("emks-bad-ca");
    pki::init(&d2.join("tls"), &["acme".into()]).unwrap();
    let stranger = EmksClient::new(&url, &d2.join("tls"), "eese", Duration::from_secs(5)).unwrap();
    assert!(matches!(
        stranger.root(b"ue-1"),
        Err(ServiceError::Unreachable(_))
    ));
    let no_cert: ureq::Agent = {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(&std::fs::read(d.join("tls/ca.crt")).unwrap()).unwrap();
        ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
                    .build(),
            )
            .build()
            .into()
    };
    assert!(
        no_cert
            .get(&format!("{url}/v1/ues/ue-1/root"))
            .call()
            .is_err()
    );

    // Nothing changed.
    let a = eese.root(b"ue-1").unwrap();
    assert_eq!((a.generation, *a.root.key().as_bytes()), (1, root));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn a_provisioning_that_races_fetches_is_seen_whole_and_in_order() {
    let d = dir("emks-race");
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    let url = emks(&d);
    let hss = client(&url, &d, "hss");
    hss.provision(b"ue-r", "acme", "3gpp", &[1; 32]).unwrap();
    let eese = client(&url, &d, "eese");
    let writer = std::thread::spawn(move || {
        for g in 2..=40u8 {
            // Generation g carries root [g; 32].
            assert_eq!(
                hss.provision(b"ue-r", "acme", "3gpp", &[g; 32])
                    .unwrap()
                    .generation,
                u64::from(g)
            );
        }
    });
    let mut last = 0;
    let mut seen = 0;
    while !writer.is_finished() || seen == 0 {
        let a = eese.root(b"ue-r").unwrap();
        let (g, r) = (a.generation, a.root);
        assert!(g >= last, "generation went back from {last} to {g}");
        assert_eq!(
            *r.key().as_bytes(),
            [u8::try_from(g).unwrap(); 32],
            "root of generation {g} mixed"
        );
        last = g;
        seen += 1;
    }
    writer.join().unwrap();
    assert_eq!(eese.root(b"ue-r").unwrap().generation, 40);
    // The long-poll reports the newest generation of the UE.
    let c = eese.changes(0, Duration::ZERO).unwrap();
    assert_eq!(c.changes.last().map(|c| c.generation), Some(40));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn admin_interface_refuses_bad_input_clearly_and_changes_nothing() {
    let d = dir("admin-bad");
    pki::init(&d.join("tls"), &["acme".into()]).unwrap();
    let url = emks(&d);
    let admin_port = free_port();
    let token = std::fs::read_to_string(d.join("tls/admin.token")).unwrap();
    let mut cfg = ServiceConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        url,
        d.join("tls"),
        d.join("eese.state"),
    );
    cfg.admin = Some(
        AdminConfig::from_files(
            format!("127.0.0.1:{admin_port}").parse().unwrap(),
            &d.join("tls"),
            &d.join("tls/admin.token"),
            Some(&d.join("tls/admin-read.token")),
        )
        .unwrap(),
    );
    cfg.max_sessions = 10;
    cfg.idle_timeout = Duration::from_secs(60);
    cfg.exit_after = Some(Duration::from_secs(20));
    let (tx, rx) = std::sync::mpsc::channel();
    let svc = std::thread::spawn(move || {
        let mut s = EeseService::start(cfg, |_, a, _| tx.send(a).unwrap()).unwrap();
        s.run().unwrap();
    });
    let admin = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let base = format!("https://{admin}");
    let tls = d.join("tls");
    let good = AdminClient::new(&base, &tls, &token).unwrap();
    let before = good.metrics().unwrap();

    for bad in ["", "wrong", &token[..token.len() / 2]] {
        let c = AdminClient::new(&base, &tls, if bad.is_empty() { " " } else { bad }).unwrap();
        let (s, m) = status(c.expire("ue-1").unwrap_err());
        assert_eq!(s, 401, "{m}");
        assert!(m.contains("bearer token"), "{m}");
        assert!(matches!(
            c.metrics(),
            Err(ServiceError::Refused { status: 401, .. })
        ));
    }
    let (s, m) = status(good.show("nobody").unwrap_err());
    assert_eq!(s, 404, "{m}");
    assert!(m.contains("no session for UE nobody"), "{m}");
    let (s, _) = status(good.expire("nobody").unwrap_err());
    assert_eq!(s, 404);
    let (s, m) = status(good.te2e("nobody", 0).unwrap_err());
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("secs must be 1"), "{m}");
    let (s, _) = status(good.send("nobody", &[]).unwrap_err());
    assert_eq!(s, 400);
    let (s, m) = status(good.send("nobody", &[0; 1025]).unwrap_err());
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("1 to 1024 octets"), "{m}");
    let (s, _) = status(good.send("nobody", &[0; 3000]).unwrap_err());
    assert_eq!(s, 413, "a body over 4 KiB");
    assert_eq!(status(good.send("nobody", &[0; 100]).unwrap_err()).0, 404);
    assert_eq!(status(good.show("u".repeat(65)).unwrap_err()).0, 400);

    let agent = ciot_e2e_service::tls::ca_agent(&tls, Duration::from_secs(5)).unwrap();
    let auth = format!("Bearer {}", token.trim());
    for (path, body, want) in [
        ("/v1/ues/ue-1/te2e", &b"{nope"[..], 400),
        ("/v1/ues/ue-1/te2e", &br#"{"secs":"ten"}"#[..], 400),
        ("/v1/ues/ue-1/send", &br#"{"payload":"xyz"}"#[..], 400),
        (
            "/v1/ues/ue-1/send",
            &br#"{"payload":"00","more":1}"#[..],
            400,
        ),
    ] {
        let method = if path.ends_with("te2e") {
            "PUT"
        } else {
            "POST"
        };
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("authorization", &auth)
            .body(body.to_vec())
            .unwrap();
        let mut r = agent.run(req).unwrap();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(
            r.status().as_u16(),
            want,
            "{path} {}: {text}",
            String::from_utf8_lossy(body)
        );
        assert!(text.contains("\"error\""), "{text}");
    }
    assert_eq!(
        good.metrics().unwrap(),
        before,
        "a refused request changed a counter"
    );
    drop(svc);
    let _ = std::fs::remove_dir_all(&d);
}
