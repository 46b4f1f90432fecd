//! The test PKI: the CA key stays out of the TLS directory, certificates
//! last what they are told, and `issue` makes one role's certificate that
//! the services read as that role.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ciot_e2e_service::admin::{AdminClient, AdminConfig, serve};
use ciot_e2e_service::eese::metrics::Metrics;
use ciot_e2e_service::pki::{self, Role};
use ciot_e2e_service::tls::Peer;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-pki-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_slice(&std::fs::read(path).unwrap())
        .unwrap()
        .to_vec()
}

/// The certificate's validity in whole days.
fn days(path: &Path) -> i64 {
    let der = der(path);
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    let v = c.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_keeps_the_ca_key_apart_and_certificates_last_a_year() {
    let d = dir("init");
    let tls = d.join("tls");
    let files = pki::init(&tls, &["acme".into()]).unwrap();
    let ca = d.join("tls-ca");
    assert!(files.contains(&ca.join("ca.key")));
    assert!(
        !tls.join("ca.key").exists(),
        "the CA key is in the TLS directory"
    );
    for f in [
        "ca.crt",
        "emks.crt",
        "emks.key",
        "hss.crt",
        "eese.crt",
        "eese-acme.key",
        "admin.crt",
        "admin.key",
        "admin.token",
        "admin-read.token",
    ] {
        assert!(tls.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    for f in [
        ca.join("ca.key"),
        tls.join("emks.key"),
        tls.join("admin.key"),
        tls.join("admin.token"),
        tls.join("admin-read.token"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    // 365 days and the hour before now.
    assert_eq!(days(&tls.join("emks.crt")), 365);
    assert_eq!(days(&tls.join("admin.crt")), 365);
    assert_eq!(days(&ca.join("ca.crt")), i64::from(pki::CA_DAYS));
    assert_eq!(
        Peer::from_cert(&der(&tls.join("eese.crt"))),
        Peer::Eese("acme".into())
    );
    assert_eq!(Peer::from_cert(&der(&tls.join("hss.crt"))), Peer::Hss);

    // Nothing is overwritten; the CA folder may not be inside the directory.
    let e = pki::init(&tls, &["acme".into()]).unwrap_err().to_string();
    assert!(e.contains("already holds a CA"), "{e}");
    let e = pki::init_with(&d.join("t2"), &d.join("t2/ca"), &["acme".into()], 365)
        .unwrap_err()
        .to_string();
    assert!(e.contains("must not be"), "{e}");
    let e = pki::init_with(&d.join("t3"), &d.join("ca3"), &["acme".into()], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--days"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn issue_makes_one_role_that_the_services_read_as_that_role() {
    let d = dir("issue");
    let ca = d.join("ca");
    pki::init_with(&d.join("tls"), &ca, &["acme".into()], 365).unwrap();

    let out = d.join("eese-beta");
    let files = pki::issue(Role::Eese, &["beta".into()], &out, &ca, 30).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(
        Peer::from_cert(&der(&out.join("eese.crt"))),
        Peer::Eese("beta".into())
    );
    assert_eq!(days(&out.join("eese.crt")), 30);
    assert_eq!(
        std::fs::read(out.join("ca.crt")).unwrap(),
        std::fs::read(ca.join("ca.crt")).unwrap()
    );
    #[cfg(unix)]
    assert_eq!(mode(&out.join("eese.key")), 0o600);
    assert!(!out.join("ca.key").exists());
    // Not again into the same folder.
    let e = pki::issue(Role::Eese, &["beta".into()], &out, &ca, 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists already"), "{e}");

    let hss = d.join("hss");
    pki::issue(Role::Hss, &[], &hss, &ca, 365).unwrap();
    assert_eq!(Peer::from_cert(&der(&hss.join("hss.crt"))), Peer::Hss);

    for (role, names, want) in [
        (Role::Eese, vec![], "needs one --name"),
        (Role::Eese, vec!["Bad Name".to_string()], "1 to 32"),
        (Role::Hss, vec!["x".to_string()], "takes no --name"),
        (Role::Emks, vec![], "needs --name"),
        (
            Role::Admin,
            vec!["not a name!".to_string()],
            "not a DNS name",
        ),
    ] {
        let e = pki::issue(role, &names, &d.join("bad"), &ca, 365)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{role:?} {names:?}: {e}");
    }
    assert!(!d.join("bad").exists(), "a refused issue wrote something");
    let e = pki::issue(Role::Hss, &[], &d.join("nope"), &d.join("no-ca"), 365)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.crt"), "{e}");

    // An admin interface on an issued certificate (and its tokens) serves
    // a client that trusts the CA, by the name the certificate carries.
    let adm = d.join("admin");
    pki::issue(Role::Admin, &["127.0.0.1".into()], &adm, &ca, 365).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cfg = AdminConfig::from_files(
        "127.0.0.1:0".parse().unwrap(),
        &adm,
        &adm.join(pki::ADMIN_TOKEN),
        Some(&adm.join(pki::ADMIN_READ_TOKEN)),
    )
    .unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let addr = rt
        .block_on(serve(cfg, tx, Arc::new(Metrics::default())))
        .unwrap();
    let c = AdminClient::from_files(
        &format!("https://{addr}"),
        &adm,
        &adm.join(pki::ADMIN_READ_TOKEN),
    )
    .unwrap();
    assert!(c.metrics().unwrap().contains("ciot_eese_sessions"));
    // The certificate names 127.0.0.1 only.
    let c = AdminClient::from_files(
        &format!("https://localhost:{}", addr.port()),
        &adm,
        &adm.join(pki::ADMIN_TOKEN),
    )
    .unwrap();
    assert!(c.metrics().is_err());
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&d);
}
