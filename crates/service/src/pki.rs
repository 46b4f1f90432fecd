//! `ciot-e2e pki init`: a test PKI, so the whole setup runs on a fresh
//! machine without openssl commands.
//!
//! One CA signs every certificate. A certificate's common name says what its
//! holder is: `emks` (the EMKS server, also named `localhost` and
//! `127.0.0.1`), `hss` (provisions roots), `eese:<enterprise>` (fetches the
//! roots of its enterprise's UEs). The EMKS reads the role and the enterprise
//! from the client certificate; nothing else says who a client is.
//!
//! This is a test PKI: the CA key is written beside the certificates so more
//! can be issued. A deployment keeps its CA key elsewhere (docs/DEPLOYMENT.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::ServiceError;

/// The files a role loads from a TLS directory: `<stem>.crt` and `<stem>.key`.
pub const CA_CERT: &str = "ca.crt";
/// The admin interface's bearer token.
pub const ADMIN_TOKEN: &str = "admin.token";

fn pki_err(e: rcgen::Error) -> ServiceError {
    ServiceError::Tls(format!("certificate generation: {e}"))
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), ServiceError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = secret;
    let mut f = opts
        .open(path)
        .map_err(|e| ServiceError::Io(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ServiceError::Io(format!("{}: {e}", path.display())))
}

/// Whether an enterprise name is usable in a certificate and a file name:
/// 1 to 32 of `a-z 0-9 -`.
#[must_use]
pub fn valid_enterprise(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Writes a CA and the EMKS, HSS and EESE certificates (one EESE per
/// enterprise; the first is also `eese.crt`), and an admin token, into
/// `dir`. Returns the files written.
///
/// # Errors
/// [`ServiceError::Usage`] for a bad enterprise name or an existing CA in
/// `dir` (nothing is overwritten); I/O and generation errors.
pub fn init(dir: &Path, enterprises: &[String]) -> Result<Vec<PathBuf>, ServiceError> {
    if enterprises.is_empty() {
        return Err(ServiceError::Usage("at least one enterprise".into()));
    }
    if let Some(bad) = enterprises.iter().find(|e| !valid_enterprise(e)) {
        return Err(ServiceError::Usage(format!(
            "enterprise {bad:?}: 1 to 32 of a-z, 0-9 and -"
        )));
    }
    fs::create_dir_all(dir).map_err(|e| ServiceError::Io(format!("{}: {e}", dir.display())))?;
    if dir.join(CA_CERT).exists() {
        return Err(ServiceError::Usage(format!(
            "{} already holds a CA; use another directory",
            dir.display()
        )));
    }
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8], secret: bool| -> Result<(), ServiceError> {
        let p = dir.join(name);
        write_file(&p, bytes, secret)?;
        written.push(p);
        Ok(())
    };

    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ciot-e2e test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
    put(CA_CERT, ca_cert.pem().as_bytes(), false)?;
    put("ca.key", ca_key.serialize_pem().as_bytes(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf = |stem: &str, cn: &str, server: bool| -> Result<(), ServiceError> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        if server {
            p.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into().map_err(pki_err)?),
                SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
                SanType::IpAddress(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer).map_err(pki_err)?;
        put(&format!("{stem}.crt"), cert.pem().as_bytes(), false)?;
        put(&format!("{stem}.key"), key.serialize_pem().as_bytes(), true)?;
        Ok(())
    };
    leaf("emks", "emks", true)?;
    leaf("hss", "hss", false)?;
    for (i, e) in enterprises.iter().enumerate() {
        let cn = format!("eese:{e}");
        leaf(&format!("eese-{e}"), &cn, false)?;
        if i == 0 {
            leaf("eese", &cn, false)?;
        }
    }
    let mut token = [0u8; 24];
    getrandom::fill(&mut token).map_err(|e| ServiceError::Io(format!("random: {e}")))?;
    put(
        ADMIN_TOKEN,
        format!("{}\n", hex::encode(token)).as_bytes(),
        true,
    )?;
    Ok(written)
}
